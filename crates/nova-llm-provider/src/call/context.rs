//! The per-call context that travels with a request through the middleware chain.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use tokio::time::Instant;

use super::event::{Event, EventKind};
use super::hub::Hub;
use super::id::{Operation, RequestId};

/// A type map for values middleware hand to each other (at most one value per type),
/// like `http::Extensions`. Cloning shares the values.
///
/// A call carries a handful of values at most, so they are a short list searched in order
/// (cheaper than hashing at that size, and nothing is allocated until the first value).
#[derive(Default, Clone)]
pub struct Extensions {
    values: Vec<(TypeId, Arc<dyn Any + Send + Sync>)>,
}

impl Extensions {
    #[inline]
    fn position<T: 'static>(&self) -> Option<usize> {
        let id = TypeId::of::<T>();
        self.values.iter().position(|(t, _)| *t == id)
    }

    /// Stores `value`, replacing any value of that type.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        match self.position::<T>() {
            Some(i) => self.values[i].1 = value,
            None => self.values.push((TypeId::of::<T>(), value)),
        }
    }

    /// The value of type `T`, if one was stored.
    #[inline]
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.values[self.position::<T>()?].1.downcast_ref()
    }

    /// The value of type `T`, mutably; `None` also when the value is shared with a clone of
    /// this map (a detached context).
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        let i = self.position::<T>()?;
        Arc::get_mut(&mut self.values[i].1)?.downcast_mut()
    }

    /// Removes the value of type `T`; whether there was one.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> bool {
        match self.position::<T>() {
            Some(i) => {
                self.values.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extensions")
            .field("len", &self.values.len())
            .finish()
    }
}

/// Options a caller gives one call: tags (copied into every event of the call) and
/// extensions (read by middleware). Pass them with
/// [`Provider::chat_with`](crate::Provider::chat_with) and friends.
///
/// ```
/// use nova_llm_provider::CallOptions;
///
/// let options = CallOptions::new().tag("tenant", "acme").tag("feature", "summary");
/// assert_eq!(options.tags().get("tenant").map(String::as_str), Some("acme"));
/// ```
#[derive(Debug, Default)]
pub struct CallOptions {
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) extensions: Extensions,
}

impl CallOptions {
    /// No tags, no extensions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tag. Default: none.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Adds an extension value for middleware to read. Default: none.
    pub fn extension<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// The tags.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }
}

/// The tags of a call that has none: one shared map, so such calls allocate nothing for
/// their tags.
fn no_tags() -> Arc<BTreeMap<String, String>> {
    static EMPTY: std::sync::OnceLock<Arc<BTreeMap<String, String>>> = std::sync::OnceLock::new();
    Arc::clone(EMPTY.get_or_init(|| Arc::new(BTreeMap::new())))
}

/// What every layer of one call shares: ids, the attempt number, tags, extensions, and the
/// way to emit events.
///
/// Middleware get it as `&mut CallContext`. Caching, rate limiting and retry middleware use
/// [`emit`](Self::emit) to report what they did, with the call's request id.
#[derive(Debug)]
pub struct CallContext {
    request_id: RequestId,
    operation: Operation,
    attempt: u32,
    tags: Arc<BTreeMap<String, String>>,
    extensions: Extensions,
    started: Instant,
    model: Arc<str>,
    driver: Arc<str>,
    hub: Arc<Hub>,
    /// Set for work shared by several calls: its events go where the relay says.
    relay: Option<Arc<Relay>>,
}

/// Where the events of work shared by several calls go (the cache's shared stream): to the
/// earliest of those calls still waiting for it, which the work then serves; nowhere once
/// none is. So an event of the shared work never follows a call's terminal event: a call
/// leaves the relay before it ends, and an event is emitted under the relay's lock.
#[derive(Debug, Default)]
pub(crate) struct Relay {
    /// The calls the work serves, earliest first, by an id of the sharer's choosing.
    calls: std::sync::Mutex<Vec<(u64, CallContext)>>,
}

impl Relay {
    fn calls(&self) -> std::sync::MutexGuard<'_, Vec<(u64, CallContext)>> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the call of `cx` under `id`: the work reports for it once the calls before it
    /// have left.
    pub(crate) fn join(&self, id: u64, cx: &CallContext) {
        self.calls().push((id, cx.detached()));
    }

    /// Takes call `id` out: nothing the work does from now on is reported for it.
    pub(crate) fn leave(&self, id: u64) {
        self.calls().retain(|(i, _)| *i != id);
    }

