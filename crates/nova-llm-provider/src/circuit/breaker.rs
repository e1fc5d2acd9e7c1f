//! One driver's circuit breaker: closed, open for a cooldown, half-open for one probe.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// When a circuit opens and how long it stays open.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CircuitConfig {
    /// Opens after this many failures in a row. Default: 5.
    pub consecutive_failures: u32,
    /// Opens when at least this share of the calls in `window` failed... Default: 0.5.
    pub failure_ratio: f64,
    /// ...over this window... Default: 60 s.
    pub window: Duration,
    /// ...once the window holds at least this many calls. Default: 10.
    pub min_calls: usize,
    /// The first cooldown; it doubles each time a probe fails. Default: 5 s.
    pub cooldown: Duration,
    /// The longest cooldown. Default: 5 min.
    pub max_cooldown: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        CircuitConfig {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            window: Duration::from_secs(60),
            min_calls: 10,
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

impl CircuitConfig {
    /// Sets the failures in a row that open the circuit.
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = n.max(1);
        self
    }

    /// Sets the failure ratio, its window and the minimum number of calls.
    pub fn failure_ratio(mut self, ratio: f64, window: Duration, min_calls: usize) -> Self {
        self.failure_ratio = ratio;
        self.window = window;
        self.min_calls = min_calls.max(1);
        self
    }

    /// Sets the first and the longest cooldown.
    pub fn cooldown(mut self, first: Duration, max: Duration) -> Self {
        self.cooldown = first;
        self.max_cooldown = max.max(first);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct State {
    phase: Phase,
    consecutive: u32,
    recent: VecDeque<(Instant, bool)>,
    cooldown: Duration,
}

/// Whether a call may go to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The circuit is closed.
    Yes,
    /// The circuit was open and its cooldown is over: this call is the probe.
    Probe,
    /// The circuit is open (or a probe is out) until about this time.
    No {
        /// When a probe may go.
        until: Instant,
    },
}

/// A change of state, for events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The circuit opened.
    Opened,
    /// The circuit closed after a successful probe.
    Closed,
}

/// The breaker of one driver.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: CircuitConfig,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: CircuitConfig) -> Self {
        CircuitBreaker {
            state: Mutex::new(State {
                phase: Phase::Closed,
                consecutive: 0,
                recent: VecDeque::new(),
                cooldown: config.cooldown,
            }),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go now.
    pub fn admit(&self) -> Admit {
        let now = Instant::now();
        let mut s = self.lock();
        match s.phase {
            Phase::Closed => Admit::Yes,
            Phase::Open { until } if now >= until => {
                s.phase = Phase::HalfOpen { probing: true };
                Admit::Probe
            }
            Phase::Open { until } => Admit::No { until },
            Phase::HalfOpen { probing: false } => {
                s.phase = Phase::HalfOpen { probing: true };
                Admit::Probe
            }
            Phase::HalfOpen { probing: true } => Admit::No {
                until: now + self.config.cooldown.min(Duration::from_secs(1)),
            },
        }
    }

    /// A probe ended without a verdict (its call was cancelled): the next call may probe.
    pub fn release_probe(&self) {
        let mut s = self.lock();
        if s.phase == (Phase::HalfOpen { probing: true }) {
            s.phase = Phase::HalfOpen { probing: false };
        }
    }

    /// Records the outcome of an admitted call; says if the circuit changed state.
    pub fn record(&self, success: bool) -> Option<Transition> {
        let now = Instant::now();
        let c = self.config;
        let mut s = self.lock();
        while s.recent.front().is_some_and(|(t, _)| now - *t > c.window) {
            s.recent.pop_front();
        }
        s.recent.push_back((now, success));
        match (s.phase, success) {
            (Phase::HalfOpen { .. }, true) => {
                s.phase = Phase::Closed;
                s.consecutive = 0;
                s.recent.clear();
                s.cooldown = c.cooldown;
                Some(Transition::Closed)
            }
            (Phase::HalfOpen { .. }, false) => {
                s.cooldown = (s.cooldown * 2).min(c.max_cooldown);
                s.phase = Phase::Open {
                    until: now + s.cooldown,
                };
                Some(Transition::Opened)
            }
            (Phase::Closed, true) => {
                s.consecutive = 0;
                None
            }
            (Phase::Closed, false) => {
                s.consecutive += 1;
                let failed = s.recent.iter().filter(|(_, ok)| !ok).count();
                let ratio_trips = s.recent.len() >= c.min_calls
                    && failed as f64 >= c.failure_ratio * s.recent.len() as f64;
                if s.consecutive >= c.consecutive_failures || ratio_trips {
                    s.phase = Phase::Open {
                        until: now + s.cooldown,
                    };
                    Some(Transition::Opened)
                } else {
                    None
                }
            }
            // An outcome that arrives while open (a call admitted before it opened).
            (Phase::Open { .. }, _) => None,
        }
    }

    /// Whether the circuit is open now (cooldown not over).
    pub fn is_open(&self) -> bool {
        matches!(self.lock().phase, Phase::Open { until } if Instant::now() < until)
    }
}
