//! The `cache` middleware: lookups, storing, per-request controls, and single-flight (one
//! upstream call for identical concurrent requests, streams included).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, LlmError, StreamAccumulator, StreamEvent,
};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::Instrument;

use super::key::CacheKey;
use super::store::{CacheStore, CachedReply, MemoryStore};
use crate::events::EventKind;
use crate::plugin::{CallContext, Middleware, Next, OwnedNext};

/// Per-request cache controls, passed as an extension:
/// `CallOptions::new().extension(CacheControl::bypass())`.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// Neither read nor write the cache, nor join an identical call in flight.
    pub bypass: bool,
    /// Read the cache but do not store this reply.
    pub no_store: bool,
    /// Keep this reply for this long instead of the store's default.
    pub ttl: Option<Duration>,
}

impl CacheControl {
    /// Skip the cache entirely for this call.
    pub fn bypass() -> Self {
        CacheControl {
            bypass: true,
            ..Self::default()
        }
    }

    /// Use the cache but do not store this call's reply.
    pub fn no_store() -> Self {
        CacheControl {
            no_store: true,
            ..Self::default()
        }
    }

    /// Store this call's reply for `ttl`.
    pub fn ttl(ttl: Duration) -> Self {
        CacheControl {
            ttl: Some(ttl),
            ..Self::default()
        }
    }
}

/// The `cache` middleware.
///
/// - A hit answers without calling the layers below; streamed and plain calls share
///   entries (a stored stream answers a plain call and the other way round).
/// - Only complete replies are stored: never errors, never a cut stream.
/// - **Single-flight:** identical calls in flight at the same time (same key, both plain or
///   both streamed) share one upstream call: every caller gets the result, and an error is
///   shared with the callers waiting for it, never stored. A plain call runs in its first
///   caller's task (no task per call); if that caller goes away first, a waiting one takes
///   over. A stream runs in a task of its own: a caller that joins late gets what was
///   already sent and then the rest live, a caller that goes away does not disturb the
///   others, and the upstream stream is abandoned only when every caller is gone.
/// - A reply larger than [`max_entry_bytes`](Self::max_entry_bytes) is not stored; a stream
///   that grows past it stops taking new callers, and the events every caller has read are
///   freed, so a very long stream does not sit in memory whole.
/// - Events: `CacheHit`, `CacheMiss`, `Coalesced` (joined a call in flight), `CacheStored`.
///   A hit or a joined call is marked "from cache" (its cost is 0; the caller whose call
///   went upstream carries the cost).
///
/// Needs a tokio runtime (the shared upstream call is a spawned task).
#[derive(Clone)]
pub struct CacheLayer {
    store: Arc<dyn CacheStore>,
    flights: Arc<Mutex<HashMap<FlightKey, Arc<Flight>>>>,
    single_flight: bool,
    max_entry_bytes: usize,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("in_flight", &lock(&self.flights).len())
            .field("single_flight", &self.single_flight)
            .finish_non_exhaustive()
    }
}

