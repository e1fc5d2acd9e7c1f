//! The exact requests the driver sends: method, path, headers and JSON body, for every
//! shape of request the Gemini API has.

use nova_llm_core::{
    ChatRequest, ContentPart, Dialog, Effort, ErrorKind, LlmDriver, Message, Reasoning,
    ReasoningPart, Tool, ToolCall, ToolChoice, collect_stream,
};
use serde_json::{Value, json};

use super::support::{
    KEY, bodies, driver, server_replying, server_with_text, sse_response, stream,
    thinking_text_calls_stream,
};
use crate::GeminiDriver;

/// The body the driver sends for `request`.
async fn sent(request: ChatRequest) -> Value {
    let server = server_with_text().await;
    driver(&server).chat(request).await.unwrap();
    bodies(&server).await.remove(0)
}

fn weather() -> Tool {
    Tool::new(
        "get_weather",
        json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
               "properties": {"city": {"type": "string"}}, "required": ["city"],
               "additionalProperties": false}),
    )
    .with_description("Current weather")
}

#[tokio::test]
async fn a_simple_call_goes_to_the_models_method_with_the_key_in_a_header() {
    let server = server_with_text().await;
    let d = GeminiDriver::builder()
        .base_url(server.uri())
        .api_key(KEY)
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
    assert_eq!(r.url.path(), "/v1/models/gemini-2.5-flash:generateContent");
    // The key is never in the URL (URLs end up in logs).
    assert_eq!(r.url.query(), None);
    assert!(!r.url.as_str().contains(KEY));
    let h = |n: &str| {
        r.headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(h("x-goog-api-key").as_deref(), Some(KEY));
    assert_eq!(h("content-type").as_deref(), Some("application/json"));
    assert_eq!(h("x-trace").as_deref(), Some("t-1"));
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]})
    );
    // `models/…` names work too; the version is configurable.
    let d = GeminiDriver::builder()
        .base_url(server.uri())
        .api_version("v1beta")
        .build()
        .unwrap();
    let _ = d
        .chat(ChatRequest::new(Dialog::new().user("x")).model("models/gemini-2.5-pro"))
        .await;
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        reqs[1].url.path(),
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
}

#[tokio::test]
async fn sampling_parameters_go_in_the_generation_config() {
    let body = sent(
        ChatRequest::new(Dialog::new().user("q"))
            .temperature(0.2)
            .top_p(0.9)
            .max_tokens(256)
            .stop("END")
            .seed(7)
            .presence_penalty(0.5)
            .frequency_penalty(-0.5)
            // No Gemini field: not sent.
            .user("user-1")
            .parallel_tool_calls(false)
            .extra("generationConfig", json!({"topK": 40}))
            .extra(
                "safetySettings",
                json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]),
            ),
    )
    .await;
    assert_eq!(
        body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "q"}]}],
            "generationConfig": {
                "temperature": 0.2, "topP": 0.9, "maxOutputTokens": 256, "stopSequences": ["END"],
                "seed": 7, "presencePenalty": 0.5, "frequencyPenalty": -0.5,
                // An extra generationConfig is merged into it, field by field.
                "topK": 40
            },
            "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
        })
    );
}

#[tokio::test]
async fn a_multi_turn_dialog_has_a_system_instruction_and_user_and_model_contents() {
    let dialog = Dialog::new()
        .system("Be terse.")
        .user("Hi")
        .assistant("Hello.")
        .user("What is 2+2?")
        .user("In words.")
        .message(Message::user("note").with_hidden(true))
        .message(Message::new("developer".into(), "No digits."));
    let body = sent(ChatRequest::new(dialog)).await;
    assert_eq!(
        body,
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Hi"}]},
                {"role": "model", "parts": [{"text": "Hello."}]},
                {"role": "user", "parts": [{"text": "What is 2+2?"}, {"text": "In words."}]}
            ],
            "systemInstruction": {"parts": [{"text": "Be terse."}, {"text": "No digits."}]}
        })
    );
}

