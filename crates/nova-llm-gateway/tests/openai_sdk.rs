//! Compatibility proven by a client nobody here wrote: the official OpenAI Python SDK
//! (`pip install openai`, done by `.ci/run`) drives the gateway — chat, stream, tools,
//! legacy completions, models, and its own exception classes for errors, including a
//! stream that breaks after content. Skipped, saying so, where Python or the SDK is
//! missing, except under CI, where that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use nova_llm_gateway::{Config, Gateway, hash_key};
use serde_json::json;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sdk_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_works_against_the_gateway() {
    if !sdk_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install the OpenAI Python SDK (.ci/run does: pip install openai)"
        );
        eprintln!("SKIPPED: python3 with the `openai` package is not installed");
        return;
    }
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
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .env("NOVA_GATEWAY_URL", format!("http://{addr}/v1"))
        .env("NOVA_GATEWAY_KEY", "sk-gateway-sdk")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        11,
        "{stdout}"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
