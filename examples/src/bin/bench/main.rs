//! The benchmark behind BENCHMARKS.md: floors, our engine on each backend,
//! and the peers users would pick instead, measured side by side in one run.
//!
//! ```text
//! bash examples/bench.sh                      # the published table (pins I/O to CPU 0)
//! cargo run --release -p examples --bin bench # without peers, unpinned
//! cargo run -p examples --bin bench -- --smoke  # seconds; checks it works (CI)
//! cargo run --release -p examples --bin bench -- --only writes  # write scaling only (~4 min)
//! ```
//!
//! Options: `--smoke` (tiny samples, nothing written unless `--out`),
//! `--out PATH` (default: BENCHMARKS.md at the repository root in a full
//! run), `--pin-cpu N` (after the write-scaling section, the local
//! PostgreSQL and Redis processes and the I/O runtime's threads run on CPU
//! N; the servers' CPU sets are restored at the end), `--sessions N` (sessions for the flush
//! and memory rows; default 100000, smoke 1000), `--only writes` (only the
//! write-scaling section, see `writes.rs`; printed, written only with
//! `--out`).
//!
//! The write-scaling section runs first, before anything else connects: its
//! 32 writers need pools of 34 connections, and the rest of the run keeps
//! its own pools open throughout.
//!
//! PostgreSQL comes from `DATABASE_URL`, a server on 127.0.0.1:5432, or a
//! throwaway cluster (session-testkit); Redis from `REDIS_URL` or
//! 127.0.0.1:6379. Rows whose server is missing say "skipped".

mod harness;
mod lifecycle;
mod machine;
mod memory_probe;
mod ours;
#[cfg(feature = "peers")]
mod peers;
mod pg;
mod report;
mod resp;
mod table;
mod writes;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use session_core::memory::MemoryBackend;
use session_core::{Config, SessionManager};
use tokio::runtime::Runtime;
use uuid::Uuid;

use harness::{Op, Plan, Stats, SyncBench};
use ours::{Node, System};
use table::{Floor, Row, Target};

struct Args {
    smoke: bool,
    out: Option<PathBuf>,
    pin_cpu: Option<usize>,
    sessions: usize,
    /// Only this section (`writes`).
    only: Option<&'static str>,
}

fn parse_args(argv: &[String]) -> Args {
    let mut a = Args {
        smoke: false,
        out: None,
        pin_cpu: None,
        sessions: 0,
        only: None,
    };
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| match it.next() {
            Some(v) => v.clone(),
            None => panic!("{name} needs a value"),
        };
        match arg.as_str() {
            "--smoke" => a.smoke = true,
            "--out" => a.out = Some(PathBuf::from(value("--out"))),
            "--pin-cpu" => {
                a.pin_cpu = Some(
                    value("--pin-cpu")
                        .parse()
                        .unwrap_or_else(|e| panic!("--pin-cpu takes a CPU number: {e}")),
                )
            }
            "--sessions" => {
                a.sessions = value("--sessions")
                    .parse()
                    .unwrap_or_else(|e| panic!("--sessions takes a number: {e}"))
            }
            "--only" => match value("--only").as_str() {
                "writes" => a.only = Some("writes"),
                other => panic!("--only takes `writes`, not {other:?}"),
            },
            other => {
                panic!("unknown argument {other:?} (see the top of examples/src/bin/bench/main.rs)")
            }
        }
    }
    if a.sessions == 0 {
        a.sessions = if a.smoke { 1000 } else { 100_000 };
    }
    if a.out.is_none() && !a.smoke && a.only.is_none() {
        a.out = Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../BENCHMARKS.md"
        )));
    }
    a
}

fn runtime(pin: Option<usize>, name: &str) -> Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(2).enable_all().thread_name(name);
    if let Some(cpu) = pin {
        b.on_thread_start(move || machine::pin_current_thread(cpu));
    }
    match b.build() {
        Ok(rt) => rt,
        Err(e) => panic!("building the {name} runtime: {e}"),
    }
}

/// Runs `f` as a task of `rt` (on its worker threads) and waits for it.
fn on<T: Send + 'static>(
    rt: &Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    match rt.block_on(rt.spawn(f)) {
        Ok(v) => v,
        Err(e) => panic!("a benchmark task failed: {e}"),
    }
}

/// Everything the measurements need, built once.
struct Env {
    memory: System,
    memory_backend: MemoryBackend,
    pg: Result<pg::Pg, String>,
    /// Our engine on each PostgreSQL backend (sqlx, diesel).
    pg_systems: Vec<(PgKind, System)>,
    pg_config: Option<Config>,
    redis: Result<(Op, Op, Option<String>), String>,
    #[cfg(feature = "peers")]
    peers: Result<peers::Peers, String>,
}

