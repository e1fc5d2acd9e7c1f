//! Streams: the stream contract, streamed tool calls, and a stream that is cut, fails
//! mid-way or stalls (each an error carrying exactly what arrived).

use nova_llm_core::{
    ErrorKind, FinishReason, LlmDriver, LlmError, StreamAccumulator, StreamEvent, collect_stream,
    next_event,
};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{Kit, Verdict, drain, expect, prepared, request, same_calls, text_of};
use crate::report::Outcome;
use crate::scenario::{ErrorClass, Scenario, content};

pub(super) async fn run(kit: &Kit<'_>) {
    kit.check("stream_contract", stream_contract(kit)).await;
    kit.check("streamed_tool_calls", streamed_tool_calls(kit))
        .await;
    kit.check("cut_stream", cut_stream(kit)).await;
    for (name, class) in [
        ("error_mid_stream/overloaded", ErrorClass::Overloaded),
        (
            "error_mid_stream/invalid_request",
            ErrorClass::InvalidRequest,
        ),
    ] {
        kit.check(name, error_mid_stream(kit, class)).await;
    }
    kit.check("idle_timeout", idle_timeout(kit)).await;
}

/// Start and usage anywhere, the content in order, exactly one finish, last; the same
/// reply when accumulated. A driver that cannot arrange a stream is checked on its own
/// answer instead.
async fn stream_contract(kit: &Kit<'_>) -> Verdict {
    let deltas = content::deltas();
    let usage = content::usage();
    let scenario = Scenario::Stream {
        deltas: deltas.clone(),
        usage,
    };
    let (driver, arranged) = match kit.prepare(&scenario) {
        Ok(p) => (p.driver, true),
        Err(_) => (kit.harness.driver(&kit.setup()), false),
    };
    let stream = driver
        .chat_stream(request())
        .await
        .map_err(|e| format!("the stream call failed: {e}"))?;
    let (events, err) = drain(stream).await;
    if let Some(e) = err {
        return Err(format!("the stream failed: {e}"));
    }
    contract_holds(&events)?;
    let mut acc = StreamAccumulator::new();
    for e in &events {
        acc.push(e);
    }
    let reply = acc
        .finish()
        .map_err(|e| format!("the events do not make a reply: {e}"))?;
    if !arranged {
        return expect(
            !reply.text().is_empty() || !reply.tool_calls().is_empty(),
            || "the stream carried no content".into(),
        );
    }
    let want = deltas.concat();
    expect(text_of(&events) == want, || {
        format!("the text is {:?}, not {want:?}", text_of(&events))
    })?;
    let reported = events.iter().find_map(|e| match e {
        StreamEvent::Usage(u) => Some((u.input_tokens, u.output_tokens)),
        _ => None,
    });
    expect(reported == Some((11, 7)), || {
        format!("the usage event says {reported:?}, not Some((11, 7))")
    })?;
    expect(reply.finish_reason == FinishReason::Stop, || {
        format!("the finish reason is {:?}, not a stop", reply.finish_reason)
    })
}

/// Exactly one finish, the last event; nothing after an error (checked by the caller).
fn contract_holds(events: &[StreamEvent]) -> Result<(), String> {
    let finishes = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Finish { .. }))
        .count();
    if finishes != 1 {
        return Err(format!("{finishes} finish events, not exactly one"));
    }
    if !matches!(events.last(), Some(StreamEvent::Finish { .. })) {
        return Err("the finish is not the last event".into());
    }
    Ok(())
}

async fn streamed_tool_calls(kit: &Kit<'_>) -> Verdict {
    let calls = content::calls();
    let scenario = Scenario::StreamToolCalls {
        calls: calls.clone(),
    };
    let p = prepared!(kit, &scenario);
    let stream = p.stream().await?;
    let reply = collect_stream(stream)
        .await
        .map_err(|e| format!("the stream failed: {e}"))?;
    expect(same_calls(reply.tool_calls(), &calls), || {
        format!(
            "the calls assemble to {:?}, not {calls:?}",
            reply.tool_calls()
        )
    })?;
    expect(reply.finish_reason == FinishReason::ToolCalls, || {
        format!(
            "the finish reason is {:?}, not tool calls",
            reply.finish_reason
        )
    })
}

