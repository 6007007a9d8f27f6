//! A PostgreSQL for tests: found or started, with one schema per test.
//!
//! [`TestPostgres::get`] finds a server, in this order:
//!
//! 1. `DATABASE_URL`, if set (a failure to connect is a test failure);
//! 2. a server on `127.0.0.1:5432` (user `postgres`, database `postgres`)
//!    if one answers;
//! 3. a throwaway cluster started from the locally installed binaries
//!    (`/usr/lib/postgresql/*/bin`, or `pg_config --bindir`); as root they run
//!    as the `postgres` OS user. It listens on 127.0.0.1 on a free port and
//!    is stopped and deleted when the test process exits;
//! 4. otherwise it panics saying what to install.
//!
//! `SESSION_TESTKIT_POSTGRES=throwaway` skips steps 1 and 2 and always uses a
//! throwaway cluster (to exercise that path, or to keep tests off a shared
//! server).
//!
//! Each test then takes its own schema with [`TestPostgres::schema`], so
//! tests never see each other's rows; the schema is dropped by
//! [`TestSchema::drop_schema`], or when the [`TestSchema`] is dropped (also
//! when the test panics).
//!
//! Fault tests (server restart, listener kills) use
//! [`TestPostgres::throwaway_cluster`], which always starts a private
//! cluster; the machine's shared server is never stopped or restarted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection, Executor};
use tokio::sync::OnceCell;

/// What to do when no PostgreSQL can be found or started.
const INSTALL_HINT: &str = "no PostgreSQL for the tests: set DATABASE_URL to a server \
     (e.g. postgres://postgres@127.0.0.1:5432/postgres), start the local one \
     (pg_ctlcluster --skip-systemctl-redirect <version> main start), or install one \
     so a throwaway cluster can be started (apt-get install -y postgresql)";

/// Schemas made by [`TestPostgres::schema`] start with this.
const SCHEMA_PREFIX: &str = "st_";

/// A reachable PostgreSQL server for tests. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TestPostgres {
    url: String,
}

static SHARED: OnceCell<TestPostgres> = OnceCell::const_new();
/// The throwaway cluster behind [`SHARED`] when there was no other server;
/// kept for the whole process (its watcher stops it at exit).
static SHARED_CLUSTER: std::sync::OnceLock<TestCluster> = std::sync::OnceLock::new();

impl TestPostgres {
    /// The server for this test process (found once, then shared).
    ///
    /// # Panics
    /// If no server can be found or started; the message says what to install.
    pub async fn get() -> TestPostgres {
        match Self::try_get().await {
            Ok(pg) => pg,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`get`](Self::get), but returns the explanation instead of
    /// panicking when no server can be found or started (for programs that
    /// fall back to something else, such as the quickstart example).
    pub async fn try_get() -> Result<TestPostgres, String> {
        SHARED.get_or_try_init(find).await.cloned()
    }

    /// Connection URL of the server (database `postgres`, superuser).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Connect options for [`url`](Self::url).
    pub fn connect_options(&self) -> PgConnectOptions {
        parse_url(&self.url)
    }

    /// Creates a fresh, uniquely named schema for one test.
    ///
    /// # Panics
    /// If the server refuses.
    pub async fn schema(&self) -> TestSchema {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let rand = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{SCHEMA_PREFIX}{secs}_{}", &rand[..16]);
        let mut conn = connect(&self.url).await;
        conn.execute(AssertSqlSafe(format!("CREATE SCHEMA \"{name}\"")))
            .await
            .unwrap_or_else(|e| panic!("creating test schema {name}: {e}"));
        let _ = conn.close().await;
        TestSchema {
            name,
            url: self.url.clone(),
            dropped: false,
        }
    }

    /// Starts a private throwaway cluster that the test controls (it may stop
    /// or restart it). Stopped and deleted when the returned value is
    /// dropped, and at process exit in any case.
    ///
    /// # Panics
    /// If no PostgreSQL binaries are installed or the cluster fails to start
    /// (the message includes the server log).
    pub async fn throwaway_cluster() -> TestCluster {
        match tokio::task::spawn_blocking(TestCluster::start_new).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("{e}"),
            Err(e) => panic!("starting a throwaway cluster: {e}"),
        }
    }
}