type FlightKey = (CacheKey, bool);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CacheLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "cache";

    /// A cache over `store`, with single-flight on.
    pub fn new(store: impl CacheStore) -> Self {
        Self::shared(Arc::new(store))
    }

    /// A cache over a store you share with others.
    pub fn shared(store: Arc<dyn CacheStore>) -> Self {
        CacheLayer {
            store,
            flights: Arc::new(Mutex::new(HashMap::new())),
            single_flight: true,
            max_entry_bytes: 1 << 20,
        }
    }

    /// An in-memory cache of at most `max_entries` replies kept for `ttl`.
    pub fn in_memory(max_entries: u64, ttl: Option<Duration>) -> Self {
        Self::new(MemoryStore::new(max_entries, ttl))
    }

    /// Turns single-flight on or off. Default: on.
    pub fn single_flight(mut self, yes: bool) -> Self {
        self.single_flight = yes;
        self
    }

    /// The largest reply stored, in bytes ([`CachedReply::approx_bytes`]); a longer one
    /// (a stream of 100,000 chunks, say) is passed on but not kept. Default: 1 MiB.
    pub fn max_entry_bytes(mut self, bytes: usize) -> Self {
        self.max_entry_bytes = bytes;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.store
    }

    /// How many distinct upstream calls are in flight now.
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).len()
    }

    /// Looks the request up. `Ok(reply)` on a hit; `Err(key)` on a miss (or a bypass:
    /// `None`).
    async fn lookup(
        &self,
        request: &ChatRequest,
        cx: &mut CallContext,
    ) -> Result<CachedReply, Option<(CacheKey, CacheControl)>> {
        let control = cx
            .extensions()
            .get::<CacheControl>()
            .copied()
            .unwrap_or_default();
        if control.bypass {
            return Err(None);
        }
        let key = CacheKey::new(cx.driver(), cx.operation(), request);
        match self.store.get(&key).await {
            Ok(Some(reply)) => {
                cx.set_from_cache(true);
                cx.emit(EventKind::CacheHit);
                return Ok(reply);
            }
            Ok(None) => {}
            Err(e) => store_failed(cx, &e, "treated as a miss"),
        }
        cx.emit(EventKind::CacheMiss);
        Err(Some((key, control)))
    }

    /// Joins the flight of `key`, starting it if there is none.
    fn join(
        &self,
        key: CacheKey,
        control: CacheControl,
        stream: bool,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Waiter {
        let fkey = (key.clone(), stream);
        let mut flights = lock(&self.flights);
        if self.single_flight
            && let Some(flight) = flights.get(&fkey)
        {
            flight.waiters.fetch_add(1, Ordering::SeqCst);
            let waiter = Waiter::new(Arc::clone(flight), fkey, Arc::clone(&self.flights));
            drop(flights);
            cx.set_from_cache(true);
            cx.emit(EventKind::Coalesced);
            return waiter;
        }
        let flight = Flight::new();
        if self.single_flight {
            flights.insert(fkey.clone(), Arc::clone(&flight));
        }
        drop(flights);
        let run = Run {
            flight: Arc::clone(&flight),
            flights: Arc::clone(&self.flights),
            fkey: fkey.clone(),
            store: (!control.no_store).then(|| (Arc::clone(&self.store), key, control.ttl)),
            max_entry_bytes: self.max_entry_bytes,
            next: next.to_owned(),
            cx: cx.detached(),
            registered: self.single_flight,
        };
        let handle = tokio::spawn(run.go(request, stream).instrument(tracing::Span::current()));
        *lock(&flight.task) = Some(handle.abort_handle());
        Waiter::new(flight, fkey, Arc::clone(&self.flights))
    }
}

impl CacheLayer {
    /// A plain call: the first caller of a key runs it in its own task (no spawn) and
    /// shares the result with the callers that join meanwhile; if it goes away first, one
    /// of them takes over.
    async fn lead_or_join(
        &self,
        key: CacheKey,
        control: CacheControl,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        let fkey = (key.clone(), false);
        loop {
            // Decide under the lock, then let go of it before any await.
            let role = {
                let mut flights = lock(&self.flights);
                match flights.get(&fkey).filter(|_| self.single_flight) {
                    Some(flight) => {
                        flight.waiters.fetch_add(1, Ordering::SeqCst);
                        Role::Join(Waiter::new(
                            Arc::clone(flight),
                            fkey.clone(),
                            Arc::clone(&self.flights),
                        ))
                    }
                    None => {
                        let flight = Flight::new();
                        if self.single_flight {
                            flights.insert(fkey.clone(), Arc::clone(&flight));
                        }
                        Role::Lead(flight)
                    }
                }
            };
            let flight = match role {
                Role::Join(waiter) => {
                    if let Some(result) = waiter.response().await {
                        cx.set_from_cache(true);
                        cx.emit(EventKind::Coalesced);
                        return result;
                    }
                    continue; // the leader went away: try again, maybe as the leader
                }
                Role::Lead(flight) => flight,
            };
            let mut lead = Lead {
                flight,
                flights: Arc::clone(&self.flights),
                fkey: fkey.clone(),
                registered: self.single_flight,
                done: false,
            };
            let result = next.chat(request, cx).await;
            if let Ok(reply) = &result
                && !control.no_store
            {
                let stored = CachedReply::from_response(reply);
                if stored.approx_bytes() <= self.max_entry_bytes {
                    match self.store.put(&key, stored, control.ttl).await {
                        Ok(()) => cx.emit(EventKind::CacheStored),
                        Err(e) => store_failed(cx, &e, "the reply was not stored"),
                    }
                }
            }
            lead.finish(&result);
            return result;
        }
    }
}

