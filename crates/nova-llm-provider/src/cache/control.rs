//! What a call tells the cache, and what the cache tells the layers outside it.

use std::time::Duration;

/// Per-request cache controls, passed as an extension:
/// `CallOptions::new().extension(CacheControl::bypass())`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// Neither read nor write the cache, nor join an identical call in flight.
    pub bypass: bool,
    /// Read the cache but do not store this reply.
    pub no_store: bool,
    /// Keep this reply for this long instead of the store's default.
    pub ttl: Option<Duration>,
}

impl CacheControl {
    /// Skip the cache entirely for this call.
    pub fn bypass() -> Self {
        CacheControl {
            bypass: true,
            ..Self::default()
        }
    }

    /// Use the cache but do not store this call's reply.
    pub fn no_store() -> Self {
        CacheControl {
            no_store: true,
            ..Self::default()
        }
    }

    /// Store this call's reply for `ttl`.
    pub fn ttl(ttl: Duration) -> Self {
        CacheControl {
            ttl: Some(ttl),
            ..Self::default()
        }
    }
}

/// Put in a call's extensions by a layer that answered the call from a cache (a hit, or a
/// call that joined an identical one in flight): the `events` layer then marks the call
/// "from cache" (cost 0; the call that went upstream carries the cost). A middleware that
/// answers from a cache of its own puts it there too:
/// `cx.extensions_mut().insert(FromCache)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FromCache;
