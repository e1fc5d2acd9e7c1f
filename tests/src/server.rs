//! A small, fast OpenAI-compatible server on loopback (hyper), for integration tests and
//! benchmarks: chat and legacy completions, plain and streamed, with per-request shape and
//! fault injection.
//!
//! A request chooses its scenario with an extra body field `nova_test` (the driver sends
//! request extras verbatim):
//!
//! ```json
//! {"nova_test": {"chunks": 5, "chunk": "tok ", "delay_ms": 0, "writes": 1,
//!                "usage": true, "tool_call": false, "key": "case-1", "every": 2,
//!                "fault": {"kind": "cut", "after": 2, "done": false}}}
//! ```
//!
//! Faults (`fault.kind`): `status` (any `status`, optional `retry_after` and `body`),
//! `non_json` (an HTML page with `status`), `error_event` (an `{"error":...}` event after
//! `after` chunks), `cut` (the stream ends after `after` chunks, with or without `[DONE]`),
//! `stall` (nothing more after `after` chunks, connection held), `reset` (the connection
//! is dropped without a response), `cut_body` (a plain response announces its whole length
//! and sends half: the connection breaks inside the body), `huge` (a body of `bytes` bytes),
//! `malformed` (invalid JSON with status 200), `slow_first_byte` (`ms` before the response). With `every: n`
//! the fault applies to the 1st, (n+1)th, (2n+1)th... request of its `key`, so a retry or
//! a fallback can succeed; with `only_model: m`, only requests for model `m` get it.
//!
//! A client that cannot send extra fields (async-openai, in the load benchmark) chooses
//! through the model name instead: `chunks-N` asks for N chunks; `-wait-MS` after it adds
//! MS milliseconds of service time before the response, and `-pace-MS` as much between
//! stream chunks, as a real model takes (`chunks-200-wait-5-pace-1`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

type Body = BoxBody<Bytes, Infallible>;

/// The `created` time of every reply.
const CREATED: u64 = 1_700_000_000;

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct State {
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    per_key: Mutex<HashMap<String, u64>>,
}

