//! The gateway over real HTTP on loopback: a client speaking OpenAI's protocol to it, and
//! (where a service is involved) a wiremock double of the service behind it, so both the
//! request the service got and the answer the client got are checked exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use nova_llm_gateway::{Config, Gateway, hash_key};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A running gateway; stopped when dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn url(&self, p: &str) -> String {
        format!("http://{}{p}", self.addr)
    }

    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap().unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(config: Config) -> Running {
    let gateway = Gateway::builder(config).env(env).build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

async fn start_toml(text: &str) -> Running {
    start(Config::parse(text).unwrap()).await
}

fn client() -> reqwest::Client {
    nova_llm_http::default_client(None).unwrap()
}

async fn post(
    gw: &Running,
    p: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client().post(gw.url(p)).json(&body);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn chat_body(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

/// The `data:` payloads of an SSE body.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_builtin_mock_route_answers_in_openai_shape_plain_and_streamed() {
    let gw = start(Config::builtin_mock()).await;
    let (status, _, body) = post(
        &gw,
        "/v1/chat/completions",
        None,
        chat_body("mock", "hello"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "f(hello)");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));

    let res = client()
        .post(gw.url("/v1/chat/completions"))
        .json(
            &json!({"model": "mock", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hello"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let frames = sse_data(&res.text().await.unwrap());
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = frames[..frames.len() - 1]
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "f(hello)");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let (status, _, body) = post(
        &gw,
        "/v1/completions",
        None,
        json!({"model": "mock", "prompt": "hi"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["text"], "f(hi)");

    let models: Value = client()
        .get(gw.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "mock");
    assert_eq!(models["object"], "list");
    gw.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_openai_errors_with_the_right_status() {
    let text =
        "[server]\nmax_body_bytes = 2000\n\n[[models]]\nname = \"mock\"\ndriver = \"mock\"\n";
    let gw = start_toml(text).await;
    // An unknown model: 404, model_not_found.
    let (status, _, body) = post(&gw, "/v1/chat/completions", None, chat_body("gpt-9", "x")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("gpt-9"));
    // Bad JSON: 400 in OpenAI's shape.
    let res = client()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    // Invalid parameters: refused before any call.
    let mut b = chat_body("mock", "x");
    b["temperature"] = json!(7.5);
    let (status, _, body) = post(&gw, "/v1/chat/completions", None, b).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature"),
        "{body}"
    );
    // A body over the limit: 413.
    let (status, _, body) = post(
        &gw,
        "/v1/chat/completions",
        None,
        chat_body("mock", &"x".repeat(5000)),
    )
    .await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "request_too_large");
    // n > 1 is refused, not silently answered once.
    let mut b = chat_body("mock", "x");
    b["n"] = json!(2);
    let (status, _, _) = post(&gw, "/v1/chat/completions", None, b).await;
    assert_eq!(status, 400);
    // Health and readiness.
    assert_eq!(
        client()
            .get(gw.url("/health"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        client()
            .get(gw.url("/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    gw.shutdown().await;
}

fn openai_route(name: &str, upstream: &MockServer, extra: &str) -> String {
    format!(
        "[[models]]\nname = \"{name}\"\ndriver = \"openai\"\nmodel = \"gpt-4o-mini\"\n\
         base_url = \"{}/v1\"\napi_key_env = \"NOVA_GATEWAY_TEST_UPSTREAM_KEY\"\n{extra}\n",
        upstream.uri()
    )
}

const UPSTREAM_KEY: &str = "sk-upstream-secret-0123456789";

/// The gateway's environment in these tests: the upstream key under the variable the
/// routes name.
fn env(name: &str) -> Option<String> {
    (name == "NOVA_GATEWAY_TEST_UPSTREAM_KEY").then(|| UPSTREAM_KEY.to_owned())
}

#[tokio::test]
async fn a_route_calls_its_service_with_its_model_and_key_and_answers_as_openai() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-up", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60,
                      "prompt_tokens_details": {"cached_tokens": 20}}
        })))
        .mount(&upstream)
        .await;
    let gw = start_toml(&openai_route("fast", &upstream, "")).await;
    let body = json!({
        "model": "fast",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_tokens": 100
    });
    let (status, _, reply) = post(&gw, "/v1/chat/completions", None, body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["model"], "fast");
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(reply["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(
        reply["choices"][0]["message"]["tool_calls"][0]["id"],
        "call_1"
    );
    assert_eq!(
        reply["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(reply["usage"]["prompt_tokens_details"]["cached_tokens"], 20);

    let got = &upstream.received_requests().await.unwrap()[0];
    assert_eq!(
        got.headers["authorization"],
        format!("Bearer {UPSTREAM_KEY}").as_str()
    );
    let sent: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(
        sent,
        json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "auto",
            "temperature": 0.2,
            "max_tokens": 100
        })
    );

    // A tool result turn goes on as the service expects it.
    let body = json!({
        "model": "fast",
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}
        ]
    });
    let (status, _, _) = post(&gw, "/v1/chat/completions", None, body).await;
    assert_eq!(status, 200);
    let sent: Value =
        serde_json::from_slice(&upstream.received_requests().await.unwrap()[1].body).unwrap();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        sent["messages"][2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "18 C"})
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn upstream_failures_keep_their_status_and_retry_after_and_never_the_key() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(
                    json!({"error": {"message": format!("slow down, {UPSTREAM_KEY}"),
                    "type": "requests", "code": "rate_limit_exceeded"}}),
                ),
        )
        .mount(&upstream)
        .await;
    let gw = start_toml(&openai_route("fast", &upstream, "")).await;
    let (status, headers, body) =
        post(&gw, "/v1/chat/completions", None, chat_body("fast", "x")).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(!body.to_string().contains(UPSTREAM_KEY), "{body}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_stream_that_fails_after_content_ends_with_an_error_event() {
    let upstream = MockServer::start().await;
    // Content, then the connection ends without a finish.
    let cut = "data: {\"id\":\"c\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n";
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(cut),
        )
        .mount(&upstream)
        .await;
    let gw = start_toml(&openai_route("fast", &upstream, "")).await;
    let mut b = chat_body("fast", "x");
    b["stream"] = json!(true);
    let res = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let frames = sse_data(&res.text().await.unwrap());
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "api_error", "{frames:?}");
    assert!(!frames.iter().any(|f| f == "[DONE]"));
    let text: String = frames
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(f).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "Hel");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failing_route_falls_back_to_another_vendor() {
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("unavailable"))
        .mount(&down)
        .await;
    let text = format!(
        "{}\n[[models]]\nname = \"backup\"\ndriver = \"mock\"\n",
        openai_route("fast", &down, "fallback = [\"backup\"]")
    );
    let gw = start_toml(&text).await;
    let (status, _, body) = post(&gw, "/v1/chat/completions", None, chat_body("fast", "hi")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "f(hi)");
    assert_eq!(body["model"], "fast");
    gw.shutdown().await;
}

