//! What real servers send, fed to the decoder as bytes: each tolerance case a test, and a
//! property test over random byte splits.

use std::collections::VecDeque;

use nova_llm_core::{
    ChatResponse, ErrorKind, FinishReason, LlmError, StreamAccumulator, StreamEvent, ToolCall,
    Usage,
};
use serde_json::{Value, json};

use super::support::text_chunk;
use crate::decode::{ChunkDecoder, Item};

/// Decodes `chunks` as one stream; returns the items and whether it completed.
fn decode(chunks: &[&[u8]]) -> (Vec<Item>, bool) {
    let mut d = ChunkDecoder::new(Default::default(), 1 << 20);
    let mut out = VecDeque::new();
    for c in chunks {
        d.feed(c, &mut out);
    }
    d.end(&mut out);
    (out.into_iter().collect(), d.is_complete())
}

/// Accumulates decoded items like a consumer would.
fn reply(chunks: &[&[u8]]) -> Result<ChatResponse, LlmError> {
    let (items, complete) = decode(chunks);
    let mut acc = StreamAccumulator::new();
    for item in items {
        acc.push(&item?);
    }
    assert!(complete || !acc.is_finished());
    acc.finish()
}

fn data(v: &Value) -> String {
    format!("data: {v}\n\n")
}

fn finish_chunk(reason: &str) -> Value {
    json!({"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
}

/// A realistic stream: role chunk, three content chunks (with multi-byte text), finish,
/// usage chunk with empty choices, `[DONE]`.
fn realistic() -> String {
    let mut s = data(
        &json!({"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
    );
    for t in ["Hél", "lo, wörld ", "😀!"] {
        s.push_str(&data(&text_chunk(t)));
    }
    s.push_str(&data(&finish_chunk("stop")));
    s.push_str(&data(&json!({"id": "c1", "model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}})));
    s.push_str("data: [DONE]\n\n");
    s
}

#[test]
fn a_realistic_stream_decodes_in_contract_order() {
    let (items, complete) = decode(&[realistic().as_bytes()]);
    assert!(complete);
    let events: Vec<StreamEvent> = items.into_iter().map(Result::unwrap).collect();
    assert!(
        matches!(events[0], StreamEvent::Start(ref s) if s.id == "c1" && s.model == "gpt-4o-mini")
    );
    assert_eq!(
        events[1..4],
        [
            StreamEvent::text("Hél"),
            StreamEvent::text("lo, wörld "),
            StreamEvent::text("😀!")
        ]
    );
    assert_eq!(events[4], StreamEvent::usage(Usage::new(5, 4)));
    assert_eq!(
        events[5],
        StreamEvent::Finish {
            reason: FinishReason::Stop,
            raw: Some("stop".into())
        },
        "finish is held back until the end, after the usage chunk"
    );
    assert_eq!(events.len(), 6);
}

#[test]
fn events_split_at_every_byte_including_inside_utf8_give_the_same_reply() {
    let text = realistic();
    let bytes = text.as_bytes();
    let whole = reply(&[bytes]).unwrap();
    assert_eq!(whole.text(), "Héllo, wörld 😀!");
    for cut in 0..=bytes.len() {
        assert_eq!(
            reply(&[&bytes[..cut], &bytes[cut..]]).unwrap(),
            whole,
            "cut at {cut}"
        );
    }
}

#[test]
fn random_splits_give_identical_events() {
    let text = realistic().replace("\n\n", "\r\n\r\n");
    let bytes = text.as_bytes();
    let (expected, _) = decode(&[bytes]);
    let expected: Vec<_> = expected.into_iter().map(Result::unwrap).collect();
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    for _ in 0..300 {
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < bytes.len() {
            let end = (start + rng.usize(1..=40)).min(bytes.len());
            chunks.push(&bytes[start..end]);
            start = end;
        }
        let (items, complete) = decode(&chunks);
        assert!(complete);
        let got: Vec<_> = items.into_iter().map(Result::unwrap).collect();
        assert_eq!(got, expected);
    }
}

#[test]
fn crlf_and_cr_line_endings() {
    for sep in ["\r\n", "\r"] {
        let s = realistic().replace('\n', sep);
        assert_eq!(
            reply(&[s.as_bytes()]).unwrap().text(),
            "Héllo, wörld 😀!",
            "{sep:?}"
        );
    }
}

#[test]
fn comments_and_keep_alives_are_ignored() {
    let s = format!(
        ": OPENROUTER PROCESSING\n\n{}:\n\n: ping\n{}data: [DONE]\n\n",
        data(&text_chunk("hi")),
        data(&finish_chunk("stop"))
    );
    assert_eq!(reply(&[s.as_bytes()]).unwrap().text(), "hi");
}

#[test]
fn data_without_a_space_and_multi_line_data() {
    let chunk = text_chunk("x").to_string();
    let (a, b) = chunk.split_at(chunk.find("\"choices\"").unwrap());
    let s = format!(
        "data:{}\n\ndata: {a}\ndata: {b}\n\ndata:{}\n\ndata:[DONE]\n\n",
        text_chunk("a"),
        finish_chunk("stop")
    );
    assert_eq!(reply(&[s.as_bytes()]).unwrap().text(), "ax");
}

#[test]
fn retry_and_id_only_events_are_ignored() {
    let s = format!(
        "retry: 3000\n\nid: 1\n\n{}id: 2\nevent: message\n{}{}data: [DONE]\n\n",
        data(&text_chunk("a")),
        data(&text_chunk("b")),
        data(&finish_chunk("stop"))
    );
    assert_eq!(reply(&[s.as_bytes()]).unwrap().text(), "ab");
}

#[test]
fn usage_in_a_chunk_with_choices_is_read_too() {
    let s = format!(
        "{}{}data: [DONE]\n\n",
        data(&text_chunk("a")),
        data(
            &json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}], "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
        )
    );
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(r.usage, Usage::new(2, 1));
    assert_eq!(r.finish_reason, FinishReason::Length);
}

/// Some compatible servers and proxies end a stream with `[DONE]` and never send a finish
/// reason (reported of OmniRoute 3.8.48, issue #7800; GenieX, issue #1243; several
/// Gemini-to-OpenAI proxies), or an empty one (Ollama, issue #4357). `[DONE]` is the server marking the end, so the reply is
/// complete; its reason is `Unspecified`, never a made-up `Stop`. Whole tool calls say why
/// it stopped. A stream with neither `[DONE]` nor a finish reason is cut (another test).
#[test]
fn chunks_without_finish_reason_then_done_complete_the_reply_with_an_unspecified_reason() {
    let s = format!(
        "{}{}data: [DONE]\n\n",
        data(&text_chunk("a")),
        data(&text_chunk("b"))
    );
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(r.text(), "ab");
    assert_eq!(r.finish_reason, FinishReason::Unspecified);
    assert_eq!(r.raw_finish_reason, None);

    let empty = json!({"choices": [{"index": 0, "delta": {"content": "c"}, "finish_reason": ""}]});
    let s = format!("{}data: [DONE]\n\n", data(&empty));
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(r.finish_reason, FinishReason::Unspecified);

    let call = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}
    ]}}]});
    let s = format!("{}data: [DONE]\n\n", data(&call));
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.raw_finish_reason, None);
}

