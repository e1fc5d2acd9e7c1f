//! Events: the exactly-once matrix (plain/stream x success/error x read fully/dropped),
//! delivery to listeners and slow subscribers, content capture, tags and ids.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nova_llm_core::{
    ErrorKind, FinishReason, LlmDriver, LlmError, StreamEvent, collect_stream, next_event,
};
use nova_llm_mock::{MockDriver, ScriptedStream};

use super::{req, run};
use crate::{CallOptions, Event, EventKind, EventReceiver, Provider, Received, RequestId};

fn name(kind: &EventKind) -> String {
    match kind {
        EventKind::Started { .. } => "started".into(),
        EventKind::FirstChunk { .. } => "first_chunk".into(),
        EventKind::StreamInterrupted { error, .. } => format!("interrupted({error:?})"),
        EventKind::Completed(_) => "completed".into(),
        EventKind::Failed(f) => format!("failed({:?})", f.error),
        other => format!("{other:?}"),
    }
}

fn names(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| name(&e.kind)).collect()
}

/// Every request id has exactly one `Started`, first, and exactly one terminal event, last.
pub(super) fn assert_exactly_once(events: &[Event]) {
    let mut by_id: BTreeMap<RequestId, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_id.entry(e.request_id).or_default().push(e);
    }
    for (id, evs) in by_id {
        let started = evs
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Started { .. }))
            .count();
        let terminal = evs.iter().filter(|e| e.is_terminal()).count();
        assert_eq!((started, terminal), (1, 1), "request {id}: {evs:?}");
        assert!(matches!(evs[0].kind, EventKind::Started { .. }));
        assert!(evs[evs.len() - 1].is_terminal());
    }
}

fn setup() -> (MockDriver, Provider, EventReceiver) {
    let mock = MockDriver::new();
    let p = Provider::new(mock.clone());
    let rx = p.subscribe();
    (mock, p, rx)
}

fn two_words() -> ScriptedStream {
    ScriptedStream::new()
        .text("one ")
        .text("two")
        .finish(FinishReason::Stop)
}

#[test]
fn plain_success_and_error_emit_started_then_one_terminal_event() {
    run(async {
        let (mock, p, mut rx) = setup();
        p.prompt("x").await.unwrap();
        assert_eq!(names(&rx.drain()), ["started", "completed"]);
        mock.push_error(LlmError::new(ErrorKind::RateLimited, "slow down").with_status(429));
        p.prompt("x").await.unwrap_err();
        let events = rx.drain();
        assert_eq!(names(&events), ["started", "failed(RateLimited)"]);
        let EventKind::Failed(f) = &events[1].kind else {
            unreachable!()
        };
        assert_eq!((f.status, f.message.as_str()), (Some(429), "slow down"));
    });
}

#[tokio::test(start_paused = true)]
async fn a_plain_call_dropped_by_its_caller_fails_as_cancelled() {
    let (mock, p, mut rx) = setup();
    mock.push_default_after(Duration::from_secs(10));
    let call = tokio::time::timeout(Duration::from_secs(1), p.prompt("x")).await;
    assert!(call.is_err(), "the caller gave up first");
    assert_eq!(names(&rx.drain()), ["started", "failed(Cancelled)"]);
}

#[test]
fn a_stream_read_to_its_end_completes_once() {
    run(async {
        let (mock, p, mut rx) = setup();
        mock.push_stream(two_words());
        let mut s = p.chat_stream(req("x")).await.unwrap();
        while next_event(&mut s).await.is_some() {}
        // Polling after the end adds nothing.
        assert!(next_event(&mut s).await.is_none());
        drop(s);
        let events = rx.drain();
        assert_eq!(names(&events), ["started", "first_chunk", "completed"]);
        assert_exactly_once(&events);
    });
}

#[test]
fn a_stream_dropped_after_its_finish_adds_nothing() {
    run(async {
        let (mock, p, mut rx) = setup();
        mock.push_stream(two_words());
        let mut s = p.chat_stream(req("x")).await.unwrap();
        while let Some(item) = next_event(&mut s).await {
            if matches!(item.unwrap(), StreamEvent::Finish { .. }) {
                break;
            }
        }
        drop(s);
        assert_eq!(names(&rx.drain()), ["started", "first_chunk", "completed"]);
    });
}