fn keyed_config(extra_key: &str) -> String {
    format!(
        "[[models]]\nname = \"mock\"\ndriver = \"mock\"\n\n[[models]]\nname = \"other\"\ndriver = \"mock\"\n\n\
         [[keys]]\nname = \"team-a\"\nsha256 = \"{}\"\nmodels = [\"mock\"]\n{extra_key}\n",
        hash_key("gw-key-a")
    )
}

#[tokio::test]
async fn keys_are_required_checked_by_hash_and_held_to_their_models() {
    let gw = start_toml(&keyed_config("")).await;
    let (status, _, body) = post(&gw, "/v1/chat/completions", None, chat_body("mock", "x")).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_api_key");
    let (status, _, _) = post(
        &gw,
        "/v1/chat/completions",
        Some("wrong"),
        chat_body("mock", "x"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = post(
        &gw,
        "/v1/chat/completions",
        Some("gw-key-a"),
        chat_body("mock", "x"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = post(
        &gw,
        "/v1/chat/completions",
        Some("gw-key-a"),
        chat_body("other", "x"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "model_not_allowed");
    // The model list shows what the key may use.
    let models: Value = client()
        .get(gw.url("/v1/models"))
        .bearer_auth("gw-key-a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_keys_request_limit_refuses_with_retry_after() {
    let gw = start_toml(&keyed_config("rpm = 2")).await;
    for _ in 0..2 {
        let (status, _, _) = post(
            &gw,
            "/v1/chat/completions",
            Some("gw-key-a"),
            chat_body("mock", "x"),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, headers, body) = post(
        &gw,
        "/v1/chat/completions",
        Some("gw-key-a"),
        chat_body("mock", "x"),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    gw.shutdown().await;
}

#[tokio::test]
async fn a_spent_budget_refuses_the_next_call_as_insufficient_quota() {
    let upstream = MockServer::start().await;
    // 1M input tokens of gpt-4o-mini: $0.15, over the $0.10 budget after one call.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000000, "completion_tokens": 1, "total_tokens": 1000001}
        })))
        .mount(&upstream)
        .await;
    let text = format!(
        "{}\n[[keys]]\nname = \"team-b\"\nsha256 = \"{}\"\nbudget_usd = 0.10\nbudget_period = \"1d\"\n",
        openai_route("fast", &upstream, ""),
        hash_key("gw-key-b")
    );
    let gw = start_toml(&text).await;
    let (status, _, _) = post(
        &gw,
        "/v1/chat/completions",
        Some("gw-key-b"),
        chat_body("fast", "x"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, body) = post(
        &gw,
        "/v1/chat/completions",
        Some("gw-key-b"),
        chat_body("fast", "x"),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert_eq!(upstream.received_requests().await.unwrap().len(), 1);
    gw.shutdown().await;
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_genai_names_and_added_latency() {
    let gw = start(Config::builtin_mock()).await;
    post(
        &gw,
        "/v1/chat/completions",
        None,
        chat_body("mock", "hello"),
    )
    .await;
    post(
        &gw,
        "/v1/chat/completions",
        None,
        chat_body("nope", "hello"),
    )
    .await;
    let text = client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("# TYPE gen_ai_client_operation_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"mock\",gen_ai_request_model=\"mock\",gen_ai_response_model=\"mock\"} 1"), "{text}");
    assert!(text.contains("gen_ai_client_token_usage_bucket{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"mock\",gen_ai_request_model=\"mock\",gen_ai_response_model=\"mock\",gen_ai_token_type=\"input\",le=\"+Inf\"} 1"), "{text}");
    assert!(
        text.contains("nova_gateway_added_latency_seconds_count{route=\"mock\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("nova_gateway_requests_total{route=\"mock\",status=\"200\"} 1"),
        "{text}"
    );
    gw.shutdown().await;
}

#[test]
fn config_errors_name_the_line_and_the_field() {
    let e = Config::parse("[[models]]\nname = \"a\"\ndriver = \"mock\"\ncolour = 1\n").unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("colour"), "{e}");
    let e = Config::parse("[[models]]\nname = \"a\"\ndriver = \"bard\"\n").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.to_string().contains("bard"), "{e}");
    let e = Config::parse("[[models]]\nname = \"a\"\ndriver = \"mock\"\nfallback = [\"b\"]\n")
        .unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(
        e.message.contains("fallback") && e.message.contains("`b`"),
        "{e}"
    );
    let e = Config::parse(
        "[[models]]\nname = \"a\"\ndriver = \"mock\"\n\n[[keys]]\nname = \"k\"\nsha256 = \"abc\"\n",
    )
    .unwrap_err();
    assert_eq!(e.line, Some(7), "{e}");
    assert!(e.message.contains("keys.sha256"), "{e}");
    let e = Config::parse("[[models]]\nname = \"a\"\ndriver = \"mock\"\n[[models]]\nname = \"a\"\ndriver = \"mock\"\n").unwrap_err();
    assert_eq!(e.line, Some(5), "{e}");
    let e = Config::parse("").unwrap_err();
    assert!(e.message.contains("no [[models]]"), "{e}");
}

#[tokio::test]
async fn a_shutdown_lets_a_stream_in_flight_finish_and_readiness_drops() {
    let upstream = MockServer::start().await;
    let body = "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"done\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(body)
                .set_delay(std::time::Duration::from_millis(300)),
        )
        .mount(&upstream)
        .await;
    let gw = start_toml(&openai_route("slow", &upstream, "")).await;
    let mut b = chat_body("slow", "x");
    b["stream"] = json!(true);
    let call = tokio::spawn(
        client()
            .post(gw.url("/v1/chat/completions"))
            .json(&b)
            .send(),
    );
    // Let the call reach the service, then ask the gateway to stop.
    while upstream.received_requests().await.unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    let addr = gw.addr;
    gw.shutdown().await;
    let res = call.await.unwrap().unwrap();
    let frames = sse_data(&res.text().await.unwrap());
    assert_eq!(frames.last().unwrap(), "[DONE]");
    // Stopped: nothing listens any more.
    assert!(
        client()
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_call_and_frees_its_slot() {
    let upstream = MockServer::start().await;
    // The first call's answer would take 30 s; the next one's comes at once.
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_string_contains("first"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "c", "model": "m", "choices": []}))
                .set_delay(std::time::Duration::from_secs(30)),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "second"}, "finish_reason": "stop"}]
        })))
        .mount(&upstream)
        .await;
    // One call in flight to the service at a time.
    let gw = start_toml(&openai_route("slow", &upstream, "max_in_flight = 1")).await;
    let impatient = nova_llm_http::default_client(None).unwrap();
    let call = impatient
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("slow", "first"))
        .timeout(std::time::Duration::from_millis(200))
        .send()
        .await;
    assert!(call.is_err());
    // The gateway drops the call with the connection: the provider reports it cancelled
    // long before the service would have answered...
    let cancelled = "error_type=\"cancelled\"";
    let mut seen = String::new();
    for _ in 0..200 {
        seen = client()
            .get(gw.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if seen.contains(cancelled) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(seen.contains(cancelled), "{seen}");
    // ...and its slot is free: the next call goes through at once instead of waiting.
    let next = impatient
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("slow", "next"))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status().as_u16(), 200);
    let body: Value = next.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "second");
    gw.shutdown().await;
}

