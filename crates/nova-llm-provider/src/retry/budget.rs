//! The retry budget: retries may add only a fraction of the calls, plus a small reserve.

use std::sync::{Mutex, PoisonError};

/// Limits retries across all calls through a layer, so a failing service does not get a
/// storm of them: each call adds `ratio` to the budget (up to `max`), each retry takes 1.
/// It starts with `reserve`, so a quiet service can still be retried.
///
/// ```
/// use nova_llm_provider::retry::RetryBudget;
///
/// let budget = RetryBudget::new(0.25, 2.0, 100.0);
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw(), "the reserve is spent");
/// for _ in 0..4 {
///     budget.deposit(); // four calls earn one retry
/// }
/// assert!(budget.try_withdraw());
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    max: f64,
    balance: Mutex<f64>,
}

impl Default for RetryBudget {
    /// Retries may add 20 % to the calls, with a reserve of 10 and at most 100 saved.
    fn default() -> Self {
        Self::new(0.2, 10.0, 100.0)
    }
}

impl RetryBudget {
    /// A budget earning `ratio` per call, starting at `reserve`, holding at most `max`.
    pub fn new(ratio: f64, reserve: f64, max: f64) -> Self {
        RetryBudget {
            ratio,
            max: max.max(reserve),
            balance: Mutex::new(reserve),
        }
    }

    /// One call came in.
    pub fn deposit(&self) {
        let mut b = self.balance.lock().unwrap_or_else(PoisonError::into_inner);
        *b = (*b + self.ratio).min(self.max);
    }

    /// Takes one retry if the budget allows it.
    pub fn try_withdraw(&self) -> bool {
        let mut b = self.balance.lock().unwrap_or_else(PoisonError::into_inner);
        if *b >= 1.0 {
            *b -= 1.0;
            true
        } else {
            false
        }
    }

    /// The retries available now.
    pub fn balance(&self) -> f64 {
        *self.balance.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
