//! Delivery: listeners called in line, and subscribers on a bounded channel that never
//! slows a request down.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

use super::event::{Event, EventKind};

/// A callback for every event, called in line on the task that made the event: keep it
/// fast and never block (hand slow work to a channel). The built-in metrics are one.
///
/// Any `Fn(&Event) + Send + Sync` closure is a listener.
pub trait EventListener: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &Event);

    /// Whether this listener looks only at the terminal events (`Completed`, `Failed`).
    /// When every listener says so and nobody subscribed, the provider does not build the
    /// other events at all. Default: `false`.
    fn terminal_only(&self) -> bool {
        false
    }
}

impl<F: Fn(&Event) + Send + Sync + 'static> EventListener for F {
    fn on_event(&self, event: &Event) {
        self(event)
    }
}

/// What a subscriber receives.
// `Missed` is rare and small; boxing every event to shrink it would cost an allocation per
// event instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Received {
    /// The next event.
    Event(Event),
    /// The subscriber fell behind and this many events were dropped for it (requests are
    /// never slowed down for a subscriber).
    Missed(u64),
}

/// A subscription to a provider's events, from
/// [`Provider::subscribe`](crate::Provider::subscribe). It holds up to the provider's
/// event capacity; beyond that the oldest are dropped and [`Received::Missed`] says how
/// many.
pub struct EventReceiver {
    rx: broadcast::Receiver<Event>,
    /// The hub's count of subscribers, taken back on drop.
    count: Arc<AtomicUsize>,
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReceiver")
            .field("queued", &self.rx.len())
            .finish()
    }
}

impl EventReceiver {
    /// Waits for the next event. `None` once the provider and every call it started are
    /// gone and the queue is empty.
    pub async fn recv(&mut self) -> Option<Received> {
        match self.rx.recv().await {
            Ok(e) => Some(Received::Event(e)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Received::Missed(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }

    /// The next event if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Received> {
        match self.rx.try_recv() {
            Ok(e) => Some(Received::Event(e)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => Some(Received::Missed(n)),
            Err(_) => None,
        }
    }

    /// Every event queued now, skipping the missed-count markers.
    pub fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(r) = self.try_recv() {
            if let Received::Event(e) = r {
                out.push(e);
            }
        }
        out
    }
}

/// Where events go.
pub(crate) struct Hub {
    sender: broadcast::Sender<Event>,
    listeners: Vec<Arc<dyn EventListener>>,
    /// Whether some listener wants the non-terminal events too.
    listeners_want_all: bool,
    /// Subscribers alive: an atomic read per check, where the channel's own count takes a
    /// lock (and events are checked several times per call).
    subscribers: Arc<AtomicUsize>,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("listeners", &self.listeners.len())
            .field("subscribers", &self.subscribers.load(Ordering::Relaxed))
            .finish()
    }
}

impl Hub {
    pub(crate) fn new(capacity: usize, listeners: Vec<Arc<dyn EventListener>>) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Hub {
            sender,
            listeners_want_all: listeners.iter().any(|l| !l.terminal_only()),
            listeners,
            subscribers: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn subscribe(&self) -> EventReceiver {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        EventReceiver {
            rx: self.sender.subscribe(),
            count: Arc::clone(&self.subscribers),
        }
    }

    #[inline]
    fn has_subscribers(&self) -> bool {
        self.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Whether anyone would see a terminal event (so building one is worth it).
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        !self.listeners.is_empty() || self.has_subscribers()
    }

    /// Whether anyone would see a non-terminal event.
    #[inline]
    pub(crate) fn wants_all(&self) -> bool {
        self.listeners_want_all || self.has_subscribers()
    }

    /// Whether anyone would see an event of this kind.
    #[inline]
    pub(crate) fn wants(&self, kind: &EventKind) -> bool {
        if matches!(kind, EventKind::Completed(_) | EventKind::Failed(_)) {
            self.is_active()
        } else {
            self.wants_all()
        }
    }

    #[inline]
    pub(crate) fn emit(&self, event: Event) {
        for l in &self.listeners {
            l.on_event(&event);
        }
        if self.has_subscribers() {
            // Fails only when the last subscriber left in between: nobody to tell.
            let _ = self.sender.send(event);
        }
    }
}
