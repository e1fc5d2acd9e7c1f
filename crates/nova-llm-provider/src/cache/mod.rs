//! Caching: canonical keys, an async store trait with a bounded in-memory store, stream
//! replay, and single-flight for identical concurrent calls.

mod key;
mod layer;
mod store;

pub use key::{CacheKey, KEY_VERSION};
pub use layer::{CacheControl, CacheLayer};
pub use store::{CacheStore, CachedReply, MemoryStore};