/// What a caller of a plain call does.
enum Role {
    Join(Waiter),
    Lead(Arc<Flight>),
}

/// The caller running a plain call for everyone; if dropped before `finish`, the callers
/// waiting on it are told to take over.
struct Lead {
    flight: Arc<Flight>,
    flights: Arc<Mutex<HashMap<FlightKey, Arc<Flight>>>>,
    fkey: FlightKey,
    registered: bool,
    done: bool,
}

impl Lead {
    fn unregister(&self) {
        if self.registered {
            let mut flights = lock(&self.flights);
            if flights
                .get(&self.fkey)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                flights.remove(&self.fkey);
            }
        }
    }

    fn finish(&mut self, result: &Result<ChatResponse, LlmError>) {
        self.done = true;
        self.unregister();
        let end = match result {
            Ok(reply) => {
                let events = reply.to_events();
                self.flight.update(|s| {
                    s.events = events.into();
                    s.end = Some(Ok(()));
                });
                return;
            }
            Err(e) => Err(e.clone()),
        };
        self.flight.update(|s| s.end = Some(end));
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        if !self.done {
            self.unregister();
            self.flight.update(|s| s.abandoned = true);
        }
    }
}

#[async_trait]
impl Middleware for CacheLayer {
    fn name(&self) -> &str {
        Self::NAME
    }

