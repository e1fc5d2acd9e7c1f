//! What a shared stream holds between its upstream work and its callers, and how a caller
//! reads from it.
//!
//! Events are counted by their index in the whole stream:
//! - `[base, fresh_at)` are copies in `log` (or, once sealed, `[0, fresh_at)` in
//!   `sealed`), for the callers behind the most advanced one, for callers that join, and
//!   for the store;
//! - `[fresh_at, total)` are in `fresh` as the upstream gave them: nobody has read them
//!   yet, and the first caller to read takes them (moved, not copied), leaving copies in
//!   the log for the others.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;

use nova_llm_core::{ErrorKind, LlmError, StreamAccumulator, StreamEvent};

use crate::cache::compact::EventLog;
use crate::cache::reply::CachedReply;

/// How a shared stream ended.
pub(super) enum End {
    /// With its finish, which is in `fresh` (or already read).
    Finished,
    /// With an error every caller gets.
    Failed(LlmError),
}

/// What a caller reads from the stream.
pub(super) enum Read {
    /// The first of the events it took (the others are in its queue).
    Event(StreamEvent),
    /// The end of a complete stream.
    End,
    /// The error that ended the stream.
    Failed(LlmError),
}

#[derive(Default)]
pub(super) struct State {
    /// Copies of the events from `base` to `fresh_at`, compact. Empty once sealed.
    pub(super) log: EventLog,
    /// The index of the log's first event in the whole stream.
    pub(super) base: usize,
    /// The events no caller has read yet, as the upstream gave them.
    pub(super) fresh: VecDeque<StreamEvent>,
    /// The index of `fresh[0]` in the whole stream.
    pub(super) fresh_at: usize,
    /// Each caller's next index (a handful of callers: a list beats a map).
    pub(super) readers: Vec<(u64, usize)>,
    /// The callers waiting for a change, woken by the next one.
    pub(super) wakers: Vec<(u64, Waker)>,
    /// How many times the upstream work asked to be polled again.
    pub(super) upstream_wakes: u64,
    /// Approximate bytes pumped so far ([`CachedReply::event_bytes`]).
    pub(super) bytes: usize,
    /// Past the size cap: no longer joinable, not stored, events let go of once every
    /// caller has read them.
    pub(super) overflowed: bool,
    /// Set once, when the stream ends.
    pub(super) end: Option<End>,
    /// The upstream call failed before any output (callers get the error from
    /// `chat_stream` itself, as the stream contract says).
    pub(super) failed_early: bool,
    /// A complete reply on its way into the store, its finish included: the log moved into
    /// it rather than copied. Callers behind `fresh_at`, and those that join until the
    /// stream leaves the map of calls in flight, read here.
    pub(super) sealed: Option<Arc<CachedReply>>,
}

impl State {
    /// Whether no caller can join any more: past the size cap, or ended (an ended stream
    /// is out of the map of calls in flight).
    pub(super) fn closed(&self) -> bool {
        self.overflowed || self.end.is_some()
    }

    /// How many events the stream has given so far.
    pub(super) fn total(&self) -> usize {
        self.fresh_at + self.fresh.len()
    }

