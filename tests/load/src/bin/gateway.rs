//! The gateway's load benchmark: what `nova serve` adds to a call, and how many calls it
//! carries, side by side in one run with LiteLLM's proxy over the same upstream.
//!
//! The upstream is the loopback test server (an OpenAI-compatible service that answers at
//! once). Targets: the upstream itself (the baseline), the nova gateway (a child process
//! of this binary running `nova_llm_gateway::Gateway` with one route to the upstream), and
//! LiteLLM's proxy when `NOVA_BENCH_LITELLM` names its `litellm` executable (the
//! benchmark script installs it in a venv; CI never does). For each target:
//!
//! - open loop at each rate of `NOVA_BENCH_RATES` (default `1000,5000` requests/s) for
//!   `NOVA_BENCH_SECONDS` (default 10) after a 2 s warm-up: latency percentiles, and the
//!   added latency = the target's percentile less the upstream's at the same rate;
//! - closed loop, 64 calls in flight for the same time: throughput;
//! - the gateway's RSS before and after, and (with `NOVA_BENCH_SOAK_MINUTES`) through a
//!   long run at the first rate.
//!
//! Run with `cargo xtask bench-gateway` (which installs LiteLLM) or
//! `cargo run --release --manifest-path tests/load/Cargo.toml --bin gateway`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use nova_llm_tests::server::TestServer;

/// The key every target is called with (LiteLLM's master key; the others ignore it).
const BENCH_KEY: &str = "sk-nova-bench-5f1c9a7e2b6d4e8fa3c1b9d7e5f3a1c9";