#[test]
fn invalid_utf8_in_a_data_line_becomes_replacement_characters_not_an_error() {
    // A server that cuts a multi-byte character: the line is checked with the fast path
    // first and falls back to the lossy conversion; the rest of the stream is unharmed.
    let mut bytes = data(&text_chunk("a")).into_bytes();
    for b in data(&text_chunk("bXc")).bytes() {
        if b == b'X' {
            bytes.extend_from_slice(&[0xE2, 0x82]); // the first two bytes of '€'
        } else {
            bytes.push(b);
        }
    }
    bytes.extend_from_slice(data(&finish_chunk("stop")).as_bytes());
    bytes.extend_from_slice(b"data: [DONE]\n\n");
    let r = reply(&[&bytes]).unwrap();
    assert_eq!(r.text(), "ab\u{FFFD}c");
}

#[test]
fn a_finish_reason_without_done_completes_the_reply() {
    let s = format!("{}{}", data(&text_chunk("a")), data(&finish_chunk("stop")));
    assert_eq!(reply(&[s.as_bytes()]).unwrap().text(), "a");
}

#[test]
fn a_last_event_without_its_blank_line_or_newline_is_still_read() {
    // Some servers close the connection right after the last `data:` line.
    for tail in ["\n", ""] {
        let s = format!(
            "{}data: {}{tail}",
            data(&text_chunk("a")),
            finish_chunk("stop")
        );
        let (items, complete) = decode(&[s.as_bytes()]);
        assert!(complete, "{tail:?}");
        let mut acc = StreamAccumulator::new();
        for item in items {
            acc.push(&item.unwrap());
        }
        assert_eq!(acc.finish().unwrap().text(), "a");
    }
}

