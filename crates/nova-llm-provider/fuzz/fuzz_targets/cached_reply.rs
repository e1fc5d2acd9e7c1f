//! Feeds arbitrary JSON to `CachedReply` as a shared store would hand back an entry, and
//! checks its contract: no panic; the compact form gives back exactly the events it was
//! read from; a plain call gets what those events accumulate to, and that reply kept as a
//! plain call's comes back unchanged and replays as its events; each weighs what its
//! events weigh; and its JSON reads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nova_llm_core::{StreamAccumulator, StreamEvent};
use nova_llm_provider::cache::CachedReply;

#[derive(serde::Deserialize)]
struct Wire {
    events: Vec<StreamEvent>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(reply) = serde_json::from_slice::<CachedReply>(data) else {
        return;
    };
    // What the entry says, read on its own.
    let Ok(wire) = serde_json::from_slice::<Wire>(data) else {
        panic!("read as a reply but not as events");
    };
    let events = reply.events();
    assert_eq!(events, wire.events);
    assert_eq!(reply.len(), events.len());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(reply.event(i).as_ref(), Some(e));
    }
    let mut acc = StreamAccumulator::new();
    for e in &events {
        acc.push(e);
    }
    match (reply.to_response(), acc.finish()) {
        (Ok(got), Ok(want)) => {
            assert_eq!(got, want);
            // The same reply kept as a plain call's: as it came, replayed as its events.
            let plain = CachedReply::from_response(&got);
            let its_events = got.to_events();
            assert_eq!(plain.events(), its_events);
            assert_eq!(plain.to_response().ok(), Some(got));
            assert_eq!(
                plain.approx_bytes(),
                its_events
                    .iter()
                    .map(CachedReply::event_bytes)
                    .sum::<usize>()
            );
        }
        (Err(got), Err(want)) => assert_eq!(got.kind(), want.kind()),
        (got, want) => panic!("{got:?} against {want:?}"),
    }
    assert_eq!(
        reply.approx_bytes(),
        events.iter().map(CachedReply::event_bytes).sum::<usize>()
    );
    let json = serde_json::to_vec(&reply).expect("a reply serializes");
    let back: CachedReply = serde_json::from_slice(&json).expect("its JSON reads back");
    assert_eq!(back, reply);
    if matches!(events.last(), Some(StreamEvent::Finish { .. })) {
        assert_eq!(CachedReply::from_events(events), Some(reply));
    }
});
