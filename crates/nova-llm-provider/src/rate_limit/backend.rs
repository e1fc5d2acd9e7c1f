//! Where request and token counts live: the backend trait (a shared backend such as Redis
//! implements it) and the in-memory sliding-window backend.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::LlmError;
use tokio::time::Instant;

use crate::plugin::CallContext;

/// The limits a backend enforces for each scope (the whole provider, or one model).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowLimits {
    /// At most this many requests in any window of this length.
    pub requests: Option<(u64, Duration)>,
    /// At most this many tokens (estimated, then corrected) in any minute.
    pub tokens_per_minute: Option<u64>,
}

impl WindowLimits {
    /// Refuses a request that could never be admitted: more tokens than a minute allows.
    /// Backends call it first.
    ///
    /// # Errors
    /// `InvalidRequest` naming both figures.
    pub fn check_fits(&self, tokens: u64) -> Result<(), LlmError> {
        match self.tokens_per_minute {
            Some(tpm) if tokens > tpm => Err(LlmError::invalid_request(format!(
                "the request needs about {tokens} tokens, more than the limit of {tpm} tokens per minute"
            ))),
            _ => Ok(()),
        }
    }
}

/// An admitted request, for correcting its token count later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(pub u64);

/// The answer to [`RateLimitBackend::try_acquire`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// Admitted now; its requests and tokens are counted.
    Admitted(Ticket),
    /// Not now: the earliest time it could be admitted is this far away.
    Wait(Duration),
}

/// Counts requests and tokens in sliding windows. The in-memory [`MemoryWindows`] is the
/// default; a shared backend lets several processes share one organization's limits.
#[async_trait]
pub trait RateLimitBackend: Send + Sync + 'static {
    /// Admits one request of `tokens` estimated tokens under `scope` if the limits allow it
    /// now, counting it; otherwise says how long to wait. Never waits itself.
    ///
    /// A backend that cannot reach its store applies its own failure policy (admit, refuse,
    /// or count locally) and reports it with `cx.emit`.
    ///
    /// # Errors
    /// A request that could never be admitted (more tokens than the limit allows in a
    /// minute), or a backend failure when its policy is to refuse.
    async fn try_acquire(
        &self,
        scope: &str,
        tokens: u64,
        limits: WindowLimits,
        cx: &CallContext,
    ) -> Result<Acquire, LlmError>;

    /// Corrects the token count of an admitted request once its real usage is known.
    ///
    /// # Errors
    /// A backend failure.
    async fn reconcile(&self, scope: &str, ticket: Ticket, actual: u64) -> Result<(), LlmError>;
}

const MINUTE: Duration = Duration::from_secs(60);

/// The entry of `scope`, created if missing; no allocation when it exists.
pub(crate) fn scope_entry<'a, T: Default>(
    map: &'a mut HashMap<String, T>,
    scope: &str,
) -> &'a mut T {
    if !map.contains_key(scope) {
        map.insert(scope.to_owned(), T::default());
    }
    // Present: inserted just above if it was not.
    map.get_mut(scope).unwrap_or_else(|| unreachable!())
}

/// Exact sliding windows in memory (on tokio's clock): a request is admitted only if the
/// requests of the last window, and the tokens of the last minute, stay within the limits,
/// so no window of that length ever holds more than the limit.
#[derive(Default)]
pub struct MemoryWindows {
    scopes: Mutex<HashMap<String, Windows>>,
}

impl fmt::Debug for MemoryWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryWindows").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Windows {
    requests: VecDeque<Instant>,
    tokens: VecDeque<(Instant, Ticket, u64)>,
    token_sum: u64,
    next_ticket: u64,
}

impl Windows {
    fn prune(&mut self, now: Instant, request_window: Option<Duration>) {
        if let Some(w) = request_window {
            while self.requests.front().is_some_and(|t| now - *t >= w) {
                self.requests.pop_front();
            }
        }
        while let Some(&(t, _, n)) = self.tokens.front() {
            if now - t < MINUTE {
                break;
            }
            self.token_sum -= n;
            self.tokens.pop_front();
        }
    }
}

impl MemoryWindows {
    /// Empty windows.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RateLimitBackend for MemoryWindows {
    async fn try_acquire(
        &self,
        scope: &str,
        tokens: u64,
        limits: WindowLimits,
        _cx: &CallContext,
    ) -> Result<Acquire, LlmError> {
        limits.check_fits(tokens)?;
        let now = Instant::now();
        let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        let w = scope_entry(&mut scopes, scope);
        w.prune(now, limits.requests.map(|(_, d)| d));
        let mut wait = Duration::ZERO;
        if let Some((limit, window)) = limits.requests {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            if w.requests.len() >= limit {
                // The oldest counted request that must leave before there is room.
                let oldest = w.requests[w.requests.len() - limit];
                wait = wait.max(window - (now - oldest));
            }
        }
        if let Some(tpm) = limits.tokens_per_minute
            && w.token_sum + tokens > tpm
        {
            let mut freed = 0;
            for &(t, _, n) in &w.tokens {
                freed += n;
                if w.token_sum - freed + tokens <= tpm {
                    wait = wait.max(MINUTE - (now - t));
                    break;
                }
            }
        }
        if wait > Duration::ZERO {
            return Ok(Acquire::Wait(wait));
        }
        w.next_ticket += 1;
        let ticket = Ticket(w.next_ticket);
        if limits.requests.is_some() {
            w.requests.push_back(now);
        }
        if limits.tokens_per_minute.is_some() {
            w.tokens.push_back((now, ticket, tokens));
            w.token_sum += tokens;
        }
        Ok(Acquire::Admitted(ticket))
    }

    async fn reconcile(&self, scope: &str, ticket: Ticket, actual: u64) -> Result<(), LlmError> {
        let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        // Tickets grow with time, so the window is sorted by ticket.
        if let Some(w) = scopes.get_mut(scope)
            && let Ok(i) = w.tokens.binary_search_by_key(&ticket.0, |e| (e.1).0)
        {
            let entry = &mut w.tokens[i];
            w.token_sum = w.token_sum - entry.2 + actual;
            entry.2 = actual;
        }
        Ok(())
    }
}