/// What a stream failing after `after` deltas must end with: `StreamInterrupted`
/// carrying exactly the text received, and no finish before it.
fn interrupted(
    events: &[StreamEvent],
    err: Option<LlmError>,
    want: &str,
) -> Result<LlmError, String> {
    if events
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. }))
    {
        return Err("the stream finished: a cut or failed stream is never a success".into());
    }
    // A stream that just ends, without a finish, was cut short: its consumer makes the
    // error (the stream contract), with what arrived.
    let err = match err {
        Some(err) => err,
        None => {
            let mut acc = StreamAccumulator::new();
            for e in events {
                acc.push(e);
            }
            match acc.finish() {
                Err(err) => err,
                Ok(_) => return Err("the stream ended as a success".into()),
            }
        }
    };
    if text_of(events) != want {
        return Err(format!(
            "the events carried {:?}, not {want:?}",
            text_of(events)
        ));
    }
    if err.kind() != ErrorKind::StreamInterrupted {
        return Err(format!(
            "the error is {:?}, not StreamInterrupted ({err})",
            err.kind()
        ));
    }
    let partial = err.partial().map(|p| p.text.as_str());
    if partial != Some(want) {
        return Err(format!("the error carries {partial:?}, not {want:?}"));
    }
    Ok(err)
}

async fn cut_stream(kit: &Kit<'_>) -> Verdict {
    let deltas = content::deltas();
    let scenario = Scenario::StreamCut {
        deltas: deltas.clone(),
        after: 2,
    };
    let p = prepared!(kit, &scenario);
    let stream = p.stream().await?;
    let (events, err) = drain(stream).await;
    let err = interrupted(&events, err, &deltas[..2].concat())?;
    expect(err.is_retryable(), || {
        format!("a cut stream is not retryable: {err}")
    })
}

async fn error_mid_stream(kit: &Kit<'_>, class: ErrorClass) -> Verdict {
    let deltas = content::deltas();
    let scenario = Scenario::StreamError {
        deltas: deltas.clone(),
        after: 3,
        class,
        message: format!("conformance: {class:?} mid-stream"),
    };
    let p = prepared!(kit, &scenario);
    let stream = p.stream().await?;
    let (events, err) = drain(stream).await;
    let err = interrupted(&events, err, &deltas[..3].concat())?;
    expect(err.cause_kind() == Some(class.kind()), || {
        format!(
            "its cause is {:?}, not {:?}",
            err.cause_kind(),
            class.kind()
        )
    })?;
    expect(err.is_retryable() == class.retryable(), || {
        format!(
            "retryable: {}, though {:?} is {}",
            err.is_retryable(),
            class,
            class.retryable()
        )
    })
}

/// A stall after content ends with the driver's idle timeout: the stream is read on the
/// running clock until the content arrived, then on tokio's paused clock, so the timeout
/// passes at once.
async fn idle_timeout(kit: &Kit<'_>) -> Verdict {
    if Handle::current().runtime_flavor() != RuntimeFlavor::CurrentThread {
        return Ok(Outcome::Skipped(
            "needs a current-thread runtime (`#[tokio::test]`) to pause the clock".into(),
        ));
    }
    let deltas = content::deltas();
    let scenario = Scenario::StreamStall {
        deltas: deltas.clone(),
        after: 2,
    };
    let p = prepared!(kit, &scenario);
    let mut stream = p.stream().await?;
    let mut events = Vec::new();
    while text_of(&events) != deltas[..2].concat() {
        match next_event(&mut stream).await {
            Some(Ok(event)) => events.push(event),
            Some(Err(e)) => return Err(format!("the stream failed before the stall: {e}")),
            None => return Err("the stream ended before the stall".into()),
        }
    }
    // The driver's idle timeout must end it: five times that at most (on the paused
    // clock, which moves on at once when nothing else is to be done).
    let bound = kit.setup().stream_idle_timeout * 5;
    let rest = {
        let _paused = Paused::start();
        tokio::time::timeout(bound, drain(stream)).await
    };
    let Ok(rest) = rest else {
        return Err(format!(
            "the stalled stream did not time out within {bound:?}"
        ));
    };
    events.extend(rest.0);
    let err = interrupted(&events, rest.1, &deltas[..2].concat())?;
    expect(err.cause_kind() == Some(ErrorKind::Timeout), || {
        format!("its cause is {:?}, not a timeout", err.cause_kind())
    })
}

/// tokio's clock, paused while it lives (resumed even when the check is cut short).
struct Paused;

impl Paused {
    fn start() -> Self {
        tokio::time::pause();
        Paused
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        tokio::time::resume();
    }
}
