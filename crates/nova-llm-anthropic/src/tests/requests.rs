//! The exact requests the driver sends: method, path, headers and JSON body, for every
//! shape of request the Messages API has.

use nova_llm_core::{
    CacheTtl, ChatRequest, ContentPart, Dialog, Effort, ErrorKind, LlmDriver, Message, Reasoning,
    ReasoningPart, ResponseFormat, Tool, ToolCall, ToolChoice, collect_stream,
};
use serde_json::{Value, json};

use super::support::{
    KEY, bodies, driver, server_replying, server_with_text, sse_response, stream,
    thinking_text_tool_stream,
};
use crate::{AnthropicDriver, DEFAULT_API_VERSION};

/// The body the driver sends for `request`.
async fn sent(request: ChatRequest) -> Value {
    let server = server_with_text().await;
    driver(&server).chat(request).await.unwrap();
    bodies(&server).await.remove(0)
}

fn weather() -> Tool {
    Tool::new(
        "get_weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
    .with_description("Current weather")
}

#[tokio::test]
async fn a_simple_call_sends_model_max_tokens_and_one_user_turn_with_the_headers() {
    let server = server_with_text().await;
    let d = AnthropicDriver::builder()
        .base_url(server.uri())
        .api_key(KEY)
        .beta("fine-grained-tool-streaming-2025-05-14")
        .beta("context-1m-2025-08-07")
        .header("x-trace", "t-1")
        .build()
        .unwrap();
    let reply = d
        .chat(ChatRequest::new(Dialog::new().user("Hello")))
        .await
        .unwrap();
    assert_eq!(reply.text(), "ok");
    let reqs = server.received_requests().await.unwrap();
    let r = &reqs[0];
    assert_eq!(r.method.as_str(), "POST");
    assert_eq!(r.url.path(), "/v1/messages");
    let h = |n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(h("x-api-key").as_deref(), Some(KEY));
    assert_eq!(h("authorization"), None);
    assert_eq!(h("anthropic-version").as_deref(), Some(DEFAULT_API_VERSION));
    assert_eq!(
        h("anthropic-beta").as_deref(),
        Some("fine-grained-tool-streaming-2025-05-14,context-1m-2025-08-07")
    );
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    assert_eq!(h("x-trace").as_deref(), Some("t-1"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-6",
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]
        })
    );
}

#[tokio::test]
async fn a_multi_turn_dialog_puts_system_rows_on_top_and_merges_rows_of_one_role() {
    let dialog = Dialog::new()
        .system("Be terse.")
        .user("Hi")
        .assistant("Hello.")
        .user("What is 2+2?")
        // Two user rows in a row become one turn.
        .user("Answer in words.")
        .message(Message::user("a note").with_hidden(true))
        .message(Message::new("developer".into(), "Never use digits."))
        .assistant("");
    let body = sent(
        ChatRequest::new(dialog)
            .model("claude-haiku-4-5")
            .max_tokens(300)
            .stop("END")
            .user("user-42")
            // The Messages API takes no sampling parameters: not sent.
            .temperature(0.2)
            .top_p(0.9)
            .seed(7),
    )
    .await;
    assert_eq!(
        body,
        json!({
            "model": "claude-haiku-4-5",
            "max_tokens": 300,
            "system": "Be terse.\n\nNever use digits.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is 2+2?"},
                    {"type": "text", "text": "Answer in words."}
                ]}
            ],
            "stop_sequences": ["END"],
            "metadata": {"user_id": "user-42"}
        })
    );
}

