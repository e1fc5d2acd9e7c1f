//! The exact requests the driver sends: method, path, headers and JSON body.

use nova_llm_core::{
    CacheTtl, ChatRequest, CompletionRequest, ContentPart, Dialog, Effort, JsonSchemaFormat,
    LlmDriver, Message, Reasoning, ReasoningPart, ResponseFormat, Tool, ToolCall, ToolChoice,
    collect_stream,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::support::{KEY, bodies, driver, sse, text_chunk};
use crate::{MaxTokensField, OpenAiDriver};

fn ok_chat() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]
    }))
}

async fn server_with_chat() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ok_chat())
        .mount(&server)
        .await;
    server
}

async fn sent_body(req: ChatRequest) -> Value {
    let server = server_with_chat().await;
    driver(&server).chat(req).await.unwrap();
    bodies(&server).await.remove(0)
}

#[tokio::test]
async fn minimal_chat_sends_model_and_messages_and_nothing_else() {
    let server = server_with_chat().await;
    let d = OpenAiDriver::builder()
        .base_url(format!("{}/v1/", server.uri()))
        .api_key(KEY)
        .organization("org-1")
        .project("proj-1")
        .header("x-trace", "t-9")
        .build()
        .unwrap();
    d.chat(ChatRequest::new(Dialog::new().user("hi")))
        .await
        .unwrap();
    let reqs = server.received_requests().await.unwrap();
    let r = &reqs[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), "/v1/chat/completions");
    let h = |n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(h("authorization"), Some(format!("Bearer {KEY}")));
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    assert_eq!(h("openai-organization").as_deref(), Some("org-1"));
    assert_eq!(h("openai-project").as_deref(), Some("proj-1"));
    assert_eq!(h("x-trace").as_deref(), Some("t-9"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    );
}

#[tokio::test]
async fn every_parameter_is_sent_under_its_wire_name() {
    let req = ChatRequest::new(Dialog::new().user("q"))
        .model("gpt-4.1")
        .temperature(0.5)
        .top_p(0.25)
        .max_tokens(100)
        .stop("END")
        .seed(42)
        .presence_penalty(0.5)
        .frequency_penalty(-0.5)
        .user("user-7")
        .parallel_tool_calls(false);
    assert_eq!(
        sent_body(req).await,
        json!({
            "model": "gpt-4.1",
            "messages": [{"role": "user", "content": "q"}],
            "temperature": 0.5, "top_p": 0.25, "max_tokens": 100, "stop": ["END"],
            "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "user-7",
            "parallel_tool_calls": false
        })
    );
}

/// Numbers reach the wire as the shortest decimal of what the caller wrote (`0.2`, not
/// `0.20000000298023224`), on every path: with and without the fields that make the body go
/// through a JSON value (`max_tokens`, extras), chat, stream and legacy completion.
#[tokio::test]
async fn decimal_parameters_are_sent_as_written() {
    let mut params = nova_llm_core::ModelParams::new();
    params.temperature = Some(0.2);
    params.top_p = Some(0.9);
    params.presence_penalty = Some(0.1);
    params.frequency_penalty = Some(-0.3);
    let want = [
        ("temperature", "0.2"),
        ("top_p", "0.9"),
        ("presence_penalty", "0.1"),
        ("frequency_penalty", "-0.3"),
    ];
    // The number exactly as written in the body's text.
    let raw = |body: &str, field: &str| -> String {
        let at = body.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
        body[at..]
            .chars()
            .take_while(|c| !matches!(c, ',' | '}'))
            .collect()
    };
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ok_chat())
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            sse(&[
                text_chunk("ok"),
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            ]),
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}]
        })))
        .mount(&server)
        .await;
    let d = driver(&server);
    let chat = || ChatRequest::new(Dialog::new().user("q")).params(params.clone());
    d.chat(chat()).await.unwrap();
    d.chat(chat().max_tokens(9).extra("logprobs", true))
        .await
        .unwrap();
    collect_stream(d.chat_stream(chat().max_tokens(9)).await.unwrap())
        .await
        .unwrap();
    d.complete(
        CompletionRequest::new("p")
            .params(params.clone())
            .max_tokens(3),
    )
    .await
    .unwrap();
    let sent = server.received_requests().await.unwrap();
    assert_eq!(sent.len(), 4);
    for r in &sent {
        let text = std::str::from_utf8(&r.body).unwrap();
        for (field, number) in want {
            assert_eq!(raw(text, field), number, "{text}");
        }
    }
}