const CACHE_SIZE: usize = 200_000;

async fn memory_system() -> (System, MemoryBackend) {
    let backend = MemoryBackend::new();
    let config = Config {
        cache_size: CACHE_SIZE,
        ..Config::default()
    };
    let start = |b: &MemoryBackend| {
        let (config, node) = (config.clone(), b.node());
        async move {
            match SessionManager::new(config, node).await {
                Ok(m) => m,
                Err(e) => panic!("starting a memory node: {e}"),
            }
        }
    };
    let reader = Node::new(start(&backend).await, ours::READ_SESSIONS).await;
    let writer = Node::new(start(&backend).await, ours::WRITE_SESSIONS).await;
    let contended = ours::create_sessions(&writer.mgr, 1).await.remove(0);
    (
        System {
            reader,
            writer_on: writer,
            writer_off: None,
            contended_on: contended,
            contended_off: None,
        },
        backend,
    )
}

/// A PostgreSQL backend of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PgKind {
    Sqlx,
    Diesel,
}

impl PgKind {
    const ALL: [PgKind; 2] = [PgKind::Sqlx, PgKind::Diesel];

    fn name(self) -> &'static str {
        match self {
            PgKind::Sqlx => "sqlx",
            PgKind::Diesel => "diesel",
        }
    }
}

/// Starts a node of `kind` whose connections use `synchronous_commit`
/// `sync`: sqlx on `pool` (or a new pool), diesel on its own pool.
async fn start_node(
    kind: PgKind,
    url: &str,
    config: &Config,
    sync: bool,
    pool: Option<sqlx::PgPool>,
) -> Result<SessionManager, String> {
    let started = match kind {
        PgKind::Sqlx => {
            let pool = match pool {
                Some(p) => p,
                None => pg::pool_cold(url, sync).await?,
            };
            session_sqlx::session_manager(pool, config.clone()).await
        }
        PgKind::Diesel => {
            session_diesel::session_manager(&pg::url_with_sync(url, sync), config.clone()).await
        }
    };
    started.map_err(|e| format!("starting a {} node: {e}", kind.name()))
}

async fn pg_system(kind: PgKind, pg: &pg::Pg, config: &Config) -> Result<System, String> {
    let mgr_on = start_node(kind, &pg.url, config, true, Some(pg.pool_on.clone())).await?;
    let mgr_off = start_node(kind, &pg.url, config, false, Some(pg.pool_off.clone())).await?;
    let reader = Node::new(mgr_off.clone(), ours::READ_SESSIONS).await;
    let writer_on = Node::new(mgr_on.clone(), ours::WRITE_SESSIONS).await;
    let writer_off = Node::new(mgr_off.clone(), ours::WRITE_SESSIONS).await;
    let contended_on = ours::create_sessions(&mgr_on, 1).await.remove(0);
    let contended_off = ours::create_sessions(&mgr_off, 1).await.remove(0);
    Ok(System {
        reader,
        writer_on,
        writer_off: Some(writer_off),
        contended_on,
        contended_off: Some(contended_off),
    })
}

/// The Redis floors: GET and SET of a 200-byte value over 8 connections
/// (one per concurrent task). Also returns the server's process id.
async fn redis_floors() -> Result<(Op, Op, Option<String>), String> {
    let addr = resp::address();
    let mut conns = Vec::new();
    let value = vec![b'x'; 200];
    let mut pid = None;
    for i in 0..8 {
        let mut c = resp::Redis::connect(&addr)
            .await
            .map_err(|e| format!("no Redis at {addr}: {e}"))?;
        if i == 0 {
            pid = c.info_field("process_id").await;
            for k in 0..pg::FLOOR_ROWS {
                c.command(&[b"SET", format!("bench:floor:{k}").as_bytes(), &value])
                    .await
                    .map_err(|e| format!("Redis SET: {e}"))?;
            }
        }
        conns.push(Arc::new(tokio::sync::Mutex::new(c)));
    }
    let conns = Arc::new(conns);
    let keys: Arc<Vec<String>> = Arc::new(
        (0..pg::FLOOR_ROWS)
            .map(|k| format!("bench:floor:{k}"))
            .collect(),
    );
    let get: Op = {
        let (conns, keys) = (conns.clone(), keys.clone());
        Arc::new(move |t, n| {
            let (conns, keys) = (conns.clone(), keys.clone());
            Box::pin(async move {
                let mut c = conns[t % 8].lock().await;
                let key = &keys[(t * 131 + n as usize) % keys.len()];
                match c.command(&[b"GET", key.as_bytes()]).await {
                    Ok(Some(v)) => {
                        std::hint::black_box(v);
                    }
                    other => panic!("Redis GET: {other:?}"),
                }
            })
        })
    };
    let set: Op = Arc::new(move |t, n| {
        let (conns, keys) = (conns.clone(), keys.clone());
        Box::pin(async move {
            let mut c = conns[t % 8].lock().await;
            let key = &keys[(t * 131 + n as usize) % keys.len()];
            let value = [b'y'; 200];
            if let Err(e) = c.command(&[b"SET", key.as_bytes(), &value]).await {
                panic!("Redis SET: {e}");
            }
        })
    });
    Ok((get, set, pid))
}

