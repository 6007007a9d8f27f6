//! The result table: rows, floors, targets, and its Markdown rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::harness::Stats;

/// The floors every other row is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Floor {
    /// Bare quick_cache get of an `Arc` by UUID, one thread.
    CacheGet,
    /// The same with two threads (aggregate ns/op).
    CacheGet2,
    /// Bare prepared SELECT by primary key through sqlx.
    Select,
    /// Bare one-statement UPDATE + pg_notify through sqlx, synchronous_commit on.
    UpdateOn,
    /// The same with synchronous_commit off.
    UpdateOff,
    /// Redis GET round trip.
    RedisGet,
    /// Redis SET round trip.
    RedisSet,
}

impl Floor {
    pub fn label(self) -> &'static str {
        match self {
            Floor::CacheGet => "F1",
            Floor::CacheGet2 => "F2",
            Floor::Select => "F3",
            Floor::UpdateOn => "F4",
            Floor::UpdateOff => "F5",
            Floor::RedisGet => "F6",
            Floor::RedisSet => "F7",
        }
    }
}

/// A target a row must reach.
#[derive(Debug, Clone)]
pub enum Target {
    /// median ≤ limit × the floor's median.
    AtMost(Floor, f64),
    /// the floor's median ≥ factor × this row's median.
    FasterThan(Floor, f64),
    /// A measured count or size must be ≤ the limit (unit in the text).
    Count {
        value: f64,
        limit: f64,
        unit: &'static str,
    },
}

/// What a row measured.
#[derive(Debug, Clone)]
pub enum Cell {
    Time(Stats),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub section: &'static str,
    pub operation: String,
    pub system: String,
    pub cell: Cell,
    pub ops1: Option<f64>,
    pub ops8: Option<f64>,
    /// The floor this row is compared with (its ratio column).
    pub vs: Option<Floor>,
    /// This row *is* a floor.
    pub is_floor: Option<Floor>,
    pub targets: Vec<Target>,
    pub note: Option<String>,
}

impl Row {
    pub fn new(
        section: &'static str,
        operation: impl Into<String>,
        system: impl Into<String>,
    ) -> Self {
        Row {
            section,
            operation: operation.into(),
            system: system.into(),
            cell: Cell::Text(String::new()),
            ops1: None,
            ops8: None,
            vs: None,
            is_floor: None,
            targets: Vec::new(),
            note: None,
        }
    }

    pub fn time(mut self, s: Stats) -> Self {
        self.ops1 = Some(s.ops_per_sec());
        self.cell = Cell::Time(s);
        self
    }

    pub fn text(mut self, t: impl Into<String>) -> Self {
        self.cell = Cell::Text(t.into());
        self
    }

    pub fn ops8(mut self, v: f64) -> Self {
        self.ops8 = Some(v);
        self
    }

    pub fn floor(mut self, f: Floor) -> Self {
        self.is_floor = Some(f);
        self
    }

    pub fn vs(mut self, f: Floor) -> Self {
        self.vs = Some(f);
        self
    }

    pub fn target(mut self, t: Target) -> Self {
        self.targets.push(t);
        self
    }

    pub fn note(mut self, n: impl Into<String>) -> Self {
        self.note = Some(n.into());
        self
    }

    pub fn skipped(section: &'static str, operation: &str, system: &str, why: &str) -> Self {
        Row::new(section, operation, system).text(format!("skipped: {why}"))
    }

    fn median(&self) -> Option<f64> {
        match &self.cell {
            Cell::Time(s) => Some(s.median),
            Cell::Text(_) => None,
        }
    }
}

/// Verdict of one target.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub row: String,
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

pub struct Table {
    pub rows: Vec<Row>,
    /// Verdicts of sections that are not rows (listed after the rows').
    pub extra: Vec<Verdict>,
}

fn floors(rows: &[Row]) -> BTreeMap<Floor, f64> {
    rows.iter()
        .filter_map(|r| Some((r.is_floor?, r.median()?)))
        .collect()
}

/// `12,345` / `31.2` / `20` (whole numbers without decimals).
pub fn num(v: f64) -> String {
    if v < 100.0 && v.fract() != 0.0 {
        return format!("{v:.1}");
    }
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ops(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), num)
}

impl Table {
    pub fn verdicts(&self) -> Vec<Verdict> {
        let f = floors(&self.rows);
        let mut out = Vec::new();
        for r in &self.rows {
            let name = format!("{} ({})", r.operation, r.system);
            for t in &r.targets {
                let (target, measured, met) = match t {
                    Target::AtMost(fl, limit) => {
                        let target = format!("≤ {limit}× {}", fl.label());
                        match (r.median(), f.get(fl)) {
                            (Some(m), Some(fm)) => {
                                let ratio = m / fm;
                                (target, format!("{ratio:.2}×"), Some(ratio <= *limit))
                            }
                            _ => (target, "not measured".into(), None),
                        }
                    }
                    Target::FasterThan(fl, factor) => {
                        let target = format!("≥ {factor}× faster than {}", fl.label());
                        match (r.median(), f.get(fl)) {
                            (Some(m), Some(fm)) => {
                                let ratio = fm / m;
                                (
                                    target,
                                    format!("{ratio:.0}× faster"),
                                    Some(ratio >= *factor),
                                )
                            }
                            _ => (target, "not measured".into(), None),
                        }
                    }
                    Target::Count { value, limit, unit } => (
                        format!("≤ {} {unit}", num(*limit)),
                        format!("{} {unit}", num(*value)),
                        Some(value <= limit),
                    ),
                };
                out.push(Verdict {
                    row: name.clone(),
                    target,
                    measured,
                    met,
                });
            }
        }
        out.extend(self.extra.iter().cloned());
        out
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let f = floors(&self.rows);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| operation | system | ns/op median (min–max) | ops/s, 1 task | ops/s, 8 tasks | vs floor |"
        );
        let _ = writeln!(s, "| --- | --- | --- | ---: | ---: | --- |");
        let mut section = "";
        for r in &self.rows {
            if r.section != section {
                section = r.section;
                let _ = writeln!(s, "| **{section}** | | | | | |");
            }
            let cell = match &r.cell {
                Cell::Time(st) => format!("{} ({}–{})", num(st.median), num(st.min), num(st.max)),
                Cell::Text(t) => t.clone(),
            };
            let vs = match (r.is_floor, r.vs, r.median()) {
                (Some(fl), _, _) => format!("{} (floor)", fl.label()),
                (None, Some(fl), Some(m)) => match f.get(&fl) {
                    Some(fm) => format!("{:.2}× {}", m / fm, fl.label()),
                    None => format!("{} not measured", fl.label()),
                },
                _ => "–".into(),
            };
            let mut op = r.operation.clone();
            if let Some(n) = &r.note {
                let _ = write!(op, " ({n})");
            }
            let _ = writeln!(
                s,
                "| {op} | {} | {cell} | {} | {} | {vs} |",
                r.system,
                ops(r.ops1),
                ops(r.ops8)
            );
        }
        s
    }

    /// The targets as Markdown.
    pub fn targets_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| row | target | measured | met |");
        let _ = writeln!(s, "| --- | --- | --- | --- |");
        for v in self.verdicts() {
            let met = match v.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "not measured",
            };
            let _ = writeln!(s, "| {} | {} | {} | {met} |", v.row, v.target, v.measured);
        }
        s
    }
}