#[test]
fn tool_call_deltas_that_repeat_id_and_name_are_joined_once() {
    let tc = |args: &str| {
        json!({"choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": args}}
        ]}}]})
    };
    let second = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 1, "id": "call_2", "function": {"name": "ping", "arguments": ""}},
    ]}}]});
    let second_args = json!({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 1, "function": {"arguments": "{}"}},
    ]}}]});
    let s = [
        data(&tc("")),
        data(&tc("{\"city\"")),
        data(&tc(": \"Paris\"}")),
        data(&second),
        data(&second_args),
        data(&finish_chunk("tool_calls")),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(
        r.tool_calls(),
        [
            ToolCall::new("call_1", "get_weather", "{\"city\": \"Paris\"}"),
            ToolCall::new("call_2", "ping", "{}"),
        ]
    );
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);

    // A server that sends no finish reason: tool calls still end as `ToolCalls`.
    let s = [data(&tc("{}")), "data: [DONE]\n\n".to_owned()].concat();
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(r.tool_calls().len(), 1);
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
}

#[test]
fn legacy_function_call_deltas_become_a_tool_call() {
    let s = [
        data(&json!({"choices": [{"index": 0, "delta": {"function_call": {"name": "f", "arguments": ""}}}]})),
        data(&json!({"choices": [{"index": 0, "delta": {"function_call": {"arguments": "{\"a\":1}"}}}]})),
        data(&finish_chunk("function_call")),
    ]
    .concat();
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(r.tool_calls(), [ToolCall::new("", "f", "{\"a\":1}")]);
}

#[test]
fn reasoning_deltas_and_refusals_are_kept() {
    let s = [
        data(&json!({"choices": [{"index": 0, "delta": {"reasoning_content": "think "}}]})),
        data(&json!({"choices": [{"index": 0, "delta": {"reasoning": "more"}}]})),
        data(&json!({"choices": [{"index": 0, "delta": {"refusal": "No."}}]})),
        data(&finish_chunk("stop")),
    ]
    .concat();
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(r.reasoning().as_deref(), Some("think more"));
    assert_eq!(r.text(), "No.");
    assert_eq!(r.finish_reason, FinishReason::Refusal);
}

#[test]
fn other_choices_than_the_first_are_ignored() {
    let s = [
        data(&json!({"choices": [{"index": 1, "delta": {"content": "other"}}, {"index": 0, "delta": {"content": "mine"}}]})),
        data(&finish_chunk("stop")),
    ]
    .concat();
    assert_eq!(reply(&[s.as_bytes()]).unwrap().text(), "mine");
    // Null choices are none; several of index 0 in one chunk all count, in order.
    let s = [
        data(&json!({"id": "c1", "choices": null})),
        data(&json!({"choices": [{"index": 0, "delta": {"content": "a"}}, {"index": 2, "delta": {"content": "x"}}, {"index": 0, "delta": {"content": "b"}}]})),
        data(&finish_chunk("stop")),
    ]
    .concat();
    assert_eq!(reply(&[s.as_bytes()]).unwrap().text(), "ab");
}

#[test]
fn an_error_payload_mid_stream_is_a_classified_error_item() {
    let s = [
        data(&text_chunk("partial")),
        data(&json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})),
        data(&text_chunk("never")),
    ]
    .concat();
    let (items, complete) = decode(&[s.as_bytes()]);
    assert!(!complete);
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(err.code(), Some("rate_limit_exceeded"));
    assert!(err.to_string().contains("Rate limit reached"));
    assert_eq!(
        items.len(),
        3,
        "start, text, error; nothing after the error"
    );
}

#[test]
fn a_mid_stream_error_is_classified_by_its_type_or_its_code() {
    for (kind, code, want) in [
        (
            json!("rate_limit_error"),
            Value::Null,
            ErrorKind::RateLimited,
        ),
        (
            json!("tokens"),
            json!("rate_limit_exceeded"),
            ErrorKind::RateLimited,
        ),
        (
            json!("overloaded_error"),
            Value::Null,
            ErrorKind::Overloaded,
        ),
        (Value::Null, json!("overloaded"), ErrorKind::Overloaded),
        (
            json!("invalid_request_error"),
            Value::Null,
            ErrorKind::InvalidRequest,
        ),
        (json!("server_error"), Value::Null, ErrorKind::Server),
    ] {
        let s = data(&json!({"error": {"message": "no", "type": kind, "code": code}}));
        let (items, _) = decode(&[s.as_bytes()]);
        let err = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(err.kind(), want, "{kind} {code}");
    }
}

