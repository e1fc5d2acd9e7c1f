//! Single-flight for plain calls: identical calls in flight at the same time share one
//! upstream call. Its first caller (the leader) runs it in its own task, so no task is
//! spawned per call; the callers that join wait for its result. If the leader goes away
//! before the end, a waiting caller takes over and runs the call itself.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use nova_llm_core::{ChatRequest, ChatResponse, LlmError};
use tokio::sync::Notify;

use super::control::FromCache;
use super::in_flight::{InFlight, lock};
use super::keep::Keep;
use super::key::CacheKey;
use super::reply::CachedReply;
use crate::call::{CallContext, EventKind};
use crate::plugin::Next;

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

/// Sends the plain call `request` under `key` upstream, or joins the identical call in
/// flight (all calls run alone when `single_flight` is off). The reply is kept in `keep`.
pub(super) async fn call(
    calls: &InFlight<PlainFlight>,
    single_flight: bool,
    key: &CacheKey,
    keep: Option<Keep>,
    request: ChatRequest,
    cx: &mut CallContext,
    next: Next<'_>,
) -> Result<ChatResponse, LlmError> {
    loop {
        // Join or lead, decided under the shard's lock, let go of before any wait.
        let role = {
            let mut shard = calls.shard(key);
            match shard.get(key).filter(|_| single_flight) {
                Some(flight) => {
                    flight.joined.fetch_add(1, Ordering::SeqCst);
                    Role::Join(Arc::clone(flight))
                }
                None => {
                    let flight = Arc::new(PlainFlight::default());
                    if single_flight {
                        shard.insert(key.clone(), Arc::clone(&flight));
                    }
                    Role::Lead(flight)
                }
            }
        };
        match role {
            Role::Lead(flight) => {
                let leader = Leader {
                    flight,
                    calls,
                    key,
                    finished: false,
                };
                return leader.run(keep, request, cx, next).await;
            }
            Role::Join(flight) => {
                if let Some(result) = flight.outcome().await {
                    cx.extensions_mut().insert(FromCache);
                    cx.emit(EventKind::Coalesced);
                    return result;
                }
                // The leader went away: try again, maybe as the leader.
            }
        }
    }
}

/// What a caller of a plain call does.
enum Role {
    Lead(Arc<PlainFlight>),
    Join(Arc<PlainFlight>),
}

impl PlainFlight {
    /// Waits for the outcome: the result, or `None` when the leader went away first.
    async fn outcome(&self) -> Option<Result<ChatResponse, LlmError>> {
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
struct Leader<'a> {
    flight: Arc<PlainFlight>,
    calls: &'a InFlight<PlainFlight>,
    key: &'a CacheKey,
    finished: bool,
}

impl Leader<'_> {
    async fn run(
        mut self,
        keep: Option<Keep>,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let result = next.chat(request, cx).await;
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
