//! The waiting line of a scope: first come, first served.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The waiting line of one scope.
#[derive(Debug, Default)]
pub(super) struct Queue {
    pub(super) lock: Arc<tokio::sync::Mutex<()>>,
    /// Calls in the line (waiting for the lock or holding it).
    pub(super) waiting: AtomicUsize,
}

/// A waiting line: the provider's own (borrowed, no reference count touched per call) or
/// a model's.
pub(super) enum QueueRef<'a> {
    Whole(&'a Queue),
    Model(Arc<Queue>),
}

impl std::ops::Deref for QueueRef<'_> {
    type Target = Queue;

    fn deref(&self) -> &Queue {
        match self {
            QueueRef::Whole(q) => q,
            QueueRef::Model(q) => q,
        }
    }
}

/// Counts a call in the line while it lives (also when its future is dropped).
pub(super) struct Waiting<'a>(&'a Queue);

impl<'a> Waiting<'a> {
    pub(super) fn enter(q: &'a Queue) -> Self {
        q.waiting.fetch_add(1, Ordering::AcqRel);
        Waiting(q)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}