    /// Once no caller can join, lets go of the events every caller has read (until then a
    /// caller may still join and read from the start).
    pub(super) fn trim(&mut self) {
        if !self.closed() {
            return;
        }
        let total = self.total();
        let min = self.readers.iter().map(|r| r.1).min().unwrap_or(total);
        if self.sealed.is_some() {
            if min >= total {
                // Every caller has read everything, and none can join.
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

    /// What the stream has said so far, folded (while nothing was let go of).
    pub(super) fn accumulate(&self) -> StreamAccumulator {
        let mut acc = StreamAccumulator::new();
        for e in self.log.iter() {
            acc.push(&e);
        }
        for e in &self.fresh {
            acc.push(e);
        }
        acc
    }

    /// Moves the log of a complete stream (`finish` is its last event) into the reply to
    /// store; from now on the events before `fresh_at` are read from it. `None` if the log
    /// let go of events (only a stream past the size cap does, and it is not stored).
    pub(super) fn seal(&mut self, finish: StreamEvent) -> Option<Arc<CachedReply>> {
        if self.base != 0 {
            return None;
        }
        // The events nobody has read yet go in as copies; they stay for the first reader.
        for e in &self.fresh {
            self.log.push(e);
        }
        let reply = Arc::new(CachedReply::from_compact(self.log.take_whole(finish)?));
        self.base = reply.len();
        self.sealed = Some(Arc::clone(&reply));
        Some(reply)
    }

    /// What caller `id`, at position `read`, gets now: every event there is for it goes
    /// into `taken` (copies of what others read first, then what nobody has read yet) and
    /// the first is returned; or the end, or the error; `None` when there is nothing yet.
    pub(super) fn read_into(
        &mut self,
        id: u64,
        read: &mut usize,
        taken: &mut VecDeque<StreamEvent>,
    ) -> Option<Read> {
        let closed = self.closed();
        if closed && *read > self.base {
            // Positions count only from here (nobody can join and need the start): let go
            // of what every caller has read.
            self.set_reader(id, *read);
            self.trim();
        }
        if *read < self.fresh_at && !self.copy_behind(read, taken) {
            // Trimming never passes a caller's position; if it ever did, end this caller's
            // stream with an error rather than hand out a wrong event.
            return Some(Read::Failed(lost()));
        }
        self.take_fresh(closed, read, taken);
        if let Some(first) = taken.pop_front() {
            if closed {
                self.set_reader(id, *read);
                self.trim();
            }
            return Some(Read::Event(first));
        }
        match &self.end {
            Some(End::Finished) => Some(Read::End),
            Some(End::Failed(e)) => Some(Read::Failed(e.clone())),
            None => None,
        }
    }

    /// Copies for a caller behind the most advanced one, from the log or the sealed
    /// reply, up to `fresh_at`; `false` if they are gone.
    fn copy_behind(&self, read: &mut usize, taken: &mut VecDeque<StreamEvent>) -> bool {
        let to = self.fresh_at;
        if *read >= self.base && to - self.base <= self.log.len() {
            taken.extend(self.log.copy_range(*read - self.base, to - self.base));
        } else if let Some(sealed) = self.sealed.as_ref().filter(|r| to <= r.len()) {
            taken.extend((*read..to).filter_map(|i| sealed.event(i)));
        } else {
            return false;
        }
        *read = to;
        true
    }

    /// What nobody has read yet: taken by this caller, and copied into the log for the
    /// others unless none can need it (the last caller of a closed stream), or it is in the
    /// sealed reply already.
    fn take_fresh(&mut self, closed: bool, read: &mut usize, taken: &mut VecDeque<StreamEvent>) {
        if self.fresh.is_empty() {
            return;
        }
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

    pub(super) fn set_reader(&mut self, id: u64, at: usize) {
        match self.readers.iter_mut().find(|r| r.0 == id) {
            Some(r) => r.1 = at,
            None => self.readers.push((id, at)),
        }
    }

    pub(super) fn remove_reader(&mut self, id: u64) {
        self.readers.retain(|r| r.0 != id);
        self.wakers.retain(|w| w.0 != id);
    }
}

/// The error of a caller whose events are gone (never expected).
pub(super) fn lost() -> LlmError {
    LlmError::new(
        ErrorKind::Other,
        "the shared upstream call ended without a result",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::task::Waker;

    use nova_llm_core::{FinishReason, StreamEvent};

    use super::{End, Read, State};

    fn word(i: usize) -> StreamEvent {
        StreamEvent::text(format!("w{i} "))
    }

    /// A stream whose first `read_by_someone` events were taken (and copied into the log)
    /// and whose next ones up to `total` nobody has read yet.
    fn stream(read_by_someone: usize, total: usize, readers: &[(u64, usize)]) -> State {
        let mut s = State::default();
        for i in 0..read_by_someone {
            s.log.push(&word(i));
        }
        s.fresh_at = read_by_someone;
        s.fresh = (read_by_someone..total).map(word).collect();
        s.readers = readers.to_vec();
        s
    }

    /// Everything caller `id` at `read` gets in one read.
    fn read_all(s: &mut State, id: u64, read: &mut usize) -> Vec<StreamEvent> {
        let mut taken = VecDeque::new();
        let mut got = Vec::new();
        if let Some(Read::Event(first)) = s.read_into(id, read, &mut taken) {
            got.push(first);
        }
        got.extend(taken);
        got
    }

    fn read_nothing(s: &mut State, id: u64, read: &mut usize) -> Option<Read> {
        s.read_into(id, read, &mut VecDeque::new())
    }

    #[test]
    fn a_caller_behind_gets_copies_then_takes_what_nobody_has_read() {
        let mut s = stream(5, 8, &[(1, 0), (2, 0)]);
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
        // Nothing more until the stream moves on.
        assert!(read_nothing(&mut s, 2, &mut read).is_none());
    }

    #[test]
    fn the_last_caller_of_a_closed_stream_takes_without_copying() {
        let mut s = stream(5, 8, &[(1, 5)]);
        s.overflowed = true;
        let mut read = 5;
        assert_eq!(
            read_all(&mut s, 1, &mut read),
            (5..8).map(word).collect::<Vec<_>>()
        );
        assert_eq!(s.log.len(), 0, "nobody else can need them");
        assert_eq!((s.base, s.fresh_at), (8, 8));
        // With a second caller still there, they are copied for it.
        let mut s = stream(5, 8, &[(1, 5), (2, 3)]);
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
        let mut s = stream(8, 8, &[(1, 0), (2, 0)]);
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
            read_nothing(&mut s, 3, &mut read),
            Some(Read::Failed(_))
        ));
    }

    #[test]
    fn once_closed_a_read_that_finds_nothing_new_still_lets_go_of_what_was_read() {
        // Both callers read everything while the stream was open to new callers, so the
        // log kept it all (one may join and read from the start).
        let mut s = stream(8, 8, &[(1, 0), (2, 0)]);
        let (mut r1, mut r2) = (0, 0);
        assert_eq!(read_all(&mut s, 1, &mut r1).len(), 8);
        assert_eq!(read_all(&mut s, 2, &mut r2).len(), 8);
        assert_eq!((s.base, s.log.len()), (0, 8));
        // Closed (past the size cap). Nothing new comes, but each caller's next read says
        // where it is, and once both have, the log lets go of everything.
        s.overflowed = true;
        assert!(read_nothing(&mut s, 1, &mut r1).is_none());
        assert_eq!((s.base, s.log.len()), (0, 8), "caller 2 has not read since");
        assert!(read_nothing(&mut s, 2, &mut r2).is_none());
        assert_eq!((s.base, s.log.len()), (8, 0));
    }

    #[test]
    fn a_caller_that_leaves_lets_go_of_what_only_it_still_needed() {
        let mut s = stream(8, 8, &[(1, 8), (2, 2), (3, 5)]);
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
        // Open to new callers, nothing is let go of: one may join and read from the start.
        let mut s = stream(8, 8, &[(1, 8)]);
        s.trim();
        assert_eq!((s.base, s.log.len()), (0, 8));
        // Closed with every caller gone, everything goes.
        s.end = Some(End::Finished);
        s.remove_reader(1);
        s.trim();
        assert_eq!((s.base, s.log.len()), (8, 0));
    }

    #[test]
    fn a_sealed_stream_serves_the_callers_behind_from_the_reply() {
        // 4 events read by someone, 2 by nobody, then the finish: the reply holds all 7.
        let mut s = stream(4, 6, &[(1, 4), (2, 0)]);
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
        s.end = Some(End::Finished);
        let mut read = 0;
        assert_eq!(read_all(&mut s, 2, &mut read), all);
        assert!(matches!(
            read_nothing(&mut s, 2, &mut read),
            Some(Read::End)
        ));
        // The first one takes the finish from the queue, then ends too.
        let mut read = 6;
        assert_eq!(read_all(&mut s, 1, &mut read), all[6..]);
        assert!(matches!(
            read_nothing(&mut s, 1, &mut read),
            Some(Read::End)
        ));
    }
}
