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
    OnFailure, RedisCacheStore, RedisConcurrencyLayer, RedisConnection, RedisTally, RedisWindows,
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

/// A provider over `mock` whose rate limits, failing fast, are counted in `windows`.
fn limited(mock: &MockDriver, limits: RateLimitLayer, windows: RedisWindows) -> Provider {
    Provider::builder(mock.clone())
        .rate_limit(limits.fail_fast().backend(Arc::new(windows)))
        .build()
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

    // The cap is on the stored JSON: an entry of exactly that many bytes is kept, one
    // byte more is not.
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let entry = CachedReply::from_response(&reply);
    store.put(&key("edge"), entry.clone(), None).await.unwrap();
    let len: usize = redis::cmd("STRLEN")
        .arg(format!("{}{}", prefix("store"), key("edge").as_str()))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(len > 0);
    for (cap, kept) in [(len, true), (len - 1, false)] {
        let capped = RedisCacheStore::new(conn(&server))
            .prefix(prefix(&format!("cap{cap}")))
            .max_entry_bytes(cap);
        capped.put(&key("edge"), entry.clone(), None).await.unwrap();
        assert_eq!(
            capped.get(&key("edge")).await.unwrap().is_some(),
            kept,
            "{cap}"
        );
    }
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
    let p = limited(
        &mock,
        RateLimitLayer::new().requests(3, Duration::from_secs(60)),
        windows,
    );
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
    let p = limited(
        &mock,
        RateLimitLayer::new().tokens_per_minute(1000),
        RedisWindows::new(conn(&server)).prefix(prefix("tokens")),
    );
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
            mock.push(nova_llm_mock::Reply::default_after(Duration::from_secs(
                600,
            )));
            mock.push(nova_llm_mock::Reply::default_after(Duration::from_secs(
                600,
            )));
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
    let secret = RedisConnection::new("redis://user:secret@127.0.0.1:6379/").unwrap();
    let shown = format!("{secret:?}");
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("127.0.0.1:6379/"), "{shown}");
    assert_eq!(secret.timeout(), Duration::from_millis(100));
    assert_eq!(unreachable().timeout(), Duration::from_millis(200));
    let _ = MockDriver::new().name();
}

// Redis's own clock decides the windows and leases below, so where these tests wait they
// wait in real time (tokio's paused clock cannot move Redis's, and would fire the
// connection's timeouts while Redis answers); they assert what happened, never how long
// it took.

/// A connection to a port where nothing listens.
fn unreachable() -> RedisConnection {
    RedisConnection::with_timeout("redis://127.0.0.1:1/", Duration::from_millis(200)).unwrap()
}

#[tokio::test]
async fn counting_in_this_process_gets_its_token_corrections_while_redis_is_down() {
    // No server needed: nothing listens on port 1.
    let mock = MockDriver::new();
    let p = limited(
        &mock,
        RateLimitLayer::new().tokens_per_minute(1000),
        RedisWindows::new(unreachable()).on_failure(OnFailure::Local),
    );
    let mut rx = p.subscribe();
    let request =
        || nova_llm_core::ChatRequest::new(nova_llm_core::Dialog::new().user("q")).max_tokens(400);
    // Each is estimated at 401 and corrected to 2 in the local windows: without the
    // corrections reaching them, the third would be refused.
    for _ in 0..5 {
        p.chat(request()).await.unwrap();
    }
    assert_eq!(mock.calls(), 5);
    let d = degraded(&rx.drain());
    assert_eq!(d.len(), 5, "{d:?}");
    assert!(
        d.iter()
            .all(|x| *x == ("rate limiter".into(), "counted in this process".into())),
        "{d:?}"
    );
}