const BODY: &str = r#"{"model":"bench","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":16}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--gateway") {
        run_gateway(&args[2], &args[3]);
        return;
    }
    let upstream_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = upstream_rt.block_on(TestServer::start()).unwrap();
    let upstream = server.base_url();
    let seconds: u64 = env_or("NOVA_BENCH_SECONDS", 10);
    let rates: Vec<u64> = std::env::var("NOVA_BENCH_RATES")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();

    let exe = std::env::current_exe().unwrap();
    let nova_port = free_port();
    let mut nova = Command::new(&exe)
        .args(["--gateway", &upstream, &nova_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut targets: Vec<(&str, String, Option<u32>)> = vec![
        ("upstream", upstream.clone(), None),
        ("nova", format!("http://127.0.0.1:{nova_port}/v1"), Some(nova.id())),
    ];
    let mut litellm: Option<Child> = None;
    if let Ok(bin) = std::env::var("NOVA_BENCH_LITELLM") {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("nova-bench-litellm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("config.yaml");
        std::fs::write(
            &cfg,
            format!(
                "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n      api_base: {upstream}\n      api_key: unused\n\
                 litellm_settings:\n  telemetry: false\n  drop_params: true\n"
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .args(["--config", cfg.to_str().unwrap(), "--port", &port.to_string(), "--num_workers", "1"])
            .env("LITELLM_MASTER_KEY", BENCH_KEY)
            .env("LITELLM_LOG", "ERROR")
            .env("LITELLM_TELEMETRY", "False")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        targets.push(("litellm", format!("http://127.0.0.1:{port}/v1"), Some(child.id())));
        litellm = Some(child);
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = nova_llm_http::default_client(None).unwrap();
    for (name, url, _) in &targets {
        rt.block_on(wait_ready(&client, url))
            .unwrap_or_else(|e| panic!("{name} did not start: {e}"));
    }

    println!("# gateway load benchmark ({seconds} s per step, 2 s warm-up)\n");
    println!("| target | offered req/s | achieved req/s | errors | p50 | p99 | added p50 | added p99 | RSS after |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rss_start = Vec::new();
    for (_, _, pid) in &targets {
        rss_start.push(pid.and_then(rss_kib));
    }
    // One target at a time, to the end: a target that falls behind (LiteLLM) keeps working
    // off its backlog after the client gave up, and must not share the CPU with the next
    // target's run. LiteLLM's closed loop comes before its open loops for the same reason.
    let mut base: Vec<(u64, u64)> = Vec::new();
    let mut throughput = Vec::new();
    let mut own = String::new();
    for (i, (name, url, pid)) in targets.iter().enumerate() {
        let closed = || {
            let r = rt.block_on(closed_loop(&client, url, 64, Duration::from_secs(seconds)));
            format!(
                "| {name} | 64 | {:.0} | {} | {} | {} |",
                r.achieved,
                r.errors,
                us(r.hist.value_at_quantile(0.5)),
                us(r.hist.value_at_quantile(0.99))
            )
        };
        let last = i + 1 == targets.len() && i > 1;
        if last {
            throughput.push(closed());
        }
        for (j, &rate) in rates.iter().enumerate() {
            let _ = rt.block_on(open_loop(&client, url, rate, Duration::from_secs(2)));
            let r = rt.block_on(open_loop(&client, url, rate, Duration::from_secs(seconds)));
            let (p50, p99) = (r.hist.value_at_quantile(0.5), r.hist.value_at_quantile(0.99));
            let added = match base.get(j) {
                None => {
                    base.push((p50, p99));
                    ("–".to_owned(), "–".to_owned())
                }
                Some((b50, b99)) => (us(p50.saturating_sub(*b50)), us(p99.saturating_sub(*b99))),
            };
            println!(
                "| {name} | {rate} | {:.0} | {} | {} | {} | {} | {} | {} |",
                r.achieved,
                r.errors,
                us(p50),
                us(p99),
                added.0,
                added.1,
                pid.and_then(rss_kib).map_or("–".into(), mib)
            );
        }
        if !last {
            throughput.push(closed());
        }
        if *name == "nova" {
            own = rt.block_on(own_latency(&client, url));
        }
    }
    println!("\n| target | calls in flight | throughput req/s | errors | p50 | p99 |");
    println!("|---|---|---|---|---|---|");
    for row in &throughput {
        println!("{row}");
    }
    println!("\n{own}");
    println!("\n| target | RSS at start | RSS at end |");
    println!("|---|---|---|");
    for ((name, _, pid), start) in targets.iter().zip(&rss_start) {
        if let Some(pid) = pid {
            println!(
                "| {name} | {} | {} |",
                start.map_or("–".into(), mib),
                rss_kib(*pid).map_or("–".into(), mib)
            );
        }
    }
    let soak: u64 = env_or("NOVA_BENCH_SOAK_MINUTES", 0);
    if soak > 0 {
        let rate = rates.first().copied().unwrap_or(1000);
        let (_, url, pid) = &targets[1];
        println!("\n# nova soak: {rate} req/s for {soak} min, RSS each minute\n");
        println!("| minute | achieved req/s | errors | p99 | RSS |");
        println!("|---|---|---|---|---|");
        for minute in 1..=soak {
            let r = rt.block_on(open_loop(&client, url, rate, Duration::from_secs(60)));
            println!(
                "| {minute} | {:.0} | {} | {} | {} |",
                r.achieved,
                r.errors,
                us(r.hist.value_at_quantile(0.99)),
                pid.and_then(rss_kib).map_or("–".into(), mib)
            );
        }
    }
    let _ = nova.kill();
    if let Some(mut l) = litellm {
        let _ = l.kill();
    }
    drop(server);
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn us(v: u64) -> String {
    if v >= 10_000 {
        format!("{:.1} ms", v as f64 / 1000.0)
    } else {
        format!("{v} µs")
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The resident set of `pid` (and, for LiteLLM, not its workers: one worker is asked).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn wait_ready(client: &reqwest::Client, url: &str) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..600 {
        match call(client, url).await {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

async fn call(client: &reqwest::Client, url: &str) -> Result<(), String> {
    let res = client
        .post(format!("{url}/chat/completions"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {BENCH_KEY}"))
        .body(BODY)
        // A target that falls this far behind has failed the call.
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() && body.len() > 20 {
        Ok(())
    } else {
        Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
    }
}

struct Run {
    hist: Histogram<u64>,
    achieved: f64,
    errors: u64,
}

/// Requests started at `rate` a second, whatever the answers' pace (open loop), each
/// timed from its scheduled start, so a target that falls behind shows it as latency.
async fn open_loop(client: &reqwest::Client, url: &str, rate: u64, length: Duration) -> Run {
    let hist = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let errors = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let total = rate * length.as_secs();
    let mut tasks = Vec::with_capacity(total as usize);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    while sent < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let scheduled = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            let (client, url) = (client.clone(), url.to_owned());
            let (hist, errors, ok) = (Arc::clone(&hist), Arc::clone(&errors), Arc::clone(&ok));
            tasks.push(tokio::spawn(async move {
                match call(&client, &url).await {
                    Ok(()) => {
                        let us = scheduled.elapsed().as_micros() as u64;
                        let _ = hist.lock().unwrap().record(us.max(1));
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
            sent += 1;
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let hist = hist.lock().unwrap().clone();
    Run {
        hist,
        achieved: ok.load(Ordering::Relaxed) as f64 / elapsed,
        errors: errors.load(Ordering::Relaxed),
    }
}

/// `in_flight` callers, each starting its next call when the last one ends.
async fn closed_loop(client: &reqwest::Client, url: &str, in_flight: usize, length: Duration) -> Run {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..in_flight {
        let (client, url) = (client.clone(), url.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).unwrap();
            let (mut ok, mut errors) = (0u64, 0u64);
            while start.elapsed() < length {
                let t = Instant::now();
                match call(&client, &url).await {
                    Ok(()) => {
                        let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
                        ok += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
            (hist, ok, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        let (h, o, e) = t.await.unwrap();
        hist.add(h).unwrap();
        ok += o;
        errors += e;
    }
    Run {
        hist,
        achieved: ok as f64 / start.elapsed().as_secs_f64(),
        errors,
    }
}

/// The gateway's own view of its added time over every call it served: the bucket bounds
/// under which half and 99 % of `nova_gateway_added_latency_seconds` fall.
async fn own_latency(client: &reqwest::Client, url: &str) -> String {
    let base = url.trim_end_matches("/v1");
    let Ok(res) = client.get(format!("{base}/metrics")).send().await else {
        return "nova's own added time: /metrics unreachable".into();
    };
    let text = res.text().await.unwrap_or_default();
    let buckets: Vec<(String, u64)> = text
        .lines()
        .filter(|l| l.starts_with("nova_gateway_added_latency_seconds_bucket"))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_owned();
            let n = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, n))
        })
        .collect();
    let total = buckets.last().map_or(0, |b| b.1);
    let under = |q: f64| {
        buckets
            .iter()
            .find(|(_, n)| *n as f64 >= q * total as f64)
            .map_or("?".to_owned(), |(le, _)| match le.parse::<f64>() {
                Ok(s) => format!("{:.0} µs", s * 1e6),
                Err(_) => le.clone(),
            })
    };
    format!(
        "nova's own added time over {total} calls (its `nova_gateway_added_latency_seconds`): p50 under {}, p99 under {}",
        under(0.5),
        under(0.99)
    )
}

/// The nova gateway: one route, `bench`, to the upstream; no keys.
fn run_gateway(upstream: &str, port: &str) {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[[models]]\nname = \"bench\"\ndriver = \"openai\"\nmodel = \"bench\"\nbase_url = \"{upstream}\"\n"
    );
    let config = nova_llm_gateway::Config::parse(&text).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        // `NOVA_BENCH_GATEWAY_WORKERS`: the gateway's worker threads (default: one a core).
        .worker_threads(
            std::env::var("NOVA_BENCH_GATEWAY_WORKERS")
                .ok()
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        )
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listen = config.server.listen;
        let gateway = nova_llm_gateway::Gateway::builder(config)
            .env(|_| None)
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        gateway
            .serve(listener, std::future::pending::<()>())
            .await
            .unwrap();
    });
}
