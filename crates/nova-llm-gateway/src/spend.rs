//! What each gateway key spent in its current budget period: counted from the provider's
//! terminal events (a cache hit costs nothing; a failed stream costs what it used), in
//! this process or in Redis.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use nova_llm_core::LlmError;
use nova_llm_provider::{Event, EventKind, EventListener};
use nova_llm_redis::RedisTally;

use crate::access::KEY_TAG;

/// The spend of every key.
#[derive(Debug)]
pub(crate) struct Spend {
    /// Each key's budget period, in seconds.
    periods: HashMap<String, u64>,
    /// In this process: each key's current period and its sum.
    memory: Mutex<HashMap<String, (u64, f64)>>,
    /// In Redis, when shared.
    tally: Option<RedisTally>,
}

/// The index of the period of `secs` seconds that holds now.
fn period_now(secs: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now / secs.max(1)
}

impl Spend {
    pub(crate) fn new(periods: HashMap<String, u64>, tally: Option<RedisTally>) -> Self {
        Spend {
            periods,
            memory: Mutex::new(HashMap::new()),
            tally,
        }
    }

    fn period_secs(&self, key: &str) -> u64 {
        self.periods.get(key).copied().unwrap_or(86_400)
    }

    /// What `key` spent in its current period.
    ///
    /// # Errors
    /// Redis unreachable (the caller decides what that means).
    pub(crate) async fn spent(&self, key: &str) -> Result<f64, LlmError> {
        let period = period_now(self.period_secs(key));
        if let Some(t) = &self.tally {
            return t.get(key, period).await;
        }
        let memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(match memory.get(key) {
            Some((p, sum)) if *p == period => *sum,
            _ => 0.0,
        })
    }

    /// Adds `usd` to `key`'s current period (in Redis: in the background).
    pub(crate) fn add(&self, key: &str, usd: f64) {
        if usd <= 0.0 || !usd.is_finite() {
            return;
        }
        let secs = self.period_secs(key);
        let period = period_now(secs);
        if let Some(t) = &self.tally {
            let (t, key) = (t.clone(), key.to_owned());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = t.add(&key, period, secs, usd).await {
                        tracing::warn!(key = %key, error = %e, "spend not recorded in redis");
                    }
                });
            }
            return;
        }
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = memory.entry(key.to_owned()).or_insert((period, 0.0));
        if entry.0 != period {
            *entry = (period, 0.0);
        }
        entry.1 += usd;
    }
}

/// Feeds [`Spend`] from each call's terminal event, for calls made with a gateway key.
#[derive(Debug, Clone)]
pub(crate) struct SpendListener(pub(crate) Arc<Spend>);

impl EventListener for SpendListener {
    fn terminal_only(&self) -> bool {
        true
    }

    fn on_event(&self, event: &Event) {
        let Some(key) = event.tags.get(KEY_TAG) else {
            return;
        };
        let cost = match &event.kind {
            EventKind::Completed(c) if !c.from_cache => c.cost_usd,
            EventKind::Failed(f) => f.cost_usd,
            _ => None,
        };
        if let Some(usd) = cost {
            self.0.add(key, usd);
        }
    }
}
