//! Stream events held compactly: the text of every text and reasoning delta in one buffer
//! and a small slot per event, so that keeping a stream of thousands of small deltas costs
//! a few allocations, not one per delta. A stored stream ([`CachedReply`]) and the log of a
//! stream in flight ([`EventLog`]) both hold their events this way.
//!
//! [`CachedReply`]: super::CachedReply

use nova_llm_core::{ChatResponse, LlmError, StreamAccumulator, StreamEvent};

/// Roughly how many bytes one event holds, as caches weigh entries: its text (or a
/// tool-call fragment's name and arguments) and a fixed cost beside it.
pub(super) fn event_bytes(event: &StreamEvent) -> usize {
    match event {
        StreamEvent::TextDelta { text } | StreamEvent::ReasoningDelta { text } => {
            text.len() + TEXT_BYTES
        }
        StreamEvent::ReasoningSignature {
            signature: opaque, ..
        }
        | StreamEvent::ReasoningRedacted { data: opaque, .. } => opaque.len() + TEXT_BYTES,
        StreamEvent::ToolCallDelta(d) => {
            d.arguments.len() + d.name.as_ref().map_or(0, String::len) + TOOL_BYTES
        }
        _ => OTHER_BYTES,
    }
}

/// What [`event_bytes`] counts for a text or reasoning delta beyond its text, for a
/// tool-call fragment beyond its name and arguments, and for any other event.
pub(super) const TEXT_BYTES: usize = 32;
pub(super) const TOOL_BYTES: usize = 64;
pub(super) const OTHER_BYTES: usize = 96;

/// Events in order, held compactly.
#[derive(Debug, Clone, Default)]
pub(super) struct Events {
    /// The text of the text and reasoning deltas, one after the other.
    text: String,
    /// Each event, in order.
    slots: Vec<Slot>,
    /// The events other than text and reasoning deltas (start, tool-call fragments, usage,
    /// finish: a handful per reply).
    others: Vec<StreamEvent>,
}

/// One event of [`Events`]: 16 bytes beside its text, where a [`StreamEvent`] is more than
/// three times that and, for a text delta, an allocation of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// A text delta: its byte range in `text`.
    Text(u32, u32),
    /// A reasoning delta: its byte range in `text`.
    Reasoning(u32, u32),
    /// Another event: its index in `others`.
    Other(usize),
}

impl Events {
    /// `events`, taken.
    pub(super) fn from_vec(events: Vec<StreamEvent>) -> Self {
        let mut held = Events {
            slots: Vec::with_capacity(events.len()),
            ..Events::default()
        };
        for e in events {
            held.push_owned(e);
        }
        held
    }

    /// How many events are held.
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// A copy of the event at `index`.
    pub(super) fn get(&self, index: usize) -> Option<StreamEvent> {
        self.slots.get(index).map(|s| self.materialize(*s))
    }

    /// Copies of the events from `from` to `to`.
    pub(super) fn copy_range(&self, from: usize, to: usize) -> impl Iterator<Item = StreamEvent> {
        let slots = self.slots.get(from..to).unwrap_or_default();
        slots.iter().map(|s| self.materialize(*s))
    }

    /// Copies of every event.
    pub(super) fn iter(&self) -> impl Iterator<Item = StreamEvent> {
        self.copy_range(0, self.len())
    }