async fn post_anthropic(gw: &Running, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = client()
        .post(gw.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_messages_endpoint_answers_in_anthropics_shape_plain_and_streamed() {
    let gw = start(Config::builtin_mock()).await;
    let body = json!({"model": "mock", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]});
    let (status, reply) = post_anthropic(&gw, None, body.clone()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["type"], "message");
    assert_eq!(reply["role"], "assistant");
    assert_eq!(reply["model"], "mock");
    assert_eq!(
        reply["content"],
        json!([{"type": "text", "text": "f(hello)"}])
    );
    assert_eq!(reply["stop_reason"], "end_turn");
    assert!(reply["id"].as_str().unwrap().starts_with("msg-"));
    assert!(reply["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let text = client()
        .post(gw.url("/v1/messages"))
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = text
        .split("\n\n")
        .filter_map(|f| f.lines().next()?.strip_prefix("event: "))
        .collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    assert!(
        text.contains(r#""delta":{"text":"f(hello)","type":"text_delta"}"#),
        "{text}"
    );
    assert!(text.contains(r#""stop_reason":"end_turn""#), "{text}");

    // Errors in Anthropic's shape.
    let (status, err) = post_anthropic(
        &gw,
        None,
        json!({"model": "claude-9", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["type"], "not_found_error");
    let (status, err) = post_anthropic(&gw, None, json!({"model": "mock", "messages": []})).await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["type"], "invalid_request_error");
    gw.shutdown().await;
}

#[tokio::test]
async fn an_anthropic_client_reaches_an_openai_service_with_tools_and_keys() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_2", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60,
                      "prompt_tokens_details": {"cached_tokens": 20}}
        })))
        .mount(&upstream)
        .await;
    let text = format!(
        "{}\n[[keys]]\nname = \"a\"\nsha256 = \"{}\"\n",
        openai_route("fast", &upstream, ""),
        hash_key("gw-key-x")
    );
    let gw = start_toml(&text).await;
    let body = json!({
        "model": "fast", "max_tokens": 200,
        "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris, then Lyon?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Look it up.", "signature": "sig-from-nowhere"},
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"}
            ]}
        ]
    });
    let (status, _) = post_anthropic(&gw, None, body.clone()).await;
    assert_eq!(status, 401);
    let (status, reply) = post_anthropic(&gw, Some("gw-key-x"), body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["stop_reason"], "tool_use");
    assert_eq!(
        reply["content"],
        json!([{"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Lyon"}}])
    );
    // Anthropic counts input without the cached part.
    assert_eq!(reply["usage"]["input_tokens"], 30);
    assert_eq!(reply["usage"]["cache_read_input_tokens"], 20);
    let sent: Value =
        serde_json::from_slice(&upstream.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris, then Lyon?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}
        ])
    );
    assert_eq!(sent["max_tokens"], 200);
    gw.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_no_headers_is_cut_off_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = start_toml(
        "[server]\nheader_timeout_secs = 5\n\n[[models]]\nname = \"mock\"\ndriver = \"mock\"\n",
    )
    .await;
    let mut conn = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    // Half a request line, then nothing: the connection is closed (the paused clock runs
    // ahead while everything waits), not held open.
    conn.write_all(b"POST /v1/chat/compl").await.unwrap();
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest).await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));
    gw.shutdown().await;
}

