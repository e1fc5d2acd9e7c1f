//! End-to-end load benchmark, all clients in the same run against the same loopback test
//! server with the same requests: the bare OpenAI driver, the provider over it (events,
//! metrics, a rate limiter that never limits, a cache on its miss path), and async-openai
//! as the reference.
//!
//! The parent process runs the server; each (client, workload) runs in a child process of
//! its own, so its peak RSS and its CPU time (per call, or per event for streams: what a
//! client costs when the service, not the client, sets the pace) are its own. Run with `cargo xtask bench` (or
//! `cargo run --release --manifest-path tests/load/Cargo.toml`).

// A benchmark tool: it prints its report and stops at the first broken fixture.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use nova_llm_core::{ChatRequest, Dialog, LlmDriver, StreamEvent, next_event};
use nova_llm_openai::OpenAiDriver;
use nova_llm_provider::Provider;
use nova_llm_provider::cache::CacheLayer;
use nova_llm_provider::rate_limit::RateLimitLayer;
use nova_llm_tests::server::TestServer;
use serde_json::{Value, json};

const CLIENTS: [&str; 3] = ["driver", "provider", "async-openai"];

/// (name, requests, in flight, chunks per request, streamed).
const WORKLOADS: [(&str, usize, usize, usize, bool); 4] = [
    ("2,000 sequential chats", 2_000, 1, 3, false),
    ("20,000 chats, 64 in flight", 20_000, 64, 3, false),
    ("1 stream of 100,000 chunks", 1, 1, 100_000, true),
    (
        "500 streams of 200 chunks, 32 in flight",
        500,
        32,
        200,
        true,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let client = args[2].clone();
        let workload: usize = args[3].parse().unwrap();
        let base = args[4].clone();
        let result = tokio::runtime::Builder::new_multi_thread()
            // `NOVA_LOAD_WORKERS` changes the client's worker threads (default 2).
            .worker_threads(
                std::env::var("NOVA_LOAD_WORKERS")
                    .ok()
                    .and_then(|w| w.parse().ok())
                    .unwrap_or(2),
            )
            .enable_all()
            .build()
            .unwrap()
            .block_on(child(&client, workload, &base));
        println!("{result}");
        return;
    }
    parent();
}