#[tokio::test]
async fn the_token_window_refuses_what_would_not_fit_and_says_when_it_frees() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mock = MockDriver::new();
    let limits = RateLimitLayer::new().tokens_per_minute(1000).fail_fast();
    let request = |max: u32| {
        nova_llm_core::ChatRequest::new(nova_llm_core::Dialog::new().user("q")).max_tokens(max)
    };
    let estimate = |max: u32| limits.estimate_tokens(&request(max));
    let p = limited(
        &mock,
        limits.clone(),
        RedisWindows::new(conn(&server)).prefix(prefix("token-window")),
    );
    // Corrected to what the mock reports once done.
    let u = p.chat(request(600)).await.unwrap().usage;
    let used = u.input_tokens + u.output_tokens;
    assert!(used < 10, "{used}");
    // Fits only because the first was corrected (601 + 901 would not).
    assert!(estimate(600) + estimate(900) > 1000);
    assert!(2 * used + estimate(900) <= 1000);
    p.chat(request(900)).await.unwrap();
    // The largest request that still fits is admitted; one token more is refused, with a
    // wait until the oldest counted tokens leave the minute.
    let room = 1000 - 2 * used;
    let max = (1..=1000).rev().find(|m| estimate(*m) <= room).unwrap();
    assert_eq!(
        estimate(max),
        room,
        "the estimate moves one token at a time"
    );
    let e = p.chat(request(max + 1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    let wait = e.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(55) && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    p.chat(request(max)).await.unwrap();
    assert_eq!(mock.calls(), 3);

    // Until it is corrected, a call counts at its estimate: a stream still open holds
    // its 601 tokens, so 501 more do not fit.
    let held = limited(
        &mock,
        limits.clone(),
        RedisWindows::new(conn(&server)).prefix(prefix("token-held")),
    );
    let stream = held.chat_stream(request(600)).await.unwrap();
    assert!(estimate(600) + estimate(500) > 1000);
    let e = held.chat(request(500)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    drop(stream);
}

#[tokio::test]
async fn the_limiters_keys_expire_with_their_windows() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let pre = prefix("expiry");
    let p = Provider::builder(MockDriver::new())
        .rate_limit(
            RateLimitLayer::new()
                .requests(5, Duration::from_secs(7))
                .tokens_per_minute(10_000)
                .backend(Arc::new(
                    RedisWindows::new(conn(&server)).prefix(pre.clone()),
                )),
        )
        .layer(
            RedisConcurrencyLayer::new(conn(&server), format!("{pre}leases"), 2)
                .lease(Duration::from_secs(9)),
        )
        .build();
    // A stream holds its lease until it is dropped.
    let stream = p
        .chat_stream(nova_llm_core::ChatRequest::new(
            nova_llm_core::Dialog::new().user("q"),
        ))
        .await
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{pre}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    let mut ttls = Vec::new();
    for k in &keys {
        let ms: i64 = redis::cmd("PTTL").arg(k).query_async(&mut c).await.unwrap();
        ttls.push((k.strip_prefix(&pre).unwrap().to_owned(), ms));
    }
    ttls.sort();
    let ttl = |suffix: &str| {
        ttls.iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map(|(_, ms)| *ms)
            .unwrap_or_else(|| panic!("no key ending in {suffix}: {ttls:?}"))
    };
    // Each window's set lives as long as its window; the lease set as long as a lease;
    // only the ticket counter stays (one small key).
    assert!((6_000..=7_000).contains(&ttl(":requests")), "{ttls:?}");
    assert!((59_000..=60_000).contains(&ttl(":tokens")), "{ttls:?}");
    assert!((8_000..=9_000).contains(&ttl("leases")), "{ttls:?}");
    assert_eq!(ttl("tickets"), -1, "{ttls:?}");
    assert_eq!(ttls.len(), 4, "{ttls:?}");
    drop(stream);
}

#[tokio::test]
async fn leases_are_renewed_while_a_call_lasts_and_given_back_when_it_ends() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = format!("{}leases", prefix("renewal"));
    let probe = |max_wait: Duration| {
        Provider::builder(MockDriver::new())
            .layer(RedisConcurrencyLayer::new(conn(&server), key.clone(), 1).max_wait(max_wait))
            .build()
    };
    // Holds the one lease for as long as its call lasts (until aborted).
    let hold = |lease: Duration| {
        let mock = MockDriver::new();
        mock.push(nova_llm_mock::Reply::default_after(Duration::from_secs(
            600,
        )));
        let p = Provider::builder(mock.clone())
            .layer(RedisConcurrencyLayer::new(conn(&server), key.clone(), 1).lease(lease))
            .build();
        let task = tokio::spawn(async move { p.prompt("held").await });
        (mock, task)
    };
    let started = |mock: MockDriver| async move {
        // The driver sees the call only once the lease is taken.
        for _ in 0..2000 {
            if mock.calls() > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the holder never got its lease");
    };

    // A lease of 600 ms, renewed every 200 ms: still held after 1.5 s.
    let (mock, holder) = hold(Duration::from_millis(600));
    started(mock).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let e = probe(Duration::ZERO).prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(
        e.message()
            .contains("1 calls are already in flight across processes"),
        "{e}"
    );
    // The held lease has at least 400 ms left (renewed every 200 ms); a caller is told to
    // look again in at most 100 ms, since leases can end early.
    assert_eq!(e.retry_after(), Some(Duration::from_millis(100)));
    holder.abort();
    let _ = holder.await;

    // A lease of 30 s: once its call ends (here: is dropped), the lease is given back at
    // once rather than left to expire.
    let (mock, holder) = hold(Duration::from_secs(30));
    started(mock).await;
    assert!(probe(Duration::ZERO).prompt("q").await.is_err());
    holder.abort();
    let _ = holder.await;
    let p = probe(Duration::from_secs(5));
    assert_eq!(p.layers().last(), Some(&RedisConcurrencyLayer::NAME));
    assert_eq!(RedisConcurrencyLayer::NAME, "concurrency");
    assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
}

#[tokio::test]
async fn expired_leases_do_not_count_and_are_not_brought_back() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let key = format!("{}leases", prefix("expired"));
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let card = |mut c: redis::aio::MultiplexedConnection, key: String| async move {
        redis::cmd("ZCARD")
            .arg(key)
            .query_async::<u64>(&mut c)
            .await
            .unwrap()
    };
    // A lease that ran out a second ago (its process died), in a set that still lives.
    let now = redis_now(&mut c).await;
    redis::cmd("ZADD")
        .arg(&key)
        .arg(now - 1000)
        .arg("dead")
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let layer = RedisConcurrencyLayer::new(conn(&server), key.clone(), 1)
        .lease(Duration::from_millis(600))
        .max_wait(Duration::ZERO);
    let mock = MockDriver::new();
    mock.push(nova_llm_mock::Reply::default_after(Duration::from_secs(
        600,
    )));
    let p = Provider::builder(mock.clone()).layer(layer).build();
    let holder = tokio::spawn(async move { p.prompt("held").await });
    while mock.calls() == 0 && !holder.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!holder.is_finished(), "{:?}", holder.await);
    assert_eq!(
        card(c.clone(), key.clone()).await,
        1,
        "the dead lease is gone"
    );

    // A live lease that vanished (it expired while its renewal was late, and another
    // process cleared it): renewals extend only a lease that is still there, so a slot
    // someone else may have taken is not taken twice.
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await; // renewals every 200 ms
    assert_eq!(card(c.clone(), key.clone()).await, 0);
    holder.abort();
    let _ = holder.await;
}

