//! This node's session cache: `quick_cache` keyed by session id, a
//! user/group side index, and the epochs that close the load-vs-invalidation race.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};
use uuid::Uuid;

use crate::session::SessionData;

type Entry = Arc<SessionData>;

/// Number of epoch stripes; a load only conflicts with invalidations of
/// sessions in its own stripe (or with broad ones). Many, because in log
/// mode invalidations arrive in batches (one per wake-up, dozens of ids
/// under write load): with few stripes a batch would refuse most cache
/// fills in flight. 4096 stripes are 32 KiB per node.
const STRIPES: usize = 4096;

/// (owner, session id) pairs, ordered, so one owner's sessions are a range.
/// A B-tree of pairs costs a few dozen bytes per session, where a map of
/// per-user sets would cost a table per user.
#[derive(Default)]
struct Index {
    by_user: BTreeSet<(Uuid, Uuid)>,
    by_group: BTreeSet<(Uuid, Uuid)>,
}

impl Index {
    fn add(&mut self, e: &SessionData) {
        self.by_user.insert((e.user_id, e.id));
        if let Some(g) = e.group_id {
            self.by_group.insert((g, e.id));
        }
    }

    fn remove(&mut self, e: &SessionData) {
        self.by_user.remove(&(e.user_id, e.id));
        if let Some(g) = e.group_id {
            self.by_group.remove(&(g, e.id));
        }
    }
}

/// Removes and returns the ids filed under `owner`.
fn take(set: &mut BTreeSet<(Uuid, Uuid)>, owner: Uuid) -> Vec<Uuid> {
    let ids: Vec<Uuid> = set
        .range((owner, Uuid::nil())..=(owner, Uuid::max()))
        .map(|(_, id)| *id)
        .collect();
    for id in &ids {
        set.remove(&(owner, *id));
    }
    ids
}

type SharedIndex = Arc<Mutex<Index>>;

fn lock(index: &SharedIndex) -> MutexGuard<'_, Index> {
    // The index is a hint kept in step with the cache; a panic elsewhere
    // cannot leave it in a state worse than stale, so poisoning is ignored.
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps the index in step with evictions. Runs under a cache shard lock, so
/// it only touches the index mutex and never calls back into the cache.
#[derive(Clone)]
struct IndexLifecycle(SharedIndex);

impl Lifecycle<Uuid, Entry> for IndexLifecycle {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _key: Uuid, val: Entry) {
        lock(&self.0).remove(&val);
    }
}

/// A snapshot of the invalidation epoch for one session id, taken before a
/// store load; [`SessionCache::insert_if_unchanged`] refuses the load if an
/// invalidation that could concern it arrived meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch {
    value: u64,
    global: u64,
}

pub(crate) struct SessionCache {
    cache: Cache<Uuid, Entry, UnitWeighter, DefaultHashBuilder, IndexLifecycle>,
    index: SharedIndex,
    /// Serialises every cache write: inserts (with their epoch and version
    /// checks) and invalidations. So a load that an invalidation overtook is
    /// never visible, not even for an instant. Reads never take it.
    writes: Mutex<()>,
    stripes: Box<[AtomicU64]>,
    global: AtomicU64,
}

impl SessionCache {
    pub(crate) fn new(capacity: usize) -> Self {
        let index = SharedIndex::default();
        let capacity = capacity.max(1);
        SessionCache {
            cache: Cache::with(
                capacity,
                capacity as u64,
                UnitWeighter,
                DefaultHashBuilder::default(),
                IndexLifecycle(index.clone()),
            ),
            index,
            writes: Mutex::new(()),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            global: AtomicU64::new(0),
        }
    }

    fn stripe(id: &Uuid) -> usize {
        // v4 ids are random; their last two bytes spread evenly.
        let b = id.as_bytes();
        usize::from(u16::from_le_bytes([b[14], b[15]])) % STRIPES
    }

