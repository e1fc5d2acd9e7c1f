//! Against a real `redis-server`: the cache store, the windows, the leases, several OS
//! processes sharing them, and Redis stopped in the middle of a run.
//!
//! The multi-process tests re-run this test binary with `NOVA_REDIS_CHILD` set: the
//! `child_entry` test then plays the child's part and prints `RESULT:` lines.

// A test panics on what it does not expect, helpers included.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{ChatResponse, ErrorKind, LlmDriver, Usage};
use nova_llm_mock::MockDriver;
use nova_llm_provider::cache::{CacheKey, CacheLayer, CacheStore, CachedReply};
use nova_llm_provider::rate_limit::{RateLimitBackend, RateLimitLayer};
use nova_llm_provider::{Event, EventKind, Operation, Provider};
use nova_llm_redis::testing::RedisServer;
use nova_llm_redis::{
    OnFailure, RedisCacheStore, RedisConcurrencyLayer, RedisConnection, RedisWindows,
};

fn conn(server: &RedisServer) -> RedisConnection {
    RedisConnection::with_timeout(server.url(), Duration::from_millis(500)).unwrap()
}

/// A prefix no other test uses.
fn prefix(name: &str) -> String {
    format!("test:{}:{name}:", std::process::id())
}

fn key(text: &str) -> CacheKey {
    CacheKey::new(
        "mock",
        Operation::Chat,
        &nova_llm_core::ChatRequest::new(nova_llm_core::Dialog::new().user(text)),
    )
}