// A real clock: a paused one would run ahead to the driver's own timeout while the call
// waits on the (real) network.
#[tokio::test]
async fn what_is_still_running_after_the_grace_period_is_dropped() {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": "c", "model": "m", "choices": []}))
                .set_delay(std::time::Duration::from_secs(600)),
        )
        .mount(&upstream)
        .await;
    let text = format!(
        "[server]\nshutdown_grace_secs = 1\n\n{}",
        openai_route("stuck", &upstream, "")
    );
    let gw = start_toml(&text).await;
    let call = tokio::spawn(
        client()
            .post(gw.url("/v1/chat/completions"))
            .json(&chat_body("stuck", "x"))
            .send(),
    );
    while upstream.received_requests().await.unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    // The shutdown returns after the grace period, not after the service's ten minutes,
    // and the client sees its connection end.
    gw.shutdown().await;
    match call.await.unwrap() {
        Err(_) => {}
        Ok(res) => panic!(
            "answered {}: {}",
            res.status(),
            res.text().await.unwrap_or_default()
        ),
    }
}

#[tokio::test]
async fn two_gateways_on_one_redis_share_a_keys_budget() {
    let Some(redis) = nova_llm_redis::testing::RedisServer::start() else {
        return;
    };
    let upstream = MockServer::start().await;
    // $0.15 a call (1M input tokens of gpt-4o-mini), against a $0.10 budget.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000000, "completion_tokens": 1, "total_tokens": 1000001}
        })))
        .mount(&upstream)
        .await;
    let text = format!(
        "{}\n[[keys]]\nname = \"team-r\"\nsha256 = \"{}\"\nbudget_usd = 0.10\n",
        openai_route("fast", &upstream, ""),
        hash_key("gw-key-r")
    );
    let prefix = format!("test:{}:budget:", std::process::id());
    let mut running = Vec::new();
    for _ in 0..2 {
        let gateway = Gateway::builder(Config::parse(&text).unwrap())
            .env(env)
            .redis(redis.url())
            .redis_prefix(prefix.clone())
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(listener, async move {
            let _ = stopped.await;
        }));
        running.push(Running {
            addr,
            stop: Some(stop),
            task: Some(task),
        });
    }
    let (a, b) = (&running[0], &running[1]);
    let (status, _, _) = post(
        a,
        "/v1/chat/completions",
        Some("gw-key-r"),
        chat_body("fast", "x"),
    )
    .await;
    assert_eq!(status, 200);
    // The spend is written to Redis as the call ends: the other gateway soon refuses.
    let mut refused = None;
    for _ in 0..100 {
        let (status, _, body) = post(
            b,
            "/v1/chat/completions",
            Some("gw-key-r"),
            chat_body("fast", "x"),
        )
        .await;
        if status == 429 {
            refused = Some(body);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let body = refused.expect("the second gateway never saw the spend");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    for r in running {
        r.shutdown().await;
    }
}

#[test]
fn a_configuration_changed_after_parsing_is_refused_not_a_panic() {
    let mut config =
        Config::parse("[[models]]\nname = \"a\"\ndriver = \"mock\"\nfallback = [\"b\"]\n\n[[models]]\nname = \"b\"\ndriver = \"mock\"\n")
            .unwrap();
    config.models.truncate(1);
    let err = Gateway::builder(config).build().unwrap_err();
    assert_eq!(err.kind(), nova_llm_core::ErrorKind::InvalidRequest);
    assert!(err.message().contains("`b`"), "{err}");
}
