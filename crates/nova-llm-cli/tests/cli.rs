//! End-to-end tests of the `nova` binary: against the built-in mock, and against an
//! OpenAI-compatible server on loopback (wiremock).

// A test panics on what it does not expect, helpers included.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-CLI-KEY-never-printed";

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `nova` with `args`, no inherited OpenAI settings, optional stdin.
async fn nova(args: &[&str], key: Option<&str>, stdin: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_nova"));
    cmd.args(args)
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("GOOGLE_GEMINI_BASE_URL")
        .env_remove("NOVA_DRIVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(k) = key {
        cmd.env("OPENAI_API_KEY", k)
            .env("ANTHROPIC_API_KEY", k)
            .env("GEMINI_API_KEY", k);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test]
async fn the_main_job_prints_f_of_x_with_no_key_and_no_network() {
    let o = nova(&["chat", "hello"], None, None).await;
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, "f(hello)\n", "")
    );

    let o = nova(&["chat", "--stream", "hello world"], None, None).await;
    assert_eq!((o.code, o.stdout.as_str()), (0, "f(hello world)\n"));

    let o = nova(&["complete", "once upon"], None, None).await;
    assert_eq!((o.code, o.stdout.as_str()), (0, "f(once upon)\n"));

    let o = nova(&["chat", "--stats", "hi"], None, None).await;
    assert_eq!(o.stdout, "f(hi)\n");
    assert!(
        o.stderr.contains("latency") && o.stderr.contains("tokens 1 in / 1 out"),
        "{}",
        o.stderr
    );
}

/// `schema` written to a file called `name` in a directory of this test run's own.
fn schema_file(name: &str, schema: Value) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nova-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, schema.to_string()).unwrap();
    path
}

#[tokio::test]
async fn json_output_and_structured_output_are_machine_readable() {
    let o = nova(&["chat", "--json", "hello"], None, None).await;
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["message"]["content"][0]["text"], "f(hello)");
    assert_eq!(v["finish_reason"], "stop");

    let o = nova(&["chat", "--stream", "--json", "a b"], None, None).await;
    let events: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.last().unwrap()["type"], "finish");
    assert!(events.iter().any(|e| e["type"] == "text_delta"));

    let schema = schema_file(
        "person.json",
        json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]}),
    );
    let o = nova(
        &[
            "chat",
            "--json-schema",
            schema.to_str().unwrap(),
            "invent someone",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["name"], "f(invent someone).name");
    assert!(v["age"].is_i64());

    let o = nova(
        &["chat", "--json-schema", "/no/such/file.json", "x"],
        None,
        None,
    )
    .await;
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("cannot read"), "{}", o.stderr);
}

#[tokio::test]
async fn usage_errors_exit_with_2() {
    let o = nova(&["chat"], None, None).await;
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("PROMPT"), "{}", o.stderr);
    let o = nova(&["chat", "--driver", "nope", "x"], None, None).await;
    assert_eq!(o.code, 2);
    let o = nova(&["chat", "--temperature", "7", "x"], None, None).await;
    assert_eq!(o.code, 1, "an invalid parameter is the request's error");
    assert!(o.stderr.contains("temperature"), "{}", o.stderr);
    let o = nova(&["--help"], None, None).await;
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("repl"));
}

#[tokio::test]
async fn a_missing_key_is_one_clear_line_with_a_hint() {
    let o = nova(&["chat", "--driver", "openai", "hi"], None, None).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.starts_with("nova: error: authentication failed"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("hint: export OPENAI_API_KEY"),
        "{}",
        o.stderr
    );
}

fn reply(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    })
}

async fn server() -> MockServer {
    MockServer::start().await
}

fn base(s: &MockServer) -> String {
    format!("{}/v1", s.uri())
}

#[tokio::test]
async fn chat_against_an_openai_compatible_server() {
    let s = server().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("Hi there!")))
        .mount(&s)
        .await;
    let o = nova(
        &[
            "chat",
            "--driver",
            "openai",
            "--base-url",
            &base(&s),
            "--model",
            "gpt-4o-mini",
            "--system",
            "be brief",
            "--temperature",
            "0.5",
            "--max-tokens",
            "20",
            "--stats",
            "Say hi",
        ],
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "Hi there!\n"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("tokens 9 in / 3 out"), "{}", o.stderr);
    assert!(o.stderr.contains("cost $0.000003"), "{}", o.stderr);
    let body: Value =
        serde_json::from_slice(&s.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "be brief"})
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "Say hi"})
    );
}

