//! Benchmarks of the OpenAI driver's CPU work: SSE stream decoding throughput over a
//! 100,000-chunk stream held in memory, and request encoding / response decoding per call.
//! Run with `cargo bench -p nova-llm-openai` (or `cargo xtask bench`); figures and method
//! are in BENCHMARKS.md.

// A benchmark panics on a broken fixture, like a test does.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nova_llm_core::{ChatRequest, Dialog, Tool};
use nova_llm_openai::internals::ChunkDecoder;
use nova_llm_openai::internals::{decode_chat, encode_chat};
use serde_json::json;

const CHUNKS: usize = 100_000;

/// A stream like OpenAI's: one content chunk per token-sized delta, then finish, usage, DONE.
fn stream_body(chunks: usize) -> Vec<u8> {
    let mut s = String::with_capacity(chunks * 160);
    for i in 0..chunks {
        let chunk = json!({
            "id": "chatcmpl-AbCdEf123", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0123456789",
            "choices": [{"index": 0, "delta": {"content": format!(" tok{}", i % 100)}, "logprobs": null, "finish_reason": null}]
        });
        s.push_str("data: ");
        s.push_str(&chunk.to_string());
        s.push_str("\n\n");
    }
    s.push_str("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
    s.push_str("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":100000,\"total_tokens\":100010}}\n\n");
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

/// Decodes the whole body, fed in network-sized pieces; returns the number of events.
fn decode_all(body: &[u8], piece: usize) -> usize {
    let mut d = ChunkDecoder::new(Default::default(), 1 << 20);
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
    let body = stream_body(CHUNKS);
    assert_eq!(decode_all(&body, 16 * 1024), CHUNKS + 3);
    let mut g = c.benchmark_group("sse_decode_100k_chunks");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("bytes", |b| {
        b.iter(|| decode_all(black_box(&body), 16 * 1024))
    });
    g.throughput(Throughput::Elements(CHUNKS as u64));
    g.bench_function("events", |b| {
        b.iter(|| decode_all(black_box(&body), 16 * 1024))
    });
    g.finish();
}

fn per_call(c: &mut Criterion) {
    let request = ChatRequest::new(
        Dialog::new()
            .system("You are a helpful assistant. Answer briefly.")
            .user("What is the weather in Paris today, and should I take an umbrella?"),
    )
    .model("gpt-4o-mini")
    .temperature(0.2)
    .max_tokens(256)
    .tool(Tool::new(
        "get_weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ));
    let response = json!({
        "id": "chatcmpl-AbCdEf123", "object": "chat.completion", "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_0123456789",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "It is 18°C and cloudy in Paris; light rain is expected this afternoon, so yes, take an umbrella.", "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 52, "completion_tokens": 24, "total_tokens": 76,
                  "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}
    })
    .to_string()
    .into_bytes();
    decode_chat(&response).unwrap();
    let mut g = c.benchmark_group("per_call");
    g.bench_function("encode_chat_request", |b| {
        b.iter(|| encode_chat(black_box(&request)).unwrap())
    });
    g.bench_function("decode_chat_response", |b| {
        b.iter(|| decode_chat(black_box(&response)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, sse, per_call);
criterion_main!(benches);