async fn find() -> Result<TestPostgres, String> {
    let force_throwaway = std::env::var("SESSION_TESTKIT_POSTGRES").is_ok_and(|v| v == "throwaway");
    if force_throwaway {
        return throwaway_shared().await;
    }
    if let Ok(url) = std::env::var("DATABASE_URL") {
        if let Err(e) = try_connect(&url).await {
            return Err(format!("DATABASE_URL={url} does not answer: {e}"));
        }
        return Ok(prepared(url).await);
    }
    let local = "postgres://postgres@127.0.0.1:5432/postgres".to_string();
    if try_connect(&local).await.is_ok() {
        return Ok(prepared(local).await);
    }
    throwaway_shared().await
}

/// Starts the process-wide throwaway cluster.
async fn throwaway_shared() -> Result<TestPostgres, String> {
    let cluster = match tokio::task::spawn_blocking(TestCluster::start_new).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return Err(format!(
                "{INSTALL_HINT}\n(starting a throwaway cluster failed: {e})"
            ));
        }
        Err(e) => {
            return Err(format!(
                "{INSTALL_HINT}\n(starting a throwaway cluster failed: {e})"
            ));
        }
    };
    let url = cluster.url();
    let _ = SHARED_CLUSTER.set(cluster);
    Ok(prepared(url).await)
}

/// Drops test schemas left behind by runs that were killed over an hour ago.
async fn prepared(url: String) -> TestPostgres {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Ok(mut conn) = PgConnection::connect_with(&parse_url(&url)).await {
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^st_[0-9]+_[0-9a-f]{16}$'",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
        for name in stale {
            let created = name
                .trim_start_matches(SCHEMA_PREFIX)
                .split('_')
                .next()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(u64::MAX);
            if created.saturating_add(3600) < secs {
                let _ = conn
                    .execute(AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
                    )))
                    .await;
            }
        }
        let _ = conn.close().await;
    }
    TestPostgres { url }
}

fn parse_url(url: &str) -> PgConnectOptions {
    url.parse()
        .unwrap_or_else(|e| panic!("bad PostgreSQL URL {url:?}: {e}"))
}

async fn try_connect(url: &str) -> Result<(), String> {
    let options: PgConnectOptions = url.parse().map_err(|e| format!("{e}"))?;
    match tokio::time::timeout(Duration::from_secs(3), PgConnection::connect_with(&options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out after 3 s".into()),
    }
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect_with(&parse_url(url))
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

/// A schema owned by one test. Dropped (with everything in it) by
/// [`drop_schema`](Self::drop_schema) or, failing that, when this value is
/// dropped.
#[derive(Debug)]
pub struct TestSchema {
    name: String,
    url: String,
    dropped: bool,
}

impl TestSchema {
    /// The schema name (a plain identifier; use it as `Config::schema_name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(mut self) {
        self.dropped = true;
        drop_schema(&self.url, &self.name).await;
    }
}

/// Terminates every server connection whose `application_name` is `name`
/// (for example a notifier's listener) and returns how many there were.
pub async fn terminate_connections(url: &str, name: &str) -> u64 {
    let mut conn = match PgConnection::connect_with(&parse_url(url)).await {
        Ok(c) => c,
        Err(e) => panic!("connecting to terminate {name:?}: {e}"),
    };
    let killed: i64 = match sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(name)
    .fetch_one(&mut conn)
    .await
    {
        Ok(n) => n,
        Err(e) => panic!("terminating {name:?}: {e}"),
    };
    let _ = conn.close().await;
    u64::try_from(killed).unwrap_or(0)
}

async fn drop_schema(url: &str, name: &str) {
    if let Ok(mut conn) = PgConnection::connect_with(&parse_url(url)).await {
        let _ = conn.execute("SET lock_timeout = '10s'").await;
        let _ = conn
            .execute(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            )))
            .await;
        let _ = conn.close().await;
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        // Runs during a panic too; a thread with its own runtime because
        // the test's runtime may be gone or busy.
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_schema(&url, &name));
            }
        })
        .join();
    }
}

/// A private PostgreSQL cluster the test controls, in a temporary directory,
/// listening on 127.0.0.1 on its own port (socket in its own directory).
/// Stopped (`-m immediate`) and deleted on drop; a detached watcher process
/// does the same if the test process dies first.
#[derive(Debug)]
pub struct TestCluster {
    dir: PathBuf,
    bindir: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

impl TestCluster {
    /// Connection URL (database `postgres`, user `postgres`, trust auth).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log, for diagnostics.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Stops the server (fast shutdown: connections are closed).
    ///
    /// # Panics
    /// If `pg_ctl` fails.
    pub async fn stop(&self) {
        self.pg_ctl_async(&["-m", "fast", "stop"]).await;
    }

    /// Starts the stopped server again on the same port.
    ///
    /// # Panics
    /// If `pg_ctl` fails.
    pub async fn start(&self) {
        self.pg_ctl_async(&["start"]).await;
    }