#[tokio::test]
async fn chat_against_anthropic_with_its_own_key_and_base_url() {
    let s = server().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1000, "output_tokens": 200}
        })))
        .mount(&s)
        .await;
    let o = nova(
        &[
            "chat",
            "--driver",
            "anthropic",
            "--base-url",
            &s.uri(),
            "--model",
            "claude-haiku-4-5",
            "--system",
            "be brief",
            "--max-tokens",
            "50",
            "--stats",
            "Say hi",
        ],
        Some(KEY),
        None,
    )
    .await;
    assert_eq!((o.code, o.stdout.as_str()), (0, "Hello!\n"), "{}", o.stderr);
    // Claude Haiku 4.5: $1 in, $5 out per million.
    assert!(o.stderr.contains("cost $0.002000"), "{}", o.stderr);
    let body: Value =
        serde_json::from_slice(&s.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-haiku-4-5", "max_tokens": 50, "system": "be brief",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}]
        })
    );
    // No key: one clear line naming the variable.
    let o = nova(&["chat", "--driver", "anthropic", "hi"], None, None).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("ANTHROPIC_API_KEY"), "{}", o.stderr);
    assert!(
        o.stderr.contains("hint: export ANTHROPIC_API_KEY"),
        "{}",
        o.stderr
    );
}

#[tokio::test]
async fn chat_against_gemini_with_its_own_key() {
    let s = server().await;
    Mock::given(method("POST"))
        .and(path("/v1/models/gemini-2.5-flash:generateContent"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello!"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 1000, "totalTokenCount": 2000},
            "modelVersion": "gemini-2.5-flash"
        })))
        .mount(&s)
        .await;
    let o = nova(
        &[
            "chat",
            "--driver",
            "gemini",
            "--base-url",
            &s.uri(),
            "--system",
            "be brief",
            "--stats",
            "Say hi",
        ],
        Some(KEY),
        None,
    )
    .await;
    assert_eq!((o.code, o.stdout.as_str()), (0, "Hello!\n"), "{}", o.stderr);
    // Gemini 2.5 Flash: $0.30 in, $2.50 out per million.
    assert!(o.stderr.contains("cost $0.002800"), "{}", o.stderr);
    let body: Value =
        serde_json::from_slice(&s.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "be brief"}]})
    );
    let o = nova(&["chat", "--driver", "gemini", "hi"], None, None).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("hint: export GEMINI_API_KEY"),
        "{}",
        o.stderr
    );
}

#[tokio::test]
async fn streaming_against_a_server() {
    let s = server().await;
    let chunk = |t: &str| json!({"id": "c", "choices": [{"index": 0, "delta": {"content": t}}]});
    let body = format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk("Hel"),
        chunk("lo"),
        json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    );
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(body),
        )
        .mount(&s)
        .await;
    let o = nova(
        &[
            "chat",
            "--driver",
            "openai",
            "--base-url",
            &base(&s),
            "--stream",
            "hi",
        ],
        None,
        None,
    )
    .await;
    assert_eq!((o.code, o.stdout.as_str()), (0, "Hello\n"), "{}", o.stderr);
}

async fn failing(status: u16, body: Value, extra: Option<(&str, &str)>) -> Output {
    let s = server().await;
    let mut t = ResponseTemplate::new(status).set_body_json(body);
    if let Some((k, v)) = extra {
        t = t.insert_header(k, v);
    }
    Mock::given(method("POST")).respond_with(t).mount(&s).await;
    nova(
        &["chat", "--driver", "openai", "--base-url", &base(&s), "hi"],
        Some(KEY),
        None,
    )
    .await
}

#[tokio::test]
async fn service_errors_exit_with_1_and_one_clear_line() {
    let err = |msg: &str, code: &str| json!({"error": {"message": msg, "type": "x", "code": code}});
    let o = failing(
        401,
        err("Incorrect API key provided", "invalid_api_key"),
        None,
    )
    .await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("authentication failed (http 401): Incorrect API key provided"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("hint: check that OPENAI_API_KEY"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains(KEY) && !o.stdout.contains(KEY));

    let o = failing(
        429,
        err("Rate limit reached", "rate_limit_exceeded"),
        Some(("retry-after", "7")),
    )
    .await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("rate limited (http 429): Rate limit reached"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("hint: retry in 7 s"), "{}", o.stderr);

    let o = failing(
        404,
        err("The model `gpt-9` does not exist", "model_not_found"),
        None,
    )
    .await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("(http 404)"), "{}", o.stderr);
    assert!(
        o.stderr.contains("hint: check --model and --base-url"),
        "{}",
        o.stderr
    );

    let o = failing(500, err("The server had an error", "server_error"), None).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("server error (http 500)"), "{}", o.stderr);
    assert_eq!(o.stdout, "");
}

