//! The `cache` middleware: look a call up, answer a hit, and send a miss upstream alone or
//! shared with the identical calls in flight (plain calls in [`flight`](super::flight),
//! streams in [`fanout`](super::fanout)), keeping the complete reply.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::{ChatRequest, ChatResponse, ChatStream, LlmError};

use super::control::{CacheControl, FromCache};
use super::fanout::{Join, SharedStream};
use super::flight::{self, PlainFlight, Role};
use super::in_flight::InFlight;
use super::keep::{Keep, store_failed};
use super::key::CacheKey;
use super::reply::CachedReply;
use super::store::{CacheStore, MemoryStore};
use crate::call::{CallContext, EventKind};
use crate::plugin::{Middleware, Next};

/// The `cache` middleware.
///
/// - A hit answers without calling the layers below; streamed and plain calls share
///   entries (a stored stream answers a plain call and the other way round).
/// - Only complete replies are stored: never errors, never a cut stream.
/// - **Single-flight:** identical calls in flight at the same time (same key, both plain or
///   both streamed) share one upstream call: every caller gets the result, and an error is
///   shared with the callers waiting for it, never stored. A plain call runs in its first
///   caller's task (no task per call); if that caller goes away first, a waiting one takes
///   over. A stream is driven by whichever of its callers is waiting for the next event
///   (no task is spawned): a caller that joins late gets what was already sent and then
///   the rest live, a caller that goes away does not disturb the others (another one
///   drives the stream from there), and the upstream stream is abandoned only when every
///   caller is gone.
/// - A reply larger than [`max_entry_bytes`](Self::max_entry_bytes) is not stored; a stream
///   that grows past it stops taking new callers, and the events every caller has read are
///   freed, so a very long stream does not sit in memory whole.
/// - A stream is held once, compactly: each event reaches the first caller that reads it as
///   the upstream gave it, and a copy with its text in one shared buffer (see
///   [`CachedReply`]) stays for the other callers and the store. When the stream ends, that
///   copy moves into the reply handed to the store ([`CacheStore::put_shared`]; the
///   [`MemoryStore`] keeps that very reply).
/// - Events: `CacheHit`, `CacheMiss`, `Coalesced` (joined a call in flight), `CacheStored`.
///   A hit or a joined call gets [`FromCache`] in its extensions, and the `events` layer
///   marks it "from cache" (its cost is 0; the caller whose call went upstream carries the
///   cost).
#[derive(Clone)]
pub struct CacheLayer {
    store: Arc<dyn CacheStore>,
    plain: Arc<InFlight<PlainFlight>>,
    streams: Arc<InFlight<SharedStream>>,
    single_flight: bool,
    max_entry_bytes: usize,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("in_flight", &self.in_flight())
            .field("single_flight", &self.single_flight)
            .finish_non_exhaustive()
    }
}

/// What a lookup found.
enum Lookup {
    /// A stored reply.
    Hit(CachedReply),
    /// Nothing: the call goes upstream under this key.
    Miss(CacheKey, CacheControl),
    /// The call asked not to use the cache.
    Bypass,
}

impl CacheLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "cache";

    /// A cache over `store`, with single-flight on.
    pub fn new(store: impl CacheStore) -> Self {
        Self::shared(Arc::new(store))
    }

    /// A cache over a store you share with others.
    pub fn shared(store: Arc<dyn CacheStore>) -> Self {
        CacheLayer {
            store,
            plain: Arc::default(),
            streams: Arc::default(),
            single_flight: true,
            max_entry_bytes: 1 << 20,
        }
    }

    /// An in-memory cache of at most `max_entries` replies kept for `ttl`.
    pub fn in_memory(max_entries: u64, ttl: Option<Duration>) -> Self {
        Self::new(MemoryStore::new(max_entries, ttl))
    }

    /// Turns single-flight on or off. Default: on.
    pub fn single_flight(mut self, yes: bool) -> Self {
        self.single_flight = yes;
        self
    }

    /// The largest reply stored, in bytes ([`CachedReply::approx_bytes`]); a longer one
    /// (a stream of 100,000 chunks, say) is passed on but not kept. Default: 1 MiB.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.store
    }

    /// How many distinct upstream calls are in flight now.
    pub fn in_flight(&self) -> usize {
        self.plain.len() + self.streams.len()
    }

    /// Looks the request up (a store that fails counts as a miss).
    async fn lookup(&self, request: &ChatRequest, cx: &mut CallContext) -> Lookup {
        let control = cx
            .extensions()
            .get::<CacheControl>()
            .copied()
            .unwrap_or_default();
        if control.bypass {
            return Lookup::Bypass;
        }
        let key = CacheKey::new(cx.driver(), cx.operation(), request);
        let found = match self.store.as_sync() {
            Some(store) => Ok(store.get_now(&key)),
            None => self.store.get(&key).await,
        };
        match found {
            Ok(Some(reply)) => {
                cx.extensions_mut().insert(FromCache);
                cx.emit(EventKind::CacheHit);
                return Lookup::Hit(reply);
            }
            Ok(None) => {}
            Err(e) => store_failed(cx, &e, "treated as a miss"),
        }
        cx.emit(EventKind::CacheMiss);
        Lookup::Miss(key, control)
    }

    /// Where a missed call's reply is kept (`None` with `no_store`).
    fn keep(&self, key: &CacheKey, control: CacheControl) -> Option<Keep> {
        (!control.no_store).then(|| Keep {
            store: Arc::clone(&self.store),
            key: key.clone(),
            ttl: control.ttl,
            max_bytes: self.max_entry_bytes,
        })
    }
}

#[async_trait]
impl Middleware for CacheLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        match self.lookup(&request, cx).await {
            Lookup::Hit(reply) => reply.into_response(),
            Lookup::Bypass => next.chat(request, cx).await,
            Lookup::Miss(key, control) => loop {
                match flight::enter(&self.plain, self.single_flight, &key) {
                    Role::Lead(leader) => {
                        // The request goes into the next layer's future at once: this
                        // call's future holds it only once.
                        let result = next.chat(request, cx).await;
                        return leader.finish(result, self.keep(&key, control), cx).await;
                    }
                    Role::Join(flight) => {
                        if let Some(result) = flight.outcome().await {
                            return flight::joined(result, cx);
                        }
                        // The leader went away: enter again, maybe as the leader.
                    }
                }
            },
        }
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        match self.lookup(&request, cx).await {
            Lookup::Hit(reply) => Ok(reply.to_stream()),
            Lookup::Bypass => next.chat_stream(request, cx).await,
            Lookup::Miss(key, control) => {
                let join = Join {
                    streams: &self.streams,
                    keep: self.keep(&key, control),
                    key,
                    single_flight: self.single_flight,
                    max_bytes: self.max_entry_bytes,
                };
                join.caller(request, cx, next).stream().await
            }
        }
    }
}
