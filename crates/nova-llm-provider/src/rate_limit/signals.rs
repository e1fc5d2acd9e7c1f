//! What a service says about its own limits (rate-limit headers, `Retry-After`), kept per
//! scope, and how long it says to hold new calls back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nova_llm_core::RateLimitSnapshot;
use tokio::time::Instant;

use super::backend::scope_entry;
use crate::FastMap;

/// What the service said about its limits, per scope.
#[derive(Debug, Default)]
pub(super) struct Signals {
    scopes: Mutex<FastMap<String, ServiceState>>,
    /// Whether the service ever said anything: until then every check is one atomic read.
    any: AtomicBool,
}

impl Signals {
    /// Whether a service has sent any signal yet (until then there is nothing to look at).
    pub(super) fn active(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// How long the service's own signals say to hold back, if at all.
    pub(super) fn wait(&self, scope: &str, now: Instant) -> Option<Duration> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let map = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        let s = map.get(scope)?;
        let blocked = s.blocked_until.filter(|t| *t > now);
        let spaced = match (s.spacing, s.last_admit) {
            // A gap ends with the window at the latest: the service's count starts again.
            (Some((gap, until)), Some(last)) if until > now => {
                Some((last + gap).min(until)).filter(|t| *t > now)
            }
            _ => None,
        };
        blocked.max(spaced).map(|t| t - now)
    }

    /// Notes an admission (the spacing counts from it); only scopes the service spoke of
    /// have a state to note it in.
    pub(super) fn admitted(&self, scope: &str, now: Instant) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut map = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = map.get_mut(scope) {
            s.last_admit = Some(now);
        }
    }

    /// Learns from the service's rate-limit headers and `Retry-After`.
    pub(super) fn learn(
        &self,
        scope: &str,
        snapshot: Option<&RateLimitSnapshot>,
        retry_after: Option<Duration>,
    ) {
        if retry_after.is_none() && snapshot.is_none_or(RateLimitSnapshot::is_empty) {
            // Nothing said: nothing to learn (and a scope the service never spoke of
            // keeps no state).
            if !self.any.load(Ordering::Acquire) {
                return;
            }
        }
        let now = Instant::now();
        let mut map = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        self.any.store(true, Ordering::Release);
        let s = scope_entry(&mut map, scope);
        let mut hold = |d: Duration| {
            let until = now + d;
            s.blocked_until = Some(s.blocked_until.map_or(until, |t| t.max(until)));
        };
        if let Some(d) = retry_after {
            hold(d);
        }
        let Some(snap) = snapshot else {
            return;
        };
        if snap.remaining_requests == Some(0) {
            hold(snap.reset_requests.unwrap_or(Duration::from_secs(1)));
        }
        if snap.remaining_tokens == Some(0) {
            hold(snap.reset_tokens.unwrap_or(Duration::from_secs(1)));
        }
        s.spacing = None;
        if let (Some(limit), Some(left), Some(reset)) = (
            snap.limit_requests,
            snap.remaining_requests,
            snap.reset_requests,
        ) && left > 0
            && left * 10 <= limit
        {
            // Spread what is left evenly over what is left of the window.
            let gap = reset / u32::try_from(left + 1).unwrap_or(u32::MAX);
            s.spacing = Some((gap, now + reset));
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct ServiceState {
    blocked_until: Option<Instant>,
    /// Space calls by this much until this time.
    spacing: Option<(Duration, Instant)>,
    last_admit: Option<Instant>,
}
