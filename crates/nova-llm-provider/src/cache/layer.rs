//! The `cache` middleware: lookups, storing, per-request controls, and single-flight (one
//! upstream call for identical concurrent requests, streams included).

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, LlmError, StreamAccumulator, StreamEvent,
};
use tracing::Instrument;

use super::key::CacheKey;
use super::reply::{CachedReply, EventLog};
use super::store::{CacheStore, MemoryStore};
use crate::FastMap;
use crate::events::EventKind;
use crate::plugin::{CallContext, Middleware, Next, OwnedNext, Relay};

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
///   over. A stream is driven by whichever of its callers is waiting for the next event
///   (no task is spawned): a caller that joins late gets what was already sent and then
///   the rest live, a caller that goes away does not disturb the others (another one
///   drives the stream from there), and the upstream stream is abandoned only when every
///   caller is gone.
/// - A reply larger than [`max_entry_bytes`](Self::max_entry_bytes) is not stored; a stream
///   that grows past it stops taking new callers, and the events every caller has read are
///   freed, so a very long stream does not sit in memory whole.
/// - A stream is held once, compactly: each event reaches the first caller that reads it as
///   the upstream gave it, and a copy with its text in one shared buffer (see
///   [`CachedReply`]) stays for the other callers and the store. When the stream ends, that
///   copy moves into the reply handed to the store ([`CacheStore::put_shared`]; the
///   [`MemoryStore`] keeps that very reply).
/// - Events: `CacheHit`, `CacheMiss`, `Coalesced` (joined a call in flight), `CacheStored`.
///   A hit or a joined call is marked "from cache" (its cost is 0; the caller whose call
///   went upstream carries the cost).
#[derive(Clone)]
pub struct CacheLayer {
    store: Arc<dyn CacheStore>,
    /// The store when it is a [`MemoryStore`]: asked directly, without boxed futures.
    memory: Option<MemoryStore>,
    flights: Arc<Flights>,
    single_flight: bool,
    max_entry_bytes: usize,
}

impl fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheLayer")
            .field("in_flight", &self.flights.len())
            .field("single_flight", &self.single_flight)
            .finish_non_exhaustive()
    }
}

type FlightKey = (CacheKey, bool);

/// Shards of the map of calls in flight: two calls take the same lock only when their keys
/// fall in the same shard.
struct Flights {
    shards: Vec<Mutex<FastMap<FlightKey, Arc<Flight>>>>,
}

const FLIGHT_SHARDS: usize = 16;

