//! Where replies are kept: the store trait (a shared backend such as Redis implements it)
//! and the bounded in-memory store.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::LlmError;
use tokio::time::Instant;

use super::key::CacheKey;
use super::reply::CachedReply;

/// An async key-value store for replies. The in-memory [`MemoryStore`] is the default; a
/// shared backend (Redis) implements the same trait so that the cache middleware does not
/// change.
#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// The reply stored under `key`, unless it is missing or expired.
    ///
    /// # Errors
    /// A backend failure; the cache treats it as a miss.
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, LlmError>;

    /// Stores `reply` under `key` for `ttl` (`None`: the store's default).
    ///
    /// # Errors
    /// A backend failure; the call that produced the reply still succeeds.
    async fn put(
        &self,
        key: &CacheKey,
        reply: CachedReply,
        ttl: Option<Duration>,
    ) -> Result<(), LlmError>;

    /// Stores a reply the caller goes on reading as well (the cache layer serves a streamed
    /// reply's late callers from it while it is being stored). The default copies it out
    /// of the `Arc` when the caller still holds it, and calls [`put`](Self::put); a store
    /// that keeps replies in memory keeps the `Arc` itself (as [`MemoryStore`] does), and a
    /// store that encodes them can encode from the reference.
    ///
    /// # Errors
    /// As [`put`](Self::put).
    async fn put_shared(
        &self,
        key: &CacheKey,
        reply: Arc<CachedReply>,
        ttl: Option<Duration>,
    ) -> Result<(), LlmError> {
        self.put(key, Arc::unwrap_or_clone(reply), ttl).await
    }

    /// Removes the entry of `key`.
    ///
    /// # Errors
    /// A backend failure.
    async fn remove(&self, key: &CacheKey) -> Result<(), LlmError>;

    /// The store's synchronous face, for a store that answers at once and never fails (one
    /// in memory, like [`MemoryStore`]): the cache layer then reads and writes through it,
    /// without the boxed future of each async call. Default: `None`.
    fn as_sync(&self) -> Option<&dyn SyncCacheStore> {
        None
    }
}

/// A store that answers at once and never fails (see [`CacheStore::as_sync`]).
pub trait SyncCacheStore: Send + Sync {
    /// What [`CacheStore::get`] gives, now.
    fn get_now(&self, key: &CacheKey) -> Option<CachedReply>;

    /// What [`CacheStore::put_shared`] does, now.
    fn put_now(&self, key: &CacheKey, reply: Arc<CachedReply>, ttl: Option<Duration>);
}

/// An entry: cloned out of the table on every read, so it only holds an `Arc` to the reply
/// (which a streamed reply shares with the flight that produced it).
#[derive(Debug, Clone)]
struct Entry {
    reply: Arc<CachedReply>,
    /// On tokio's clock, so `tokio::time::pause()` and `advance()` drive expiry in tests.
    expires_at: Option<Instant>,
    /// Its approximate bytes in a store bounded by bytes (unused otherwise, and not worked
    /// out).
    weight: u64,
}

/// Weighs an entry as one (a store bounded by entries) or as its approximate bytes.
#[derive(Debug, Clone, Copy)]
struct EntryWeight {
    by_bytes: bool,
}

impl quick_cache::Weighter<CacheKey, Entry> for EntryWeight {
    fn weight(&self, _: &CacheKey, entry: &Entry) -> u64 {
        if self.by_bytes { entry.weight } else { 1 }
    }
}

/// The table behind [`MemoryStore`]: keys hashed with a seeded fast hasher (see
/// [`FastMap`](crate::FastMap)), not SipHash.
type Store = quick_cache::sync::Cache<
    CacheKey,
    Entry,
    EntryWeight,
    foldhash::fast::RandomState,
    quick_cache::sync::DefaultLifecycle<CacheKey, Entry>,
>;

