//! Caching: canonical keys, an async store trait with a bounded in-memory store, stream
//! replay, and single-flight for identical concurrent calls.

mod compact;
mod control;
mod fanout;
mod flight;
mod in_flight;
mod keep;
mod key;
mod layer;
mod reply;
mod store;

pub use control::{CacheControl, FromCache};
pub use key::{CacheKey, KEY_VERSION};
pub use layer::CacheLayer;
pub use reply::CachedReply;
pub use store::{CacheStore, MemoryStore, SyncCacheStore};
