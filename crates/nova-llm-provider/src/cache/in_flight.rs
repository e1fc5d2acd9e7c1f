//! The calls in flight, by key: one map split in shards, so that two calls take the same
//! lock only when their keys fall in the same shard.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::key::CacheKey;
use crate::FastMap;

/// One shard: the calls whose keys fall in it.
type Shard<T> = FastMap<CacheKey, Arc<T>>;

/// Calls in flight of one kind (plain calls, or shared streams), each an `Arc<T>`.
pub(super) struct InFlight<T> {
    shards: Box<[Mutex<Shard<T>>]>,
    hasher: foldhash::fast::RandomState,
}

const SHARDS: usize = 16;

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl<T> InFlight<T> {
    /// The shard of `key`, locked: look up, join or register under it, then let it go
    /// before any wait.
    pub(super) fn shard(&self, key: &CacheKey) -> MutexGuard<'_, Shard<T>> {
        let i = self.hasher.hash_one(key) as usize % self.shards.len();
        lock(&self.shards[i])
    }

    /// Takes `call` out of the map, if it is still the call in flight under `key` (a newer
    /// one may have taken its place).
    pub(super) fn remove(&self, key: &CacheKey, call: &T) {
        let mut shard = self.shard(key);
        if shard
            .get(key)
            .is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), call))
        {
            shard.remove(key);
        }
    }

    /// How many calls are in flight.
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

/// A lock that a panic elsewhere does not poison for good: the maps and states it guards
/// stay consistent between statements.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
