//! The upstream work of a shared stream: pumps the upstream stream into the shared state
//! in batches, then keeps the complete reply and ends the stream for its callers.

use std::sync::{Arc, Weak};
use std::task::Poll;

use nova_llm_core::{ChatRequest, LlmError, StreamAccumulator, StreamEvent};

use super::shared::SharedStream;
use super::state::{End, State};
use crate::cache::in_flight::{InFlight, lock};
use crate::cache::keep::Keep;
use crate::cache::key::CacheKey;
use crate::cache::reply::CachedReply;
use crate::call::CallContext;
use crate::plugin::OwnedNext;

/// At most this many events are taken from the upstream stream before its callers get
/// them (it rarely has more ready at once: about what one network read holds).
const BATCH: usize = 64;

/// The upstream call of a shared stream, run by whichever caller polls it.
pub(super) struct Upstream {
    /// Weak: the shared stream owns this work (no cycle if it is never finished).
    pub(super) shared: Weak<SharedStream>,
    pub(super) streams: Arc<InFlight<SharedStream>>,
    pub(super) key: CacheKey,
    /// Whether the stream is in the map of calls in flight (single-flight on).
    pub(super) registered: bool,
    pub(super) keep: Option<Keep>,
    pub(super) max_bytes: usize,
    pub(super) next: OwnedNext,
    /// Shared by the callers: its events go to the earliest caller still there.
    pub(super) cx: CallContext,
}

/// What stopped a batch.
enum Stop {
    /// The finish, held back until the reply is kept.
    Finish(StreamEvent),
    Failed(LlmError),
    /// The upstream stream ended without a finish.
    Closed,
}

impl Upstream {
    fn update(&self, f: impl FnOnce(&mut State)) {
        if let Some(shared) = self.shared.upgrade() {
            shared.update(f);
        }
    }

    fn state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        let shared = self.shared.upgrade()?;
        let mut state = lock(&shared.state);
        Some(f(&mut state))
    }

    /// The whole run: pump the stream, keep the complete reply, end the stream.
    pub(super) async fn run(mut self, request: ChatRequest) {
        let result = self.pump(request).await;
        if let (Ok(finish), Some(keep)) = (&result, &self.keep) {
            let sealed = self.state(|s| {
                // `bytes` counts every event but the finish.
                let fits = keep.fits(s.bytes + CachedReply::event_bytes(finish));
                (!s.overflowed && fits)
                    .then(|| s.seal(finish.clone()))
                    .flatten()
            });
            if let Some(Some(reply)) = sealed {
                keep.put(reply, &self.cx).await;
            }
        }
        // Kept first, then out of the map of calls in flight: a new caller finds one or
        // the other.
        self.unregister();
        self.update(|s| match result {
            Ok(finish) => {
                s.fresh.push_back(finish);
                s.end = Some(End::Finished);
            }
            Err(e) => s.end = Some(End::Failed(e)),
        });
    }

    /// Takes the stream out of the map of calls in flight (if it is still there).
    fn unregister(&self) {
        if self.registered
            && let Some(shared) = self.shared.upgrade()
        {
            self.streams.remove(&self.key, &shared);
        }
    }

    /// Pumps the upstream stream into the shared state; returns its held-back finish.
    async fn pump(&mut self, request: ChatRequest) -> Result<StreamEvent, LlmError> {
        let mut upstream = match self.next.as_next().chat_stream(request, &mut self.cx).await {
            Ok(s) => s,
            Err(e) => {
                self.update(|s| s.failed_early = true);
                return Err(e);
            }
        };
        // What the stream has said, for the error if it ends without a finish: read from
        // the shared events, which are all kept until the end unless it overflows; from
        // then on (they go once read) it is kept here.
        let mut said: Option<StreamAccumulator> = None;
        let mut batch: Vec<StreamEvent> = Vec::new();
        loop {
            // Every event the upstream has ready (up to `BATCH`), handed over in one update.
            let mut stop: Option<Stop> = None;
            std::future::poll_fn(|cx| {
                loop {
                    match upstream.as_mut().poll_next(cx) {
                        Poll::Ready(Some(Ok(StreamEvent::Finish { reason, raw }))) => {
                            stop = Some(Stop::Finish(StreamEvent::Finish { reason, raw }));
                            return Poll::Ready(());
                        }
                        Poll::Ready(Some(Ok(event))) => {
                            batch.push(event);
                            if batch.len() >= BATCH {
                                return Poll::Ready(());
                            }
                        }
                        Poll::Ready(Some(Err(e))) => {
                            stop = Some(Stop::Failed(e));
                            return Poll::Ready(());
                        }
                        Poll::Ready(None) => {
                            stop = Some(Stop::Closed);
                            return Poll::Ready(());
                        }
                        Poll::Pending if batch.is_empty() => return Poll::Pending,
                        Poll::Pending => return Poll::Ready(()),
                    }
                }
            })
            .await;
            if !batch.is_empty() {
                self.hand_over(&mut batch, &mut said);
            }
            match stop {
                None => {}
                Some(Stop::Finish(finish)) => return Ok(finish),
                Some(Stop::Failed(e)) => return Err(e),
                Some(Stop::Closed) => break,
            }
        }
        let said = match said {
            Some(acc) => acc,
            None => self.state(|s| s.accumulate()).unwrap_or_default(),
        };
        Err(LlmError::stream_interrupted(
            "the stream ended without a finish event",
            said.partial(),
        ))
    }

    /// Hands a batch of events to the callers. Past the size cap the stream stops taking
    /// callers and will not be kept; `said` starts keeping what it said from then on.
    fn hand_over(&self, batch: &mut Vec<StreamEvent>, said: &mut Option<StreamAccumulator>) {
        let cap = self.max_bytes;
        let mut overflowed_now = false;
        self.update(|s| {
            for event in batch.drain(..) {
                if let Some(acc) = said.as_mut() {
                    acc.push(&event);
                }
                s.bytes += CachedReply::event_bytes(&event);
                s.fresh.push_back(event);
                if !s.overflowed && s.bytes > cap {
                    s.overflowed = true;
                    overflowed_now = true;
                    *said = Some(s.accumulate());
                }
            }
            s.trim();
        });
        // (Left only when the stream is gone, and no caller reads them then.)
        batch.clear();
        if overflowed_now {
            // Too long to keep: no one else joins it, and its events go once every caller
            // has read them.
            self.unregister();
            self.state(State::trim);
        }
    }
}