    /// Restarts the server (fast shutdown, then start).
    ///
    /// # Panics
    /// If `pg_ctl` fails.
    pub async fn restart(&self) {
        self.pg_ctl_async(&["-m", "fast", "restart"]).await;
    }

    async fn pg_ctl_async(&self, args: &[&str]) {
        let (bindir, dir, as_pg) = (self.bindir.clone(), self.dir.clone(), self.run_as_postgres);
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || pg_ctl(&bindir, &dir, as_pg, &args)).await;
        match out {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("{e}\n{}", self.log()),
            Err(e) => panic!("pg_ctl: {e}"),
        }
    }

    fn start_new() -> Result<TestCluster, String> {
        let bindir = find_bindir().ok_or_else(|| {
            "no PostgreSQL server binaries (initdb, pg_ctl) found under /usr/lib/postgresql/*/bin \
             or by pg_config; install them with `apt-get install -y postgresql`"
                .to_string()
        })?;
        let run_as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!(
            "session-testkit-pg-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        if run_as_postgres {
            let (uid, gid) = postgres_user().ok_or_else(|| {
                "running as root, but there is no `postgres` OS user to run the server as; \
                 `apt-get install -y postgresql` creates it"
                    .to_string()
            })?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let mut cluster = TestCluster {
            dir,
            bindir,
            port: 0,
            run_as_postgres,
        };
        spawn_watcher(&cluster);
        let data = cluster.dir.join("data");
        let out = run(
            &cluster.bindir.join("initdb"),
            run_as_postgres,
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--auth=trust".as_ref(),
                "--no-sync".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
            ],
        )?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut last_error = String::new();
        for _ in 0..5 {
            cluster.port = free_port()?;
            let conf = format!(
                "\n# session-testkit throwaway cluster\n\
                 port = {port}\n\
                 listen_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{dir}'\n\
                 max_connections = 200\n\
                 fsync = off\n\
                 synchronous_commit = off\n\
                 full_page_writes = off\n",
                port = cluster.port,
                dir = cluster.dir.display(),
            );
            let conf_path = data.join("postgresql.auto.conf");
            std::fs::write(&conf_path, conf)
                .map_err(|e| format!("writing {}: {e}", conf_path.display()))?;
            match pg_ctl(
                &cluster.bindir,
                &cluster.dir,
                run_as_postgres,
                &["start".to_string()],
            ) {
                Ok(_) => return Ok(cluster),
                Err(e) => last_error = format!("{e}\n{}", cluster.log()),
            }
        }
        Err(format!("the throwaway cluster did not start: {last_error}"))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = pg_ctl(
            &self.bindir,
            &self.dir,
            self.run_as_postgres,
            &["-m".into(), "immediate".into(), "stop".into()],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `pg_ctl -D <dir>/data -l <dir>/server.log -w <args>` with stdin
/// closed (pg_ctl's children must not hold our pipes).
fn pg_ctl(bindir: &Path, dir: &Path, as_postgres: bool, args: &[String]) -> Result<Output, String> {
    let data = dir.join("data");
    let log = dir.join("server.log");
    let mut all: Vec<&std::ffi::OsStr> = vec![
        "-D".as_ref(),
        data.as_os_str(),
        "-l".as_ref(),
        log.as_os_str(),
        "-w".as_ref(),
        "-t".as_ref(),
        "60".as_ref(),
    ];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(a.as_str())));
    let out = run(&bindir.join("pg_ctl"), as_postgres, &all)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "pg_ctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn run(program: &Path, as_postgres: bool, args: &[&std::ffi::OsStr]) -> Result<Output, String> {
    let mut cmd = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .current_dir("/")
        .output()
        .map_err(|e| format!("running {}: {e}", program.display()))
}

/// Stops and deletes the cluster once this process has exited, even if it
/// was killed: a detached shell polls for our pid.
fn spawn_watcher(cluster: &TestCluster) {
    let pg_ctl = cluster.bindir.join("pg_ctl");
    let data = cluster.dir.join("data");
    let stop = format!(
        "{} '{}' -D '{}' -m immediate stop",
        if cluster.run_as_postgres {
            "runuser -u postgres --"
        } else {
            ""
        },
        pg_ctl.display(),
        data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = cluster.dir.display(),
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn find_bindir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some(bin)
}

fn is_root() -> bool {
    id(&["-u"]).is_some_and(|uid| uid == 0)
}

fn postgres_user() -> Option<(u32, u32)> {
    Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn free_port() -> Result<u16, String> {
    let l =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a port: {e}"))
}
