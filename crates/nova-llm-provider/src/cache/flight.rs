//! Single-flight for plain calls: identical calls in flight at the same time share one
//! upstream call. Its first caller (the leader) runs it in its own task, so no task is
//! spawned per call; the callers that join wait for its result. If the leader goes away
//! before the end, a waiting caller enters again and runs the call itself.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nova_llm_core::{ChatResponse, LlmError};
use tokio::sync::Notify;

use super::control::FromCache;
use super::in_flight::{InFlight, lock};
use super::keep::Keep;
use super::key::CacheKey;
use super::reply::CachedReply;
use crate::call::{CallContext, EventKind};

/// One plain call in flight.
#[derive(Default)]
pub(super) struct PlainFlight {
    outcome: Mutex<Outcome>,
    /// Wakes the callers waiting for the outcome.
    settled: Notify,
    /// How many callers joined (the result is copied for them only if there are any).
    joined: AtomicUsize,
}

/// How far a plain call in flight has come.
#[derive(Default)]
enum Outcome {
    #[default]
    Running,
    /// Its result, for the callers that joined (boxed: a reply is large, and most calls
    /// have nobody to give it to).
    Done(Box<Result<ChatResponse, LlmError>>),
    /// Its leader went away before the end.
    Abandoned,
}

/// What a caller of a plain call under a key does.
pub(super) enum Role<'a> {
    /// Run the call for everyone, then [`finish`](Leader::finish) it.
    Lead(Leader<'a>),
    /// Wait for the [`outcome`](PlainFlight::outcome) of the call in flight.
    Join(Arc<PlainFlight>),
}

/// Joins the identical plain call in flight under `key`, or leads a new one (every call
/// leads its own when `single_flight` is off). Decided under the shard's lock, which is let
/// go of before any wait.
pub(super) fn enter<'a>(
    calls: &'a InFlight<PlainFlight>,
    single_flight: bool,
    key: &'a CacheKey,
) -> Role<'a> {
    let mut shard = calls.shard(key);
    if single_flight && let Some(flight) = shard.get(key) {
        flight.joined.fetch_add(1, Ordering::SeqCst);
        return Role::Join(Arc::clone(flight));
    }
    let flight = Arc::new(PlainFlight::default());
    if single_flight {
        shard.insert(key.clone(), Arc::clone(&flight));
    }
    Role::Lead(Leader {
        flight,
        calls,
        key,
        finished: false,
    })
}

/// The answer of a call that joined another: marked as served from the cache.
pub(super) fn joined(
    result: Result<ChatResponse, LlmError>,
    cx: &mut CallContext,
) -> Result<ChatResponse, LlmError> {
    cx.extensions_mut().insert(FromCache);
    cx.emit(EventKind::Coalesced);
    result
}

impl PlainFlight {
    /// Waits for the outcome: the result, or `None` when the leader went away first (the
    /// caller then enters again, maybe as the leader).
    pub(super) async fn outcome(&self) -> Option<Result<ChatResponse, LlmError>> {
        loop {
            // Listening before looking, so that no wake-up can slip in between.
            let mut settled = pin!(self.settled.notified());
            settled.as_mut().enable();
            match &*lock(&self.outcome) {
                Outcome::Running => {}
                Outcome::Done(result) => return Some(Result::clone(result)),
                Outcome::Abandoned => return None,
            }
            settled.await;
        }
    }

    fn settle(&self, outcome: Outcome) {
        *lock(&self.outcome) = outcome;
        self.settled.notify_waiters();
    }
}

/// The caller running a plain call for everyone; dropped before the end, it tells the
/// callers waiting on it to take over.
pub(super) struct Leader<'a> {
    flight: Arc<PlainFlight>,
    calls: &'a InFlight<PlainFlight>,
    key: &'a CacheKey,
    finished: bool,
}

impl Leader<'_> {
    /// Keeps a successful reply in `keep`, then hands `result` to the callers that joined.
    pub(super) async fn finish(
        mut self,
        result: Result<ChatResponse, LlmError>,
        keep: Option<Keep>,
        cx: &CallContext,
    ) -> Result<ChatResponse, LlmError> {
        if let (Ok(reply), Some(keep)) = (&result, &keep) {
            let stored = CachedReply::from_response(reply);
            if keep.fits(stored.approx_bytes()) {
                keep.put(Arc::new(stored), cx).await;
            }
        }
        self.finished = true;
        // Out of the map first: from then on nobody can join, so when nobody has, nobody
        // needs a copy of the result.
        self.calls.remove(self.key, &self.flight);
        if self.flight.joined.load(Ordering::SeqCst) > 0 {
            self.flight.settle(Outcome::Done(Box::new(result.clone())));
        }
        result
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.calls.remove(self.key, &self.flight);
            self.flight.settle(Outcome::Abandoned);
        }
    }
}