#[tokio::test]
async fn leases_follow_their_policy_when_redis_is_unreachable() {
    let build = |policy: OnFailure| {
        let mock = MockDriver::new();
        let p = Provider::builder(mock.clone())
            .layer(RedisConcurrencyLayer::new(unreachable(), "k", 1).on_failure(policy))
            .build();
        (mock, p)
    };
    let (mock, closed) = build(OnFailure::FailClosed);
    let mut rx = closed.subscribe();
    let e = closed.prompt("q").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(
        e.message()
            .starts_with("the shared concurrency limit is unavailable: redis"),
        "{e}"
    );
    assert_eq!(mock.calls(), 0);
    assert_eq!(
        degraded(&rx.drain()),
        [("concurrency leases".into(), "refused (fail closed)".into())]
    );
    for policy in [OnFailure::FailOpen, OnFailure::Local] {
        let (mock, p) = build(policy);
        let mut rx = p.subscribe();
        assert_eq!(p.prompt("q").await.unwrap(), "f(q)");
        assert_eq!(mock.calls(), 1);
        assert_eq!(
            degraded(&rx.drain()),
            [(
                "concurrency leases".into(),
                "admitted without a lease".into()
            )]
        );
    }
}

/// Redis's clock, in ms.
async fn redis_now(c: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(c).await.unwrap();
    s * 1000 + us / 1000
}

