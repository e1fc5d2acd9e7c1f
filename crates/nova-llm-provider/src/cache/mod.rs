//! Caching: canonical keys, an async store trait with a bounded in-memory store, stream
//! replay, and single-flight for identical concurrent calls.

mod key;
mod layer;
mod reply;
mod store;

pub use key::{CacheKey, KEY_VERSION};
pub use layer::{CacheControl, CacheLayer};
pub use reply::CachedReply;
pub use store::{CacheStore, MemoryStore};