#[test]
fn an_error_event_mid_stream_is_a_classified_error_item() {
    let s = format!(
        "{}event: error\ndata: {{\"error\": {{\"message\": \"Overloaded\", \"type\": \"overloaded_error\"}}}}\n\n",
        data(&text_chunk("a"))
    );
    let (items, _) = decode(&[s.as_bytes()]);
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    let s = "event: error\ndata: upstream exploded\n\n";
    let (items, _) = decode(&[s.as_bytes()]);
    let err = items[0].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert!(err.to_string().contains("upstream exploded"));
    // An error given as a JSON string, as an event or inside a chunk: its text, unquoted.
    for s in [
        "event: error\ndata: \"quota gone\"\n\n",
        "data: {\"error\": \"quota gone\"}\n\n",
    ] {
        let (items, _) = decode(&[s.as_bytes()]);
        let err = items[0].as_ref().unwrap_err();
        assert_eq!(
            err.message(),
            "the service reported an error mid-stream: quota gone",
            "{s}"
        );
    }
}

#[test]
fn a_stream_without_finish_or_done_is_incomplete() {
    let s = [data(&text_chunk("Hello, ")), data(&text_chunk("wor"))].concat();
    let (items, complete) = decode(&[s.as_bytes()]);
    assert!(!complete);
    assert!(items.iter().all(Result::is_ok));
    let err = reply(&[s.as_bytes()]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    assert_eq!(err.partial().unwrap().text, "Hello, wor");
}

#[test]
fn malformed_chunks_and_overlong_lines_are_decode_errors() {
    let (items, _) = decode(&[b"data: {\"choices\": [\n\n"]);
    assert_eq!(items[0].as_ref().unwrap_err().kind(), ErrorKind::Decode);
    let mut d = ChunkDecoder::new(Default::default(), 64);
    let mut out = VecDeque::new();
    d.feed(format!("data: {}", "x".repeat(100)).as_bytes(), &mut out);
    assert_eq!(out[0].as_ref().unwrap_err().kind(), ErrorKind::Decode);
    assert!(d.is_closed());

    // A line under the limit that arrives in pieces is measured whole, not rejected.
    let line = data(&text_chunk("fits"));
    assert!(line.len() < 256);
    let mut d = ChunkDecoder::new(Default::default(), 256);
    let mut out = VecDeque::new();
    for piece in line.as_bytes().chunks(line.len() / 3 + 1) {
        d.feed(piece, &mut out);
    }
    assert!(!d.is_closed());
    assert_eq!(out.len(), 2, "start and the text: {out:?}");
    assert!(out.iter().all(Result::is_ok));
}

#[test]
fn events_before_an_overlong_line_are_delivered_then_the_error() {
    let mut d = ChunkDecoder::new(Default::default(), 256);
    let mut out = VecDeque::new();
    let s = format!("{}data: {}\n", data(&text_chunk("kept")), "x".repeat(300));
    d.feed(s.as_bytes(), &mut out);
    assert!(matches!(&out[1], Ok(StreamEvent::TextDelta { text }) if text == "kept"));
    let err = out.back().unwrap().as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.to_string().contains("256 bytes"), "{err}");
}

#[test]
fn an_event_of_endless_data_lines_is_an_error_not_unbounded_growth() {
    let mut d = ChunkDecoder::new(Default::default(), 1024);
    let mut out = VecDeque::new();
    for _ in 0..1000 {
        d.feed(b"data: 0123456789\n", &mut out);
        if d.is_closed() {
            break;
        }
    }
    assert!(d.is_closed());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().unwrap_err().kind(), ErrorKind::Decode);
    assert!(d.buffered_bytes() <= 4 * 1024, "{}", d.buffered_bytes());
}

#[test]
fn the_decoder_counts_the_part_of_an_event_it_holds() {
    // The measure the flat-memory test relies on: a partial event is counted.
    let mut d = ChunkDecoder::new(Default::default(), 1 << 20);
    let mut out = VecDeque::new();
    d.feed(format!("data: {}", "x".repeat(5000)).as_bytes(), &mut out);
    assert!(out.is_empty());
    assert!(d.buffered_bytes() >= 5000, "{}", d.buffered_bytes());
}