#[tokio::test]
async fn tools_are_function_declarations_and_the_choice_a_tool_config() {
    let body = sent(
        ChatRequest::new(Dialog::new().user("Weather in Paris?"))
            .tool(weather())
            .tool_choice(ToolChoice::Tool("get_weather".into())),
    )
    .await;
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [{
            "name": "get_weather",
            "description": "Current weather",
            // JSON Schema as written, without `$schema`.
            "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}},
                                     "required": ["city"], "additionalProperties": false}
        }]}])
    );
    assert_eq!(
        body["toolConfig"],
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    for (choice, mode) in [
        (ToolChoice::Auto, "AUTO"),
        (ToolChoice::Required, "ANY"),
        (ToolChoice::None, "NONE"),
    ] {
        let body = sent(
            ChatRequest::new(Dialog::new().user("q"))
                .tool(weather())
                .tool_choice(choice),
        )
        .await;
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": mode}})
        );
    }
}

#[tokio::test]
async fn a_function_response_turn_is_named_after_its_call() {
    let dialog = Dialog::new()
        .user("Weather in Paris and Rome?")
        .message(
            Message::assistant("")
                .with_tool_call(ToolCall::new("fc-1", "get_weather", r#"{"city":"Paris"}"#))
                // An id this driver made up (the API sent none): not sent back.
                .with_tool_call(ToolCall::new(
                    "gemini-call-1",
                    "get_weather",
                    r#"{"city":"Rome"}"#,
                )),
        )
        .tool_result("fc-1", r#"{"temp_c": 18}"#)
        .message(Message::tool_error(
            "gemini-call-1",
            "the service timed out",
        ))
        .user("And tomorrow?");
    let body = sent(ChatRequest::new(dialog).tool(weather())).await;
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "fc-1", "name": "get_weather", "response": {"temp_c": 18}}},
                {"functionResponse": {"name": "get_weather", "response": {"error": "the service timed out"}}},
                {"text": "And tomorrow?"}
            ]}
        ])
    );
    // Plain text is the `output`.
    let dialog = Dialog::new()
        .user("q")
        .message(Message::assistant("").with_tool_call(ToolCall::new("c", "now", "")))
        .tool_result("c", "12:00");
    let body = sent(ChatRequest::new(dialog)).await;
    assert_eq!(
        body["contents"][1]["parts"][0],
        json!({"functionCall": {"id": "c", "name": "now", "args": {}}})
    );
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["response"],
        json!({"output": "12:00"})
    );
}

#[tokio::test]
async fn structured_output_asks_for_json_with_the_schema() {
    let schema = json!({"$schema": "x", "type": "object", "properties": {"n": {"type": "integer"}},
                        "required": ["n"], "additionalProperties": false});
    let body =
        sent(ChatRequest::new(Dialog::new().user("2+2?")).json_schema("answer", schema)).await;
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json",
               "responseJsonSchema": {"type": "object", "properties": {"n": {"type": "integer"}},
                                      "required": ["n"], "additionalProperties": false}})
    );
    let body = sent(
        ChatRequest::new(Dialog::new().user("q"))
            .response_format(nova_llm_core::ResponseFormat::JsonObject),
    )
    .await;
    assert_eq!(
        body["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
}

#[tokio::test]
async fn images_and_documents_are_inline_data_or_file_data() {
    let dialog = Dialog::new().message(Message::user_parts([
        ContentPart::image_url("data:image/png;base64,iVBORw0KGgo="),
        ContentPart::image_url("https://example.com/cat.JPG?size=large"),
        ContentPart::pdf_base64("JVBERi0x"),
        ContentPart::document_url("https://example.com/files/abc"),
        ContentPart::text("Compare."),
    ]));
    let body = sent(ChatRequest::new(dialog)).await;
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=large"}},
            {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0x"}},
            {"fileData": {"fileUri": "https://example.com/files/abc"}},
            {"text": "Compare."}
        ])
    );
}

#[tokio::test]
async fn a_stream_goes_to_the_streaming_method_with_alt_sse() {
    let server = server_replying(sse_response(stream(&thinking_text_calls_stream()))).await;
    let s = driver(&server)
        .chat_stream(ChatRequest::new(Dialog::new().user("Weather?")))
        .await
        .unwrap();
    let reply = collect_stream(s).await.unwrap();
    assert_eq!(reply.text(), "Checking both.");
    let reqs = server.received_requests().await.unwrap();
    assert_eq!(
        reqs[0].url.path(),
        "/v1/models/gemini-2.5-flash:streamGenerateContent"
    );
    assert_eq!(reqs[0].url.query(), Some("alt=sse"));
    let body: Value = serde_json::from_slice(&reqs[0].body).unwrap();
    assert_eq!(
        body,
        json!({"contents": [{"role": "user", "parts": [{"text": "Weather?"}]}]})
    );
}