async fn setup() -> Env {
    let (memory, memory_backend) = memory_system().await;
    let pg = pg::Pg::setup().await;
    let mut pg_systems = Vec::new();
    let mut pg_config = None;
    if let Ok(pg) = &pg {
        let config = Config {
            schema_name: pg.schema.name().to_string(),
            create_schema_if_missing: true,
            cache_size: CACHE_SIZE,
            ..Config::default()
        };
        for kind in PgKind::ALL {
            match pg_system(kind, pg, &config).await {
                Ok(s) => pg_systems.push((kind, s)),
                Err(e) => panic!("{e}"),
            }
        }
        pg_config = Some(config);
    }
    let redis = redis_floors().await;
    #[cfg(feature = "peers")]
    let peers = {
        let pg_arg = pg
            .as_ref()
            .ok()
            .map(|p| (p.url.clone(), p.schema.name().to_string()));
        let redis_addr = redis.as_ref().ok().map(|_| resp::address());
        peers::Peers::setup(
            pg_arg.as_ref().map(|(u, s)| (u.as_str(), s.as_str())),
            redis_addr.as_deref(),
        )
        .await
    };
    Env {
        memory,
        memory_backend,
        pg,
        pg_systems,
        pg_config,
        redis,
        #[cfg(feature = "peers")]
        peers,
    }
}