    fn write_guard(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, id: &Uuid) -> Option<Entry> {
        self.cache.get(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    pub(crate) fn ids(&self) -> Vec<Uuid> {
        self.cache.iter().map(|(k, _)| k).collect()
    }

    pub(crate) fn epoch(&self, id: &Uuid) -> Epoch {
        let stripe = Self::stripe(id);
        Epoch {
            value: self.stripes[stripe].load(Ordering::Acquire),
            global: self.global.load(Ordering::Acquire),
        }
    }

    /// Inserts `entry` unless an invalidation that may concern it arrived
    /// since `epoch` was taken (the loaded copy could predate it). Returns
    /// whether it was inserted.
    pub(crate) fn insert_if_unchanged(&self, entry: Entry, epoch: Epoch) -> bool {
        let _w = self.write_guard();
        let now = self.epoch(&entry.id);
        if now.value != epoch.value || now.global != epoch.global {
            return false;
        }
        self.insert_locked(entry);
        true
    }

    /// Inserts or replaces the entry for `entry.id`, unless the cached one
    /// is newer (a slow load never replaces a fresher copy).
    pub(crate) fn insert(&self, entry: Entry) {
        let _w = self.write_guard();
        self.insert_locked(entry);
    }

    fn insert_locked(&self, entry: Entry) {
        let old = self.cache.peek(&entry.id);
        if old.as_ref().is_some_and(|o| o.version > entry.version) {
            return;
        }
        {
            let mut index = lock(&self.index);
            if let Some(old) = &old {
                index.remove(old);
            }
            index.add(&entry);
        }
        // Not under the index lock: an eviction caused by this insert takes it.
        self.cache.insert(entry.id, entry);
    }

    /// Drops one session (an invalidation or a local delete); returns whether it was cached.
    pub(crate) fn invalidate(&self, id: &Uuid) -> bool {
        let _w = self.write_guard();
        self.stripes[Self::stripe(id)].fetch_add(1, Ordering::AcqRel);
        match self.cache.remove(id) {
            Some((_, old)) => {
                lock(&self.index).remove(&old);
                true
            }
            None => false,
        }
    }

    /// Drops every cached session of a user; returns how many.
    pub(crate) fn invalidate_user(&self, user_id: &Uuid) -> usize {
        let _w = self.write_guard();
        self.global.fetch_add(1, Ordering::AcqRel);
        let ids = take(&mut lock(&self.index).by_user, *user_id);
        self.remove_where(&ids, |e| e.user_id == *user_id)
    }

    /// Drops every cached session of a group; returns how many.
    pub(crate) fn invalidate_group(&self, group_id: &Uuid) -> usize {
        let _w = self.write_guard();
        self.global.fetch_add(1, Ordering::AcqRel);
        let ids = take(&mut lock(&self.index).by_group, *group_id);
        self.remove_where(&ids, |e| e.group_id == Some(*group_id))
    }

    /// Removes those of `ids` matching `pred` (caller holds the write guard).
    fn remove_where(&self, ids: &[Uuid], pred: impl Fn(&SessionData) -> bool) -> usize {
        let mut n = 0;
        for id in ids {
            if let Some((_, old)) = self.cache.remove_if(id, |v| pred(v)) {
                lock(&self.index).remove(&old);
                n += 1;
            }
        }
        n
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        let _w = self.write_guard();
        self.global.fetch_add(1, Ordering::AcqRel);
        self.cache.clear();
        let mut index = lock(&self.index);
        index.by_user.clear();
        index.by_group.clear();
    }

    /// Marks the start of a resync: loads already in flight must not be cached.
    pub(crate) fn bump_all(&self) {
        let _w = self.write_guard();
        self.global.fetch_add(1, Ordering::AcqRel);
    }

    /// Drops `id` if its cached version differs from `version` (`None`: deleted).
    pub(crate) fn revalidate(&self, id: &Uuid, version: Option<i64>) -> bool {
        let stale = self
            .cache
            .peek(id)
            .is_some_and(|e| Some(e.version) != version);
        if stale {
            self.invalidate(id);
        }
        stale
    }

    #[cfg(test)]
    pub(crate) fn index_sizes(&self) -> (usize, usize) {
        let i = lock(&self.index);
        (i.by_user.len(), i.by_group.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SessionRecord;
    use crate::token::SecretHash;
    use chrono::Utc;
    use std::collections::BTreeMap;

    fn entry_with(id: Uuid, user: Uuid, group: Option<Uuid>, version: i64) -> Entry {
        let now = Utc::now();
        Arc::new(SessionData::from_record(
            SessionRecord {
                id,
                user_id: user,
                group_id: group,
                secret_hash: SecretHash([0; 32]),
                created_at: now,
                last_accessed: now,
                expires_at: now,
                updated_at: now,
                version,
                include_inactivity: true,
                attributes: BTreeMap::new(),
            },
            &[0; 32],
            now.timestamp_micros(),
        ))
    }

    fn entry(user: Uuid, group: Option<Uuid>, version: i64) -> Entry {
        entry_with(Uuid::new_v4(), user, group, version)
    }

    #[test]
    fn index_follows_evictions_and_invalidations() {
        let cache = SessionCache::new(100);
        let users: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
        let group = Uuid::new_v4();
        for i in 0..1000 {
            cache.insert(entry(users[i % 10], Some(group), 1));
        }
        let (by_user, by_group) = cache.index_sizes();
        assert_eq!(by_user, cache.len());
        assert_eq!(by_group, cache.len());
        let before = cache.len();
        let dropped = cache.invalidate_user(&users[3]);
        assert!(dropped > 0);
        assert_eq!(cache.len(), before - dropped);
        assert_eq!(cache.index_sizes().0, cache.len());
        cache.invalidate_group(&group);
        assert_eq!(cache.len(), 0);
        assert_eq!(cache.index_sizes(), (0, 0));
    }

    #[test]
    fn older_versions_never_replace_newer() {
        let cache = SessionCache::new(10);
        let e2 = entry(Uuid::new_v4(), None, 2);
        cache.insert(e2.clone());
        cache.insert(entry_with(e2.id, e2.user_id, None, 1));
        assert_eq!(cache.get(&e2.id).map(|e| e.version), Some(2));
        // The same version does replace (a refetch resets the cache age).
        let again = entry_with(e2.id, e2.user_id, None, 2);
        cache.insert(again.clone());
        assert!(cache.get(&e2.id).is_some_and(|e| Arc::ptr_eq(&e, &again)));
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_cached() {
        let cache = SessionCache::new(10);
        let e = entry(Uuid::new_v4(), None, 1);
        let epoch = cache.epoch(&e.id);
        cache.invalidate(&e.id); // arrives while the load is in flight
        assert!(!cache.insert_if_unchanged(e.clone(), epoch));
        assert!(cache.get(&e.id).is_none());
        let epoch = cache.epoch(&e.id);
        assert!(cache.insert_if_unchanged(e.clone(), epoch));
        assert!(cache.get(&e.id).is_some());
    }
}
