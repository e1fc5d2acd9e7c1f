//! Benchmarks of the Gemini driver's CPU work: decoding a realistic
//! `streamGenerateContent?alt=sse` stream (100,000 text chunks held in memory, each a whole
//! response with the cumulative usage, as the API sends them), and request encoding /
//! response decoding per call. Run with `cargo bench -p nova-llm-gemini`; figures and
//! method are in BENCHMARKS.md, beside the OpenAI decoder's on the same machine.

// A benchmark panics on a broken fixture, like a test does.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nova_llm_core::{ChatRequest, Dialog, Tool};
use nova_llm_gemini::internals::{ChunkDecoder, Decoder, decode_generate, encode_generate};
use serde_json::json;

const CHUNKS: usize = 100_000;

/// A stream like Gemini's: one response per token-sized piece of text, each with the
/// usage so far, the last with the finish reason.
fn stream_body(chunks: usize) -> Vec<u8> {
    let mut s = String::with_capacity(chunks * 260);
    for i in 0..chunks {
        let mut chunk = json!({
            "candidates": [{"content": {"parts": [{"text": format!(" tok{}", i % 100)}], "role": "model"}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 472, "candidatesTokenCount": i + 1, "totalTokenCount": 473 + i},
            "modelVersion": "gemini-2.5-flash", "responseId": "mcPKaYjfKvG0qtsPsvqc0Qc"
        });
        if i + 1 == chunks {
            chunk["candidates"][0]["finishReason"] = json!("STOP");
        }
        s.push_str("data: ");
        s.push_str(&chunk.to_string());
        s.push_str("\r\n\r\n");
    }
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
    // Start, the deltas, usage, finish.
    assert_eq!(decode_all(&body, 16 * 1024), CHUNKS + 3);
    let mut g = c.benchmark_group("gemini_decode_100k_chunks");
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
    // The request of the OpenAI benchmark, so the drivers' figures compare.
    let request = ChatRequest::new(
        Dialog::new()
            .system("You are a helpful assistant. Answer briefly.")
            .user("What is the weather in Paris today, and should I take an umbrella?"),
    )
    .model("gemini-2.5-flash")
    .temperature(0.2)
    .max_tokens(256)
    .tool(Tool::new(
        "get_weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    ));
    let response = json!({
        "candidates": [{"content": {"parts": [{"text": "It is 18°C and cloudy in Paris; light rain is expected this afternoon, so yes, take an umbrella."}], "role": "model"},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 52, "candidatesTokenCount": 24, "totalTokenCount": 76},
        "modelVersion": "gemini-2.5-flash", "responseId": "mcPKaYjfKvG0qtsPsvqc0Qc"
    })
    .to_string()
    .into_bytes();
    decode_generate(&response).unwrap();
    let mut g = c.benchmark_group("per_call");
    g.bench_function("encode_generate_request", |b| {
        b.iter(|| encode_generate(black_box(&request)).unwrap())
    });
    g.bench_function("decode_generate_response", |b| {
        b.iter(|| decode_generate(black_box(&response)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, sse, per_call);
criterion_main!(benches);