#[tokio::test]
async fn max_tokens_field_follows_the_server_kind_and_the_setting() {
    let server = server_with_chat().await;
    let d = OpenAiDriver::builder()
        .base_url(format!("{}/v1", server.uri()))
        .max_tokens_field(MaxTokensField::MaxCompletionTokens)
        .build()
        .unwrap();
    d.chat(ChatRequest::new(Dialog::new().user("q")).max_tokens(7))
        .await
        .unwrap();
    let body = bodies(&server).await.remove(0);
    assert_eq!(body["max_completion_tokens"], 7);
    assert!(body.get("max_tokens").is_none());
    // No key configured: no authorization header at all.
    let reqs = server.received_requests().await.unwrap();
    assert!(reqs[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn response_formats_are_encoded() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let strict =
        sent_body(ChatRequest::new(Dialog::new().user("q")).json_schema("answer", schema.clone()))
            .await;
    assert_eq!(
        strict["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}})
    );
    let loose = sent_body(
        ChatRequest::new(Dialog::new().user("q")).response_format(ResponseFormat::JsonSchema(
            JsonSchemaFormat::new("a", json!({}))
                .with_strict(false)
                .with_description("d"),
        )),
    )
    .await;
    assert_eq!(
        loose["response_format"]["json_schema"],
        json!({"name": "a", "schema": {}, "strict": false, "description": "d"})
    );
    let obj = sent_body(
        ChatRequest::new(Dialog::new().user("q")).response_format(ResponseFormat::JsonObject),
    )
    .await;
    assert_eq!(obj["response_format"], json!({"type": "json_object"}));
    let text = sent_body(ChatRequest::new(Dialog::new().user("q"))).await;
    assert!(text.get("response_format").is_none());
}

#[tokio::test]
async fn tools_and_every_tool_choice_are_encoded() {
    let tool = Tool::new("lookup", json!({"type": "object"}))
        .with_description("Look up")
        .with_strict(true);
    let base = || ChatRequest::new(Dialog::new().user("q")).tool(tool.clone());
    let body = sent_body(base()).await;
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object"}, "strict": true}}])
    );
    assert!(body.get("tool_choice").is_none());
    for (choice, wire) in [
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
        (ToolChoice::Required, json!("required")),
        (
            ToolChoice::Tool("lookup".into()),
            json!({"type": "function", "function": {"name": "lookup"}}),
        ),
    ] {
        assert_eq!(
            sent_body(base().tool_choice(choice)).await["tool_choice"],
            wire
        );
    }
}

#[tokio::test]
async fn messages_of_every_kind_are_encoded_and_hidden_rows_skipped() {
    let dialog = Dialog::new()
        .system("be brief")
        .message(Message::user("hi").with_name("ann"))
        .message(Message::user_parts([
            ContentPart::text("what is this?"),
            ContentPart::Image {
                url: "https://example.com/cat.png".into(),
                detail: Some("low".into()),
            },
        ]))
        .message(Message::assistant("").with_tool_call(ToolCall::new("c1", "lookup", "{\"q\":1}")))
        .tool_result("c1", "42")
        .message(Message::user("scratch").with_hidden(true))
        .message(Message::new("developer".into(), "dev note"))
        // An empty reply without tool calls is an empty string, not null.
        .assistant("");
    let body = sent_body(ChatRequest::new(dialog)).await;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi", "name": "ann"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":1}"}}
            ]},
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
            {"role": "developer", "content": "dev note"},
            {"role": "assistant", "content": ""}
        ])
    );
}

#[tokio::test]
async fn reasoning_stays_home_documents_go_inline_and_breakpoints_are_marked() {
    let thought = ReasoningPart::new("2+2").with_signature("sig-from-claude", "anthropic");
    let dialog = Dialog::new()
        .message(Message::system("long rules").with_cache_breakpoint(CacheTtl::Short))
        .message(Message::user_parts([
            ContentPart::Document {
                url: "data:application/pdf;base64,JVBERi0x".into(),
                title: Some("report.pdf".into()),
            },
            ContentPart::text("Summarize."),
        ]))
        // Reasoning from any service is never sent back to OpenAI.
        .message(Message::assistant("Four.").with_reasoning(thought))
        .user("thanks");
    let body = sent_body(ChatRequest::new(dialog).reasoning(Reasoning::Effort(Effort::High))).await;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": [
                {"type": "text", "text": "long rules", "prompt_cache_breakpoint": {"mode": "explicit"}}
            ]},
            {"role": "user", "content": [
                {"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
                {"type": "text", "text": "Summarize."}
            ]},
            {"role": "assistant", "content": "Four."},
            {"role": "user", "content": "thanks"}
        ])
    );
    assert_eq!(body["reasoning_effort"], "high");
    // The portable control, level by level; a budget becomes the level that spends
    // about as much.
    for (r, want) in [
        (Reasoning::Off, "none"),
        (Reasoning::Budget(1_024), "low"),
        (Reasoning::Budget(8_000), "medium"),
        (Reasoning::Budget(32_000), "high"),
        (Reasoning::Effort(Effort::Minimal), "minimal"),
        (Reasoning::Effort(Effort::XHigh), "xhigh"),
    ] {
        let body = sent_body(ChatRequest::new(Dialog::new().user("q")).reasoning(r)).await;
        assert_eq!(body["reasoning_effort"], want, "{r}");
    }
    // A document by URL cannot be sent: a classified error, nothing sent.
    let server = server_with_chat().await;
    let by_url = Message::user_parts([ContentPart::document_url("https://example.com/a.pdf")]);
    let err = driver(&server)
        .chat(ChatRequest::new(Dialog::new().message(by_url)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nova_llm_core::ErrorKind::InvalidRequest);
    assert!(err.message().contains("inline"), "{err}");
    assert!(bodies(&server).await.is_empty());
}