    async fn chat(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatResponse, LlmError> {
        match self.lookup(&request, cx).await {
            Ok(hit) => hit.to_response(),
            Err(None) => next.chat(request, cx).await,
            Err(Some((key, control))) => self.lead_or_join(key, control, request, cx, next).await,
        }
    }

    async fn chat_stream(
        &self,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Result<ChatStream, LlmError> {
        match self.lookup(&request, cx).await {
            Ok(hit) => Ok(hit.to_stream()),
            Err(None) => next.chat_stream(request, cx).await,
            Err(Some((key, control))) => {
                let waiter = self.join(key, control, true, request, cx, next);
                waiter.stream().await
            }
        }
    }
}

/// One upstream call shared by its callers.
struct Flight {
    state: Mutex<FlightState>,
    /// Bumped after every change of `state`.
    changed: watch::Sender<u64>,
    waiters: AtomicUsize,
    task: Mutex<Option<AbortHandle>>,
}

#[derive(Default)]
struct FlightState {
    /// The events not yet read by every caller (all of them, until the flight overflows).
    events: VecDeque<StreamEvent>,
    /// The index of `events[0]` in the whole stream.
    base: usize,
    /// Each caller's next index.
    readers: HashMap<u64, usize>,
    /// Approximate bytes pumped so far.
    bytes: usize,
    /// Past the size cap: no longer joinable, not stored, events dropped once read by all.
    overflowed: bool,
    /// Set once: `Ok` after a complete reply, `Err` with the error every caller gets.
    end: Option<Result<(), LlmError>>,
    /// The upstream call failed before any output (callers of a stream get the error from
    /// `chat_stream` itself, as the stream contract says).
    failed_early: bool,
    /// A plain call's leader went away before the end: a waiting caller takes over.
    abandoned: bool,
}

impl Flight {
    /// A new flight with its first caller.
    fn new() -> Arc<Self> {
        let (tx, _) = watch::channel(0_u64);
        Arc::new(Flight {
            state: Mutex::new(FlightState::default()),
            changed: tx,
            waiters: AtomicUsize::new(1),
            task: Mutex::new(None),
        })
    }

    fn update(&self, f: impl FnOnce(&mut FlightState)) {
        f(&mut lock(&self.state));
        self.changed.send_modify(|v| *v += 1);
    }
}

impl FlightState {
    /// After an overflow, drops the events every caller has read.
    fn trim(&mut self) {
        if !self.overflowed {
            return;
        }
        let min = self
            .readers
            .values()
            .copied()
            .min()
            .unwrap_or(self.base + self.events.len());
        while self.base < min && self.events.pop_front().is_some() {
            self.base += 1;
        }
    }
}

/// Ids of the callers of flights.
static NEXT_READER: AtomicU64 = AtomicU64::new(0);

/// The spawned upstream call.
struct Run {
    flight: Arc<Flight>,
    flights: Arc<Mutex<HashMap<FlightKey, Arc<Flight>>>>,
    fkey: FlightKey,
    store: Option<(Arc<dyn CacheStore>, CacheKey, Option<Duration>)>,
    next: OwnedNext,
    cx: CallContext,
    registered: bool,
    max_entry_bytes: usize,
}

impl Run {
    async fn go(mut self, request: ChatRequest, stream: bool) {
        // The reply's last event (`Finish`) is held back until the reply is stored, so a
        // caller sees `CacheStored` before its call ends.
        let result = if stream {
            self.stream(request).await
        } else {
            match self.next.as_next().chat(request, &mut self.cx).await {
                Ok(reply) => {
                    let mut events = reply.to_events();
                    let last = events.pop();
                    self.flight.update(|s| s.events = events.into());
                    Ok(last)
                }
                Err(e) => {
                    self.flight.update(|s| s.failed_early = true);
                    Err(e)
                }
            }
        };
        let overflowed = lock(&self.flight.state).overflowed;
        if let Ok(Some(last)) = &result
            && let Some((store, key, ttl)) = &self.store
            && !overflowed
        {
            let mut events: Vec<StreamEvent> =
                lock(&self.flight.state).events.iter().cloned().collect();
            events.push(last.clone());
            if let Some(reply) = CachedReply::from_events(events)
                && reply.approx_bytes() <= self.max_entry_bytes
            {
                match store.put(key, reply, *ttl).await {
                    Ok(()) => self.cx.emit(EventKind::CacheStored),
                    Err(e) => store_failed(&self.cx, &e, "the reply was not stored"),
                }
            }
        }
        // Stored first, then out of the in-flight map: a new caller finds one or the other.
        self.unregister();
        self.flight.update(|s| match result {
            Ok(last) => {
                s.events.extend(last);
                s.end = Some(Ok(()));
            }
            Err(e) => s.end = Some(Err(e)),
        });
    }

    /// Takes the flight out of the in-flight map (if it is still there).
    fn unregister(&self) {
        if self.registered {
            let mut flights = lock(&self.flights);
            if flights
                .get(&self.fkey)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                flights.remove(&self.fkey);
            }
        }
    }

    /// Pumps the upstream stream into the flight; returns its held-back `Finish`.
    async fn stream(&mut self, request: ChatRequest) -> Result<Option<StreamEvent>, LlmError> {
        let mut upstream = match self.next.as_next().chat_stream(request, &mut self.cx).await {
            Ok(s) => s,
            Err(e) => {
                self.flight.update(|s| s.failed_early = true);
                return Err(e);
            }
        };
        let mut acc = StreamAccumulator::new();
        while let Some(item) = upstream.next().await {
            let event = item?;
            if matches!(event, StreamEvent::Finish { .. }) {
                return Ok(Some(event));
            }
            acc.push(&event);
            let size = CachedReply::event_bytes(&event);
            let cap = self.max_entry_bytes;
            let mut overflowed_now = false;
            self.flight.update(|s| {
                s.events.push_back(event);
                s.bytes += size;
                if !s.overflowed && s.bytes > cap {
                    s.overflowed = true;
                    overflowed_now = true;
                }
                s.trim();
            });
            if overflowed_now {
                // Too long to keep: no one else joins it, it will not be stored, and its
                // events go once every caller has read them.
                self.unregister();
                lock(&self.flight.state).trim();
            }
        }
        Err(LlmError::stream_interrupted(
            "the stream ended without a finish event",
            acc.partial(),
        ))
    }
}

/// One caller of a flight. When the last one goes away before the end, the upstream call
/// is abandoned.
struct Waiter {
    flight: Arc<Flight>,
    fkey: FlightKey,
    flights: Arc<Mutex<HashMap<FlightKey, Arc<Flight>>>>,
    rx: watch::Receiver<u64>,
    /// How many events this caller has been given.
    read: usize,
    id: u64,
}

impl Waiter {
    fn new(
        flight: Arc<Flight>,
        fkey: FlightKey,
        flights: Arc<Mutex<HashMap<FlightKey, Arc<Flight>>>>,
    ) -> Self {
        let rx = flight.changed.subscribe();
        let id = NEXT_READER.fetch_add(1, Ordering::Relaxed);
        lock(&flight.state).readers.insert(id, 0);
        Waiter {
            flight,
            fkey,
            flights,
            rx,
            read: 0,
            id,
        }
    }