#[test]
fn memory_stays_flat_while_a_long_stream_is_consumed() {
    // 200,000 chunks (about 30 MB) in network-sized pieces that split events anywhere. What
    // the decoder holds after the first thousand chunks is what it holds at the end.
    let chunk = data(&text_chunk(" token"));
    let mut d = ChunkDecoder::new(Default::default(), 1 << 20);
    let mut out = VecDeque::new();
    let mut piece = String::new();
    let mut warm_max = 0;
    let mut later_max = 0;
    let mut events = 0;
    for i in 0..200_000 {
        piece.push_str(&chunk);
        if piece.len() >= 1500 || i == 199_999 {
            // Cut inside an event: the tail waits for the next piece.
            let cut = piece.len() - 7;
            d.feed(&piece.as_bytes()[..cut], &mut out);
            piece.drain(..cut);
            events += out.len();
            out.clear(); // the consumer takes what was decoded
            let held = d.buffered_bytes();
            if i < 1000 {
                warm_max = warm_max.max(held);
            } else {
                later_max = later_max.max(held);
            }
        }
    }
    piece.push_str(&data(&finish_chunk("stop")));
    d.feed(piece.as_bytes(), &mut out);
    d.end(&mut out);
    events += out.len();
    assert_eq!(events, 200_000 + 2); // start, the text deltas, finish
    assert!(warm_max > 0);
    assert!(
        later_max <= warm_max,
        "the decoder grew from {warm_max} to {later_max} bytes over the stream"
    );
}

#[test]
fn input_after_done_is_ignored() {
    let s = format!(
        "{}data: [DONE]\n\n{}",
        data(&text_chunk("a")),
        data(&text_chunk("late"))
    );
    assert_eq!(reply(&[s.as_bytes()]).unwrap().text(), "a");
}

#[test]
fn legacy_completion_chunks_stream_text() {
    let s = [
        data(&json!({"id": "cmpl", "choices": [{"index": 0, "text": "Once", "finish_reason": null}]})),
        data(&json!({"id": "cmpl", "choices": [{"index": 0, "text": " upon", "finish_reason": "length"}]})),
        "data: [DONE]\n\n".to_owned(),
    ]
    .concat();
    let r = reply(&[s.as_bytes()]).unwrap();
    assert_eq!(r.text(), "Once upon");
    assert_eq!(r.finish_reason, FinishReason::Length);
}

#[test]
fn the_first_chunk_names_the_reply_whether_its_strings_are_escaped_null_or_missing() {
    let start_of = |first: &str| {
        let body = format!(
            "data: {first}\n\n{}data: [DONE]\n\n",
            data(&finish_chunk("stop"))
        );
        let (items, complete) = decode(&[body.as_bytes()]);
        assert!(complete, "{items:?}");
        match items.into_iter().next() {
            Some(Ok(StreamEvent::Start(s))) => s,
            other => panic!("expected a start, got {other:?}"),
        }
    };
    // Escapes: copied out of the chunk, unescaped.
    let s = start_of(
        r#"{"id": "chat\u0063mpl-1", "model": "gpt\/4o", "system_fingerprint": "fp\"1", "choices": []}"#,
    );
    assert_eq!((s.id.as_str(), s.model.as_str()), ("chatcmpl-1", "gpt/4o"));
    assert_eq!(s.metadata.system_fingerprint.as_deref(), Some("fp\"1"));
    // Plain strings: borrowed from the chunk, the same text.
    let s = start_of(r#"{"id": "c1", "model": "m", "system_fingerprint": "fp_2", "choices": []}"#);
    assert_eq!((s.id.as_str(), s.model.as_str()), ("c1", "m"));
    assert_eq!(s.metadata.system_fingerprint.as_deref(), Some("fp_2"));
    // `null` or missing: empty, and no fingerprint.
    let s = start_of(r#"{"id": null, "model": null, "system_fingerprint": null, "choices": []}"#);
    assert_eq!((s.id.as_str(), s.model.as_str()), ("", ""));
    assert_eq!(s.metadata.system_fingerprint, None);
    let s = start_of(r#"{"choices": []}"#);
    assert_eq!((s.id.as_str(), s.model.as_str()), ("", ""));
    // Not a string: a decode error, as before.
    let (items, _) = decode(&[b"data: {\"id\": 5, \"choices\": []}\n\n"]);
    assert!(
        matches!(&items[..], [Err(e)] if e.kind() == ErrorKind::Decode),
        "{items:?}"
    );
}
