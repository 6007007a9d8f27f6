//! The read path: cache hit checks, store loads, expiry and access recording.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::clock::from_micros;
use crate::error::{Error, Result};
use crate::manager::{Inner, SessionManager};
use crate::options::GetOptions;
use crate::session::{Session, SessionData};
use crate::stats::Counters;
use crate::token::SessionToken;

impl SessionManager {
    /// Reads the session `token` refers to.
    ///
    /// Served from this node's cache when it holds a copy that is not older
    /// than `min_version`, not past `max_session_lifetime_in_cache`, and not
    /// bypassed with `force_refresh`; otherwise loaded from the store (one
    /// round trip) and cached.
    ///
    /// Absolute expiry, inactivity and attribute expiry are enforced on
    /// every read, before any cleanup ran. A session that looks inactive in
    /// the cache is re-read first, because another node may have seen it
    /// recently.
    ///
    /// Errors: [`Error::NotFound`] for an unknown id, a wrong secret (checked
    /// in constant time) or a dead session, all alike.
    ///
    /// # While the database is unreachable
    ///
    /// Cached sessions keep being served: a cached read needs no database,
    /// and while the database is down nobody can commit a write the cached
    /// copy would miss. Reads that need the store (not cached, or bypassing
    /// the cache as above) fail with [`Error::Store`] once the pool gives up
    /// (its acquire timeout); they never hang on their own. When this node's
    /// listener is connected again it revalidates every cached entry by
    /// version (a resync) and drops the changed ones; if the store still
    /// cannot be read then, the whole cache is dropped instead
    /// ([`Stats::resync_failures`](crate::Stats::resync_failures)).
    ///
    /// If only this node lost the database (a network partition) while
    /// other nodes still write, its cached copies can be stale until its
    /// listener reconnects and the resync runs. Pass the version the client
    /// last saw as `min_version` (signed cookies carry it) for
    /// read-your-writes, and bound the staleness of idle entries with
    /// `Config::max_session_lifetime_in_cache`.
    pub async fn get_session(&self, token: &SessionToken, opts: GetOptions) -> Result<Session> {
        let inner = &self.inner;
        inner.check_open()?;
        let now_us = inner.clock.now_micros();
        if !opts.force_refresh
            && inner.cache_enabled()
            && let Some(entry) = inner.cache.get(&token.id())
            && inner.usable_from_cache(&entry, &opts, now_us)
        {
            if !entry.token_matches(token) {
                return Err(Error::NotFound);
            }
            if entry.expires_us <= now_us {
                inner.cache.invalidate(&entry.id);
                return Err(Error::NotFound);
            }
            if !inner.looks_inactive(&entry, now_us) {
                inner.counters.hit();
                if !opts.skip_last_access_update {
                    inner.record_access(&entry, now_us);
                }
                return Ok(Session::new(entry, true, now_us));
            }
            // Looks inactive here: another node may have seen it since, so
            // ask the store before declaring it dead.
        }
        inner.load(token, &opts, now_us).await
    }
}

impl Inner {
    fn usable_from_cache(&self, e: &SessionData, opts: &GetOptions, now_us: i64) -> bool {
        if opts.min_version.is_some_and(|v| e.version < v) {
            return false;
        }
        self.max_cache_age_us == 0 || now_us.saturating_sub(e.cached_us) <= self.max_cache_age_us
    }

    pub(crate) fn looks_inactive(&self, e: &SessionData, now_us: i64) -> bool {
        e.include_inactivity && e.last_seen_us().saturating_add(self.inactivity_us) <= now_us
    }

    /// Records an access unless the session's known access time is recent
    /// enough already (keeps the hit path read-mostly).
    #[inline]
    pub(crate) fn record_access(&self, e: &SessionData, now_us: i64) {
        if now_us.saturating_sub(e.last_seen.load(Ordering::Relaxed)) >= self.touch_threshold_micros
        {
            e.last_seen.fetch_max(now_us, Ordering::Relaxed);
            self.pending.record(e.id, from_micros(now_us));
        }
    }

    /// Builds a snapshot from a store record, carrying forward the newest
    /// access this node knows of.
    pub(crate) fn snapshot(
        &self,
        rec: crate::record::SessionRecord,
        now_us: i64,
    ) -> Result<Arc<SessionData>> {
        let data = SessionData::from_record(rec, now_us)?;
        if let Some(t) = self.pending.get(&data.id) {
            data.last_seen
                .fetch_max(t.timestamp_micros(), Ordering::Relaxed);
        }
        Ok(Arc::new(data))
    }

    async fn load(&self, token: &SessionToken, opts: &GetOptions, now_us: i64) -> Result<Session> {
        Counters::add(&self.counters.misses, 1);
        let id = token.id();
        let epoch = self.cache.epoch(&id);
        Counters::add(&self.counters.store_loads, 1);
        let rec = self
            .backend
            .store
            .load(id, from_micros(now_us))
            .await?
            .ok_or(Error::NotFound)?;
        let data = self.snapshot(rec, now_us)?;
        if !data.token_matches(token) {
            return Err(Error::NotFound);
        }
        if data.expires_us <= now_us || self.looks_inactive(&data, now_us) {
            self.cache.invalidate(&id);
            return Err(Error::NotFound);
        }
        if self.cache_enabled() {
            self.cache.insert_if_unchanged(data.clone(), epoch);
        }
        if !opts.skip_last_access_update {
            self.record_access(&data, now_us);
        }
        Ok(Session::new(data, false, now_us))
    }
}