#[tokio::test]
async fn an_unreachable_server_says_where_it_tried() {
    let o = nova(
        &[
            "chat",
            "--driver",
            "openai",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "hi",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("connection failed"), "{}", o.stderr);
    assert!(o.stderr.contains("http://127.0.0.1:9/v1"), "{}", o.stderr);
}

#[tokio::test]
async fn retries_and_fallback_from_the_command_line() {
    let s = server().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&s)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("second time")))
        .with_priority(2)
        .mount(&s)
        .await;
    let o = nova(
        &[
            "chat",
            "--driver",
            "openai",
            "--base-url",
            &base(&s),
            "--retries",
            "2",
            "hi",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "second time\n"),
        "{}",
        o.stderr
    );

    // The primary always fails; the fallback model answers.
    let s = server().await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"model": "big"}),
        ))
        .respond_with(ResponseTemplate::new(500).set_body_string("down"))
        .mount(&s)
        .await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_partial_json(
            json!({"model": "small"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("from small")))
        .mount(&s)
        .await;
    let o = nova(
        &[
            "chat",
            "--driver",
            "openai",
            "--base-url",
            &base(&s),
            "--model",
            "big",
            "--fallback-model",
            "small",
            "hi",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(
        (o.code, o.stdout.as_str()),
        (0, "from small\n"),
        "{}",
        o.stderr
    );
}

#[tokio::test]
async fn a_fallback_chain_across_vendors_with_stats_of_the_answer() {
    let g = server().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "overloaded"}}),
        ))
        .mount(&g)
        .await;
    let o = server().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .mount(&o)
        .await;
    let a = server().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(wiremock::matchers::body_partial_json(
            json!({"model": "claude-haiku-4-5"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "From Claude."}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 1000, "cache_read_input_tokens": 6000,
                      "cache_creation_input_tokens": 3000, "output_tokens": 2000}
        })))
        .mount(&a)
        .await;
    let out = nova(
        &[
            "chat",
            "--driver",
            "gemini",
            "--base-url",
            &g.uri(),
            "--fallback-driver",
            "openai",
            "--fallback-model",
            "gpt-4o-mini",
            "--fallback-base-url",
            &base(&o),
            "--fallback-driver",
            "anthropic",
            "--fallback-model",
            "claude-haiku-4-5",
            "--fallback-base-url",
            &a.uri(),
            "--stats",
            "Say hi",
        ],
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "From Claude.\n"),
        "{}",
        out.stderr
    );
    // Claude Haiku 4.5: 1,000 plain in at $1, 6,000 cache reads at $0.10, 3,000 cache
    // writes at $1.25, 2,000 out at $5, per million.
    assert!(
        out.stderr.contains(
            "tokens 10000 in (6000 cache read, 3000 cache write) / 2000 out, model claude-haiku-4-5, cost $0.015350"
        ),
        "{}",
        out.stderr
    );
    for s in [&g, &o, &a] {
        assert_eq!(s.received_requests().await.unwrap().len(), 1);
    }
}

/// The repl, waiting for whole replies, reading `stdin`, against a server that answers
/// "ok" to everything (returned too, for what it received).
async fn repl_against_a_server(stdin: &str) -> (MockServer, Output) {
    let s = server().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply("ok")))
        .mount(&s)
        .await;
    let o = nova(
        &[
            "repl",
            "--driver",
            "openai",
            "--base-url",
            &base(&s),
            "--no-stream",
        ],
        None,
        Some(stdin),
    )
    .await;
    (s, o)
}