    /// Waits for the end and returns the whole reply; `None` when the leader of a plain call
    /// went away first (the caller then takes over).
    async fn response(mut self) -> Option<Result<ChatResponse, LlmError>> {
        loop {
            {
                let state = lock(&self.flight.state);
                match &state.end {
                    Some(Ok(())) => {
                        let mut acc = StreamAccumulator::new();
                        for e in &state.events {
                            acc.push(e);
                        }
                        return Some(acc.finish());
                    }
                    Some(Err(e)) => return Some(Err(e.clone())),
                    None if state.abandoned => return None,
                    None => {}
                }
            }
            if self.rx.changed().await.is_err() {
                return Some(Err(abandoned()));
            }
        }
    }

    /// Waits for the first event (or an early failure) and returns the stream.
    async fn stream(mut self) -> Result<ChatStream, LlmError> {
        loop {
            {
                let state = lock(&self.flight.state);
                if !state.events.is_empty() {
                    break;
                }
                match &state.end {
                    Some(Err(e)) if state.failed_early => return Err(e.clone()),
                    Some(_) => break,
                    None => {}
                }
            }
            if self.rx.changed().await.is_err() {
                return Err(abandoned());
            }
        }
        let stream = futures_util::stream::unfold(Some(self), |w| async move {
            let mut w = w?;
            loop {
                {
                    let mut state = lock(&w.flight.state);
                    // Trimming never passes a caller's position; if it ever did, end this
                    // caller's stream with an error rather than hand out a wrong event.
                    let Some(at) = w.read.checked_sub(state.base) else {
                        return Some((Err(abandoned()), None));
                    };
                    if let Some(e) = state.events.get(at) {
                        let e = e.clone();
                        w.read += 1;
                        state.readers.insert(w.id, w.read);
                        state.trim();
                        drop(state);
                        return Some((Ok(e), Some(w)));
                    }
                    match &state.end {
                        Some(Ok(())) => return None,
                        Some(Err(e)) => return Some((Err(e.clone()), None)),
                        None => {}
                    }
                }
                if w.rx.changed().await.is_err() {
                    return Some((Err(abandoned()), None));
                }
            }
        });
        Ok(Box::pin(stream))
    }
}

/// Reports a failed store operation; the call goes on without the cache.
fn store_failed(cx: &CallContext, err: &LlmError, fallback: &str) {
    cx.emit(EventKind::BackendUnavailable {
        backend: "cache store".into(),
        fallback: fallback.into(),
        error: err.to_string(),
    });
}

fn abandoned() -> LlmError {
    LlmError::new(
        nova_llm_core::ErrorKind::Other,
        "the shared upstream call ended without a result",
    )
}

impl Drop for Waiter {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.flight.state);
            state.readers.remove(&self.id);
            state.trim();
        }
        if self.flight.waiters.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        // The last caller left: abandon the call unless it ended or someone joined since.
        let mut flights = lock(&self.flights);
        if self.flight.waiters.load(Ordering::SeqCst) != 0 || lock(&self.flight.state).end.is_some()
        {
            return;
        }
        if flights
            .get(&self.fkey)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
        {
            flights.remove(&self.fkey);
        }
        drop(flights);
        if let Some(task) = lock(&self.flight.task).take() {
            task.abort();
        }
    }
}
