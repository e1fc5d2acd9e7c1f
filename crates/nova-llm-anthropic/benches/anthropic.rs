//! Benchmarks of the Anthropic driver's CPU work: decoding a realistic Messages API stream
//! (100,000 text deltas held in memory, named events, pings), and request encoding /
//! response decoding per call. Run with `cargo bench -p nova-llm-anthropic` (or
//! `cargo xtask bench`); figures and method are in BENCHMARKS.md, beside the OpenAI
//! decoder's on the same machine.

// A benchmark panics on a broken fixture, like a test does.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nova_llm_anthropic::internals::{EventDecoder, decode_message, encode_messages};
use nova_llm_core::{ChatRequest, Dialog, Tool};
use serde_json::json;

const DELTAS: usize = 100_000;

fn event(name: &str, data: &serde_json::Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A stream as the Messages API sends it: the message, a text block of one delta per
/// token-sized piece (a `ping` every 50), its stop, the final usage, `message_stop`.
fn stream_body(deltas: usize) -> Vec<u8> {
    let mut s = String::with_capacity(deltas * 160);
    s.push_str(&event("message_start", &json!({"type": "message_start", "message": {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": "claude-sonnet-4-6", "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 2}}})));
    s.push_str(&event(
        "content_block_start",
        &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ));
    for i in 0..deltas {
        if i % 50 == 0 {
            s.push_str(&event("ping", &json!({"type": "ping"})));
        }
        s.push_str(&event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": format!(" tok{}", i % 100)}}),
        ));
    }
    s.push_str(&event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    s.push_str(&event("message_delta", &json!({"type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 100_000}})));
    s.push_str(&event("message_stop", &json!({"type": "message_stop"})));
    s.into_bytes()
}

/// Decodes the whole body, fed in network-sized pieces; returns the number of events.
fn decode_all(body: &[u8], piece: usize) -> usize {
    let mut d = EventDecoder::new(Default::default(), 1 << 20);
    let mut out = VecDeque::new();
    let mut events = 0;
    for p in body.chunks(piece) {
        d.feed(p, &mut out);
        events += out.len();
        out.clear();
    }
    d.end(&mut out);
    events + out.len()
}

fn sse(c: &mut Criterion) {
    let body = stream_body(DELTAS);
    // Start, the deltas, usage, finish.
    assert_eq!(decode_all(&body, 16 * 1024), DELTAS + 3);
    let mut g = c.benchmark_group("messages_decode_100k_deltas");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("bytes", |b| {
        b.iter(|| decode_all(black_box(&body), 16 * 1024))
    });
    g.throughput(Throughput::Elements(DELTAS as u64));
    g.bench_function("events", |b| {
        b.iter(|| decode_all(black_box(&body), 16 * 1024))
    });
    g.finish();
}

fn per_call(c: &mut Criterion) {
    // The request of the OpenAI benchmark, so the two drivers' figures compare.
    let request = ChatRequest::new(
        Dialog::new()
            .system("You are a helpful assistant. Answer briefly.")
            .user("What is the weather in Paris today, and should I take an umbrella?"),
    )
    .model("claude-haiku-4-5")
    .temperature(0.2)
    .max_tokens(256)
    .tool(Tool::new(
        "get_weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ));
    let response = json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "It is 18°C and cloudy in Paris; light rain is expected this afternoon, so yes, take an umbrella."}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 52, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": 24, "service_tier": "standard"}
    })
    .to_string()
    .into_bytes();
    decode_message(&response).unwrap();
    let mut g = c.benchmark_group("per_call");
    g.bench_function("encode_messages_request", |b| {
        b.iter(|| encode_messages(black_box(&request)).unwrap())
    });
    g.bench_function("decode_message_response", |b| {
        b.iter(|| decode_message(black_box(&response)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, sse, per_call);
criterion_main!(benches);