#[tokio::test]
async fn tools_a_named_tool_choice_and_serial_calls_are_encoded() {
    let body = sent(
        ChatRequest::new(Dialog::new().user("Weather in Paris?"))
            .tool(weather().with_strict(true))
            .tool_choice(ToolChoice::Tool("get_weather".into()))
            .parallel_tool_calls(false),
    )
    .await;
    assert_eq!(
        body["tools"],
        json!([{
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "strict": true
        }])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
    // Every other choice.
    for (choice, parallel, want) in [
        (Some(ToolChoice::Auto), None, json!({"type": "auto"})),
        (Some(ToolChoice::Required), None, json!({"type": "any"})),
        (Some(ToolChoice::None), None, json!({"type": "none"})),
        (
            None,
            Some(false),
            json!({"type": "auto", "disable_parallel_tool_use": true}),
        ),
        (None, Some(true), Value::Null),
    ] {
        let mut req = ChatRequest::new(Dialog::new().user("q")).tool(weather());
        if let Some(c) = choice {
            req = req.tool_choice(c);
        }
        if let Some(p) = parallel {
            req = req.parallel_tool_calls(p);
        }
        assert_eq!(sent(req).await["tool_choice"], want);
    }
}

#[tokio::test]
async fn a_tool_result_turn_carries_the_calls_and_their_results_with_is_error() {
    let dialog = Dialog::new()
        .user("Weather in Paris and Rome?")
        .message(
            Message::assistant("Checking.")
                .with_tool_call(ToolCall::new(
                    "toolu_1",
                    "get_weather",
                    r#"{"city":"Paris"}"#,
                ))
                .with_tool_call(ToolCall::new(
                    "toolu_2",
                    "get_weather",
                    r#"{"city":"Rome"}"#,
                )),
        )
        .tool_result("toolu_1", "18°C, sunny")
        .message(Message::tool_error(
            "toolu_2",
            "the weather service timed out",
        ))
        .user("And tomorrow?");
    let body = sent(ChatRequest::new(dialog).tool(weather())).await;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}
            ]},
            // The results and the next question: one user turn, results first.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C, sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2",
                 "content": "the weather service timed out", "is_error": true},
                {"type": "text", "text": "And tomorrow?"}
            ]}
        ])
    );
}

#[tokio::test]
async fn images_and_documents_go_by_base64_or_url() {
    let dialog = Dialog::new().message(Message::user_parts([
        ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
        ContentPart::image_url("https://example.com/cat.jpg"),
        ContentPart::Document {
            url: "data:application/pdf;base64,JVBERi0xLjQ=".into(),
            title: Some("Q3 report".into()),
        },
        ContentPart::document_url("https://example.com/paper.pdf"),
        ContentPart::text("Compare them."),
    ]));
    let body = sent(ChatRequest::new(dialog)).await;
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="},
             "title": "Q3 report"},
            {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}},
            {"type": "text", "text": "Compare them."}
        ])
    );
}

#[tokio::test]
async fn a_stream_asks_for_one_and_reads_it() {
    let server = server_replying(sse_response(stream(&thinking_text_tool_stream()))).await;
    let s = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("Weather?")).tool(weather()))
        .await
        .unwrap();
    let reply = collect_stream(s).await.unwrap();
    assert_eq!(reply.text(), "Let me check.");
    let reqs = server.received_requests().await.unwrap();
    let accept = reqs[0].headers.get("accept").and_then(|v| v.to_str().ok());
    assert_eq!(accept, Some("text/event-stream"));
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["messages"][0]["content"][0]["text"], "Weather?");
}

#[tokio::test]
async fn structured_output_sends_the_schema_as_output_config_format() {
    let schema = json!({
        "type": "object",
        "properties": {"answer": {"type": "integer"}},
        "required": ["answer"],
        "additionalProperties": false
    });
    let body =
        sent(ChatRequest::new(Dialog::new().user("2+2?")).json_schema("answer", schema.clone()))
            .await;
    assert_eq!(
        body["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema}})
    );
}

#[tokio::test]
async fn thinking_with_a_budget_adds_the_budget_to_the_default_max_tokens() {
    let body =
        sent(ChatRequest::new(Dialog::new().user("Prove it.")).reasoning(Reasoning::Budget(2048)))
            .await;
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-6",
            "max_tokens": 4096 + 2048,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Prove it."}]}],
            "thinking": {"type": "enabled", "budget_tokens": 2048}
        })
    );
    // Below the API's minimum: raised to it. With max_tokens set, it is kept.
    let body = sent(
        ChatRequest::new(Dialog::new().user("q"))
            .max_tokens(8000)
            .reasoning(Reasoning::Budget(100)),
    )
    .await;
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    assert_eq!(body["max_tokens"], 8000);
    // Off.
    let body = sent(ChatRequest::new(Dialog::new().user("q")).reasoning(Reasoning::Off)).await;
    assert_eq!(body["thinking"], json!({"type": "disabled"}));
    assert!(body.get("output_config").is_none());
}

#[tokio::test]
async fn adaptive_thinking_with_an_effort() {
    let body = sent(
        ChatRequest::new(Dialog::new().user("Plan the trip."))
            .reasoning(Reasoning::Effort(Effort::High)),
    )
    .await;
    assert_eq!(body["thinking"], json!({"type": "adaptive"}));
    assert_eq!(body["output_config"], json!({"effort": "high"}));
    assert_eq!(body["max_tokens"], 4096);
    for (effort, want) in [
        (Effort::Minimal, "low"),
        (Effort::Low, "low"),
        (Effort::Medium, "medium"),
        (Effort::XHigh, "xhigh"),
        (Effort::Max, "max"),
    ] {
        let body =
            sent(ChatRequest::new(Dialog::new().user("q")).reasoning(Reasoning::Effort(effort)))
                .await;
        assert_eq!(body["output_config"]["effort"], want, "{effort:?}");
    }
}

