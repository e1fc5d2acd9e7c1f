//! One upstream stream shared by the callers that ask for it at the same time, each
//! reading every event at its own pace; a caller that joins late reads what was sent
//! before it came, then the rest live.
//!
//! No task is spawned: a task reading the upstream for the callers costs a cross-task
//! wake-up per event (measured: a long stream through the whole provider went from 0.72
//! to 0.90 of the bare driver's events/s when such a task was replaced by this), and would
//! tie the cache to a tokio runtime. Instead the upstream work ([`Upstream`]) is a future
//! kept in the [`SharedStream`] and polled by whichever caller is waiting for the next
//! event, with a waker that wakes every waiting caller, so that the work goes on when the
//! caller that polled it last stops reading or goes away. It hands events over in batches
//! (whatever the upstream has ready, at most 64: one lock and one wake-up each); the first
//! caller to read takes them (moved), and copies stay in a compact log for the callers
//! behind, for callers that join, and for the store ([`State`] says how). A complete
//! stream's log moves, not copied, into the reply handed to the store; the finish is held
//! back until the reply is stored, so a caller sees `CacheStored` before its call ends.
//! When the last caller leaves before the end, the upstream work is dropped, and the call
//! with it.

mod caller;
mod shared;
mod state;
mod upstream;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use nova_llm_core::ChatRequest;
use tracing::Instrument;

pub(super) use caller::Caller;
pub(super) use shared::SharedStream;
use shared::Work;
use upstream::Upstream;

use super::control::FromCache;
use super::in_flight::{InFlight, lock};
use super::keep::Keep;
use super::key::CacheKey;
use crate::call::{CallContext, EventKind};
use crate::plugin::Next;

/// How a new caller of a shared stream finds it.
pub(super) struct Join<'a> {
    pub(super) streams: &'a Arc<InFlight<SharedStream>>,
    pub(super) key: CacheKey,
    pub(super) single_flight: bool,
    /// Where the complete reply goes (`None`: not stored).
    pub(super) keep: Option<Keep>,
    /// Past this many bytes ([`CachedReply::approx_bytes`]) the stream is not kept, takes
    /// no new callers, and lets go of the events every caller has read.
    ///
    /// [`CachedReply::approx_bytes`]: super::CachedReply::approx_bytes
    pub(super) max_bytes: usize,
}

impl Join<'_> {
    /// Joins the stream of `key` in flight, or starts it (with `request`, through `next`).
    pub(super) fn caller(
        self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Caller {
        let mut shard = self.streams.shard(&self.key);
        if self.single_flight
            && let Some(shared) = shard.get(&self.key)
        {
            shared.callers.fetch_add(1, Ordering::SeqCst);
            let caller = Caller::new(Arc::clone(shared), self.key, Arc::clone(self.streams), cx);
            drop(shard);
            cx.extensions_mut().insert(FromCache);
            cx.emit(EventKind::Coalesced);
            return caller;
        }
        let shared = SharedStream::new();
        if self.single_flight {
            shard.insert(self.key.clone(), Arc::clone(&shared));
        }
        drop(shard);
        // The first caller joins first: the upstream work reports for it while it is there.
        let caller = Caller::new(
            Arc::clone(&shared),
            self.key.clone(),
            Arc::clone(self.streams),
            cx,
        );
        let upstream = Upstream {
            shared: Arc::downgrade(&shared),
            streams: Arc::clone(self.streams),
            key: self.key,
            registered: self.single_flight,
            keep: self.keep,
            max_bytes: self.max_bytes,
            next: next.to_owned(),
            cx: cx.shared_by(Arc::clone(&shared.relay)),
        };
        // In the caller's span, when there is one (a disabled span would cost a little on
        // every poll for nothing).
        let span = tracing::Span::current();
        let work: Work = if span.is_disabled() {
            Box::pin(upstream.run(request))
        } else {
            Box::pin(upstream.run(request).instrument(span))
        };
        *lock(&shared.work) = Some(work);
        caller
    }
}