const NO_PEERS: &str = "build with --features peers";

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("--memory-probe") {
        let n = argv.get(1).and_then(|v| v.parse().ok()).unwrap_or(100_000);
        memory_probe::child(n);
        return;
    }
    let args = parse_args(&argv);
    let plan = if args.smoke {
        Plan::smoke()
    } else {
        Plan::full()
    };
    let started = Instant::now();
    let date = chrono::Utc::now();
    let machine = machine::describe();
    // Write scaling measures concurrency: servers and clients on every CPU,
    // before anything is pinned.
    let writes = {
        let rt = runtime(None, "bench-writes");
        on(
            &rt,
            writes::run(if args.smoke {
                writes::Plan::smoke()
            } else {
                writes::Plan::full()
            }),
        )
    };
    if args.only.is_some() {
        let ctx = report::Context {
            date,
            machine,
            smoke: args.smoke,
            pin_cpu: args.pin_cpu,
            pg: writes.server.clone(),
            redis_cpus: None,
            redis: false,
            peers: cfg!(feature = "peers"),
            elapsed: started.elapsed(),
            load_after: load_average(),
            only: args.only,
        };
        let table = table::Table {
            rows: Vec::new(),
            extra: writes.verdicts,
        };
        finish_report(&ctx, &table, &[writes.markdown], args.out.as_deref());
        return;
    }
    // The latency rows: the local servers and our I/O threads share one CPU
    // (restored when this is dropped, at the end of main or on a panic).
    let _pinned = args.pin_cpu.map(|cpu| {
        let pinned = machine::PinnedServers::pin(&["postgres", "redis-server"], cpu);
        eprintln!(
            "bench: pinned {} server processes to CPU {cpu}",
            pinned.count()
        );
        pinned
    });
    let io = runtime(args.pin_cpu, "bench-io");
    let mem_rt = runtime(None, "bench-mem");
    eprintln!("bench: setting up (PostgreSQL, Redis, sessions)…");
    let env = on(&io, setup());
    let mut rows: Vec<Row> = Vec::new();
    let pg_skip = env
        .pg
        .as_ref()
        .err()
        .map(|e| format!("no PostgreSQL ({})", e.lines().next().unwrap_or("")));
    let redis_skip = env.redis.as_ref().err().map(|_| "no Redis".to_string());

    // ---- In memory: the cached read path (main thread, unpinned).
    eprintln!("bench: cached reads…");
    {
        let floor = cache_floor(&env.memory.reader);
        let mut benches: Vec<SyncBench<'_>> = vec![floor.bench(), env.memory.reader.cached_get()];
        let mut names: Vec<&str> = vec!["floor", "memory"];
        for (kind, s) in &env.pg_systems {
            benches.push(s.reader.cached_get());
            names.push(kind.name());
        }
        #[cfg(feature = "peers")]
        let peer_names = {
            let mut v = Vec::new();
            if let Ok(p) = &env.peers {
                if let Some(b) = p.caching_hit() {
                    benches.push(b);
                    v.push("tower-sessions CachingSessionStore (moka + sqlx Postgres store)");
                }
                benches.push(p.moka_load());
                v.push("tower-sessions-moka-store");
            }
            v
        };
        let stats = harness::run_sync(&plan, &mut benches);
        let f_ops8 = on(&mem_rt, {
            let op = floor.batch_op();
            async move { harness::throughput(&plan, 8, 256, op).await }
        });
        rows.push(
            Row::new(
                "Floors",
                "cache get of an `Arc` by UUID, 1 thread",
                "quick_cache 0.7",
            )
            .time(stats[0])
            .ops8(f_ops8)
            .floor(Floor::CacheGet),
        );
        let nodes: Vec<&Node> = std::iter::once(&env.memory.reader)
            .chain(env.pg_systems.iter().map(|(_, s)| &s.reader))
            .collect();
        for (i, node) in nodes.into_iter().enumerate() {
            let ops8 = on(&mem_rt, {
                let op = node.cached_get_batch();
                async move { harness::throughput(&plan, 8, 256, op).await }
            });
            rows.push(
                Row::new(
                    section_of(names[i + 1]),
                    "cached `get_session` (token check, expiry, last access)",
                    format!("pg-session, {}", names[i + 1]),
                )
                .time(stats[i + 1])
                .ops8(ops8)
                .vs(Floor::CacheGet)
                .target(Target::AtMost(Floor::CacheGet, 4.0))
                .target(Target::FasterThan(Floor::RedisGet, 80.0)),
            );
        }
        if env.pg_systems.is_empty() {
            for kind in PgKind::ALL {
                rows.push(Row::skipped(
                    section_of(kind.name()),
                    "every row",
                    &format!("pg-session, {}", kind.name()),
                    pg_skip.as_deref().unwrap_or("no PostgreSQL"),
                ));
            }
        }
        #[cfg(feature = "peers")]
        {
            let first = stats.len() - peer_names.len();
            for (k, name) in peer_names.iter().enumerate() {
                let op = if name.contains("Caching") {
                    "load on a cache hit"
                } else {
                    "load (in memory)"
                };
                rows.push(
                    Row::new("Peers", op, *name)
                        .time(stats[first + k])
                        .vs(Floor::CacheGet),
                );
            }
            if let Err(e) = &env.peers {
                rows.push(Row::skipped(
                    "Peers",
                    "load on a cache hit",
                    "tower-sessions",
                    e,
                ));
            }
        }
        #[cfg(not(feature = "peers"))]
        rows.push(Row::skipped(
            "Peers",
            "load on a cache hit",
            "tower-sessions CachingSessionStore (moka)",
            NO_PEERS,
        ));

        // ---- Scaling: 1 and 2 threads on one shared cache.
        eprintln!("bench: thread scaling…");
        let per_thread = ((plan.sample_time.as_nanos() as f64 / stats[0].median) as u64).max(1000);
        let f1 = harness::threads(&plan, 1, per_thread, |t, n| floor.run(t * 500, n));
        let f2 = harness::threads(&plan, 2, per_thread, |t, n| floor.run(t * 500, n));
        let mem = &env.memory.reader;
        let o1 = harness::threads(&plan, 1, per_thread / 4, |t, n| mem.cached_loop(t * 500, n));
        let o2 = harness::threads(&plan, 2, per_thread / 4, |t, n| mem.cached_loop(t * 500, n));
        rows.push(
            Row::new(
                "Scaling",
                "cache get, 2 threads (aggregate ns/op)",
                "quick_cache 0.7",
            )
            .time(f2)
            .floor(Floor::CacheGet2)
            .note(format!(
                "{:.2}× the 1-thread throughput",
                f1.median / f2.median
            )),
        );
        rows.push(
            Row::new(
                "Scaling",
                "cached `get_session`, 2 threads (aggregate ns/op)",
                "pg-session, memory",
            )
            .time(o2)
            .vs(Floor::CacheGet2)
            .target(Target::AtMost(Floor::CacheGet2, 4.0))
            .note(format!(
                "{:.2}× the 1-thread throughput",
                o1.median / o2.median
            )),
        );
    }

    // ---- Store round trips (the I/O runtime; pinned with --pin-cpu).
    let io_group = |rows: &mut Vec<Row>, title: &str, entries: Vec<(Row, Op)>| {
        eprintln!("bench: {title}…");
        let mut benches: Vec<harness::AsyncBench> = entries
            .iter()
            .map(|(_, op)| pg::sequential(op.clone()))
            .collect();
        let stats: Vec<Stats> = on(
            &io,
            async move { harness::run_async(&plan, &mut benches).await },
        );
        for ((row, op), st) in entries.into_iter().zip(stats) {
            let ops8 = on(
                &io,
                async move { harness::throughput(&plan, 8, 1, op).await },
            );
            rows.push(row.time(st).ops8(ops8));
        }
    };

    // Reads that go to the store.
    {
        let mut e: Vec<(Row, Op)> = Vec::new();
        if let Ok(pg) = &env.pg {
            e.push((
                Row::new("Floors", "prepared SELECT by primary key", "sqlx 0.9")
                    .floor(Floor::Select),
                pg.select_op(),
            ));
        }
        for (kind, s) in &env.pg_systems {
            e.push((
                Row::new(
                    section_of(kind.name()),
                    "cache-miss `get_session` (store read, re-cached)",
                    format!("pg-session, {}", kind.name()),
                )
                .vs(Floor::Select)
                .target(Target::AtMost(Floor::Select, 1.3)),
                s.reader.miss_op(),
            ));
        }
        e.push((
            Row::new(
                "Ours: memory",
                "cache-miss `get_session` (store read, re-cached)",
                "pg-session, memory",
            ),
            env.memory.reader.miss_op(),
        ));
        peer_pg_load(&env, &mut e);
        io_group(&mut rows, "store reads", e);
        if let Some(why) = &pg_skip {
            rows.push(Row::skipped(
                "Floors",
                "prepared SELECT by primary key",
                "sqlx 0.9",
                why,
            ));
        }
    }

    // Writes, synchronous_commit on, then off.
    for sync in [true, false] {
        let tag = if sync { "sync on" } else { "sync off" };
        let floor = if sync {
            Floor::UpdateOn
        } else {
            Floor::UpdateOff
        };
        let mut e: Vec<(Row, Op)> = Vec::new();
        if let Ok(pg) = &env.pg {
            e.push((
                Row::new(
                    "Floors",
                    format!("one-statement UPDATE + pg_notify, {tag}"),
                    "sqlx 0.9",
                )
                .floor(floor),
                pg.update_op(sync),
            ));
        }
        for (kind, s) in &env.pg_systems {
            let w = if sync {
                &s.writer_on
            } else {
                s.writer_off.as_ref().unwrap_or(&s.writer_on)
            };
            e.push((
                Row::new(
                    section_of(kind.name()),
                    format!("`update_session` of one attribute, {tag}"),
                    format!("pg-session, {}", kind.name()),
                )
                .vs(floor)
                .target(Target::AtMost(floor, 1.2)),
                w.update_op(),
            ));
            e.push((
                Row::new(
                    section_of(kind.name()),
                    format!("`create_session` (5 attributes), {tag}"),
                    format!("pg-session, {}", kind.name()),
                )
                .vs(floor)
                .target(Target::AtMost(floor, 1.5)),
                w.create_op(),
            ));
        }
        if sync {
            e.push((
                Row::new(
                    "Ours: memory",
                    "`update_session` of one attribute",
                    "pg-session, memory",
                ),
                env.memory.writer_on.update_op(),
            ));
            e.push((
                Row::new(
                    "Ours: memory",
                    "`create_session` (5 attributes)",
                    "pg-session, memory",
                ),
                env.memory.writer_on.create_op(),
            ));
        }
        peer_pg_save(&env, sync, tag, floor, &mut e);
        io_group(&mut rows, &format!("writes, {tag}"), e);
        if let Some(why) = &pg_skip {
            rows.push(Row::skipped(
                "Floors",
                &format!("UPDATE + pg_notify, {tag}"),
                "sqlx 0.9",
                why,
            ));
        }
    }

    // Redis.
    {
        let mut e: Vec<(Row, Op)> = Vec::new();
        if let Ok((get, set, _)) = &env.redis {
            e.push((
                Row::new("Floors", "Redis GET (200 bytes)", "RESP over TCP").floor(Floor::RedisGet),
                get.clone(),
            ));
            e.push((
                Row::new("Floors", "Redis SET (200 bytes)", "RESP over TCP").floor(Floor::RedisSet),
                set.clone(),
            ));
        }
        peer_redis(&env, &mut e);
        io_group(&mut rows, "Redis", e);
        if let Some(why) = &redis_skip {
            rows.push(Row::skipped(
                "Floors",
                "Redis GET / SET",
                "RESP over TCP",
                why,
            ));
        }
    }

    if !cfg!(feature = "peers") {
        for (op, system) in [
            (
                "load / save",
                "tower-sessions-sqlx-store 0.15 (Postgres, sqlx 0.8)",
            ),
            ("load", "tower-sessions-moka-store"),
            ("load / save", "tower-sessions-redis-store 0.16 (fred 10)"),
        ] {
            rows.push(Row::skipped("Peers", op, system, NO_PEERS));
        }
    } else if let Some(why) = &redis_skip {
        rows.push(Row::skipped(
            "Peers",
            "load / save",
            "tower-sessions-redis-store 0.16 (fred 10)",
            why,
        ));
    }

    // update_with under contention: 8 tasks on one session.
    eprintln!("bench: update_with under contention…");
    {
        let mut targets: Vec<(
            &str,
            &'static str,
            Option<Floor>,
            SessionManager,
            session_core::SessionToken,
        )> = vec![(
            "memory",
            "",
            None,
            env.memory.writer_on.mgr.clone(),
            env.memory.contended_on.clone(),
        )];
        for (kind, s) in &env.pg_systems {
            targets.push((
                kind.name(),
                ", sync on",
                Some(Floor::UpdateOn),
                s.writer_on.mgr.clone(),
                s.contended_on.clone(),
            ));
            if let (Some(w), Some(t)) = (&s.writer_off, &s.contended_off) {
                targets.push((
                    kind.name(),
                    ", sync off",
                    Some(Floor::UpdateOff),
                    w.mgr.clone(),
                    t.clone(),
                ));
            }
        }
        for (name, tag, floor, mgr, token) in targets {
            let seq = Arc::new(ours::Contention::default());
            let op = ours::update_with_op(&mgr, &token, seq.clone());
            let st = on(&io, {
                let op = op.clone();
                async move {
                    harness::run_async(&plan, &mut [pg::sequential(op)])
                        .await
                        .remove(0)
                }
            });
            let c = Arc::new(ours::Contention::default());
            let op8 = ours::update_with_op(&mgr, &token, c.clone());
            let ops8 = on(
                &io,
                async move { harness::throughput(&plan, 8, 1, op8).await },
            );
            let attempts = c.attempts.load(Ordering::Relaxed) as f64;
            let gave_up = c.gave_up.load(Ordering::Relaxed);
            let done =
                (ops8 * plan.throughput_time.as_secs_f64() * plan.throughput_runs as f64).max(1.0);
            let mut row = Row::new(
                section_of(name),
                format!("`update_with` under contention{tag}"),
                format!("pg-session, {name}"),
            )
            .time(st)
            .ops8(ops8)
            .note(format!(
                "ns/op: 1 task; ops/s, 8 tasks: all on one session, {:.1} attempts per update{}",
                attempts / done,
                if gave_up > 0 {
                    format!(", {gave_up} gave up")
                } else {
                    String::new()
                }
            ));
            if let Some(f) = floor {
                row = row.vs(f);
            }
            rows.push(row);
        }
    }

    // Last-access flush.
    eprintln!("bench: last-access flush of {} sessions…", args.sessions);
    {
        let n = args.sessions;
        let mut flushes = vec![("memory", on(&io, lifecycle::flush_memory(n)))];
        if let (Ok(pg), Some(config)) = (&env.pg, &env.pg_config) {
            for kind in PgKind::ALL {
                let (pool, url, config) = (pg.pool_on.clone(), pg.url.clone(), config.clone());
                let flush = on(&io, async move {
                    let backend = match kind {
                        PgKind::Sqlx => session_sqlx::connect(pool.clone(), &config).await,
                        PgKind::Diesel => {
                            session_diesel::connect(&pg::url_with_sync(&url, true), &config).await
                        }
                    }
                    .map_err(|e| format!("connecting the flush node: {e}"))?;
                    lifecycle::flush_pg(pool, backend, &config, n).await
                });
                match flush {
                    Ok(f) => flushes.push((kind.name(), f)),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        for (name, f) in flushes {
            let moved = f.rows_moved.map_or(String::new(), |m| {
                format!(", {} rows moved", table::num(m as f64))
            });
            rows.push(
                Row::new(
                    section_of(name),
                    format!(
                        "last-access flush of {} distinct sessions",
                        table::num(f.sessions as f64)
                    ),
                    format!("pg-session, {name}"),
                )
                .text(format!(
                    "{} statements, {:.1} ms ({} sessions written{moved})",
                    f.statements,
                    f.elapsed.as_secs_f64() * 1e3,
                    table::num(f.written as f64),
                ))
                .target(Target::Count {
                    value: f.statements as f64,
                    limit: f.expected_statements() as f64,
                    unit: "statements",
                }),
            );
        }
    }

    // Cold start.
    eprintln!("bench: cold start…");
    {
        let samples = if args.smoke { 2 } else { 7 };
        let token = env.memory.reader.tokens[0].clone();
        let backend = env.memory_backend.clone();
        let st = on(&io, async move {
            lifecycle::cold_start_memory(&backend, &token, samples).await
        });
        rows.push(
            Row::new(
                "Ours: memory",
                "cold start: new node + first read",
                "pg-session, memory",
            )
            .time(st),
        );
        if let (Ok(pg), Some(config)) = (&env.pg, &env.pg_config) {
            for (kind, s) in &env.pg_systems {
                let kind = *kind;
                let (url, config) = (pg.url.clone(), config.clone());
                let token = s.reader.tokens[0].clone();
                let st = on(&io, async move {
                    let start = || start_node(kind, &url, &config, true, None);
                    lifecycle::cold_start_pg(start, &token, samples).await
                });
                match st {
                    Ok(st) => rows.push(
                        Row::new(
                            section_of(kind.name()),
                            "cold start: new node (pool, schema check, LISTEN) + first read",
                            format!("pg-session, {}", kind.name()),
                        )
                        .time(st),
                    ),
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }

    // Memory per cached session, in a fresh process.
    eprintln!("bench: bytes per cached session…");
    let probe = memory_probe::run(args.sessions);
    match &probe {
        Ok(p) => rows.push(
            Row::new(
                "Memory",
                format!(
                    "bytes per cached session beyond its {} attribute bytes ({} sessions, 5 attributes)",
                    memory_probe::attribute_bytes(),
                    table::num(p.cached as f64)
                ),
                "pg-session",
            )
            .text(format!("{:.0} bytes ({:.0} with the attributes)", p.overhead, p.per_session))
            .target(Target::Count {
                value: p.overhead.round(),
                limit: 300.0,
                unit: "bytes",
            }),
        ),
        Err(e) => panic!("{e}"),
    }

    // ---- Report.
    let redis_pid = env.redis.as_ref().ok().and_then(|(_, _, pid)| pid.clone());
    let ctx = report::Context {
        date,
        machine,
        smoke: args.smoke,
        pin_cpu: args.pin_cpu,
        pg: env.pg.as_ref().ok().map(|p| report::PgInfo {
            version: p.version.clone(),
            fsync: p.fsync.clone(),
            cpus: p.server_cpus.clone(),
        }),
        redis_cpus: redis_pid
            .as_deref()
            .and_then(|p| p.parse().ok())
            .and_then(machine::cpus_allowed),
        redis: env.redis.is_ok(),
        peers: cfg!(feature = "peers"),
        elapsed: started.elapsed(),
        load_after: load_average(),
        only: None,
    };
    let rows = report::order(rows);
    let table = table::Table {
        rows,
        extra: writes.verdicts,
    };
    finish_report(&ctx, &table, &[writes.markdown], args.out.as_deref());
    #[cfg(feature = "peers")]
    if let Ok(p) = env.peers {
        on(&io, p.finish());
    }
    on(&io, async move {
        let systems = std::iter::once(env.memory).chain(env.pg_systems.into_iter().map(|(_, s)| s));
        for s in systems {
            let _ = s.reader.mgr.shutdown().await;
            let _ = s.writer_on.mgr.shutdown().await;
        }
        if let Ok(pg) = env.pg {
            pg.finish().await;
        }
    });
}

/// The machine's load average now.
fn load_average() -> Option<String> {
    machine::describe()
        .into_iter()
        .find(|(k, _)| k.starts_with("load"))
        .map(|(_, v)| v)
}

/// Prints the report and writes it to `out`, if given.
fn finish_report(
    ctx: &report::Context,
    table: &table::Table,
    sections: &[String],
    out: Option<&std::path::Path>,
) {
    let text = report::render(ctx, table, sections);
    println!("{text}");
    if let Some(path) = out {
        match report::write(path, &text) {
            Ok(()) => eprintln!("bench: wrote {}", path.display()),
            Err(e) => panic!("writing {}: {e}", path.display()),
        }
    }
}

fn section_of(system: &str) -> &'static str {
    match system {
        "memory" => "Ours: memory",
        "sqlx" => "Ours: sqlx",
        "diesel" => "Ours: diesel",
        _ => "Other",
    }
}

/// The quick_cache floor over the same ids as a node's sessions.
struct CacheFloor {
    cache: Arc<quick_cache::sync::Cache<Uuid, Arc<String>>>,
    ids: Arc<Vec<Uuid>>,
}

fn cache_floor(node: &Node) -> CacheFloor {
    let ids: Vec<Uuid> = node.tokens.iter().map(|t| t.id()).collect();
    let cache = quick_cache::sync::Cache::new(CACHE_SIZE);
    for id in &ids {
        cache.insert(*id, Arc::new(format!("session {id}")));
    }
    CacheFloor {
        cache: Arc::new(cache),
        ids: Arc::new(ids),
    }
}

impl CacheFloor {
    #[inline]
    fn run(&self, offset: usize, n: u64) {
        let ids = &self.ids[..];
        let mut i = offset % ids.len();
        for _ in 0..n {
            let id = &ids[i];
            i += 1;
            if i == ids.len() {
                i = 0;
            }
            match self.cache.get(id) {
                Some(v) => {
                    std::hint::black_box(v);
                }
                None => panic!("the floor cache lost an entry"),
            }
        }
    }

    fn bench(&self) -> SyncBench<'_> {
        Box::new(move |n| {
            let start = Instant::now();
            self.run(0, n);
            start.elapsed()
        })
    }

    fn batch_op(&self) -> Op {
        let me = CacheFloor {
            cache: self.cache.clone(),
            ids: self.ids.clone(),
        };
        let me = Arc::new(me);
        Arc::new(move |t, n| {
            let me = me.clone();
            Box::pin(async move { me.run(t * 131 + n as usize * 256, 256) })
        })
    }
}

#[cfg(feature = "peers")]
fn peer_pg_load(env: &Env, e: &mut Vec<(Row, Op)>) {
    match env.peers.as_ref().map(|p| p.pg_load()) {
        Ok(Some(op)) => e.push((
            Row::new(
                "Peers",
                "load",
                "tower-sessions-sqlx-store 0.15 (Postgres, sqlx 0.8)",
            )
            .vs(Floor::Select),
            op,
        )),
        Ok(None) => {}
        Err(err) => panic!("peers: {err}"),
    }
}

#[cfg(not(feature = "peers"))]
fn peer_pg_load(_: &Env, _: &mut Vec<(Row, Op)>) {}

#[cfg(feature = "peers")]
fn peer_pg_save(env: &Env, sync: bool, tag: &str, floor: Floor, e: &mut Vec<(Row, Op)>) {
    if let Ok(Some(op)) = env.peers.as_ref().map(|p| p.pg_save(sync)) {
        e.push((
            Row::new(
                "Peers",
                format!("save, {tag}"),
                "tower-sessions-sqlx-store 0.15 (Postgres, sqlx 0.8)",
            )
            .vs(floor),
            op,
        ));
    }
}

#[cfg(not(feature = "peers"))]
fn peer_pg_save(_: &Env, _: bool, _: &str, _: Floor, _: &mut Vec<(Row, Op)>) {}

#[cfg(feature = "peers")]
fn peer_redis(env: &Env, e: &mut Vec<(Row, Op)>) {
    let Ok(p) = &env.peers else { return };
    if let (Some(load), Some(save)) = (p.redis_load(), p.redis_save()) {
        e.push((
            Row::new("Peers", "load", "tower-sessions-redis-store 0.16 (fred 10)")
                .vs(Floor::RedisGet),
            load,
        ));
        e.push((
            Row::new("Peers", "save", "tower-sessions-redis-store 0.16 (fred 10)")
                .vs(Floor::RedisSet),
            save,
        ));
    }
}

#[cfg(not(feature = "peers"))]
fn peer_redis(_: &Env, _: &mut Vec<(Row, Op)>) {}