    fn emit(&self, kind: EventKind) {
        let calls = self.calls();
        if let Some((_, cx)) = calls.first() {
            cx.emit(kind);
        }
    }
}

impl CallContext {
    #[inline]
    pub(crate) fn new(
        operation: Operation,
        options: CallOptions,
        model: Arc<str>,
        driver: Arc<str>,
        hub: Arc<Hub>,
    ) -> Self {
        CallContext {
            request_id: RequestId::next(),
            operation,
            attempt: 1,
            tags: if options.tags.is_empty() {
                no_tags()
            } else {
                Arc::new(options.tags)
            },
            extensions: options.extensions,
            started: Instant::now(),
            model,
            driver,
            hub,
            relay: None,
        }
    }

    /// The call's id, carried by each of its events.
    #[inline]
    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    /// Which trait method the call came through.
    #[inline]
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The attempt number, from 1. Retry middleware increments it before each new attempt.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Sets the attempt number (retry middleware).
    pub fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }

    /// The caller's tags.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    pub(crate) fn shared_tags(&self) -> Arc<BTreeMap<String, String>> {
        Arc::clone(&self.tags)
    }

    /// Values middleware hand to each other.
    #[inline]
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Values middleware hand to each other, mutably.
    #[inline]
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// When the call entered the provider (tokio's clock, so paused tests see exact times).
    #[inline]
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The model the request names, or `"default"` when it leaves the choice to the driver.
    #[inline]
    pub fn model(&self) -> &str {
        &self.model
    }

    pub(crate) fn shared_model(&self) -> Arc<str> {
        Arc::clone(&self.model)
    }

    /// The name of the driver at the bottom of the chain.
    #[inline]
    pub fn driver(&self) -> &str {
        &self.driver
    }

    pub(crate) fn shared_driver(&self) -> Arc<str> {
        Arc::clone(&self.driver)
    }

    /// Emits an event for this call (request id, driver, model and tags filled in).
    #[inline]
    pub fn emit(&self, kind: EventKind) {
        match &self.relay {
            None => self.emit_here(kind),
            Some(relay) => relay.emit(kind),
        }
    }

    /// Emits an event under this call's own identity, if anyone would see it.
    fn emit_here(&self, kind: EventKind) {
        if !self.hub.wants(&kind) {
            return;
        }
        self.hub.emit(Event {
            request_id: self.request_id,
            driver: Arc::clone(&self.driver),
            model: Arc::clone(&self.model),
            at: std::time::SystemTime::now(),
            elapsed: self.started.elapsed(),
            tags: Arc::clone(&self.tags),
            kind,
        });
    }

    pub(crate) fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// A context for work done on this call's behalf outside of it: the same ids, tags,
    /// extensions and event destination. Events it emits carry this call's request id.
    pub fn detached(&self) -> CallContext {
        CallContext {
            request_id: self.request_id,
            operation: self.operation,
            attempt: self.attempt,
            tags: Arc::clone(&self.tags),
            extensions: self.extensions.clone(),
            started: self.started,
            model: Arc::clone(&self.model),
            driver: Arc::clone(&self.driver),
            hub: Arc::clone(&self.hub),
            relay: self.relay.clone(),
        }
    }

    /// A context for work shared by the calls in `relay` (see [`Relay`]): like
    /// [`detached`](Self::detached), but its events are reported for whichever of those
    /// calls is still there, and for none once they have all gone.
    pub(crate) fn shared_by(&self, relay: Arc<Relay>) -> CallContext {
        CallContext {
            relay: Some(relay),
            ..self.detached()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Extensions;

    #[test]
    fn extensions_hold_one_value_per_type() {
        let mut ext = Extensions::default();
        assert!(ext.is_empty());
        ext.insert(1u32);
        ext.insert("tag");
        ext.insert(2u32);
        assert_eq!((ext.len(), ext.get::<u32>()), (2, Some(&2)));
        assert!(!ext.is_empty());
        *ext.get_mut::<u32>().unwrap() += 1;
        assert_eq!(ext.get::<u32>(), Some(&3));
        // Shared with a clone: not changed in place.
        let shared = ext.clone();
        assert!(ext.get_mut::<u32>().is_none());
        drop(shared);
        assert!(ext.remove::<u32>());
        assert!(!ext.remove::<u32>());
        assert_eq!((ext.len(), ext.get::<u32>()), (1, None));
        assert!(format!("{ext:?}").contains("len: 1"));
    }
}