#[tokio::test]
async fn the_repl_reads_stdin_keeps_history_and_answers_commands() {
    let o = nova(
        &["repl"],
        None,
        Some(
            "hello\n/system be nice\nagain\n/stats\n/nope\n/system\n/reset\n/stats\n/exit\nnever sent\n",
        ),
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "f(hello)");
    assert_eq!(lines[1], "f(again)");
    assert!(lines[2].starts_with("calls 2, errors 0"), "{}", lines[2]);
    assert!(lines[2].contains("history 5 rows"), "{}", lines[2]);
    assert!(lines[3].contains("history 1 rows"), "{}", lines[3]);
    assert_eq!(lines.len(), 4, "nothing after /exit: {lines:?}");
    assert!(o.stderr.contains("unknown command /nope"), "{}", o.stderr);
    // `/system` needs its text: alone it is not a command (and sets nothing).
    assert!(
        o.stderr.contains("unknown command /system;"),
        "{}",
        o.stderr
    );
    assert_eq!(o.stderr.matches("(system instruction set)").count(), 1);

    // The history goes with each turn (the mock saw both rows the second time).
    let (s, o) = repl_against_a_server("first\nsecond\n").await;
    assert_eq!(o.stdout, "ok\nok\n", "{}", o.stderr);
    let body: Value =
        serde_json::from_slice(&s.received_requests().await.unwrap()[1].body).unwrap();
    assert_eq!(body["messages"].as_array().unwrap().len(), 3);
}

/// A server that sends the start of a stream and then nothing, holding the connection.
fn stalling_server() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0_u8; 8192];
            let _ = conn.read(&mut buf);
            let chunk =
                json!({"id": "c", "choices": [{"index": 0, "delta": {"content": "Partial"}}]});
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: {chunk}\n\n"
            );
            let _ = conn.flush();
            std::thread::sleep(std::time::Duration::from_secs(30));
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test]
async fn ctrl_c_during_a_stream_stops_it_cleanly() {
    let base = stalling_server();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_nova"))
        .args([
            "chat",
            "--driver",
            "openai",
            "--base-url",
            &base,
            "--stream",
            "hi",
        ])
        .env_remove("OPENAI_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Wait for the first text, then press Ctrl-C.
    let mut seen = Vec::new();
    let mut buf = [0_u8; 64];
    while !String::from_utf8_lossy(&seen).contains("Partial") {
        let n = tokio::io::AsyncReadExt::read(&mut stdout, &mut buf)
            .await
            .unwrap();
        assert!(n > 0, "the stream ended early");
        seen.extend_from_slice(&buf[..n]);
    }
    let pid = child.id().unwrap().to_string();
    // The shell's own `kill`: no extra package needed.
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}")])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nova: stopped"));
}

#[tokio::test]
async fn limits_and_the_cache_from_the_command_line() {
    // Each limit alone is applied: a prompt larger than the token limit, a request limit
    // of zero.
    let long = "word ".repeat(40);
    let o = nova(&["chat", "--tpm", "10", &long], None, None).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("more than the limit of 10 tokens per minute"),
        "{}",
        o.stderr
    );
    let o = nova(&["chat", "--rpm", "0", "x"], None, None).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("admits no request"), "{}", o.stderr);
    let o = nova(&["chat", "--rpm", "10", "--tpm", "1000", "x"], None, None).await;
    assert_eq!((o.code, o.stdout.as_str()), (0, "f(x)\n"), "{}", o.stderr);

    // The repl always caches: after /reset the same first question is answered again
    // without a call.
    let (s, o) = repl_against_a_server("hi\n/reset\nhi\n").await;
    assert_eq!(o.stdout, "ok\nok\n", "{}", o.stderr);
    assert_eq!(s.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_schema_is_named_after_its_file() {
    let s = server().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(reply(r#"{"name": "Ada"}"#)))
        .mount(&s)
        .await;
    let schema = schema_file(
        "my answer-v2.json",
        json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
    );
    let o = nova(
        &[
            "chat",
            "--driver",
            "openai",
            "--base-url",
            &base(&s),
            "--json-schema",
            schema.to_str().unwrap(),
            "who?",
        ],
        None,
        None,
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&o.stdout).unwrap(),
        json!({"name": "Ada"})
    );
    let body: Value =
        serde_json::from_slice(&s.received_requests().await.unwrap()[0].body).unwrap();
    // OpenAI allows only letters, digits, `_` and `-` in a name: every character but an
    // ASCII letter or digit becomes `_`.
    assert_eq!(
        body["response_format"]["json_schema"]["name"], "my_answer_v2",
        "{body}"
    );
}