#[tokio::test]
async fn what_left_the_window_no_longer_counts_and_a_wait_ends_when_enough_has_left() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let client = redis::Client::open(server.url()).unwrap();
    let c = client.get_multiplexed_async_connection().await.unwrap();
    // Earlier admissions, written straight into the sets (ms before now; members are
    // `ticket` for requests, `ticket:tokens` for tokens), so nothing has to wait a minute.
    let seed = |key: String, members: Vec<(i64, &'static str)>| {
        let mut c = c.clone();
        async move {
            let now = redis_now(&mut c).await;
            for (ago, member) in members {
                redis::cmd("ZADD")
                    .arg(&key)
                    .arg(now - ago)
                    .arg(member)
                    .query_async::<()>(&mut c)
                    .await
                    .unwrap();
            }
        }
    };
    let mock = MockDriver::new();
    let provider = |pre: &str, limits: RateLimitLayer| {
        limited(
            &mock,
            limits,
            RedisWindows::new(conn(&server)).prefix(pre.to_owned()),
        )
    };
    // A refusal's wait, in ms, and that it is a rate limit.
    let wait_ms = |e: nova_llm_core::LlmError| {
        assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
        e.retry_after().unwrap().as_millis()
    };

    // Requests: 3 a minute. Three admissions left the window, two are in it (55 s and
    // 50 s ago): one call fits. The next waits until the oldest of the last three leaves
    // (about 5 s from now); with a limit of 2 on the same window, the oldest of the last
    // two (about 10 s).
    let pre = prefix("slide-requests");
    seed(
        format!("{pre}:requests"),
        vec![
            (61_000, "1"),
            (60_500, "2"),
            (60_001, "3"),
            (55_000, "4"),
            (50_000, "5"),
        ],
    )
    .await;
    let three = provider(
        &pre,
        RateLimitLayer::new().requests(3, Duration::from_secs(60)),
    );
    three.prompt("q").await.unwrap();
    // What left the window also left the set: it does not grow with every call.
    let n: u64 = redis::cmd("ZCARD")
        .arg(format!("{pre}:requests"))
        .query_async(&mut c.clone())
        .await
        .unwrap();
    assert_eq!(n, 3);
    let wait = wait_ms(three.prompt("q").await.unwrap_err());
    assert!(wait > 2_000 && wait <= 5_001, "{wait}");
    let two = provider(
        &pre,
        RateLimitLayer::new().requests(2, Duration::from_secs(60)),
    );
    let wait = wait_ms(two.prompt("q").await.unwrap_err());
    assert!(wait > 7_000 && wait <= 10_001, "{wait}");

    // Tokens: 1000 a minute. 600 left the window, 300 (55 s ago) are in it: a call of
    // about 400 fits. Then one that needs exactly what is left once those 300 leave
    // waits for them (about 5 s), not for the call just made (a minute).
    let pre = prefix("slide-tokens");
    seed(
        format!("{pre}:tokens"),
        vec![(61_000, "1:600"), (55_000, "2:300")],
    )
    .await;
    let limits = RateLimitLayer::new().tokens_per_minute(1000);
    let request = |max: u32| {
        nova_llm_core::ChatRequest::new(nova_llm_core::Dialog::new().user("q")).max_tokens(max)
    };
    let p = provider(&pre, limits.clone());
    assert!(600 + 300 + limits.estimate_tokens(&request(400)) > 1000);
    let u = p.chat(request(400)).await.unwrap().usage;
    let used = u.input_tokens + u.output_tokens;
    let max = (1..=1000)
        .rev()
        .find(|m| limits.estimate_tokens(&request(*m)) <= 1000 - used)
        .unwrap();
    assert_eq!(limits.estimate_tokens(&request(max)), 1000 - used);
    let wait = wait_ms(p.chat(request(max)).await.unwrap_err());
    assert!(wait > 2_000 && wait <= 5_001, "{wait}");
    assert_eq!(mock.calls(), 2);
}

#[tokio::test]
async fn a_tally_adds_up_across_connections_per_name_and_period_and_expires() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let pre = prefix("tally");
    // Two "processes": two connections, one set of sums.
    let a = RedisTally::new(conn(&server)).prefix(pre.clone());
    let b = RedisTally::new(conn(&server)).prefix(pre.clone());
    assert_eq!(a.get("team", 7).await.unwrap(), 0.0);
    assert!((a.add("team", 7, 3600, 0.25).await.unwrap() - 0.25).abs() < 1e-9);
    assert!((b.add("team", 7, 3600, 0.5).await.unwrap() - 0.75).abs() < 1e-9);
    assert!((a.get("team", 7).await.unwrap() - 0.75).abs() < 1e-9);
    // Another period and another name start from nothing.
    assert_eq!(b.get("team", 8).await.unwrap(), 0.0);
    assert_eq!(b.get("other", 7).await.unwrap(), 0.0);
    // A counter lives two periods after its last addition.
    let client = redis::Client::open(server.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{pre}team:7"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((7000..=7200).contains(&ttl), "{ttl}");
}
