//! Where request and token counts live: the backend trait (a shared backend such as Redis
//! implements it) and the in-memory sliding-window backend.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use nova_llm_core::LlmError;
use tokio::time::Instant;

use crate::FastMap;
use crate::call::CallContext;

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
    /// Refuses a request that could never be admitted: more tokens than a minute allows,
    /// or any request under a limit of zero requests. Backends call it first.
    ///
    /// # Errors
    /// `InvalidRequest` naming the figures.
    pub fn check_fits(&self, tokens: u64) -> Result<(), LlmError> {
        if let Some((0, per)) = self.requests {
            return Err(LlmError::invalid_request(format!(
                "a limit of 0 requests per {per:?} admits no request"
            )));
        }
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
    /// now, counting it; otherwise says how long to wait. Never waits itself. (Without a
    /// token limit the layer does not estimate, and `tokens` is 0.)
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
pub(crate) fn scope_entry<'a, T: Default, S: BuildHasher>(
    map: &'a mut HashMap<String, T, S>,
    scope: &str,
) -> &'a mut T {
    if !map.contains_key(scope) {
        map.insert(scope.to_owned(), T::default());
    }
    // Present: inserted just above if it was not.
    map.get_mut(scope).unwrap_or_else(|| unreachable!())
}

/// Sliding windows in memory (on tokio's clock): a request is admitted only if the requests
/// of the last window, and the tokens of the last minute, stay within the limits, so no
/// window of that length ever holds more than the limit.
///
/// Requests admitted within a 64th of the window of each other are counted together and
/// leave the window together, when the last of them does. So a window holds at most 65
/// entries whatever the limit and the rate, at the price of a wait up to a 64th of the
/// window longer than the exact one (never shorter: the limit always holds). A token
/// estimate is corrected by its ticket while the request is in the window; only the
/// estimates not yet corrected are kept one by one, for a minute at most.
#[derive(Default)]
pub struct MemoryWindows {
    /// The windows of the whole provider (the empty scope): no map lookup.
    whole: Mutex<Windows>,
    scopes: Mutex<FastMap<String, Windows>>,
}

impl fmt::Debug for MemoryWindows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryWindows").finish_non_exhaustive()
    }
}

/// How finely a window is divided: requests admitted within `length / SLOTS` of the first
/// of a group are counted together.
const SLOTS: u32 = 64;

/// Requests admitted close together, counted as one entry.
#[derive(Debug, Clone, Copy)]
struct Group {
    /// When its first request was admitted (later ones join within a slot of it).
    first: Instant,
    /// When its last request was admitted: the whole group leaves the window then.
    last: Instant,
    /// The ticket of its first request (the group holds the tickets up to the next group's
    /// first).
    first_ticket: u64,
    /// Requests, or tokens.
    amount: u64,
}

/// One sliding window of requests or tokens, in groups.
#[derive(Debug, Default)]
struct Window {
    groups: VecDeque<Group>,
    /// The sum of the groups' amounts.
    total: u64,
}

impl Window {
    /// Lets go of the groups whose last request is `length` old.
    fn prune(&mut self, now: Instant, length: Duration) {
        while let Some(g) = self.groups.front()
            && now - g.last >= length
        {
            self.total -= g.amount;
            self.groups.pop_front();
        }
    }

    /// How long until `more` fits under `limit` (zero: now). `more <= limit`.
    fn wait(&self, now: Instant, more: u64, limit: u64, length: Duration) -> Duration {
        if self.total + more <= limit {
            return Duration::ZERO;
        }
        // The groups that must leave before there is room, oldest first.
        let mut freed = 0;
        for g in &self.groups {
            freed += g.amount;
            if self.total - freed + more <= limit {
                return length - (now - g.last);
            }
        }
        // Unreachable while `more <= limit`: once every group has left, it fits.
        length
    }

    /// Counts `amount` for the request of `ticket`, admitted at `now`.
    fn add(&mut self, now: Instant, ticket: u64, amount: u64, length: Duration) {
        self.total += amount;
        match self.groups.back_mut() {
            Some(g) if now - g.first < length / SLOTS => {
                g.last = now;
                g.amount += amount;
            }
            _ => self.groups.push_back(Group {
                first: now,
                last: now,
                first_ticket: ticket,
                amount,
            }),
        }
    }

    /// Counts `to` instead of `from` for the request of `ticket`, if it is still in.
    fn correct(&mut self, ticket: u64, from: u64, to: u64) {
        let i = self.groups.partition_point(|g| g.first_ticket <= ticket);
        if let Some(g) = i.checked_sub(1).and_then(|i| self.groups.get_mut(i)) {
            g.amount = g.amount.saturating_sub(from) + to;
            self.total = self.total.saturating_sub(from) + to;
        }
    }
}

#[derive(Default)]
struct Windows {
    requests: Window,
    tokens: Window,
    /// The token estimates not yet corrected, by ticket, for requests still in the window.
    estimates: BTreeMap<u64, u64>,
    next_ticket: u64,
}

impl Windows {
    fn prune(&mut self, now: Instant, request_window: Option<Duration>) {
        if let Some(w) = request_window {
            self.requests.prune(now, w);
        }
        self.tokens.prune(now, MINUTE);
        let oldest = self
            .tokens
            .groups
            .front()
            .map_or(u64::MAX, |g| g.first_ticket);
        while let Some(e) = self.estimates.first_entry()
            && *e.key() < oldest
        {
            e.remove();
        }
    }
}

impl MemoryWindows {
    /// Empty windows.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries the request window of `scope` holds (groups of requests).
    #[cfg(test)]
    pub(crate) fn request_entries(&self, scope: &str) -> usize {
        self.with(scope, |w| w.requests.groups.len())
    }

    /// The entries the token window of `scope` holds: groups, and estimates not yet
    /// corrected.
    #[cfg(test)]
    pub(crate) fn token_entries(&self, scope: &str) -> (usize, usize) {
        self.with(scope, |w| (w.tokens.groups.len(), w.estimates.len()))
    }

    /// Runs `f` on the windows of `scope` (created if missing), under their lock.
    fn with<T>(&self, scope: &str, f: impl FnOnce(&mut Windows) -> T) -> T {
        if scope.is_empty() {
            f(&mut self.whole.lock().unwrap_or_else(PoisonError::into_inner))
        } else {
            let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
            f(scope_entry(&mut scopes, scope))
        }
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
        Ok(self.with(scope, |w| {
            w.prune(now, limits.requests.map(|(_, d)| d));
            let mut wait = Duration::ZERO;
            if let Some((limit, window)) = limits.requests {
                wait = w.requests.wait(now, 1, limit, window);
            }
            if let Some(tpm) = limits.tokens_per_minute {
                wait = wait.max(w.tokens.wait(now, tokens, tpm, MINUTE));
            }
            if wait > Duration::ZERO {
                return Acquire::Wait(wait);
            }
            w.next_ticket += 1;
            let ticket = w.next_ticket;
            if let Some((_, window)) = limits.requests {
                w.requests.add(now, ticket, 1, window);
            }
            if limits.tokens_per_minute.is_some() {
                w.tokens.add(now, ticket, tokens, MINUTE);
                w.estimates.insert(ticket, tokens);
            }
            Acquire::Admitted(Ticket(ticket))
        }))
    }

    async fn reconcile(&self, scope: &str, ticket: Ticket, actual: u64) -> Result<(), LlmError> {
        self.with(scope, |w| {
            if let Some(estimate) = w.estimates.remove(&ticket.0) {
                w.tokens.correct(ticket.0, estimate, actual);
            }
        });
        Ok(())
    }
}