impl TestServer {
    /// Starts a server on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let requests = Arc::clone(&state.requests);
        let bytes = Arc::clone(&state.bytes);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, Arc::clone(&state)));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(TestServer {
            addr,
            requests,
            bytes,
            task,
        })
    }

    /// The base URL for a driver (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Bytes of stream events sent so far.
    pub fn stream_bytes(&self) -> u64 {
        self.bytes.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A scenario chosen through the model name, for clients that cannot send extra fields:
/// `chunks-N`, optionally followed by `-wait-MS` (service time before the response) and
/// `-pace-MS` (time between stream chunks), as `chunks-200-wait-5-pace-1`.
#[derive(Debug, Clone, Copy)]
struct ByModel {
    chunks: usize,
    wait: Duration,
    pace: Duration,
}

impl ByModel {
    fn parse(model: &str) -> Option<Self> {
        let mut words = model.strip_prefix("chunks-")?.split('-');
        let mut m = ByModel {
            chunks: words.next()?.parse().ok()?,
            wait: Duration::ZERO,
            pace: Duration::ZERO,
        };
        while let (Some(name), Some(ms)) = (words.next(), words.next()) {
            let ms = Duration::from_millis(ms.parse().ok()?);
            match name {
                "wait" => m.wait = ms,
                "pace" => m.pace = ms,
                _ => return None,
            }
        }
        Some(m)
    }
}

/// What one request asked for.
#[derive(Debug, Clone)]
struct Scenario {
    chunks: usize,
    chunk: String,
    /// Service time before the response is sent (see `ByModel`).
    wait: Duration,
    delay: Duration,
    writes: usize,
    usage: bool,
    tool_call: bool,
    fault: Option<Value>,
}

impl Scenario {
    fn read(body: &Value, state: &State) -> Self {
        let t = &body["nova_test"];
        let mut fault = t.get("fault").cloned().filter(|f| !f.is_null());
        // `only_model`: the fault hits requests for that model only (a fallback to another
        // model then succeeds).
        if let Some(only) = t["only_model"].as_str()
            && body["model"].as_str() != Some(only)
        {
            fault = None;
        }
        if fault.is_some() {
            let every = t["every"].as_u64().unwrap_or(1).max(1);
            let key = t["key"].as_str().unwrap_or("").to_owned();
            let mut counts = state.per_key.lock().unwrap_or_else(|p| p.into_inner());
            let n = counts.entry(key).or_insert(0);
            *n += 1;
            if !(*n - 1).is_multiple_of(every) {
                fault = None;
            }
        }
        // Without a scenario, the model name: see `ByModel`.
        let by_model = body["model"].as_str().and_then(ByModel::parse);
        Scenario {
            chunks: t["chunks"]
                .as_u64()
                .map(|n| n as usize)
                .or(by_model.map(|m| m.chunks))
                .unwrap_or(3),
            chunk: t["chunk"].as_str().unwrap_or("tok ").to_owned(),
            wait: by_model.map_or(Duration::ZERO, |m| m.wait),
            delay: t["delay_ms"]
                .as_u64()
                .map(Duration::from_millis)
                .or(by_model.map(|m| m.pace))
                .unwrap_or_default(),
            writes: t["writes"].as_u64().map_or(1, |n| n.max(1) as usize),
            usage: t["usage"].as_bool().unwrap_or(true),
            tool_call: t["tool_call"].as_bool().unwrap_or(false),
            fault,
        }
    }

    fn fault_kind(&self) -> &str {
        self.fault
            .as_ref()
            .and_then(|f| f["kind"].as_str())
            .unwrap_or("")
    }

    fn fault_n(&self, field: &str) -> u64 {
        self.fault
            .as_ref()
            .and_then(|f| f[field].as_u64())
            .unwrap_or(0)
    }

    fn text(&self) -> String {
        self.chunk.repeat(self.chunks)
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Body>, std::io::Error> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let s = Scenario::read(&body, &state);
    let legacy = path.ends_with("/completions") && !path.ends_with("/chat/completions");
    let model = body["model"].as_str().unwrap_or("test-model").to_owned();
    match s.fault_kind() {
        "status" => {
            let f = s.fault.clone().unwrap_or_default();
            let status = StatusCode::from_u16(f["status"].as_u64().unwrap_or(500) as u16)
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = f.get("body").cloned().unwrap_or_else(|| {
                json!({"error": {"message": format!("injected {status}"), "type": "test", "code": f["code"].clone()}})
            });
            let mut r = full(status, "application/json", body.to_string());
            if let Some(ra) = f["retry_after"].as_str()
                && let Ok(v) = ra.parse()
            {
                r.headers_mut().insert("retry-after", v);
            }
            return Ok(r);
        }
        "non_json" => {
            let status =
                StatusCode::from_u16(s.fault_n("status") as u16).unwrap_or(StatusCode::BAD_GATEWAY);
            return Ok(full(
                status,
                "text/html",
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
            ));
        }
        "reset" => {
            return Err(std::io::Error::other("injected connection reset"));
        }
        "huge" => {
            return Ok(full(
                StatusCode::OK,
                "application/json",
                vec![b' '; s.fault_n("bytes").max(1) as usize],
            ));
        }
        "malformed" => {
            return Ok(full(
                StatusCode::OK,
                "application/json",
                "{\"choices\": [ {",
            ));
        }
        "slow_first_byte" => {
            tokio::time::sleep(Duration::from_millis(s.fault_n("ms"))).await;
        }
        "cut_body" if !body["stream"].as_bool().unwrap_or(false) => {
            return Ok(cut_short(plain_body(&s, legacy, &model)));
        }
        _ => {}
    }
    if !s.wait.is_zero() {
        tokio::time::sleep(s.wait).await;
    }
    if body["stream"].as_bool().unwrap_or(false) {
        Ok(stream(s, legacy, model, Arc::clone(&state.bytes)))
    } else {
        Ok(plain(&s, legacy, &model))
    }
}

fn usage(s: &Scenario) -> Value {
    json!({"prompt_tokens": 10, "completion_tokens": s.chunks, "total_tokens": 10 + s.chunks})
}

fn plain(s: &Scenario, legacy: bool, model: &str) -> Response<Body> {
    full(
        StatusCode::OK,
        "application/json",
        plain_body(s, legacy, model),
    )
}

/// A response that announces all of `body` and sends only its first half: the connection
/// breaks inside the body.
fn cut_short(body: String) -> Response<Body> {
    let length = body.len();
    let half = Bytes::from(body.into_bytes()).slice(..length / 2);
    // A pause after the half, so that the head and the half go out before the body ends.
    let frames = futures_util::stream::unfold(Some(half), |half| async move {
        match half {
            Some(half) => Some((Ok::<_, Infallible>(Frame::data(half)), None)),
            None => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                None
            }
        }
    });
    let mut r = Response::new(StreamBody::new(frames).boxed());
    r.headers_mut()
        .insert("content-length", hyper::header::HeaderValue::from(length));
    if let Ok(v) = "application/json".parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn plain_body(s: &Scenario, legacy: bool, model: &str) -> String {
    let body = if legacy {
        json!({"id": "cmpl-test", "object": "text_completion", "created": CREATED, "model": model,
               "choices": [{"index": 0, "text": s.text(), "logprobs": null, "finish_reason": "stop"}], "usage": usage(s)})
    } else {
        let mut message = json!({"role": "assistant", "content": s.text(), "refusal": null});
        let mut finish = "stop";
        if s.tool_call {
            message["tool_calls"] = json!([{"id": "call_1", "type": "function",
                "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]);
            finish = "tool_calls";
        }
        json!({"id": "chatcmpl-test", "object": "chat.completion", "created": CREATED, "model": model,
               "system_fingerprint": "fp_test",
               "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}], "usage": usage(s)})
    };
    body.to_string()
}

fn event(data: &Value) -> String {
    format!("data: {data}\n\n")
}

/// The stream's events, as SSE text.
fn events(s: &Scenario, legacy: bool, model: &str) -> Vec<String> {
    // Shaped like OpenAI's own chunks, every field present (strict clients need them).
    let delta = |text: &str| {
        if legacy {
            json!({"id": "cmpl-test", "object": "text_completion", "created": CREATED, "model": model,
                   "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": null}]})
        } else {
            json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": CREATED, "model": model,
                   "system_fingerprint": "fp_test",
                   "choices": [{"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}]})
        }
    };
    // Every delta is the same: encode it once (a long stream must not measure the server).
    let one = event(&delta(&s.chunk));
    let mut out: Vec<String> = vec![one; s.chunks];
    if s.tool_call && !legacy {
        out.push(event(&json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"x\"}"}}]}}]})));
    }
    let finish = if s.tool_call && !legacy {
        "tool_calls"
    } else {
        "stop"
    };
    out.push(event(&if legacy {
        json!({"id": "cmpl-test", "object": "text_completion", "created": CREATED, "model": model,
               "choices": [{"index": 0, "text": "", "logprobs": null, "finish_reason": finish}]})
    } else {
        json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": CREATED, "model": model,
               "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}]})
    }));
    if s.usage {
        out.push(event(
            &json!({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": CREATED,
                               "model": model, "choices": [], "usage": usage(s)}),
        ));
    }
    out.push("data: [DONE]\n\n".to_owned());
    out
}