#[tokio::test]
async fn thinking_controls_become_a_thinking_config() {
    for (r, want) in [
        (
            Reasoning::Budget(2048),
            json!({"includeThoughts": true, "thinkingBudget": 2048}),
        ),
        (Reasoning::Off, json!({"thinkingBudget": 0})),
        (
            Reasoning::Effort(Effort::Low),
            json!({"includeThoughts": true, "thinkingLevel": "LOW"}),
        ),
        (
            Reasoning::Effort(Effort::Minimal),
            json!({"includeThoughts": true, "thinkingLevel": "MINIMAL"}),
        ),
        (
            Reasoning::Effort(Effort::High),
            json!({"includeThoughts": true, "thinkingLevel": "HIGH"}),
        ),
        (
            Reasoning::Effort(Effort::Max),
            json!({"includeThoughts": true, "thinkingLevel": "XHIGH"}),
        ),
    ] {
        let body = sent(ChatRequest::new(Dialog::new().user("q")).reasoning(r)).await;
        assert_eq!(
            body["generationConfig"],
            json!({"thinkingConfig": want}),
            "{r}"
        );
    }
}

#[tokio::test]
async fn a_second_turn_carries_the_thought_signatures_on_the_parts_they_came_with() {
    // The first reply as the driver read it: a signed thought, text, a signature riding on
    // the first function call, and a trailing signature that came on an empty text part.
    let reply = Message::assistant("")
        .with_reasoning(ReasoningPart::new("Two cities.").with_signature("sig-thought", "gemini"))
        .with_part(ContentPart::text("Checking both."))
        .with_part(ContentPart::Reasoning(
            ReasoningPart::default().with_signature("sig-call", "gemini"),
        ))
        .with_tool_call(ToolCall::new(
            "gemini-call-0",
            "get_weather",
            r#"{"city":"Paris"}"#,
        ))
        .with_tool_call(ToolCall::new(
            "gemini-call-1",
            "get_weather",
            r#"{"city":"Rome"}"#,
        ));
    let text_reply = Message::assistant("Done.")
        .with_part(ContentPart::Reasoning(
            ReasoningPart::default().with_signature("sig-end", "gemini"),
        ))
        // Another service's reasoning is never sent to Gemini.
        .with_reasoning(ReasoningPart::new("claude's").with_signature("sig-claude", "anthropic"));
    let dialog = Dialog::new()
        .user("Weather in Paris and Rome?")
        .message(reply)
        .tool_result("gemini-call-0", "18")
        .tool_result("gemini-call-1", "21")
        .message(text_reply)
        .user("Thanks");
    let body = sent(ChatRequest::new(dialog).tool(weather())).await;
    assert_eq!(
        body["contents"][1],
        json!({"role": "model", "parts": [
            {"text": "Two cities.", "thought": true, "thoughtSignature": "sig-thought"},
            {"text": "Checking both."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "sig-call"},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
        ]})
    );
    assert_eq!(
        body["contents"][3],
        json!({"role": "model", "parts": [
            {"text": "Done."},
            {"text": "", "thoughtSignature": "sig-end"}
        ]})
    );
    assert!(!body.to_string().contains("sig-claude"));
}

#[tokio::test]
async fn what_the_api_cannot_take_fails_before_anything_is_sent() {
    let server = server_with_text().await;
    let d = driver(&server);
    let bad_args = Dialog::new()
        .user("q")
        .message(Message::assistant("").with_tool_call(ToolCall::new("t", "f", "[1]")));
    let orphan = Dialog::new().user("q").tool_result("nowhere", "x");
    let cases = [
        (ChatRequest::new(bad_args), "messages"),
        (ChatRequest::new(orphan), "messages"),
        (
            ChatRequest::new(Dialog::new().message(Message::new("critic".into(), "x"))),
            "messages",
        ),
        (
            ChatRequest::new(Dialog::new().user("q")).model("../admin"),
            "model",
        ),
        (
            ChatRequest::new(Dialog::new().user("q")).model("m?key=x"),
            "model",
        ),
    ];
    for (req, param) in cases {
        let err = d.chat(req.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{param}: {err}");
        assert_eq!(err.param(), Some(param), "{err}");
        assert!(d.chat_stream(req).await.is_err());
    }
    assert!(bodies(&server).await.is_empty());
}
