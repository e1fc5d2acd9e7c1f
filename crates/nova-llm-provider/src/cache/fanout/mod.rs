//! One upstream stream shared by the callers that ask for it at the same time, each
//! reading every event at its own pace; a caller that joins late reads what was sent
//! before it came, then the rest live.
//!
//! No task is spawned. The upstream work ([`Upstream`]) is a future kept in the
//! [`SharedStream`] and polled by whichever caller is waiting for the next event, with a
//! waker that wakes every waiting caller, so that the work goes on when the caller that
//! polled it last stops reading or goes away. It hands events over in batches (whatever
//! the upstream has ready, at most 64: one lock and one wake-up each); the first caller to
//! read takes them (moved), and copies stay in a compact log for the callers behind, for
//! callers that join, and for the store ([`State`] says how). A complete stream's log
//! moves, not copied, into the reply handed to the store; the finish is held back until
//! the reply is stored, so a caller sees `CacheStored` before its call ends. When the last
//! caller leaves before the end, the upstream work is dropped, and the call with it.

mod caller;
mod state;
mod upstream;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;

use nova_llm_core::ChatRequest;
use tracing::Instrument;

pub(super) use caller::Caller;
use state::State;
use upstream::Upstream;

use super::control::FromCache;
use super::in_flight::{InFlight, lock};
use super::keep::Keep;
use super::key::CacheKey;
use crate::call::EventKind;
use crate::call::{CallContext, Relay};
use crate::plugin::Next;

/// The upstream work of a shared stream, polled by its callers.
type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One upstream stream and its callers.
pub(super) struct SharedStream {
    state: Mutex<State>,
    /// The upstream work; `None` once it is done.
    work: Mutex<Option<Work>>,
    /// The waker the upstream work is polled with: it wakes every waiting caller.
    fan_out: Waker,
    /// Callers still there.
    callers: AtomicUsize,
    /// The calls the upstream work reports its events for: the earliest still there.
    relay: Arc<Relay>,
}

/// Wakes every caller waiting on a shared stream.
struct FanOut(Weak<SharedStream>);

impl std::task::Wake for FanOut {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.0.upgrade() {
            shared.update(|s| s.upstream_wakes = s.upstream_wakes.wrapping_add(1));
        }
    }
}

impl SharedStream {
    fn new() -> Arc<Self> {
        Arc::new_cyclic(|me| SharedStream {
            state: Mutex::new(State::default()),
            work: Mutex::new(None),
            fan_out: Waker::from(Arc::new(FanOut(me.clone()))),
            callers: AtomicUsize::new(1),
            relay: Arc::default(),
        })
    }

    /// Changes the state and wakes the callers waiting for a change.
    fn update(&self, f: impl FnOnce(&mut State)) {
        let wakers = {
            let mut state = lock(&self.state);
            f(&mut state);
            std::mem::take(&mut state.wakers)
        };
        for (_, w) in wakers {
            w.wake();
        }
    }
}

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