impl Flights {
    fn new() -> Self {
        Flights {
            shards: (0..FLIGHT_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The shard of `key`, locked. A key ends in hex digits of a SHA-256: the last one picks
    /// the shard, evenly.
    fn shard(&self, key: &FlightKey) -> MutexGuard<'_, FastMap<FlightKey, Arc<Flight>>> {
        let last = key.0.as_str().bytes().last().unwrap_or(b'0');
        let digit = match last {
            b'0'..=b'9' => last - b'0',
            b'a'..=b'f' => last - b'a' + 10,
            other => other,
        };
        lock(&self.shards[usize::from(digit) % self.shards.len()])
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CacheLayer {
    /// The layer's name in a chain.
    pub const NAME: &'static str = "cache";

    /// A cache over `store`, with single-flight on.
    pub fn new(store: impl CacheStore) -> Self {
        let memory = (&store as &dyn Any).downcast_ref::<MemoryStore>().cloned();
        CacheLayer {
            memory,
            ..Self::shared(Arc::new(store))
        }
    }

    /// A cache over a store you share with others.
    pub fn shared(store: Arc<dyn CacheStore>) -> Self {
        CacheLayer {
            store,
            memory: None,
            flights: Arc::new(Flights::new()),
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
        self.flights.len()
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
        let found = match &self.memory {
            Some(memory) => Ok(memory.get_now(&key)),
            None => self.store.get(&key).await,
        };
        match found {
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

    /// Joins the streamed flight of `key`, starting it if there is none.
    fn join(
        &self,
        key: CacheKey,
        control: CacheControl,
        request: ChatRequest,
        cx: &mut CallContext,
        next: Next<'_>,
    ) -> Waiter {
        let fkey = (key.clone(), true);
        let mut flights = self.flights.shard(&fkey);
        if self.single_flight
            && let Some(flight) = flights.get(&fkey)
        {
            flight.waiters.fetch_add(1, Ordering::SeqCst);
            let waiter = Waiter::new(Arc::clone(flight), fkey, Arc::clone(&self.flights), cx);
            drop(flights);
            cx.set_from_cache(true);
            cx.emit(EventKind::Coalesced);
            return waiter;
        }
        let flight = Flight::streamed();
        // The leader joins first: the shared work reports for it while it is there.
        let waiter = Waiter::new(
            Arc::clone(&flight),
            fkey.clone(),
            Arc::clone(&self.flights),
            cx,
        );
        if self.single_flight {
            flights.insert(fkey.clone(), Arc::clone(&flight));
        }
        drop(flights);
        let run = Run {
            flight: Arc::downgrade(&flight),
            flights: Arc::clone(&self.flights),
            fkey: fkey.clone(),
            store: (!control.no_store).then(|| (Arc::clone(&self.store), key, control.ttl)),
            memory: self.memory.clone(),
            max_entry_bytes: self.max_entry_bytes,
            next: next.to_owned(),
            cx: match &flight.relay {
                Some(relay) => cx.shared_by(Arc::clone(relay)),
                None => cx.detached(),
            },
            registered: self.single_flight,
        };
        // Not spawned: the callers drive it, whichever of them is waiting for an event.
        // In the caller's span, when there is one (a disabled span would cost a little on
        // every poll for nothing).
        let span = tracing::Span::current();
        let pump: Pump = if span.is_disabled() {
            Box::pin(run.go(request))
        } else {
            Box::pin(run.go(request).instrument(span))
        };
        *lock(&flight.pump) = Some(pump);
        waiter
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
                let mut flights = self.flights.shard(&fkey);
                match flights.get(&fkey).filter(|_| self.single_flight) {
                    Some(flight) => {
                        flight.waiters.fetch_add(1, Ordering::SeqCst);
                        Role::Join(Waiter::new(
                            Arc::clone(flight),
                            fkey.clone(),
                            Arc::clone(&self.flights),
                            cx,
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
                    let put = match &self.memory {
                        Some(memory) => {
                            memory.insert(&key, Arc::new(stored), control.ttl);
                            Ok(())
                        }
                        None => self.store.put(&key, stored, control.ttl).await,
                    };
                    match put {
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
    flights: Arc<Flights>,
    fkey: FlightKey,
    registered: bool,
    done: bool,
}

impl Lead {
    fn unregister(&self) {
        if self.registered {
            let mut flights = self.flights.shard(&self.fkey);
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
        // Out of the map, nobody can join any more: when nobody joined, nobody is told.
        if self.flight.waiters.load(Ordering::SeqCst) <= 1 {
            return;
        }
        let (response, end) = match result {
            Ok(reply) => (Some(Box::new(reply.clone())), Ok(())),
            Err(e) => (None, Err(e.clone())),
        };
        self.flight.update(|s| {
            s.response = response;
            s.end = Some(end);
        });
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
            Ok(hit) => hit.into_response(),
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
                let waiter = self.join(key, control, request, cx, next);
                waiter.stream().await
            }
        }
    }
}

/// At most this many events are taken from the upstream stream before its callers get
/// them (it rarely has more ready at once: about what one network read holds).
const BATCH: usize = 64;

/// The upstream work of a streamed flight: pumps the stream into the flight's state.
type Pump = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One upstream call shared by its callers.
struct Flight {
    state: Mutex<FlightState>,
    /// A stream's upstream work, polled by whichever caller needs the next event (`None`
    /// for a plain call, which its leader runs, and once the work is done).
    pump: Mutex<Option<Pump>>,
    /// The waker the upstream work is polled with: it wakes every caller waiting on the
    /// flight, so that the work goes on even if the caller that polled it last has stopped
    /// reading (and would not pass the wake-up on). Only a stream's flight has upstream
    /// work to poll, so only it has one.
    fan_out: Option<Waker>,
    waiters: AtomicUsize,
    /// The callers the upstream work reports its events for (a stream's only: a plain
    /// call's leader runs it in its own call).
    relay: Option<Arc<Relay>>,
}

/// Wakes every caller waiting on a flight.
struct FanOut(Weak<Flight>);

impl std::task::Wake for FanOut {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(flight) = self.0.upgrade() {
            flight.update(|s| s.upstream_wakes = s.upstream_wakes.wrapping_add(1));
        }
    }
}

/// A stream's events, by their index in the whole stream: `[base, fresh_at)` in `log` (or,
/// once sealed, `[0, fresh_at)` in `sealed`) and `[fresh_at, total)` in `fresh`.
#[derive(Default)]
struct FlightState {
    /// Copies of the events from `base` to `fresh_at`, compact: for the callers behind the
    /// most advanced one, for callers that join (all of them, until the flight is closed to
    /// new callers: past the size cap, or ended), and for the store. Empty once sealed.
    log: EventLog,
    /// The index of the log's first event in the whole stream.
    base: usize,
    /// The events no caller has read yet, as the upstream stream gave them: the first
    /// caller to read takes them (moved, not copied) and copies them into the log, unless
    /// nobody else can need them (it is the only caller left of a closed flight) or they
    /// are in the sealed reply already.
    fresh: VecDeque<StreamEvent>,
    /// The index of `fresh[0]` in the whole stream.
    fresh_at: usize,
    /// Each caller's next index (a handful of callers: a list beats a map).
    readers: Vec<(u64, usize)>,
    /// The callers waiting for a change, woken by the next one.
    wakers: Vec<(u64, Waker)>,
    /// How many times the upstream work asked to be polled again.
    upstream_wakes: u64,
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
    /// A plain call's reply, for the callers that joined it (boxed: most flights are
    /// streams, or have nobody to give it to).
    response: Option<Box<ChatResponse>>,
    /// A complete streamed reply on its way into the store, the finish included: the log
    /// moved into it rather than copied (the store keeps this `Arc`). Callers behind
    /// `fresh_at`, and those that join until the flight leaves the in-flight map, read here.
    sealed: Option<Arc<CachedReply>>,
}

impl Flight {
    /// A new plain call's flight with its first caller (its leader runs the call).
    fn new() -> Arc<Self> {
        Arc::new(Flight {
            state: Mutex::new(FlightState::default()),
            pump: Mutex::new(None),
            fan_out: None,
            waiters: AtomicUsize::new(1),
            relay: None,
        })
    }

    /// A new stream's flight with its first caller (its callers poll the upstream work).
    fn streamed() -> Arc<Self> {
        Arc::new_cyclic(|me| Flight {
            state: Mutex::new(FlightState::default()),
            pump: Mutex::new(None),
            fan_out: Some(Waker::from(Arc::new(FanOut(me.clone())))),
            waiters: AtomicUsize::new(1),
            relay: Some(Arc::default()),
        })
    }

    /// Changes the state and wakes the callers waiting for a change.
    fn update(&self, f: impl FnOnce(&mut FlightState)) {
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

impl FlightState {
    /// Whether no caller can join any more: past the size cap, or ended (an ended flight is
    /// out of the in-flight map).
    fn closed(&self) -> bool {
        self.overflowed || self.end.is_some()
    }

    /// How many events the stream has given so far.
    fn total(&self) -> usize {
        self.fresh_at + self.fresh.len()
    }

    /// Once no caller can join, drops the events every caller has read (until then a
    /// caller may still join and read from the start).
    fn trim(&mut self) {
        if !self.closed() {
            return;
        }
        let total = self.total();
        let min = self.readers.iter().map(|r| r.1).min().unwrap_or(total);
        if self.sealed.is_some() {
            if min >= total {
                // Every caller has read everything (and none can join). The log is empty
                // since the seal, and holds what comes next (nothing, in fact).
                self.sealed = None;
                self.base = self.fresh_at;
            }
            return;
        }
        if min > self.base {
            let n = (min - self.base).min(self.log.len());
            self.log.drop_front(n);
            self.base += n;
        }
    }

    /// What the stream has said so far, folded (before anything is let go of).
    fn accumulate(&self) -> StreamAccumulator {
        let mut acc = StreamAccumulator::new();
        for e in self.log.iter() {
            acc.push(&e);
        }
        for e in &self.fresh {
            acc.push(e);
        }
        acc
    }

    /// Moves the log of a complete streamed reply (`finish` is its last event) into the
    /// reply to store; from now on the events before `fresh_at` are read from it.
    fn seal(&mut self, finish: StreamEvent) -> Option<Arc<CachedReply>> {
        if self.base != 0 {
            // Never the case (nothing is let go of before the end unless the flight
            // overflowed, and an overflowed flight is not stored), but if it were, the
            // events would stay where their callers read them.
            return None;
        }
        // The events nobody has read yet go in as copies; they stay for the first reader.
        for e in &self.fresh {
            self.log.push(e);
        }
        let reply = Arc::new(self.log.take_reply(finish)?);
        self.base = reply.len();
        self.sealed = Some(Arc::clone(&reply));
        Some(reply)
    }

    /// What caller `id`, at position `read`, gets now: every event there is for it goes
    /// into `taken` (copies of what others read first, then what nobody has read yet) and
    /// the first is returned; or the end (`Some(None)`), an error, or `None` (nothing yet).
    fn read_into(
        &mut self,
        id: u64,
        read: &mut usize,
        taken: &mut VecDeque<StreamEvent>,
    ) -> Option<Option<Result<StreamEvent, LlmError>>> {
        let closed = self.closed();
        if closed && *read > self.base {
            // Positions count only from here (nobody can join and need the start):
            // let go of what every caller has read.
            self.set_reader(id, *read);
            self.trim();
        }
        // Behind the most advanced caller: copies, from the log or the sealed reply.
        if *read < self.fresh_at {
            let to = self.fresh_at;
            if *read >= self.base && to - self.base <= self.log.len() {
                taken.extend(self.log.copy_range(*read - self.base, to - self.base));
            } else if let Some(sealed) = self.sealed.as_ref().filter(|r| to <= r.len()) {
                taken.extend((*read..to).filter_map(|i| sealed.event(i)));
            } else {
                // Trimming never passes a caller's position; if it ever did, end this
                // caller's stream with an error rather than hand out a wrong event.
                return Some(Some(Err(abandoned())));
            }
            *read = to;
        }
        // Then what nobody has read yet: taken, and copied into the log for the others
        // unless none can need it.
        if !self.fresh.is_empty() {
            let alone = closed && self.readers.len() == 1;
            if self.sealed.is_none() {
                if alone {
                    self.log.drop_front(self.log.len());
                } else {
                    for e in &self.fresh {
                        self.log.push(e);
                    }
                }
            }
            self.fresh_at += self.fresh.len();
            if alone && self.sealed.is_none() {
                self.base = self.fresh_at;
            }
            *read = self.fresh_at;
            if taken.is_empty() {
                // Their whole queue, in exchange for this caller's empty one.
                std::mem::swap(taken, &mut self.fresh);
            } else {
                taken.extend(self.fresh.drain(..));
            }
        }
        if !taken.is_empty() {
            if closed {
                self.set_reader(id, *read);
                self.trim();
            }
            return Some(taken.pop_front().map(Ok));
        }
        match &self.end {
            Some(Ok(())) => Some(None),
            Some(Err(e)) => Some(Some(Err(e.clone()))),
            None => None,
        }
    }

    fn set_reader(&mut self, id: u64, at: usize) {
        match self.readers.iter_mut().find(|r| r.0 == id) {
            Some(r) => r.1 = at,
            None => self.readers.push((id, at)),
        }
    }

    fn remove_reader(&mut self, id: u64) {
        self.readers.retain(|r| r.0 != id);
        self.wakers.retain(|w| w.0 != id);
    }
}

/// Ids of the callers of flights.
static NEXT_READER: AtomicU64 = AtomicU64::new(0);

/// The upstream work of a streamed flight, polled by its callers.
struct Run {
    /// Weak: the flight owns this work (no cycle if it is never finished).
    flight: Weak<Flight>,
    flights: Arc<Flights>,
    fkey: FlightKey,
    store: Option<(Arc<dyn CacheStore>, CacheKey, Option<Duration>)>,
    /// The store when it is a [`MemoryStore`] (see [`CacheLayer`]'s field).
    memory: Option<MemoryStore>,
    next: OwnedNext,
    cx: CallContext,
    registered: bool,
    max_entry_bytes: usize,
}

impl Run {
    fn update(&self, f: impl FnOnce(&mut FlightState)) {
        if let Some(flight) = self.flight.upgrade() {
            flight.update(f);
        }
    }

    fn state<T>(&self, f: impl FnOnce(&mut FlightState) -> T) -> Option<T> {
        let flight = self.flight.upgrade()?;
        let mut state = lock(&flight.state);
        Some(f(&mut state))
    }

    async fn go(mut self, request: ChatRequest) {
        // The reply's last event (`Finish`) is held back until the reply is stored, so a
        // caller sees `CacheStored` before its call ends.
        let result = self.stream(request).await;
        if let Ok(Some(last)) = &result
            && let Some((store, key, ttl)) = &self.store
            && let Some(Some(reply)) = self.state(|s| {
                // `bytes` counts every event but the finish (what `approx_bytes` would add
                // up again).
                let fits = s.bytes + CachedReply::event_bytes(last) <= self.max_entry_bytes;
                if s.overflowed || !fits {
                    None
                } else {
                    s.seal(last.clone())
                }
            })
        {
            let put = match &self.memory {
                Some(memory) => {
                    memory.insert(key, reply, *ttl);
                    Ok(())
                }
                None => store.put_shared(key, reply, *ttl).await,
            };
            match put {
                Ok(()) => self.cx.emit(EventKind::CacheStored),
                Err(e) => store_failed(&self.cx, &e, "the reply was not stored"),
            }
        }
        // Stored first, then out of the in-flight map: a new caller finds one or the other.
        self.unregister();
        self.update(|s| match result {
            Ok(last) => {
                s.fresh.extend(last);
                s.end = Some(Ok(()));
            }
            Err(e) => s.end = Some(Err(e)),
        });
    }

    /// Takes the flight out of the in-flight map (if it is still there).
    fn unregister(&self) {
        if self.registered {
            let mut flights = self.flights.shard(&self.fkey);
            if flights
                .get(&self.fkey)
                .is_some_and(|f| self.flight.as_ptr() == Arc::as_ptr(f))
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
                self.update(|s| s.failed_early = true);
                return Err(e);
            }
        };
        // What the stream has said so far, for the error if it ends without a finish: read
        // from the flight's events, which are all kept until the end unless it overflows;
        // from then on (they go once read) it is kept here.
        let mut acc: Option<StreamAccumulator> = None;
        let cap = self.max_entry_bytes;
        let mut batch: Vec<StreamEvent> = Vec::new();
        loop {
            // Every event the upstream has ready (up to `BATCH`), handed to the callers in
            // one update: one lock and one wake-up for a network read's worth of events.
            // `ended` is what stopped the batch: the finish, an error or the end.
            let mut ended: Option<Option<Result<StreamEvent, LlmError>>> = None;
            std::future::poll_fn(|cx| {
                loop {
                    match upstream.as_mut().poll_next(cx) {
                        Poll::Ready(Some(Ok(event)))
                            if !matches!(event, StreamEvent::Finish { .. }) =>
                        {
                            batch.push(event);
                            if batch.len() >= BATCH {
                                return Poll::Ready(());
                            }
                        }
                        Poll::Ready(end) => {
                            ended = Some(end);
                            return Poll::Ready(());
                        }
                        Poll::Pending if batch.is_empty() => return Poll::Pending,
                        Poll::Pending => return Poll::Ready(()),
                    }
                }
            })
            .await;
            if !batch.is_empty() {
                let mut overflowed_now = false;
                self.update(|s| {
                    for event in batch.drain(..) {
                        if let Some(acc) = acc.as_mut() {
                            acc.push(&event);
                        }
                        s.bytes += CachedReply::event_bytes(&event);
                        s.fresh.push_back(event);
                        if !s.overflowed && s.bytes > cap {
                            s.overflowed = true;
                            overflowed_now = true;
                            acc = Some(s.accumulate());
                        }
                    }
                    s.trim();
                });
                // (Only left when the flight is gone, and no caller reads them then.)
                batch.clear();
                if overflowed_now {
                    // Too long to keep: no one else joins it, it will not be stored, and
                    // its events go once every caller has read them.
                    self.unregister();
                    self.state(FlightState::trim);
                }
            }
            match ended {
                None => {}
                Some(Some(Ok(finish))) => return Ok(Some(finish)),
                Some(Some(Err(e))) => return Err(e),
                Some(None) => break,
            }
        }
        let said = match acc {
            Some(acc) => acc,
            None => self.state(|s| s.accumulate()).unwrap_or_default(),
        };
        Err(LlmError::stream_interrupted(
            "the stream ended without a finish event",
            said.partial(),
        ))
    }
}

/// One caller of a flight. When the last one goes away before the end, the upstream call
/// is abandoned.
struct Waiter {
    flight: Arc<Flight>,
    fkey: FlightKey,
    flights: Arc<Flights>,
    /// How many events this caller has been given.
    read: usize,
    id: u64,
}

impl Waiter {
    /// A new caller of `flight`, whose call `cx` is; the upstream work reports for it
    /// while it is the earliest caller still there.
    fn new(flight: Arc<Flight>, fkey: FlightKey, flights: Arc<Flights>, cx: &CallContext) -> Self {
        let id = NEXT_READER.fetch_add(1, Ordering::Relaxed);
        if let Some(relay) = &flight.relay {
            relay.join(id, cx);
        }
        lock(&flight.state).readers.push((id, 0));
        Waiter {
            flight,
            fkey,
            flights,
            read: 0,
            id,
        }
    }

    /// Ready with what `check` finds in the flight's state; until then, drives the
    /// upstream work (unless another caller is doing so this instant) and waits for a
    /// change.
    fn poll_with<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut check: impl FnMut(&mut FlightState, &mut usize) -> Option<T>,
    ) -> Poll<T> {
        let id = self.id;
        let seen = {
            let mut state = lock(&self.flight.state);
            if !state.wakers.is_empty() {
                state.wakers.retain(|w| w.0 != id);
            }
            if let Some(found) = check(&mut state, &mut self.read) {
                return Poll::Ready(found);
            }
            state.upstream_wakes
        };
        let mut pump = match self.flight.pump.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            // Another caller is driving it: it wakes us when something changes.
            Err(TryLockError::WouldBlock) => None,
        };
        // Polled with the flight's waker, not this caller's: when the upstream stream has
        // more, every waiting caller is woken and whichever runs first drives it (the caller
        // that polled it last may have stopped reading).
        if let Some(guard) = pump.as_mut()
            && let Some(work) = guard.as_mut()
            && let Some(fan_out) = &self.flight.fan_out
            && work
                .as_mut()
                .poll(&mut Context::from_waker(fan_out))
                .is_ready()
        {
            **guard = None;
        }
        // Checked again under the state's lock, so no change can slip between the check
        // and the registration.
        let mut state = lock(&self.flight.state);
        if let Some(found) = check(&mut state, &mut self.read) {
            return Poll::Ready(found);
        }
        if state.upstream_wakes != seen {
            // The upstream asked to be polled again before this caller was listening (or
            // yielded, as tokio's budget makes it do): come back soon rather than wait.
            drop(state);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        state.wakers.push((id, cx.waker().clone()));
        Poll::Pending
    }

    /// Waits for the end and returns the whole reply; `None` when the leader of a plain call
    /// went away first (the caller then takes over).
    async fn response(mut self) -> Option<Result<ChatResponse, LlmError>> {
        std::future::poll_fn(|cx| {
            self.poll_with(cx, |state, _| match &state.end {
                Some(Ok(())) => Some(Some(
                    state.response.as_deref().cloned().ok_or_else(abandoned),
                )),
                Some(Err(e)) => Some(Some(Err(e.clone()))),
                None if state.abandoned => Some(None),
                None => None,
            })
        })
        .await
    }

    /// Waits for the first event (or an early failure) and returns the stream.
    async fn stream(mut self) -> Result<ChatStream, LlmError> {
        std::future::poll_fn(|cx| {
            self.poll_with(cx, |state, _| {
                if state.total() > 0 || state.sealed.is_some() {
                    return Some(Ok(()));
                }
                match &state.end {
                    Some(Err(e)) if state.failed_early => Some(Err(e.clone())),
                    Some(_) => Some(Ok(())),
                    None => None,
                }
            })
        })
        .await?;
        Ok(Box::pin(Reader {
            waiter: Some(self),
            taken: VecDeque::new(),
        }))
    }
}

/// A caller's stream over a flight.
struct Reader {
    /// `None` once the stream ended.
    waiter: Option<Waiter>,
    /// Events taken from the flight in one go (every event there was to read), handed out
    /// one per poll.
    taken: VecDeque<StreamEvent>,
}

impl Stream for Reader {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(event) = this.taken.pop_front() {
            return Poll::Ready(Some(Ok(event)));
        }
        let Some(waiter) = this.waiter.as_mut() else {
            return Poll::Ready(None);
        };
        let id = waiter.id;
        let taken = &mut this.taken;
        let item = match waiter.poll_with(cx, |state, read| state.read_into(id, read, taken)) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        if !matches!(item, Some(Ok(_))) {
            // Ended: nothing follows, and the flight can go.
            this.waiter = None;
        }
        Poll::Ready(item)
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
        // First: from now on the upstream work reports nothing for this caller, whose
        // terminal event may come right after.
        if let Some(relay) = &self.flight.relay {
            relay.leave(self.id);
        }
        let wakers = {
            let mut state = lock(&self.flight.state);
            state.remove_reader(self.id);
            state.trim();
            std::mem::take(&mut state.wakers)
        };
        // This caller may have been the one driving the upstream work: another takes over.
        for (_, w) in wakers {
            w.wake();
        }
        if self.flight.waiters.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        // The last caller left: abandon the call unless it ended or someone joined since.
        let mut flights = self.flights.shard(&self.fkey);
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
        // Dropped outside the lock: the upstream stream goes with it.
        let work = lock(&self.flight.pump).take();
        drop(work);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use std::task::Waker;

    use nova_llm_core::{FinishReason, StreamEvent};

    use super::FlightState;

    fn word(i: usize) -> StreamEvent {
        StreamEvent::text(format!("w{i} "))
    }

    /// A flight whose first `read_by_someone` events were taken (and copied into the log)
    /// and whose next ones up to `total` nobody has read yet.
    fn flight(read_by_someone: usize, total: usize, readers: &[(u64, usize)]) -> FlightState {
        let mut s = FlightState::default();
        for i in 0..read_by_someone {
            s.log.push(&word(i));
        }
        s.fresh_at = read_by_someone;
        s.fresh = (read_by_someone..total).map(word).collect();
        s.readers = readers.to_vec();
        s
    }

    /// Everything caller `id` at `read` gets in one read.
    fn read_all(s: &mut FlightState, id: u64, read: &mut usize) -> Vec<StreamEvent> {
        let mut taken = VecDeque::new();
        let mut got = Vec::new();
        if let Some(Some(Ok(first))) = s.read_into(id, read, &mut taken) {
            got.push(first);
        }
        got.extend(taken);
        got
    }

    #[test]
    fn a_caller_behind_gets_copies_then_takes_what_nobody_has_read() {
        let mut s = flight(5, 8, &[(1, 0), (2, 0)]);
        // Caller 1 is at 2: copies of 2..5, then the originals of 5..8, in order.
        let mut read = 2;
        assert_eq!(
            read_all(&mut s, 1, &mut read),
            (2..8).map(word).collect::<Vec<_>>()
        );
        assert_eq!(read, 8);
        assert!(s.fresh.is_empty());
        assert_eq!(s.fresh_at, 8);
        // Copied for the others: caller 2, at 5, reads them from the log.
        assert_eq!(s.log.len(), 8);
        let mut read = 5;
        assert_eq!(
            read_all(&mut s, 2, &mut read),
            (5..8).map(word).collect::<Vec<_>>()
        );
        // Nothing more until the flight moves on.
        assert!(s.read_into(2, &mut read, &mut VecDeque::new()).is_none());
    }

    #[test]
    fn the_last_caller_of_a_closed_flight_takes_without_copying() {
        let mut s = flight(5, 8, &[(1, 5)]);
        s.overflowed = true;
        let mut read = 5;
        assert_eq!(
            read_all(&mut s, 1, &mut read),
            (5..8).map(word).collect::<Vec<_>>()
        );
        assert_eq!(s.log.len(), 0, "nobody else can need them");
        assert_eq!((s.base, s.fresh_at), (8, 8));
        // With a second caller still there, they are copied for it.
        let mut s = flight(5, 8, &[(1, 5), (2, 3)]);
        s.overflowed = true;
        let mut read = 5;
        read_all(&mut s, 1, &mut read);
        let mut read = 3;
        assert_eq!(
            read_all(&mut s, 2, &mut read),
            (3..8).map(word).collect::<Vec<_>>()
        );
    }

    #[test]
    fn once_closed_the_log_lets_go_of_what_every_caller_has_read() {
        let mut s = flight(8, 8, &[(1, 0), (2, 0)]);
        s.overflowed = true;
        let mut read = 6;
        assert_eq!(
            read_all(&mut s, 1, &mut read),
            (6..8).map(word).collect::<Vec<_>>()
        );
        s.set_reader(2, 3);
        s.trim();
        assert_eq!((s.base, s.log.len()), (3, 5));
        let mut read = 3;
        assert_eq!(
            read_all(&mut s, 2, &mut read),
            (3..8).map(word).collect::<Vec<_>>()
        );
        // A position the log let go of is an error, never a wrong event.
        let mut read = 1;
        assert!(matches!(
            s.read_into(3, &mut read, &mut VecDeque::new()),
            Some(Some(Err(_)))
        ));
    }

    #[test]
    fn once_closed_a_read_that_finds_nothing_new_still_lets_go_of_what_was_read() {
        // Both callers read everything while the flight was open to new callers, so the
        // log kept it all (one may join and read from the start).
        let mut s = flight(8, 8, &[(1, 0), (2, 0)]);
        let (mut r1, mut r2) = (0, 0);
        assert_eq!(read_all(&mut s, 1, &mut r1).len(), 8);
        assert_eq!(read_all(&mut s, 2, &mut r2).len(), 8);
        assert_eq!((s.base, s.log.len()), (0, 8));
        // Closed (past the size cap). Nothing new comes, but each caller's next read says
        // where it is, and once both have, the log lets go of everything.
        s.overflowed = true;
        assert!(s.read_into(1, &mut r1, &mut VecDeque::new()).is_none());
        assert_eq!((s.base, s.log.len()), (0, 8), "caller 2 has not read since");
        assert!(s.read_into(2, &mut r2, &mut VecDeque::new()).is_none());
        assert_eq!((s.base, s.log.len()), (8, 0));
    }

    #[test]
    fn a_caller_that_leaves_lets_go_of_what_only_it_still_needed() {
        let mut s = flight(8, 8, &[(1, 8), (2, 2), (3, 5)]);
        s.overflowed = true;
        s.wakers = vec![(2, Waker::noop().clone()), (3, Waker::noop().clone())];
        s.trim();
        assert_eq!((s.base, s.log.len()), (2, 6), "caller 2 still needs 2..8");
        // Caller 2 leaves: its waker goes with it, and the log keeps only what 3 needs.
        s.remove_reader(2);
        assert_eq!(s.readers, [(1, 8), (3, 5)]);
        assert_eq!(s.wakers.iter().map(|w| w.0).collect::<Vec<_>>(), [3]);
        s.trim();
        assert_eq!((s.base, s.log.len()), (5, 3));
        // Once the flight is open to new callers, nothing is let go of: one may join and
        // read from the start.
        let mut s = flight(8, 8, &[(1, 8)]);
        s.trim();
        assert_eq!((s.base, s.log.len()), (0, 8));
        // Closed with every caller gone, everything goes.
        s.end = Some(Ok(()));
        s.remove_reader(1);
        s.trim();
        assert_eq!((s.base, s.log.len()), (8, 0));
    }

    #[test]
    fn a_sealed_flight_serves_the_callers_behind_from_the_reply() {
        // 4 events read by someone, 2 by nobody, then the finish: the reply holds all 7.
        let mut s = flight(4, 6, &[(1, 4), (2, 0)]);
        let finish = StreamEvent::finish(FinishReason::Stop);
        let reply = s.seal(finish.clone()).unwrap();
        let mut all: Vec<StreamEvent> = (0..6).map(word).collect();
        all.push(finish.clone());
        assert_eq!(reply.events(), all);
        assert_eq!(s.log.len(), 0, "moved into the reply");
        // The unread ones are still there for the first reader, taken without a copy.
        let mut read = 4;
        assert_eq!(read_all(&mut s, 1, &mut read), all[4..6]);
        assert_eq!(s.log.len(), 0);
        // The finish comes once the reply is stored; the caller behind reads it all.
        s.fresh.push_back(finish);
        s.end = Some(Ok(()));
        let mut read = 0;
        assert_eq!(read_all(&mut s, 2, &mut read), all);
        assert!(matches!(
            s.read_into(2, &mut read, &mut VecDeque::new()),
            Some(None)
        ));
        // The first one takes the finish from the queue, then ends too.
        let mut read = 6;
        assert_eq!(read_all(&mut s, 1, &mut read), all[6..]);
        assert!(matches!(
            s.read_into(1, &mut read, &mut VecDeque::new()),
            Some(None)
        ));
    }
}