fn parent() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(TestServer::start()).unwrap();
    let base = server.base_url();
    let exe = std::env::current_exe().unwrap();
    // `NOVA_LOAD_ONLY=client:workload[,client:workload…]` runs only those pairs.
    let only = std::env::var("NOVA_LOAD_ONLY").ok();
    // Several rounds, the clients in a rotating order, and for each pair the run with the
    // median throughput: a shared 2-vCPU machine moves single runs by ±20 %.
    let rounds: usize = std::env::var("NOVA_LOAD_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let mut runs: Vec<(usize, String, Value, u64)> = Vec::new();
    // The round of each run, to compare clients within a round.
    let mut rounds_of: Vec<usize> = Vec::new();
    for round in 0..rounds {
        for (w, (name, ..)) in WORKLOADS.iter().enumerate() {
            for k in 0..CLIENTS.len() {
                let client = CLIENTS[(k + round) % CLIENTS.len()];
                let pair = format!("{client}:{w}");
                if only
                    .as_deref()
                    .is_some_and(|o| !o.split(',').any(|p| p == pair))
                {
                    continue;
                }
                let bytes_before = server.stream_bytes();
                // `NOVA_LOAD_PIN=1`: the client on the second CPU (run the whole under
                // `taskset -c 0` so that the server has the first to itself).
                let mut command = if std::env::var("NOVA_LOAD_PIN").is_ok() {
                    let mut c = std::process::Command::new("taskset");
                    c.args(["-c", "1"]).arg(&exe);
                    c
                } else if let Ok(wrap) = std::env::var("NOVA_LOAD_WRAP") {
                    // `NOVA_LOAD_WRAP="valgrind --tool=callgrind"` (or `perf record -g`,
                    // …) runs each child under that command, to profile one client.
                    let mut words = wrap.split_whitespace();
                    let mut c = std::process::Command::new(words.next().unwrap_or("env"));
                    c.args(words).arg(&exe);
                    c
                } else {
                    std::process::Command::new(&exe)
                };
                let out = command
                    .args(["--child", client, &w.to_string(), &base])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| {
                    panic!(
                        "{client} on {name} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                });
                let bytes = server.stream_bytes() - bytes_before;
                eprintln!("round {round} {name:<42} {client:<13} {v}");
                rounds_of.push(round);
                runs.push((w, client.to_owned(), v, bytes));
            }
        }
    }
    let mut rows = Vec::new();
    for w in 0..WORKLOADS.len() {
        for client in CLIENTS {
            let mut mine: Vec<&(usize, String, Value, u64)> =
                runs.iter().filter(|r| r.0 == w && r.1 == client).collect();
            if mine.is_empty() {
                continue;
            }
            mine.sort_by(|a, b| throughput(w, &a.2).total_cmp(&throughput(w, &b.2)));
            rows.push(mine[mine.len() / 2].clone());
        }
    }
    println!("Median of {rounds} rounds per pair.\n");
    report(&rows);
    paired(&runs, &rounds_of, rounds);
}

/// Ratios taken within each round (the clients of a round ran one after the other, so
/// they share the machine's state of the moment), then their median: steadier than the
/// ratio of two medians on a machine whose speed drifts.
fn paired(runs: &[(usize, String, Value, u64)], rounds_of: &[usize], rounds: usize) {
    println!("\nMedian of the per-round ratios:\n");
    for (w, (name, ..)) in WORKLOADS.iter().enumerate() {
        let rate = |round: usize, client: &str| {
            runs.iter()
                .zip(rounds_of)
                .find(|(r, n)| r.0 == w && r.1 == client && **n == round)
                .map(|(r, _)| throughput(w, &r.2))
        };
        let cpu = |round: usize, client: &str| {
            runs.iter()
                .zip(rounds_of)
                .find(|(r, n)| r.0 == w && r.1 == client && **n == round)
                .map(|(r, _)| cpu_per(w, &r.2))
        };
        let median = |of: &dyn Fn(usize, &str) -> Option<f64>, a: &str, b: &str| {
            let mut v: Vec<f64> = (0..rounds)
                .filter_map(|n| Some(of(n, a)? / of(n, b)?))
                .collect();
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied()
        };
        let show = |x: Option<f64>| x.map_or("–".to_owned(), |x| format!("{x:.3}"));
        println!(
            "{name}: driver/async-openai = {}, provider/driver = {}; client CPU driver/async-openai = {}, provider/driver = {}",
            show(median(&rate, "driver", "async-openai")),
            show(median(&rate, "provider", "driver")),
            show(median(&cpu, "driver", "async-openai")),
            show(median(&cpu, "provider", "driver")),
        );
    }
}

/// The client's CPU per call, or per event for streams, in µs.
fn cpu_per(w: usize, v: &Value) -> f64 {
    let per = if WORKLOADS[w].4 {
        v["events"].as_f64()
    } else {
        v["requests"].as_f64()
    };
    v["cpu_us"].as_f64().unwrap_or(f64::NAN) / per.unwrap_or(f64::NAN)
}

/// Requests/s, or events/s for streams.
fn throughput(w: usize, v: &Value) -> f64 {
    let s = v["seconds"].as_f64().unwrap_or(f64::NAN);
    if WORKLOADS[w].4 {
        v["events"].as_f64().unwrap_or(0.0) / s
    } else {
        v["requests"].as_f64().unwrap_or(0.0) / s
    }
}

fn report(rows: &[(usize, String, Value, u64)]) {
    println!(
        "| workload | client | median | p99 | requests/s | events/s | MB/s | peak RSS | client CPU |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (w, client, v, bytes) in rows {
        let secs = v["seconds"].as_f64().unwrap_or(f64::NAN);
        let events = v["events"].as_f64().unwrap_or(0.0);
        let streamed = WORKLOADS[*w].4;
        println!(
            "| {} | {} | {:.0} µs | {:.0} µs | {:.0} | {} | {} | {:.1} MiB | {} |",
            WORKLOADS[*w].0,
            client,
            v["median_us"].as_f64().unwrap_or(0.0),
            v["p99_us"].as_f64().unwrap_or(0.0),
            v["requests"].as_f64().unwrap_or(0.0) / secs,
            if streamed {
                format!("{:.0}", events / secs)
            } else {
                "–".into()
            },
            if streamed {
                format!("{:.1}", *bytes as f64 / secs / 1e6)
            } else {
                "–".into()
            },
            v["peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
            if streamed {
                format!("{:.2} µs/event", cpu_per(*w, v))
            } else {
                format!("{:.1} µs/call", cpu_per(*w, v))
            },
        );
    }
    println!();
    // Ratios within the same run.
    for (w, (name, ..)) in WORKLOADS.iter().enumerate() {
        let get = |c: &str| rows.iter().find(|r| r.0 == w && r.1 == c).map(|r| &r.2);
        let (Some(d), Some(p), Some(a)) = (get("driver"), get("provider"), get("async-openai"))
        else {
            continue;
        };
        let rate = |v: &Value| throughput(w, v);
        println!(
            "{name}: driver/async-openai = {:.2}x, provider/driver = {:.3}, RSS driver/async-openai = {:.2}",
            rate(d) / rate(a),
            rate(p) / rate(d),
            d["peak_rss_kib"].as_f64().unwrap_or(0.0) / a["peak_rss_kib"].as_f64().unwrap_or(1.0),
        );
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of this process so far, in milliseconds (clock ticks of 10 ms).
fn cpu_ms() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // The fields after the command name, which is in parentheses.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks * 10.0)
        })
        .unwrap_or(f64::NAN)
}

/// CPU time of this process's threads so far, in nanoseconds, as the scheduler counts it
/// (`/proc/self/task/*/schedstat`: exact, where `cpu_ms` counts 10 ms ticks). A thread
/// that has ended no longer counts; the clients' threads (the workers) outlive a run.
fn cpu_ns() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum()
}

/// What one call reported: events received.
type Call = std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>;

async fn child(client: &str, w: usize, base: &str) -> Value {
    let (_, requests, in_flight, chunks, streamed) = WORKLOADS[w];
    // `NOVA_LOAD_REQUESTS=n` changes the workload's number of requests (to profile).
    let requests = std::env::var("NOVA_LOAD_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(requests);
    // `NOVA_LOAD_SERVICE_MS=ms` makes the server wait that long before each response, and
    // `NOVA_LOAD_PACE_MS=ms` that long between stream chunks, as a real model takes time to
    // answer (0, the default: it answers at once, as fast as it can).
    let ms = |var| {
        std::env::var(var)
            .ok()
            .and_then(|ms| ms.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let mut model = format!("chunks-{chunks}");
    for (word, ms) in [
        ("wait", ms("NOVA_LOAD_SERVICE_MS")),
        ("pace", ms("NOVA_LOAD_PACE_MS")),
    ] {
        if ms > 0 {
            model.push_str(&format!("-{word}-{ms}"));
        }
    }
    let make: Arc<dyn Fn(usize) -> Call + Send + Sync> = match client {
        "async-openai" => {
            let config = async_openai::config::OpenAIConfig::new()
                .with_api_base(base)
                .with_api_key("sk-load");
            let c = async_openai::Client::with_config(config);
            Arc::new(move |i| {
                let c = c.clone();
                let model = model.clone();
                Box::pin(async move { openai_call(&c, &model, i, streamed).await })
            })
        }
        _ => {
            let driver = OpenAiDriver::builder()
                .base_url(base)
                .api_key("sk-load")
                .build()
                .unwrap();
            let d: Arc<dyn LlmDriver> = if client == "provider" {
                let mut b = Provider::builder(driver);
                // `NOVA_LOAD_NO_METRICS=1` leaves the built-in metrics out.
                if std::env::var("NOVA_LOAD_NO_METRICS").is_ok() {
                    b = b.metrics(false);
                }
                // `NOVA_LOAD_NO_EVENTS=1` leaves the events layer (and the metrics) out.
                if std::env::var("NOVA_LOAD_NO_EVENTS").is_ok() {
                    b = b.without("events").metrics(false);
                }
                // `NOVA_LOAD_NO_LIMIT=1` leaves the rate limiter out.
                if std::env::var("NOVA_LOAD_NO_LIMIT").is_err() {
                    b = b.rate_limit(
                        RateLimitLayer::new()
                            .requests(1_000_000_000, Duration::from_secs(1))
                            .max_in_flight(10_000),
                    );
                }
                // `NOVA_LOAD_NO_CACHE=1` leaves the cache out (to see what it costs).
                if std::env::var("NOVA_LOAD_NO_CACHE").is_err() {
                    b = b.cache(CacheLayer::in_memory(1_000, None));
                }
                Arc::new(b.build())
            } else {
                Arc::new(driver)
            };
            Arc::new(move |i| {
                let d = Arc::clone(&d);
                let model = model.clone();
                Box::pin(async move { nova_call(&*d, &model, i, streamed).await })
            })
        }
    };
    // Warm up the connections.
    for i in 0..in_flight.min(8) {
        if !streamed || chunks <= 1_000 {
            make(usize::MAX - i).await;
        }
    }
    let cpu_before = cpu_ms();
    let cpu_ns_before = cpu_ns();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(requests);
    let mut events = 0;
    let mut running = FuturesUnordered::new();
    for i in 0..requests {
        let call = make(i);
        // Each call is a task on the runtime's workers, as a server handles its requests
        // (and as async-openai reads its streams): the same for every client.
        running.push(tokio::spawn(async move {
            let t = Instant::now();
            let n = call.await;
            (t.elapsed(), n)
        }));
        if running.len() >= in_flight
            && let Some(done) = running.next().await
        {
            let (lat, n) = done.expect("call task");
            latencies.push(lat);
            events += n;
        }
    }
    while let Some(done) = running.next().await {
        let (lat, n) = done.expect("call task");
        latencies.push(lat);
        events += n;
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    json!({
        "requests": requests, "seconds": seconds, "events": events,
        "median_us": pct(0.5), "p99_us": pct(0.99), "peak_rss_kib": peak_rss_kib(),
        "cpu_ms": cpu_ms() - cpu_before,
        "cpu_us": (cpu_ns() - cpu_ns_before) / 1e3,
    })
}

async fn nova_call(d: &dyn LlmDriver, model: &str, i: usize, streamed: bool) -> u64 {
    // A different prompt each time: the provider's cache is always on its miss path.
    let request = ChatRequest::new(Dialog::new().user(format!("request {i}"))).model(model);
    // `NOVA_LOAD_SPIN_NS=n` spins n ns of CPU in each call before it is sent: a yardstick
    // for what a given client-side cost does to a workload's figures. Read once.
    static SPIN: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    let spin = *SPIN.get_or_init(|| {
        Duration::from_nanos(
            std::env::var("NOVA_LOAD_SPIN_NS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        )
    });
    if !spin.is_zero() {
        let t = Instant::now();
        while t.elapsed() < spin {
            std::hint::spin_loop();
        }
    }
    if streamed {
        let mut s = d.chat_stream(request).await.expect("stream");
        let mut n = 0;
        while let Some(e) = next_event(&mut s).await {
            if let StreamEvent::TextDelta { .. } = e.expect("event") {
                n += 1;
            }
        }
        n
    } else {
        d.chat(request).await.expect("chat");
        0
    }
}

async fn openai_call(
    c: &async_openai::Client<async_openai::config::OpenAIConfig>,
    model: &str,
    i: usize,
    streamed: bool,
) -> u64 {
    use async_openai::types::chat::{
        ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
    };
    let message = ChatCompletionRequestUserMessageArgs::default()
        .content(format!("request {i}"))
        .build()
        .unwrap();
    let mut args = CreateChatCompletionRequestArgs::default();
    args.model(model).messages([message.into()]);
    if streamed {
        let request = args.stream(true).build().unwrap();
        let mut s = c.chat().create_stream(request).await.expect("stream");
        let mut n = 0;
        while let Some(chunk) = s.next().await {
            let chunk = chunk.expect("chunk");
            if chunk
                .choices
                .first()
                .is_some_and(|ch| ch.delta.content.is_some())
            {
                n += 1;
            }
        }
        n
    } else {
        let request = args.build().unwrap();
        c.chat().create(request).await.expect("chat");
        0
    }
}
