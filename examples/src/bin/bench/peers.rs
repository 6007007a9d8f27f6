//! What users would pick instead (built with `--features peers` only):
//! tower-sessions' Postgres (sqlx 0.8), moka and Redis (fred) stores.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use fred::prelude::{ClientLike, Config as RedisConfig, Pool as RedisPool};
use sqlx08::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::{CachingSessionStore, SessionStore};
use tower_sessions_moka_store::MokaStore;
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::PostgresStore;

use crate::harness::{Op, SyncBench};

const RECORDS: usize = 1000;

pub struct Peers {
    ids: Arc<Vec<Id>>,
    records: Arc<Vec<Record>>,
    pg_on: Option<PostgresStore>,
    pg_off: Option<PostgresStore>,
    caching: Option<CachingSessionStore<MokaStore, PostgresStore>>,
    moka: MokaStore,
    redis: Option<RedisStore<RedisPool>>,
    redis_pool: Option<RedisPool>,
}

fn record() -> Record {
    let data: HashMap<String, serde_json::Value> = crate::memory_probe::attributes()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    Record {
        id: Id(i128::from_le_bytes(bytes)),
        data,
        expiry_date: OffsetDateTime::now_utc() + time::Duration::days(30),
    }
}

async fn pg_store(url: &str, schema: &str, sync: bool) -> Result<PostgresStore, String> {
    let opts = PgConnectOptions::from_str(url)
        .map_err(|e| format!("bad URL: {e}"))?
        .options([("synchronous_commit", if sync { "on" } else { "off" })]);
    let pool = PgPoolOptions::new()
        .max_connections(crate::pg::POOL_SIZE)
        .min_connections(crate::pg::POOL_SIZE)
        .test_before_acquire(false)
        .connect_with(opts)
        .await
        .map_err(|e| format!("connecting (sqlx 0.8): {e}"))?;
    PostgresStore::new(pool)
        .with_schema_name(schema)
        .and_then(|s| s.with_table_name("tower_sessions"))
        .map_err(|e| format!("tower-sessions store: {e}"))
}

impl Peers {
    /// `pg`: server URL and the benchmark's schema; `redis`: `host:port` if Redis answers.
    pub async fn setup(pg: Option<(&str, &str)>, redis: Option<&str>) -> Result<Peers, String> {
        let mut records: Vec<Record> = (0..RECORDS).map(|_| record()).collect();
        let (mut redis_store, mut redis_pool) = (None, None);
        if let Some(addr) = redis {
            let config = RedisConfig::from_url(&format!("redis://{addr}"))
                .map_err(|e| format!("Redis config: {e}"))?;
            let pool = RedisPool::new(config, None, None, None, 8)
                .map_err(|e| format!("Redis pool: {e}"))?;
            pool.init()
                .await
                .map_err(|e| format!("connecting to Redis: {e}"))?;
            let store = RedisStore::new(pool.clone());
            // `create` (SET NX); the store's `save` is SET XX, for existing keys.
            for r in &mut records {
                store
                    .create(r)
                    .await
                    .map_err(|e| format!("creating in Redis: {e}"))?;
            }
            redis_store = Some(store);
            redis_pool = Some(pool);
        }
        let ids: Vec<Id> = records.iter().map(|r| r.id).collect();
        let moka = MokaStore::new(Some(10 * RECORDS as u64));
        let (mut pg_on, mut pg_off, mut caching) = (None, None, None);
        if let Some((url, schema)) = pg {
            let on = pg_store(url, schema, true).await?;
            on.migrate().await.map_err(|e| format!("migrate: {e}"))?;
            let off = pg_store(url, schema, false).await?;
            let c = CachingSessionStore::new(moka.clone(), off.clone());
            for r in &records {
                c.save(r)
                    .await
                    .map_err(|e| format!("saving a record: {e}"))?;
            }
            pg_on = Some(on);
            pg_off = Some(off);
            caching = Some(c);
        } else {
            for r in &records {
                moka.save(r)
                    .await
                    .map_err(|e| format!("saving a record: {e}"))?;
            }
        }
        Ok(Peers {
            ids: Arc::new(ids),
            records: Arc::new(records),
            pg_on,
            pg_off,
            caching,
            moka,
            redis: redis_store,
            redis_pool,
        })
    }

    pub async fn finish(self) {
        if let Some(p) = self.redis_pool {
            let _ = p.quit().await;
        }
    }

    /// `load` of a cached record from a store that answers from memory.
    fn memory_load<S: SessionStore + Clone>(&self, store: S) -> SyncBench<'static> {
        let rt = match tokio::runtime::Builder::new_current_thread().build() {
            Ok(rt) => rt,
            Err(e) => panic!("building a runtime: {e}"),
        };
        let ids = self.ids.clone();
        Box::new(move |n| {
            let store = store.clone();
            let ids = ids.clone();
            rt.block_on(async move {
                let start = Instant::now();
                let mut i = 0;
                for _ in 0..n {
                    match store.load(&ids[i]).await {
                        Ok(Some(r)) => {
                            std::hint::black_box(r);
                        }
                        other => panic!("peer load from memory: {other:?}"),
                    }
                    i += 1;
                    if i == ids.len() {
                        i = 0;
                    }
                }
                start.elapsed()
            })
        })
    }

    /// tower-sessions `CachingSessionStore` (moka over Postgres), load on a hit.
    pub fn caching_hit(&self) -> Option<SyncBench<'static>> {
        let c = self.caching.clone()?;
        Some(self.memory_load(c))
    }

    /// tower-sessions-moka-store alone, load.
    pub fn moka_load(&self) -> SyncBench<'static> {
        self.memory_load(self.moka.clone())
    }

    fn load_op<S: SessionStore + Clone>(&self, store: S) -> Op {
        let ids = self.ids.clone();
        let store = Arc::new(store);
        Arc::new(move |t, n| {
            let (store, id) = (store.clone(), ids[(t * 131 + n as usize) % ids.len()]);
            Box::pin(async move {
                match store.load(&id).await {
                    Ok(Some(r)) => {
                        std::hint::black_box(r);
                    }
                    other => panic!("peer load: {other:?}"),
                }
            })
        })
    }

    fn save_op<S: SessionStore + Clone>(&self, store: S) -> Op {
        let records = self.records.clone();
        let store = Arc::new(store);
        Arc::new(move |t, n| {
            let store = store.clone();
            let mut r = records[(t % 8) * 8 + (n as usize % 8)].clone();
            r.data.insert("visits".into(), serde_json::json!(n));
            Box::pin(async move {
                if let Err(e) = store.save(&r).await {
                    panic!("peer save: {e}");
                }
            })
        })
    }

    pub fn pg_load(&self) -> Option<Op> {
        Some(self.load_op(self.pg_on.clone()?))
    }

    pub fn pg_save(&self, sync: bool) -> Option<Op> {
        let s = if sync { &self.pg_on } else { &self.pg_off };
        Some(self.save_op(s.clone()?))
    }

    pub fn redis_load(&self) -> Option<Op> {
        Some(self.load_op(self.redis.clone()?))
    }

    pub fn redis_save(&self) -> Option<Op> {
        Some(self.save_op(self.redis.clone()?))
    }
}
