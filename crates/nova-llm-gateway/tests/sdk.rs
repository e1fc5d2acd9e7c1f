//! Compatibility proven by clients nobody here wrote: the official OpenAI and Anthropic
//! Python SDKs (`pip install openai anthropic`, done by `.ci/run`) drive the gateway —
//! chat or messages, streams, tools, legacy completions, models, and their own exception
//! classes for errors, including a stream that breaks after content. Skipped, saying so,
//! where Python or an SDK is missing, except under CI, where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;

use nova_llm_gateway::{Config, Gateway, hash_key};
use serde_json::json;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sdk_available(package: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {package}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the `{package}` Python SDK (.ci/run does)"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: python3 with the `{package}` package is not installed"
        );
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_works_against_the_gateway() {
    if !sdk_available("openai") {
        return;
    }
    assert_eq!(run_sdk("openai_sdk.py").await, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_anthropic_python_sdk_works_against_the_messages_endpoint() {
    if !sdk_available("anthropic") {
        return;
    }
    assert_eq!(run_sdk("anthropic_sdk.py").await, 6);
}

/// Runs `script` against a gateway with a mock route and two routes to a double of an
/// OpenAI-compatible service (`tools` answers with a tool call, `broken` cuts its stream
/// after "Hel"); the number of checks that passed.
async fn run_sdk(script: &str) -> usize {
    let upstream = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("\"stream\":true"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "text/event-stream")
                .set_body_string(
                    "data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
                ),
        )
        .mount(&upstream)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
        })))
        .mount(&upstream)
        .await;
    let route = |name: &str| {
        format!(
            "[[models]]\nname = \"{name}\"\ndriver = \"openai\"\nmodel = \"gpt-4o-mini\"\n\
             base_url = \"{}/v1\"\napi_key_env = \"UPSTREAM\"\n\n",
            upstream.uri()
        )
    };
    let text = format!(
        "[[models]]\nname = \"mock\"\ndriver = \"mock\"\n\n{}{}\
         [[keys]]\nname = \"sdk\"\nsha256 = \"{}\"\n",
        route("tools"),
        route("broken"),
        hash_key("sk-gateway-sdk")
    );
    let gateway = Gateway::builder(Config::parse(&text).unwrap())
        .env(|name| (name == "UPSTREAM").then(|| "sk-upstream".to_owned()))
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    let script = format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .env("NOVA_GATEWAY_URL", format!("http://{addr}/v1"))
        .env("NOVA_GATEWAY_BASE", format!("http://{addr}"))
        .env("NOVA_GATEWAY_KEY", "sk-gateway-sdk")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    stdout.lines().filter(|l| l.starts_with("ok ")).count()
}