fn degraded(events: &[Event]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::BackendUnavailable {
                backend, fallback, ..
            } => Some((backend.clone(), fallback.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn the_store_keeps_replies_and_streams_with_ttls_and_a_size_cap() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisCacheStore::new(conn(&server)).prefix(prefix("store"));
    let reply = ChatResponse::from_text("stored").with_usage(Usage::new(3, 1));
    store
        .put(&key("a"), CachedReply::from_response(&reply), None)
        .await
        .unwrap();
    let back = store.get(&key("a")).await.unwrap().unwrap();
    assert_eq!(back.to_response().unwrap(), reply);
    assert_eq!(store.get(&key("b")).await.unwrap(), None);

    // A TTL from the call.
    store
        .put(
            &key("short"),
            CachedReply::from_response(&reply),
            Some(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    assert!(store.get(&key("short")).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(store.get(&key("short")).await.unwrap(), None);

    // Too big: not stored. Removed: gone.
    let small = RedisCacheStore::new(conn(&server))
        .prefix(prefix("store"))
        .max_entry_bytes(100);
    let big = ChatResponse::from_text("x".repeat(1000));
    small
        .put(&key("big"), CachedReply::from_response(&big), None)
        .await
        .unwrap();
    assert_eq!(small.get(&key("big")).await.unwrap(), None);
    store.remove(&key("a")).await.unwrap();
    assert_eq!(store.get(&key("a")).await.unwrap(), None);
}

#[tokio::test]
async fn another_format_reads_as_a_miss() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let p = prefix("format");
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let k = format!("{p}{}", key("q").as_str());
    redis::cmd("SET")
        .arg(&k)
        .arg(r#"{"format":2,"events":[]}"#)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let store = RedisCacheStore::new(conn(&server)).prefix(p.clone());
    assert_eq!(store.get(&key("q")).await.unwrap(), None);
    redis::cmd("SET")
        .arg(&k)
        .arg("not json")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    assert_eq!(store.get(&key("q")).await.unwrap(), None);
}

#[tokio::test]
async fn a_provider_caches_through_redis_streams_included() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mock = MockDriver::new();
    let p = Provider::builder(mock.clone())
        .cache(CacheLayer::new(
            RedisCacheStore::new(conn(&server)).prefix(prefix("provider")),
        ))
        .build();
    let first = p.prompt("hello").await.unwrap();
    let again = p.prompt("hello").await.unwrap();
    assert_eq!(first, again);
    let streamed = nova_llm_core::collect_stream(
        p.chat_stream(nova_llm_core::ChatRequest::new(
            nova_llm_core::Dialog::new().user("hello"),
        ))
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(streamed.text(), "f(hello)");
    assert_eq!(mock.calls(), 1);
}

#[tokio::test]
async fn a_streamed_reply_is_stored_from_the_shared_copy_and_served_to_plain_calls() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mock = MockDriver::new();
    let store = RedisCacheStore::new(conn(&server)).prefix(prefix("shared"));
    let p = Provider::builder(mock.clone())
        .cache(CacheLayer::new(store.clone()))
        .build();
    let request = nova_llm_core::ChatRequest::new(nova_llm_core::Dialog::new().user("hi"));
    // The cache hands a streamed reply over as an `Arc` (`put_shared`): encoded from it.
    let streamed = nova_llm_core::collect_stream(p.chat_stream(request.clone()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed.text(), "f(hi)");
    assert_eq!(p.chat(request).await.unwrap().text(), "f(hi)");
    assert_eq!(mock.calls(), 1, "the plain call was a hit");
    // And directly: what `put_shared` stored is what `get` gives back.
    let reply = Arc::new(CachedReply::from_response(&streamed));
    let k = CacheKey::new(
        "direct",
        Operation::Chat,
        &nova_llm_core::ChatRequest::default(),
    );
    store
        .put_shared(&k, Arc::clone(&reply), None)
        .await
        .unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_ref(), Some(&*reply));
}

#[tokio::test]
async fn the_windows_hold_across_scopes_and_tokens_are_corrected() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mock = MockDriver::new();
    let windows = RedisWindows::new(conn(&server)).prefix(prefix("windows"));
    let p = Provider::builder(mock.clone())
        .rate_limit(
            RateLimitLayer::new()
                .requests(3, Duration::from_secs(60))
                .fail_fast()
                .backend(Arc::new(windows.clone())),
        )
        .build();
    for _ in 0..3 {
        p.prompt("q").await.unwrap();
    }
    let e = p.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    let wait = e.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );

    // Tokens: 1000 a minute; each call is estimated at 1 + 400 and corrected to 2.
    let p = Provider::builder(mock.clone())
        .rate_limit(
            RateLimitLayer::new()
                .tokens_per_minute(1000)
                .fail_fast()
                .backend(Arc::new(
                    RedisWindows::new(conn(&server)).prefix(prefix("tokens")),
                )),
        )
        .build();
    let request =
        || nova_llm_core::ChatRequest::new(nova_llm_core::Dialog::new().user("q")).max_tokens(400);
    for _ in 0..5 {
        p.chat(request()).await.unwrap();
    }
    // Without the corrections, the third call would have been refused.
    assert_eq!(mock.calls(), 3 + 5);
}

#[tokio::test]
async fn redis_stopped_mid_run_degrades_and_recovers() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    if !server.is_owned() {
        return; // a REDIS_URL server cannot be stopped from here
    }
    let c = RedisConnection::with_timeout(server.url(), Duration::from_millis(200)).unwrap();
    let mock = MockDriver::new();
    let build = |policy: OnFailure| {
        Provider::builder(mock.clone())
            .cache(CacheLayer::new(
                RedisCacheStore::new(c.clone()).prefix(prefix("fault")),
            ))
            .rate_limit(
                RateLimitLayer::new()
                    .requests_per_minute(1000)
                    .fail_fast()
                    .backend(Arc::new(
                        RedisWindows::new(c.clone())
                            .prefix(prefix("fault"))
                            .on_failure(policy),
                    )),
            )
            .build()
    };
    let open = build(OnFailure::FailOpen);
    let closed = build(OnFailure::FailClosed);
    let local = build(OnFailure::Local);
    open.prompt("warm").await.unwrap();

    server.stop();
    let mut rx = open.subscribe();
    assert_eq!(open.prompt("during").await.unwrap(), "f(during)");
    let d = degraded(&rx.drain());
    assert!(
        d.contains(&("cache store".into(), "treated as a miss".into())),
        "{d:?}"
    );
    assert!(
        d.contains(&("rate limiter".into(), "admitted (fail open)".into())),
        "{d:?}"
    );

    let e = closed.prompt("during").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.message().contains("unavailable"), "{e}");

    let mut rx = local.subscribe();
    local.prompt("during").await.unwrap();
    assert!(
        degraded(&rx.drain()).contains(&("rate limiter".into(), "counted in this process".into()))
    );

    // Back up: the connection reconnects by itself; no more degradation.
    assert!(server.restart());
    let mut recovered = false;
    for _ in 0..50 {
        let mut rx = open.subscribe();
        open.prompt("after").await.unwrap();
        if degraded(&rx.drain()).is_empty() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the connection never came back");
    // And the cache works again: stored, then a hit.
    let before = mock.calls();
    open.prompt("after").await.unwrap();
    assert_eq!(mock.calls(), before);
}

/// Runs this test binary as a child playing `role`.
async fn child(role: &str, url: &str, scope: &str) -> tokio::process::Child {
    tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env("NOVA_REDIS_CHILD", role)
        .env("NOVA_REDIS_URL", url)
        .env("NOVA_REDIS_SCOPE", scope)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn results(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        // libtest may print `test child_entry ... ` on the same line first.
        .filter_map(|l| l.find("RESULT:").map(|i| l[i + 7..].to_owned()))
        .collect()
}

#[tokio::test]
async fn processes_share_one_limit_one_cache_and_one_set_of_leases() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let scope = prefix("multi");

    // Four processes, 10 attempts each, one limit of 10 per minute: exactly 10 admitted.
    let mut kids = Vec::new();
    for _ in 0..4 {
        kids.push(child("admit", server.url(), &scope).await);
    }
    let mut all = Vec::new();
    for k in kids {
        let out = k.wait_with_output().await.unwrap();
        all.extend(results(&out.stdout));
    }
    let admitted = all.iter().filter(|r| *r == "admitted").count();
    assert_eq!(admitted, 10, "{all:?}");

    // Process A stores a reply, process B gets it.
    let a = child("store", server.url(), &scope)
        .await
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(results(&a.stdout), ["stored"]);
    let b = child("fetch", server.url(), &scope)
        .await
        .wait_with_output()
        .await
        .unwrap();
    assert_eq!(results(&b.stdout), ["hit:from process A"]);

    // A process holding both leases dies: they are free again after the lease time.
    let mut holder = child("hold", server.url(), &scope).await;
    let mut stdout = holder.stdout.take().unwrap();
    let mut seen = String::new();
    while !seen.contains("RESULT:holding") {
        let mut buf = [0_u8; 256];
        let n = tokio::io::AsyncReadExt::read(&mut stdout, &mut buf)
            .await
            .unwrap();
        assert!(n > 0, "the holder ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let layer = leases(&server, &scope).max_wait(Duration::ZERO);
    let p = Provider::builder(MockDriver::new()).layer(layer).build();
    let e = p.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    holder.kill().await.unwrap();
    let p = Provider::builder(MockDriver::new())
        .layer(leases(&server, &scope).max_wait(Duration::from_secs(5)))
        .build();
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
}

fn leases(server: &RedisServer, scope: &str) -> RedisConcurrencyLayer {
    RedisConcurrencyLayer::new(conn(server), format!("{scope}leases"), 2)
        .lease(Duration::from_millis(600))
}

/// The child's part (a no-op unless `NOVA_REDIS_CHILD` is set).
#[tokio::test]
async fn child_entry() {
    let Ok(role) = std::env::var("NOVA_REDIS_CHILD") else {
        return;
    };
    let url = std::env::var("NOVA_REDIS_URL").unwrap();
    let scope = std::env::var("NOVA_REDIS_SCOPE").unwrap();
    let c = RedisConnection::with_timeout(&url, Duration::from_millis(500)).unwrap();
    match role.as_str() {
        "admit" => {
            let windows = RedisWindows::new(c)
                .prefix(scope)
                .on_failure(OnFailure::FailClosed);
            let p = Provider::builder(MockDriver::new())
                .rate_limit(
                    RateLimitLayer::new()
                        .requests_per_minute(10)
                        .fail_fast()
                        .backend(Arc::new(windows)),
                )
                .build();
            for _ in 0..10 {
                match p.prompt("q").await {
                    Ok(_) => println!("RESULT:admitted"),
                    Err(e)
                        if e.kind() == ErrorKind::RateLimited
                            && !e.message().contains("unavailable") =>
                    {
                        println!("RESULT:refused");
                    }
                    Err(e) => println!("RESULT:error {e}"),
                }
            }
        }
        "store" => {
            let store = RedisCacheStore::new(c).prefix(scope);
            let reply = ChatResponse::from_text("from process A");
            store
                .put(&key("shared"), CachedReply::from_response(&reply), None)
                .await
                .unwrap();
            println!("RESULT:stored");
        }
        "fetch" => {
            let store = RedisCacheStore::new(c).prefix(scope);
            match store.get(&key("shared")).await.unwrap() {
                Some(r) => println!("RESULT:hit:{}", r.to_response().unwrap().text()),
                None => println!("RESULT:miss"),
            }
        }
        "hold" => {
            let layer = RedisConcurrencyLayer::new(c, format!("{scope}leases"), 2)
                .lease(Duration::from_millis(600));
            let mock = MockDriver::new();
            mock.push(nova_llm_mock::Reply::delay(Duration::from_secs(600)));
            mock.push(nova_llm_mock::Reply::delay(Duration::from_secs(600)));
            let p = Provider::builder(mock).layer(layer).build();
            let a = tokio::spawn({
                let p = p.clone();
                async move { p.prompt("a").await }
            });
            let b = tokio::spawn({
                let p = p.clone();
                async move { p.prompt("b").await }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            println!("RESULT:holding");
            let _ = (a.await, b.await);
        }
        other => println!("RESULT:unknown role {other}"),
    }
}

#[tokio::test]
async fn backends_are_trait_objects() {
    fn store(_: Arc<dyn CacheStore>) {}
    fn limits(_: Arc<dyn RateLimitBackend>) {}
    let c = RedisConnection::new("redis://127.0.0.1:1/").unwrap();
    store(Arc::new(RedisCacheStore::new(c.clone())));
    limits(Arc::new(RedisWindows::new(c)));
    assert_eq!(
        RedisConnection::new("not a url").unwrap_err().kind(),
        ErrorKind::InvalidRequest
    );
    let shown = format!(
        "{:?}",
        RedisConnection::new("redis://user:secret@127.0.0.1:6379/").unwrap()
    );
    assert!(!shown.contains("secret"), "{shown}");
    let _ = MockDriver::new().name();
}