    /// The sum of [`event_bytes`] over the events.
    pub(super) fn approx_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| match *s {
                Slot::Text(a, b) | Slot::Reasoning(a, b) => {
                    b.saturating_sub(a) as usize + TEXT_BYTES
                }
                Slot::Other(i) => self.others.get(i).map_or(0, event_bytes),
            })
            .sum()
    }

    /// The reply as a plain call returns it: the events accumulated.
    pub(super) fn to_response(&self) -> Result<ChatResponse, LlmError> {
        let mut acc = StreamAccumulator::new();
        let mut i = 0;
        while let Some(slot) = self.slots.get(i) {
            // A run of deltas of one kind is contiguous in `text`: one copy for the run
            // (accumulating "a" then "b" is accumulating "ab").
            let mut end = i + 1;
            match *slot {
                Slot::Text(start, mut stop) | Slot::Reasoning(start, mut stop) => {
                    let reasoning = matches!(slot, Slot::Reasoning(..));
                    while let Some(next) = self.slots.get(end) {
                        match (*next, reasoning) {
                            (Slot::Text(_, e), false) | (Slot::Reasoning(_, e), true) => {
                                stop = e;
                                end += 1;
                            }
                            _ => break,
                        }
                    }
                    let text = self.slice(start, stop);
                    acc.push(&if reasoning {
                        StreamEvent::reasoning(text)
                    } else {
                        StreamEvent::text(text)
                    });
                }
                Slot::Other(i) => {
                    if let Some(event) = self.others.get(i) {
                        acc.push(event);
                    }
                }
            }
            i = end;
        }
        acc.finish()
    }

    /// Appends a copy of `event`.
    pub(super) fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.push_text(text, false),
            StreamEvent::ReasoningDelta { text } => self.push_text(text, true),
            other => self.push_other(other.clone()),
        }
    }

    /// Appends `event`.
    pub(super) fn push_owned(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => self.push_text(&text, false),
            StreamEvent::ReasoningDelta { text } => self.push_text(&text, true),
            other => self.push_other(other),
        }
    }

    fn push_text(&mut self, text: &str, reasoning: bool) {
        let start = self.text.len();
        self.text.push_str(text);
        match (u32::try_from(start), u32::try_from(self.text.len())) {
            (Ok(a), Ok(b)) if reasoning => self.slots.push(Slot::Reasoning(a, b)),
            (Ok(a), Ok(b)) => self.slots.push(Slot::Text(a, b)),
            // Past 4 GiB of text (far beyond any entry a cache keeps): held as an event.
            _ => {
                let text = self.text.split_off(start);
                self.push_other(if reasoning {
                    StreamEvent::reasoning(text)
                } else {
                    StreamEvent::text(text)
                });
            }
        }
    }

    fn push_other(&mut self, event: StreamEvent) {
        self.slots.push(Slot::Other(self.others.len()));
        self.others.push(event);
    }

    fn slice(&self, start: u32, end: u32) -> &str {
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }

    fn materialize(&self, slot: Slot) -> StreamEvent {
        match slot {
            Slot::Text(a, b) => StreamEvent::text(self.slice(a, b)),
            Slot::Reasoning(a, b) => StreamEvent::reasoning(self.slice(a, b)),
            Slot::Other(i) => self
                .others
                .get(i)
                .cloned()
                .unwrap_or_else(|| StreamEvent::text(String::new())),
        }
    }

    /// Lets go of the first `n` events for good, giving their space back.
    fn drain_front(&mut self, n: usize) {
        let kept = self.slots.split_off(n.min(self.slots.len()));
        // Appended in order: the first kept delta starts the text still needed, and the
        // first kept other event the others.
        let text_from = kept.iter().find_map(|s| match *s {
            Slot::Text(a, _) | Slot::Reasoning(a, _) => Some(a),
            Slot::Other(_) => None,
        });
        let others_from = kept.iter().find_map(|s| match *s {
            Slot::Other(i) => Some(i),
            _ => None,
        });
        let text_from = text_from.unwrap_or(u32::try_from(self.text.len()).unwrap_or(u32::MAX));
        let others_from = others_from.unwrap_or(self.others.len());
        self.text.drain(..(text_from as usize).min(self.text.len()));
        self.others.drain(..others_from.min(self.others.len()));
        self.slots = kept
            .into_iter()
            .map(|s| match s {
                // Never below: appended in order (saturating all the same).
                Slot::Text(a, b) => {
                    Slot::Text(a.saturating_sub(text_from), b.saturating_sub(text_from))
                }
                Slot::Reasoning(a, b) => {
                    Slot::Reasoning(a.saturating_sub(text_from), b.saturating_sub(text_from))
                }
                Slot::Other(i) => Slot::Other(i.saturating_sub(others_from)),
            })
            .collect();
    }

    fn clear(&mut self) {
        self.text.clear();
        self.slots.clear();
        self.others.clear();
    }
}

/// The events of a stream in flight, kept for the callers behind and for the store, and
/// able to let go of its oldest events once no caller needs them.
#[derive(Debug, Default)]
pub(super) struct EventLog {
    events: Events,
    /// How many events at the front are let go of (their space is reclaimed in bulk).
    first: usize,
    /// Whether any event was let go of (then it is no longer a whole reply).
    trimmed: bool,
}

impl EventLog {
    pub(super) fn len(&self) -> usize {
        self.events.len() - self.first
    }

    pub(super) fn push(&mut self, event: &StreamEvent) {
        self.events.push(event);
    }

    /// Copies of the events from `from` to `to` (indices into this log).
    pub(super) fn copy_range(&self, from: usize, to: usize) -> impl Iterator<Item = StreamEvent> {
        self.events.copy_range(self.first + from, self.first + to)
    }

    /// Copies of every event held.
    pub(super) fn iter(&self) -> impl Iterator<Item = StreamEvent> {
        self.copy_range(0, self.len())
    }

    /// Lets go of the first `n` events. Their space is given back in bulk, once they are at
    /// least half of what is held and at least 64 events (at once when nothing is left).
    pub(super) fn drop_front(&mut self, n: usize) {
        self.trimmed |= n > 0;
        self.first = (self.first + n).min(self.events.len());
        if self.first == self.events.len() {
            self.events.clear();
            self.first = 0;
        } else if self.first >= 64 && self.first * 2 >= self.events.len() {
            self.events.drain_front(self.first);
            self.first = 0;
        }
    }

    /// The log's events with `last` appended, moved out, when it has let go of none.
    pub(super) fn take_whole(&mut self, last: StreamEvent) -> Option<Events> {
        if self.trimmed {
            return None;
        }
        let mut events = std::mem::take(&mut self.events);
        events.push_owned(last);
        Some(events)
    }
}