#[tokio::test]
async fn extras_are_merged_last_and_win() {
    let body = sent_body(
        ChatRequest::new(Dialog::new().user("q"))
            .temperature(0.1)
            .extra("temperature", 0.9)
            .extra("top_k", 40)
            .extra("chat_template_kwargs", json!({"enable_thinking": false})),
    )
    .await;
    assert_eq!(body["temperature"], 0.9);
    assert_eq!(body["top_k"], 40);
    assert_eq!(body["chat_template_kwargs"]["enable_thinking"], false);
}

#[tokio::test]
async fn streaming_asks_for_usage_and_an_event_stream() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("accept", "text/event-stream"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(sse(&[text_chunk("a")]), "text/event-stream"),
        )
        .mount(&server)
        .await;
    let s = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("q")))
        .await
        .unwrap();
    collect_stream(s).await.unwrap();
    let body = bodies(&server).await.remove(0);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn legacy_completions_send_prompt_and_max_tokens() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "cmpl", "model": "gpt-3.5-turbo-instruct",
            "choices": [{"index": 0, "text": " there", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        })))
        .mount(&server)
        .await;
    let d = driver(&server);
    let r = d
        .complete(
            CompletionRequest::new("hello")
                .model("gpt-3.5-turbo-instruct")
                .max_tokens(5)
                .temperature(0.0),
        )
        .await
        .unwrap();
    assert_eq!(r.text, " there");
    assert_eq!(r.finish_reason, nova_llm_core::FinishReason::Length);
    assert_eq!(
        bodies(&server).await.remove(0),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "hello", "temperature": 0.0, "max_tokens": 5})
    );
}

#[tokio::test]
async fn azure_uses_deployment_url_api_version_and_api_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/my-gpt/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", KEY))
        .respond_with(ok_chat())
        .expect(1)
        .mount(&server)
        .await;
    let d = OpenAiDriver::builder()
        .azure(format!("{}/", server.uri()), "my-gpt", "2024-10-21")
        .api_key(KEY)
        .build()
        .unwrap();
    d.chat(ChatRequest::new(Dialog::new().user("hi")).max_tokens(7))
        .await
        .unwrap();
    let reqs = server.received_requests().await.unwrap();
    assert!(reqs[0].headers.get("authorization").is_none());
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body["model"], "my-gpt");
    // Azure serves OpenAI's own models: the newer token field, as for api.openai.com.
    assert_eq!(body["max_completion_tokens"], 7);
    assert!(body.get("max_tokens").is_none());
}

#[tokio::test]
async fn the_default_model_and_a_client_of_ones_own_are_used() {
    let server = server_with_chat().await;
    // This workspace builds reqwest without a crypto provider (the driver brings its own
    // TLS configuration), so a client built by hand needs one installed first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .user_agent("nova-test/1")
        .build()
        .unwrap();
    let d = OpenAiDriver::builder()
        .base_url(format!("{}/v1", server.uri()))
        .default_model("llama3.2")
        .client(client)
        .build()
        .unwrap();
    assert_eq!(d.default_model(), "llama3.2");
    d.prompt("hi").await.unwrap();
    d.chat(ChatRequest::new(Dialog::new().user("hi")).model("qwen2.5"))
        .await
        .unwrap();
    let reqs = server.received_requests().await.unwrap();
    let models: Vec<Value> = reqs
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["model"].clone())
        .collect();
    assert_eq!(models, [json!("llama3.2"), json!("qwen2.5")]);
    for r in &reqs {
        assert_eq!(r.headers.get("user-agent").unwrap(), "nova-test/1");
    }
}

#[tokio::test]
async fn invalid_requests_fail_before_anything_is_sent() {
    let server = server_with_chat().await;
    let d = driver(&server);
    let err = d
        .chat(ChatRequest::new(Dialog::new().user("q")).temperature(5.0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), nova_llm_core::ErrorKind::InvalidRequest);
    let err = d
        .chat_stream(ChatRequest::new(Dialog::new()))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), nova_llm_core::ErrorKind::InvalidRequest);
    assert!(server.received_requests().await.unwrap().is_empty());
}
