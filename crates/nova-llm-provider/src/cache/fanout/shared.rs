//! The state of one shared stream: its events, its upstream work, its callers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, Weak};
use std::task::Waker;

use super::state::State;
use crate::cache::in_flight::lock;
use crate::call::Relay;

/// The upstream work of a shared stream, polled by its callers.
pub(super) type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One upstream stream and its callers.
pub(in crate::cache) struct SharedStream {
    pub(super) state: Mutex<State>,
    /// The upstream work; `None` once it is done.
    pub(super) work: Mutex<Option<Work>>,
    /// The waker the upstream work is polled with: it wakes every waiting caller.
    pub(super) fan_out: Waker,
    /// Callers still there.
    pub(super) callers: AtomicUsize,
    /// The calls the upstream work reports its events for: the earliest still there.
    pub(super) relay: Arc<Relay>,
}

/// Wakes every caller waiting on a shared stream.
struct FanOut(Weak<SharedStream>);

impl std::task::Wake for FanOut {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.0.upgrade() {
            shared.update(|s| s.upstream_wakes = s.upstream_wakes.wrapping_add(1));
        }
    }
}

impl SharedStream {
    pub(super) fn new() -> Arc<Self> {
        Arc::new_cyclic(|me| SharedStream {
            state: Mutex::new(State::default()),
            work: Mutex::new(None),
            fan_out: Waker::from(Arc::new(FanOut(me.clone()))),
            callers: AtomicUsize::new(1),
            relay: Arc::default(),
        })
    }

    /// Changes the state and wakes the callers waiting for a change.
    pub(super) fn update(&self, f: impl FnOnce(&mut State)) {
        let wakers = {
            let mut state = lock(&self.state);
            f(&mut state);
            std::mem::take(&mut state.wakers)
        };
        for (_, w) in wakers {
            w.wake();
        }
    }
}