#[cfg(test)]
mod tests {
    use nova_llm_core::{FinishReason, StreamEvent, Usage};

    use super::{EventLog, Slot};

    #[test]
    fn an_event_held_compactly_takes_16_bytes_beside_its_text() {
        assert_eq!(std::mem::size_of::<Slot>(), 16);
        assert!(std::mem::size_of::<StreamEvent>() >= 3 * 16);
    }

    /// The events the log holds space for (let go of or not), its text bytes and its other
    /// events.
    fn held(log: &EventLog) -> (usize, usize, usize) {
        let e = &log.events;
        (e.slots.len(), e.text.len(), e.others.len())
    }

    /// A log of `n` events: four bytes of text each, every tenth a usage event instead.
    fn log_of(n: u64) -> EventLog {
        let mut log = EventLog::default();
        for i in 0..n {
            if i % 10 == 9 {
                log.push(&StreamEvent::usage(Usage::new(i, i)));
            } else {
                log.push(&StreamEvent::text(format!("{i:04}")));
            }
        }
        log
    }

    #[test]
    fn the_log_gives_space_back_once_half_of_it_and_at_least_64_events_are_let_go_of() {
        // 128 events: 63 let go of keep their space (fewer than 64)...
        let mut log = log_of(128);
        assert_eq!(held(&log), (128, 116 * 4, 12));
        log.drop_front(63);
        assert_eq!(held(&log), (128, 116 * 4, 12));
        // ...the 64th is half of what is held: the space of all 64 is given back.
        log.drop_front(1);
        assert_eq!(held(&log), (64, 58 * 4, 6));
        assert_eq!(log.len(), 64);
        assert_eq!(log.iter().next(), Some(StreamEvent::text("0064")));

        // 129 events: 64 let go of are less than half; 65 are more.
        let mut log = log_of(129);
        log.drop_front(64);
        assert_eq!(held(&log).0, 129);
        log.drop_front(1);
        assert_eq!(held(&log), (64, 58 * 4, 6));
        assert_eq!(log.iter().next(), Some(StreamEvent::text("0065")));

        // 100 events: 60 let go of are more than half, but fewer than 64: kept in place.
        let mut log = log_of(100);
        log.drop_front(60);
        assert_eq!(held(&log).0, 100);
        // All of them: everything is given back at once.
        log.drop_front(40);
        assert_eq!(held(&log), (0, 0, 0));
        // Past the end is the same as all.
        let mut log = log_of(10);
        log.drop_front(11);
        assert_eq!((log.len(), held(&log)), (0, (0, 0, 0)));
    }

    #[test]
    fn the_log_lets_go_of_its_oldest_events_and_keeps_the_rest_exact() {
        let all: Vec<StreamEvent> = (0..600)
            .map(|i| match i % 7 {
                3 => StreamEvent::usage(Usage::new(i, i)),
                5 => StreamEvent::reasoning(format!("r{i}")),
                _ => StreamEvent::text(format!("w{i} ")),
            })
            .collect();
        let mut log = EventLog::default();
        for e in &all[..400] {
            log.push(e);
        }
        // Small steps (kept in place), then past half (space given back), then the rest.
        let mut gone = 0;
        for n in [1, 10, 50, 150, 100] {
            log.drop_front(n);
            gone += n;
            assert_eq!(log.len(), 400 - gone);
            assert_eq!(
                log.iter().collect::<Vec<_>>(),
                all[gone..400],
                "after {gone}"
            );
            assert_eq!(
                log.copy_range(5, 9).collect::<Vec<_>>(),
                all[gone + 5..gone + 9],
                "after {gone}"
            );
        }
        // Events pushed after a compaction land after the kept ones.
        for e in &all[400..] {
            log.push(e);
        }
        assert_eq!(log.iter().collect::<Vec<_>>(), all[gone..]);
        // A log that let go of events is not a whole reply.
        assert!(
            log.take_whole(StreamEvent::finish(FinishReason::Stop))
                .is_none()
        );
        log.drop_front(log.len());
        assert_eq!(log.len(), 0);
        assert_eq!(log.events.text.len(), 0, "its space is given back");
        // Emptied, it starts again from nothing.
        log.push(&all[0]);
        assert_eq!(log.iter().collect::<Vec<_>>(), all[..1]);
        // A log that let go of nothing (letting go of none counts as nothing) becomes a
        // reply whole.
        let mut log = EventLog::default();
        log.push(&all[0]);
        log.drop_front(0);
        log.push(&all[1]);
        let whole = log
            .take_whole(StreamEvent::finish(FinishReason::Stop))
            .unwrap();
        assert_eq!(
            whole.iter().collect::<Vec<_>>(),
            [
                all[0].clone(),
                all[1].clone(),
                StreamEvent::finish(FinishReason::Stop)
            ]
        );
        assert_eq!(log.len(), 0, "moved out");
    }
}
