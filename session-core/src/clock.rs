//! Injectable time source, so tests move time without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// A source of the current time. All engine decisions about expiry,
/// inactivity and cache age read it.
///
/// Times are truncated to whole microseconds, the precision PostgreSQL
/// stores, so a time written and read back compares equal.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time, truncated to microseconds.
    fn now(&self) -> DateTime<Utc>;

    /// The current time in microseconds since the Unix epoch: the same
    /// instant as [`now`](Clock::now), cheaper to compare (the read path
    /// uses it).
    fn now_micros(&self) -> i64 {
        self.now().timestamp_micros()
    }
}

/// Converts microseconds since the epoch to a time (saturating at the
/// representable range).
pub fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(if us < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// Truncates a time to whole microseconds.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The system wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_micros(Utc::now())
    }

    /// On Linux this reads `CLOCK_REALTIME_COARSE` (no syscall, a few ns):
    /// it may lag [`now`](Clock::now) by up to one kernel tick (1–4 ms),
    /// which is far below any session or cache duration it is compared with.
    #[cfg(target_os = "linux")]
    #[allow(clippy::useless_conversion)] // tv_nsec is not i64 on every Linux target
    fn now_micros(&self) -> i64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        t.tv_sec.saturating_mul(1_000_000) + i64::from(t.tv_nsec / 1_000)
    }

    #[cfg(not(target_os = "linux"))]
    fn now_micros(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    micros: Arc<AtomicI64>,
}

impl ManualClock {
    /// A manual clock starting at the current system time.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A manual clock starting at `start`.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        ManualClock {
            micros: Arc::new(AtomicI64::new(start.timestamp_micros())),
        }
    }

    /// Moves the clock forward by `by` (negative durations are not allowed
    /// and are ignored: time never goes backwards).
    pub fn advance(&self, by: std::time::Duration) {
        let delta = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.micros.fetch_add(delta, Ordering::SeqCst);
    }

    /// The current time of this clock (same as [`Clock::now`]).
    pub fn now(&self) -> DateTime<Utc> {
        Clock::now(self)
    }

    /// Sets the clock to `t` if it is later than the current time.
    pub fn set(&self, t: DateTime<Utc>) {
        self.micros
            .fetch_max(t.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        from_micros(self.micros.load(Ordering::SeqCst))
    }

    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::SeqCst)
    }
}

/// A std duration in whole microseconds, saturating.
pub(crate) fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Converts a std duration to a chrono delta, saturating.
pub(crate) fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