#[tokio::test]
async fn a_second_turn_sends_back_its_own_signed_thinking_before_the_tool_result() {
    // The first turn's reply, as the driver read it (thinking with its signature, a
    // redacted block, text, a tool call), appended to the dialog; and a reply that came
    // from another service (after a fallback), whose reasoning must not be sent here.
    let from_claude = Message::assistant("Let me check.")
        .with_reasoning(
            ReasoningPart::new("The user wants the weather.")
                .with_signature("EqQBsig==", "anthropic"),
        )
        .with_reasoning(ReasoningPart::redacted("EmwKAhgBEgy3va3pzix", "anthropic"))
        .with_tool_call(ToolCall::new(
            "toolu_01",
            "get_weather",
            r#"{"city": "Paris"}"#,
        ));
    let from_elsewhere = Message::assistant("Done.")
        .with_reasoning(ReasoningPart::new("unsigned thoughts"))
        .with_reasoning(ReasoningPart::new("").with_signature("gemini-sig", "gemini"));
    let dialog = Dialog::new()
        .user("Weather in Paris?")
        .message(from_claude)
        .tool_result("toolu_01", "18°C")
        .message(from_elsewhere)
        .user("Thanks");
    let body = sent(
        ChatRequest::new(dialog)
            .tool(weather())
            .reasoning(Reasoning::Budget(2048)),
    )
    .await;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "The user wants the weather.", "signature": "EqQBsig=="},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18°C"}
            ]},
            {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
            {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}
        ])
    );
}

#[tokio::test]
async fn cache_breakpoints_mark_the_last_block_of_the_system_prompt_a_row_and_a_tool() {
    let dialog = Dialog::new()
        .message(Message::system("Rules, part one.").with_cache_breakpoint(CacheTtl::Long))
        .system("Rules, part two.")
        .message(
            Message::user_parts([
                ContentPart::pdf_base64("JVBERi0x"),
                ContentPart::text("Summarize."),
            ])
            .with_cache_breakpoint(CacheTtl::Short),
        );
    let body =
        sent(ChatRequest::new(dialog).tool(weather().with_cache_breakpoint(CacheTtl::Short))).await;
    assert_eq!(
        body["system"],
        json!([
            {"type": "text", "text": "Rules, part one.", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "Rules, part two."}
        ])
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
            {"type": "text", "text": "Summarize.", "cache_control": {"type": "ephemeral"}}
        ])
    );
    assert_eq!(
        body["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[tokio::test]
async fn extras_are_merged_last_and_win() {
    let body = sent(
        ChatRequest::new(Dialog::new().user("q"))
            .max_tokens(10)
            .extra("max_tokens", 99)
            .extra("temperature", 0.3)
            .extra("service_tier", "standard_only"),
    )
    .await;
    assert_eq!(body["max_tokens"], 99);
    assert_eq!(body["temperature"], 0.3);
    assert_eq!(body["service_tier"], "standard_only");
}

#[tokio::test]
async fn what_the_api_cannot_take_fails_before_anything_is_sent() {
    let server = server_with_text().await;
    let d = driver(&server);
    let q = || ChatRequest::new(Dialog::new().user("q"));
    let bad_args = Dialog::new()
        .user("q")
        .message(Message::assistant("").with_tool_call(ToolCall::new("t", "f", "[1, 2]")))
        .tool_result("t", "x");
    let cases = [
        (
            q().response_format(ResponseFormat::JsonObject),
            "response_format",
        ),
        (
            q().max_tokens(2000).reasoning(Reasoning::Budget(4000)),
            "reasoning",
        ),
        (ChatRequest::new(bad_args), "messages"),
        (
            ChatRequest::new(Dialog::new().message(Message::new("critic".into(), "x"))),
            "messages",
        ),
        (
            ChatRequest::new(Dialog::new().message(Message::user_parts([
                ContentPart::document_url("data:text/plain;base64,aGk="),
            ]))),
            "messages",
        ),
        (ChatRequest::new(Dialog::new()), "messages"),
    ];
    for (req, param) in cases {
        let err = d.chat(req.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{param}: {err}");
        assert_eq!(err.param(), Some(param), "{err}");
        let err = d.chat_stream(req).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    }
    assert!(bodies(&server).await.is_empty());
}