#[test]
fn a_stream_dropped_half_way_is_interrupted_then_cancelled() {
    run(async {
        let (mock, p, mut rx) = setup();
        mock.push_stream(two_words());
        let mut s = p.chat_stream(req("x")).await.unwrap();
        assert!(matches!(
            next_event(&mut s).await,
            Some(Ok(StreamEvent::TextDelta { .. }))
        ));
        drop(s);
        let events = rx.drain();
        assert_eq!(
            names(&events),
            [
                "started",
                "first_chunk",
                "interrupted(Cancelled)",
                "failed(Cancelled)"
            ]
        );
        assert!(matches!(
            events[2].kind,
            EventKind::StreamInterrupted {
                received_chars: 4,
                ..
            }
        ));
    });
}

#[test]
fn a_stream_dropped_before_any_output_is_cancelled() {
    run(async {
        let (_mock, p, mut rx) = setup();
        let s = p.chat_stream(req("x")).await.unwrap();
        drop(s);
        assert_eq!(names(&rx.drain()), ["started", "failed(Cancelled)"]);
    });
}

#[test]
fn a_stream_that_fails_before_output_fails_the_call_once() {
    run(async {
        let (mock, p, mut rx) = setup();
        mock.push_error(LlmError::new(ErrorKind::Authentication, "bad key"));
        let err = p.chat_stream(req("x")).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::Authentication);
        assert_eq!(names(&rx.drain()), ["started", "failed(Authentication)"]);
    });
}

#[test]
fn a_stream_error_mid_way_is_interrupted_then_failed_and_ends_the_stream() {
    run(async {
        let (mock, p, mut rx) = setup();
        mock.push_stream(two_words().fail_after(1, LlmError::new(ErrorKind::Server, "boom")));
        let s = p.chat_stream(req("x")).await.unwrap();
        let err = collect_stream(s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
        assert_eq!(err.cause_kind(), Some(ErrorKind::Server));
        let events = rx.drain();
        assert_eq!(
            names(&events),
            [
                "started",
                "first_chunk",
                "interrupted(StreamInterrupted)",
                "failed(StreamInterrupted)"
            ]
        );
        assert_exactly_once(&events);
    });
}

#[test]
fn a_stream_that_ends_without_finish_fails_as_interrupted() {
    run(async {
        let (mock, p, mut rx) = setup();
        mock.push_stream(ScriptedStream::new().text("half"));
        let s = p.chat_stream(req("x")).await.unwrap();
        let err = collect_stream(s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
        assert_eq!(
            names(&rx.drain()),
            [
                "started",
                "first_chunk",
                "interrupted(StreamInterrupted)",
                "failed(StreamInterrupted)"
            ]
        );
    });
}

#[test]
fn many_concurrent_calls_each_get_exactly_one_start_and_one_end() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone())
            .event_capacity(10_000)
            .build();
        let mut rx = p.subscribe();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let p = p.clone();
            let mock = mock.clone();
            tasks.push(tokio::spawn(async move {
                match i % 4 {
                    0 => {
                        p.prompt("x").await.ok();
                    }
                    // The queued errors go to whichever call comes next, so any call may
                    // fail before its stream starts.
                    1 => {
                        if let Ok(s) = p.chat_stream(req("x")).await {
                            collect_stream(s).await.ok();
                        }
                    }
                    2 => {
                        if let Ok(mut s) = p.chat_stream(req("x")).await {
                            next_event(&mut s).await;
                        }
                    }
                    _ => {
                        mock.push_error(LlmError::new(ErrorKind::Timeout, "t"));
                        p.prompt("x").await.ok();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let events = rx.drain();
        assert_eq!(events.iter().filter(|e| e.is_terminal()).count(), 200);
        assert_exactly_once(&events);
    });
}

#[test]
fn a_slow_subscriber_loses_the_oldest_events_and_is_told_how_many() {
    run(async {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone()).event_capacity(4).build();
        let mut slow = p.subscribe();
        for _ in 0..10 {
            p.prompt("x").await.unwrap();
        }
        assert_eq!(mock.calls(), 10, "requests never waited for the subscriber");
        assert!(matches!(slow.try_recv(), Some(Received::Missed(16))));
        let rest = slow.drain();
        assert_eq!(
            names(&rest),
            ["started", "completed", "started", "completed"]
        );
        assert!(slow.try_recv().is_none());
    });
}

#[test]
fn listeners_see_every_event_in_order_and_subscribers_end_with_the_provider() {
    run(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let p = Provider::builder(MockDriver::new())
            .listener(move |e: &Event| sink.lock().unwrap().push(name(&e.kind)))
            .build();
        let mut rx = p.subscribe();
        p.prompt("x").await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["started", "completed"]);
        drop(p);
        assert!(matches!(rx.recv().await, Some(Received::Event(_))));
        assert!(matches!(rx.recv().await, Some(Received::Event(_))));
        assert!(
            rx.recv().await.is_none(),
            "closed once the provider is gone"
        );
    });
}

