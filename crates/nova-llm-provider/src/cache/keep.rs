//! Keeping a complete reply: where it goes, for how long, and what is too large to keep.

use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::LlmError;

use super::key::CacheKey;
use super::reply::CachedReply;
use super::store::CacheStore;
use crate::call::{CallContext, EventKind};

/// Where a call's reply is kept once it is complete (a call with `no_store` has none).
pub(super) struct Keep {
    pub(super) store: Arc<dyn CacheStore>,
    pub(super) key: CacheKey,
    pub(super) ttl: Option<Duration>,
    /// The largest reply kept, in [`CachedReply::approx_bytes`].
    pub(super) max_bytes: usize,
}

impl Keep {
    /// Whether a reply of `bytes` may be kept.
    pub(super) fn fits(&self, bytes: usize) -> bool {
        bytes <= self.max_bytes
    }

    /// Stores `reply` and says so with `CacheStored` (or `BackendUnavailable` when the
    /// store failed: the call goes on without the cache).
    pub(super) async fn put(&self, reply: Arc<CachedReply>, cx: &CallContext) {
        let put = match self.store.as_sync() {
            Some(store) => {
                store.put_now(&self.key, reply, self.ttl);
                Ok(())
            }
            None => self.store.put_shared(&self.key, reply, self.ttl).await,
        };
        match put {
            Ok(()) => cx.emit(EventKind::CacheStored),
            Err(e) => store_failed(cx, &e, "the reply was not stored"),
        }
    }
}

/// Reports a failed store operation; the call goes on without the cache.
pub(super) fn store_failed(cx: &CallContext, err: &LlmError, fallback: &str) {
    cx.emit(EventKind::BackendUnavailable {
        backend: "cache store".into(),
        fallback: fallback.into(),
        error: err.to_string(),
    });
}
