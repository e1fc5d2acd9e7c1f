//! One caller of a shared stream, and the stream it reads.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::TryLockError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures_core::Stream;
use nova_llm_core::{ChatStream, LlmError, StreamEvent};

use super::shared::SharedStream;
use super::state::{End, Read, State};
use crate::cache::in_flight::{InFlight, lock};
use crate::cache::key::CacheKey;
use crate::call::CallContext;

/// Ids of the callers of shared streams.
static NEXT_CALLER: AtomicU64 = AtomicU64::new(0);

/// One caller of a shared stream. When the last one goes away before the end, the
/// upstream call is abandoned.
pub(in crate::cache) struct Caller {
    shared: Arc<SharedStream>,
    key: CacheKey,
    streams: Arc<InFlight<SharedStream>>,
    /// How many events this caller has been given.
    read: usize,
    id: u64,
}

impl Caller {
    /// A new caller of `shared`, whose call `cx` is (the caller is already counted in
    /// `shared.callers`).
    pub(super) fn new(
        shared: Arc<SharedStream>,
        key: CacheKey,
        streams: Arc<InFlight<SharedStream>>,
        cx: &CallContext,
    ) -> Self {
        let id = NEXT_CALLER.fetch_add(1, Ordering::Relaxed);
        shared.relay.join(id, cx);
        lock(&shared.state).readers.push((id, 0));
        Caller {
            shared,
            key,
            streams,
            read: 0,
            id,
        }
    }

    /// Ready with what `check` finds in the state; until then, drives the upstream work
    /// (unless another caller is doing so this instant) and waits for a change.
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut check: impl FnMut(&mut State, &mut usize) -> Option<T>,
    ) -> Poll<T> {
        let id = self.id;
        let seen = {
            let mut state = lock(&self.shared.state);
            if !state.wakers.is_empty() {
                state.wakers.retain(|w| w.0 != id);
            }
            if let Some(found) = check(&mut state, &mut self.read) {
                return Poll::Ready(found);
            }
            state.upstream_wakes
        };
        self.drive();
        // Checked again under the state's lock, so no change can slip between the check
        // and the registration.
        let mut state = lock(&self.shared.state);
        if let Some(found) = check(&mut state, &mut self.read) {
            return Poll::Ready(found);
        }
        if state.upstream_wakes != seen {
            // The upstream asked to be polled again before this caller was listening (or
            // yielded, as tokio's budget makes it do): come back soon rather than wait.
            drop(state);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        state.wakers.push((id, cx.waker().clone()));
        Poll::Pending
    }

    /// Polls the upstream work once, unless another caller is polling it. It is polled
    /// with the shared stream's waker, not this caller's: when the upstream has more,
    /// every waiting caller is woken and whichever runs first drives it (the caller that
    /// polled it last may have stopped reading).
    fn drive(&self) {
        let mut work = match self.shared.work.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // Another caller is driving it: it wakes us when something changes.
            Err(TryLockError::WouldBlock) => return,
        };
        let mut fan_out = Context::from_waker(&self.shared.fan_out);
        if let Some(w) = work.as_mut()
            && w.as_mut().poll(&mut fan_out).is_ready()
        {
            *work = None;
        }
    }

    /// Waits for the first event (or a failure before any, which fails the call itself)
    /// and returns the caller's stream.
    pub(in crate::cache) async fn stream(mut self) -> Result<ChatStream, LlmError> {
        std::future::poll_fn(|cx| {
            self.poll_with(cx, |state, _| {
                if state.total() > 0 || state.sealed.is_some() {
                    return Some(Ok(()));
                }
                match &state.end {
                    Some(End::Failed(e)) if state.failed_early => Some(Err(e.clone())),
                    Some(_) => Some(Ok(())),
                    None => None,
                }
            })
        })
        .await?;
        Ok(Box::pin(CallerStream {
            caller: Some(self),
            taken: VecDeque::new(),
        }))
    }
}

/// A caller's stream over a shared stream.
struct CallerStream {
    /// `None` once the stream ended.
    caller: Option<Caller>,
    /// Events taken in one go (every event there was to read), handed out one per poll.
    taken: VecDeque<StreamEvent>,
}

impl Stream for CallerStream {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(event) = this.taken.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        let Some(caller) = this.caller.as_mut() else {
            return Poll::Ready(None);
        };
        let id = caller.id;
        let taken = &mut this.taken;
        let read = match caller.poll_with(cx, |state, read| state.read_into(id, read, taken)) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(read) => read,
        };
        let item = match read {
            Read::Event(event) => return Poll::Ready(Some(Ok(event))),
            Read::End => None,
            Read::Failed(e) => Some(Err(e)),
        };
        // Ended: nothing follows, and the caller leaves.
        this.caller = None;
        Poll::Ready(item)
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        // First: from now on the upstream work reports nothing for this caller, whose
        // terminal event may come right after.
        self.shared.relay.leave(self.id);
        let wakers = {
            let mut state = lock(&self.shared.state);
            state.remove_reader(self.id);
            state.trim();
            std::mem::take(&mut state.wakers)
        };
        // This caller may have been the one driving the upstream work: another takes over.
        for (_, w) in wakers {
            w.wake();
        }
        if self.shared.callers.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        // The last caller left: abandon the call unless it ended or someone joined since
        // (joining takes the shard's lock, held here until the stream is out of the map).
        let mut shard = self.streams.shard(&self.key);
        if self.shared.callers.load(Ordering::SeqCst) != 0 || lock(&self.shared.state).end.is_some()
        {
            return;
        }
        if shard
            .get(&self.key)
            .is_some_and(|s| Arc::ptr_eq(s, &self.shared))
        {
            shard.remove(&self.key);
        }
        drop(shard);
        // Dropped outside the locks: the upstream stream goes with it.
        let work = lock(&self.shared.work).take();
        drop(work);
    }
}
