//! Latency through a real Redis on loopback: a cache hit (the store alone, and a whole
//! call through a provider), and a call admitted by the Redis rate limiter. Needs
//! `redis-server` on the PATH (or `REDIS_URL`); says so and measures nothing otherwise.
//! Run with `cargo bench -p nova-llm-redis`; figures in BENCHMARKS.md.

// A benchmark panics on a broken fixture, like a test does.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use nova_llm_core::{ChatRequest, ChatResponse, Dialog, LlmDriver, Usage};
use nova_llm_mock::MockDriver;
use nova_llm_provider::cache::{CacheKey, CacheLayer, CacheStore, CachedReply};
use nova_llm_provider::rate_limit::RateLimitLayer;
use nova_llm_provider::{Operation, Provider};
use nova_llm_redis::testing::RedisServer;
use nova_llm_redis::{RedisCacheStore, RedisConnection, RedisWindows};

fn bench(c: &mut Criterion) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = rt
        .block_on(async { RedisConnection::with_timeout(server.url(), Duration::from_secs(1)) })
        .unwrap();
    let request = ChatRequest::new(
        Dialog::new()
            .system("You are a helpful assistant.")
            .user("What is the capital of France?"),
    )
    .model("gpt-4o-mini");

    let store = RedisCacheStore::new(conn.clone()).prefix("bench:cache:");
    let key = CacheKey::new("mock", Operation::Chat, &request);
    let reply =
        ChatResponse::from_text("The capital of France is Paris.").with_usage(Usage::new(20, 8));
    rt.block_on(store.put(&key, CachedReply::from_response(&reply), None))
        .unwrap();
    let mut g = c.benchmark_group("redis");
    g.bench_function("cache_hit/store_get", |b| {
        b.iter(|| rt.block_on(store.get(black_box(&key))).unwrap().unwrap())
    });

    let cached = Provider::builder(MockDriver::new())
        .cache(CacheLayer::new(store.clone()))
        .build();
    rt.block_on(cached.chat(request.clone())).unwrap();
    g.bench_function("cache_hit/provider_chat", |b| {
        b.iter(|| {
            rt.block_on(cached.chat(black_box(request.clone())))
                .unwrap()
        })
    });

    let mock = MockDriver::new();
    let limited = Provider::builder(mock.clone())
        .without("events")
        .metrics(false)
        .rate_limit(
            RateLimitLayer::new()
                .requests(1_000_000_000, Duration::from_secs(1))
                .backend(Arc::new(RedisWindows::new(conn).prefix("bench:limits:"))),
        )
        .build();
    g.bench_function("limiter/admitted_call", |b| {
        b.iter(|| {
            let r = rt
                .block_on(limited.chat(black_box(request.clone())))
                .unwrap();
            mock.reset();
            r
        })
    });
    g.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