/// The default store: in memory, bounded by entries or by bytes, with a time to live.
///
/// Built on `quick_cache` (S3-FIFO-like eviction: recently inserted entries that are never
/// read again go first, entries read more than once stay): an insert evicts at once and
/// costs about as much as a hash-map insert, which matters because every cache miss
/// inserts. Expiry is checked on tokio's clock when an entry is read (an expired entry is
/// removed then); until then it counts against the bound like any other entry.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_provider::cache::MemoryStore;
///
/// let by_count = MemoryStore::new(10_000, Some(Duration::from_secs(3600)));
/// let by_size = MemoryStore::with_max_bytes(64 << 20, None);
/// # let _ = (by_count, by_size);
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    cache: Arc<Store>,
    default_ttl: Option<Duration>,
    by_bytes: bool,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.len())
            .field("default_ttl", &self.default_ttl)
            .finish()
    }
}

/// Entries assumed per byte-bounded store when sizing its table (about 4 KiB each).
const BYTES_PER_ENTRY_GUESS: u64 = 4096;

impl MemoryStore {
    /// At most `max_entries` replies, each kept for `default_ttl` (`None`: until evicted).
    pub fn new(max_entries: u64, default_ttl: Option<Duration>) -> Self {
        Self::build(max_entries, max_entries, false, default_ttl)
    }

    /// At most about `max_bytes` of replies (see [`CachedReply::approx_bytes`]).
    pub fn with_max_bytes(max_bytes: u64, default_ttl: Option<Duration>) -> Self {
        let entries = (max_bytes / BYTES_PER_ENTRY_GUESS).max(16);
        Self::build(entries, max_bytes, true, default_ttl)
    }

    fn build(entries: u64, capacity: u64, by_bytes: bool, default_ttl: Option<Duration>) -> Self {
        let entries = usize::try_from(entries).unwrap_or(usize::MAX).max(1);
        MemoryStore {
            cache: Arc::new(Store::with(
                entries,
                capacity.max(1),
                EntryWeight { by_bytes },
                foldhash::fast::RandomState::default(),
                quick_cache::sync::DefaultLifecycle::default(),
            )),
            default_ttl,
            by_bytes,
        }
    }

    /// How many entries are held.
    pub fn entry_count(&self) -> u64 {
        self.cache.len() as u64
    }

    /// What the entries weigh: their count, or their approximate bytes for a store made
    /// with [`with_max_bytes`](Self::with_max_bytes).
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.cache.clear();
    }
}

impl SyncCacheStore for MemoryStore {
    fn get_now(&self, key: &CacheKey) -> Option<CachedReply> {
        let entry = self.cache.get(key)?;
        if entry.expires_at.is_some_and(|t| Instant::now() >= t) {
            self.cache.remove(key);
            return None;
        }
        Some(CachedReply::clone(&entry.reply))
    }

    fn put_now(&self, key: &CacheKey, reply: Arc<CachedReply>, ttl: Option<Duration>) {
        let ttl = ttl.or(self.default_ttl);
        let entry = Entry {
            expires_at: ttl.and_then(|t| Instant::now().checked_add(t)),
            weight: if self.by_bytes {
                reply.approx_bytes() as u64
            } else {
                1
            },
            reply,
        };
        self.cache.insert(key.clone(), entry);
    }
}

#[async_trait]
impl CacheStore for MemoryStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedReply>, LlmError> {
        Ok(self.get_now(key))
    }

    async fn put(
        &self,
        key: &CacheKey,
        reply: CachedReply,
        ttl: Option<Duration>,
    ) -> Result<(), LlmError> {
        self.put_now(key, Arc::new(reply), ttl);
        Ok(())
    }

    async fn put_shared(
        &self,
        key: &CacheKey,
        reply: Arc<CachedReply>,
        ttl: Option<Duration>,
    ) -> Result<(), LlmError> {
        self.put_now(key, reply, ttl);
        Ok(())
    }

    async fn remove(&self, key: &CacheKey) -> Result<(), LlmError> {
        self.cache.remove(key);
        Ok(())
    }

    fn as_sync(&self) -> Option<&dyn SyncCacheStore> {
        Some(self)
    }
}