/// Bytes per write when events are written as fast as they come.
const COALESCE_BYTES: usize = 16 * 1024;

fn stream(s: Scenario, legacy: bool, model: String, sent: Arc<AtomicU64>) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut all = events(&s, legacy, &model);
        let after = s.fault_n("after") as usize;
        match s.fault_kind() {
            "error_event" => {
                all.truncate(after);
                all.push(event(&json!({"error": {"message": "injected mid-stream error", "type": "server_error"}})));
            }
            "cut" => {
                let done = s
                    .fault
                    .as_ref()
                    .and_then(|f| f["done"].as_bool())
                    .unwrap_or(false);
                all.truncate(after);
                if done {
                    all.push("data: [DONE]\n\n".to_owned());
                }
            }
            "stall" => all.truncate(after),
            _ => {}
        }
        if s.delay.is_zero() && s.writes == 1 {
            // Nothing asks for the events to arrive apart: write them as a fast server
            // does, many to a write, so the server is not what a benchmark measures.
            let mut buf = Vec::with_capacity(COALESCE_BYTES + 512);
            let last = all.len().saturating_sub(1);
            for (i, e) in all.into_iter().enumerate() {
                buf.extend_from_slice(e.as_bytes());
                if buf.len() >= COALESCE_BYTES || i == last {
                    sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    let frame = Bytes::from(std::mem::replace(
                        &mut buf,
                        Vec::with_capacity(COALESCE_BYTES + 512),
                    ));
                    if tx.send(frame).await.is_err() {
                        return; // the client went away
                    }
                }
            }
            if s.fault_kind() == "stall" {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            return;
        }
        for (i, e) in all.into_iter().enumerate() {
            if i > 0 && !s.delay.is_zero() {
                tokio::time::sleep(s.delay).await;
            }
            let bytes = e.into_bytes();
            sent.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            let piece = bytes.len().div_ceil(s.writes).max(1);
            for part in bytes.chunks(piece) {
                if tx.send(Bytes::copy_from_slice(part)).await.is_err() {
                    return; // the client went away
                }
            }
        }
        if s.fault_kind() == "stall" {
            // Hold the connection open without sending anything.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    });
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(StreamBody::new(frames).boxed());
    if let Ok(v) = "text/event-stream".parse() {
        r.headers_mut().insert("content-type", v);
    }
    r
}