/// Records every event it is given; says it wants only the terminal ones.
struct TerminalOnly(Arc<Mutex<Vec<String>>>);

impl crate::EventListener for TerminalOnly {
    fn on_event(&self, event: &Event) {
        self.0.lock().unwrap().push(name(&event.kind));
    }

    fn terminal_only(&self) -> bool {
        true
    }
}

#[test]
fn non_terminal_events_are_not_built_when_only_terminal_listeners_and_no_subscribers_exist() {
    run(async {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let p = Provider::builder(MockDriver::new())
            .cache(crate::cache::CacheLayer::in_memory(10, None))
            .listener(TerminalOnly(seen.clone()))
            .build();
        p.prompt("x").await.unwrap();
        // No `started`, no cache events: nobody would have looked at them.
        assert_eq!(*seen.lock().unwrap(), ["completed"]);
        // A subscriber wants everything: then the listener is given everything too.
        let mut rx = p.subscribe();
        p.prompt("x").await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            ["completed", "started", "CacheHit", "completed"]
        );
        assert_eq!(rx.drain().len(), 3);
        // Gone again: back to the terminal events only.
        drop(rx);
        seen.lock().unwrap().clear();
        p.prompt("y").await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["completed"]);
    });
}

#[test]
fn events_carry_the_request_id_driver_model_and_tags() {
    run(async {
        let (_mock, p, mut rx) = setup();
        p.chat_with(
            req("x").model("gpt-4o"),
            CallOptions::new().tag("user", "u1"),
        )
        .await
        .unwrap();
        p.prompt("y").await.unwrap();
        let events = rx.drain();
        assert_eq!(events[0].request_id, events[1].request_id);
        assert_ne!(events[1].request_id, events[2].request_id);
        assert_eq!(&*events[0].driver, "mock");
        assert_eq!(&*events[0].model, "gpt-4o");
        assert_eq!(&*events[2].model, "default");
        assert_eq!(events[1].tags.get("user").map(String::as_str), Some("u1"));
        assert!(events[2].tags.is_empty());
    });
}

#[test]
fn prompt_and_reply_text_appear_only_when_captured() {
    run(async {
        let (mock, p, mut rx) = setup();
        p.prompt("secret question").await.unwrap();
        mock.push_stream(two_words());
        collect_stream(p.chat_stream(req("q")).await.unwrap())
            .await
            .unwrap();
        for e in rx.drain() {
            match &e.kind {
                EventKind::Started { prompt, .. } => assert!(prompt.is_none()),
                EventKind::Completed(c) => assert!(c.reply.is_none()),
                _ => {}
            }
            assert!(!format!("{e:?}").contains("secret"));
        }

        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone())
            .capture_content(true)
            .build();
        let mut rx = p.subscribe();
        p.prompt("question").await.unwrap();
        mock.push_stream(two_words());
        collect_stream(p.chat_stream(req("q")).await.unwrap())
            .await
            .unwrap();
        let mut replies = Vec::new();
        for e in rx.drain() {
            match e.kind {
                EventKind::Started { prompt, .. } => assert!(prompt.is_some()),
                EventKind::Completed(c) => replies.push(c.reply.unwrap()),
                _ => {}
            }
        }
        assert_eq!(replies, ["f(question)", "one two"]);
    });
}

#[test]
fn a_driver_used_through_dyn_still_reports_events() {
    run(async {
        let (_mock, p, mut rx) = setup();
        let d: Arc<dyn LlmDriver> = Arc::new(p);
        d.prompt("x").await.unwrap();
        assert_eq!(names(&rx.drain()), ["started", "completed"]);
    });
}
