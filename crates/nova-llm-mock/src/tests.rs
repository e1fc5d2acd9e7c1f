//! Behaviour of the mock, through its public API.

use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{
    ChatRequest, ChatResponse, CompletionRequest, ContentPart, Dialog, ErrorKind, FinishReason,
    LlmDriver, LlmDriverExt, LlmError, Message, StreamEvent, Tool, ToolCall, ToolCallDelta,
    ToolChoice, Usage, collect_stream, next_event,
};
use serde_json::json;

use crate::{Chunking, MockDriver, Recorded, Reply, ScriptedStream};

fn user(text: &str) -> ChatRequest {
    ChatRequest::new(Dialog::new().user(text))
}

async fn drain(mut s: nova_llm_core::ChatStream) -> Vec<Result<StreamEvent, LlmError>> {
    let mut out = Vec::new();
    while let Some(item) = next_event(&mut s).await {
        out.push(item);
    }
    out
}

fn texts(items: &[Result<StreamEvent, LlmError>]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(StreamEvent::TextDelta { text }) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn default_reply_is_f_of_the_last_visible_row() {
    let mock = MockDriver::new();
    assert_eq!(mock.prompt("hello world").await.unwrap(), "f(hello world)");

    let d = Dialog::new()
        .system("s")
        .user("first")
        .assistant("a")
        .user("second")
        .message(Message::user("hidden note").with_hidden(true));
    let r = mock.chat(ChatRequest::new(d)).await.unwrap();
    assert_eq!(r.text(), "f(second)");
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.model, "mock-1");
    assert_eq!(r.id, "mock-2");
}

#[tokio::test]
async fn multi_part_rows_join_text_parts_with_newlines() {
    let mock = MockDriver::new();
    let row = Message::user_parts([
        ContentPart::text("look"),
        ContentPart::image_url("https://example.com/a.png"),
        ContentPart::text("what?"),
    ]);
    let r = mock
        .chat(ChatRequest::new(Dialog::new().message(row)))
        .await
        .unwrap();
    assert_eq!(r.text(), "f(look\nwhat?)");
}

#[tokio::test]
async fn completion_and_tool_results_follow_f() {
    let mock = MockDriver::new();
    let c = mock
        .complete(CompletionRequest::new("once upon"))
        .await
        .unwrap();
    assert_eq!(c.text, "f(once upon)");
    let d = Dialog::new()
        .user("weather?")
        .message(Message::assistant("").with_tool_call(ToolCall::new("c1", "w", "{}")))
        .tool_result("c1", "sunny");
    let r = mock.chat(ChatRequest::new(d)).await.unwrap();
    assert_eq!(r.text(), "f(sunny)");
    assert!(r.tool_calls().is_empty());
}

#[tokio::test]
async fn an_empty_dialog_or_bad_parameters_are_invalid_requests() {
    let mock = MockDriver::new();
    let err = mock
        .chat(ChatRequest::new(Dialog::new()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    let hidden_only = Dialog::new().message(Message::user("x").with_hidden(true));
    let err = mock.chat(ChatRequest::new(hidden_only)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    let err = mock.chat(user("x").temperature(9.0)).await.unwrap_err();
    assert_eq!(err.param(), Some("temperature"));
    let err = mock
        .complete(CompletionRequest::new("x").max_tokens(0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}

#[tokio::test]
async fn usage_counts_words_and_is_never_zero() {
    let mock = MockDriver::new();
    let r = mock
        .chat(ChatRequest::new(
            Dialog::new().system("be brief").user("hello big world"),
        ))
        .await
        .unwrap();
    // Sent: "be brief" + "hello big world" = 5 words; reply "f(hello big world)" = 3 words.
    assert_eq!(r.usage, Usage::new(5, 3));
    let r = mock.chat(user("")).await.unwrap();
    assert_eq!(r.text(), "f()");
    assert_eq!(r.usage, Usage::new(1, 1));
}

#[tokio::test]
async fn structured_default_matches_the_schema_and_deserializes() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Person {
        name: String,
        age: u32,
        tags: Vec<String>,
        role: String,
        active: bool,
    }
    let schema = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 18},
            "tags": {"type": "array", "items": {"type": "string"}},
            "role": {"type": "string", "enum": ["admin", "user"]},
            "active": {"type": "boolean"}
        },
        "required": ["name", "age", "tags", "role", "active"]
    });
    let mock = MockDriver::new();
    let p: Person = mock
        .structured_as(user("who?").json_schema("person", schema))
        .await
        .unwrap();
    assert_eq!(
        p,
        Person {
            name: "f(who?).name".into(),
            age: 18,
            tags: vec!["f(who?).tags".into()],
            role: "admin".into(),
            active: true,
        }
    );
    let obj = mock
        .structured(user("q").response_format(nova_llm_core::ResponseFormat::JsonObject))
        .await
        .unwrap();
    assert_eq!(obj.value, json!({"reply": "f(q)"}));
}

#[tokio::test]
async fn offered_tools_are_called_with_schema_valid_arguments() {
    let weather = Tool::new(
        "weather",
        json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    );
    let ping = Tool::new("ping", json!({"type": "object"}));
    let mock = MockDriver::new();

    let r = mock
        .chat(user("Paris").tool(weather.clone()).tool(ping.clone()))
        .await
        .unwrap();
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.tool_calls().len(), 1);
    let call = &r.tool_calls()[0];
    assert_eq!(
        (call.id.as_str(), call.name.as_str()),
        ("call_1", "weather")
    );
    assert_eq!(
        call.arguments_json().unwrap(),
        json!({"city": "f(Paris).city"})
    );

    let forced = mock
        .chat(
            user("x")
                .tool(weather.clone())
                .tool(ping.clone())
                .tool_choice(ToolChoice::Tool("ping".into())),
        )
        .await
        .unwrap();
    assert_eq!(forced.tool_calls()[0].name, "ping");
    assert_eq!(
        forced.tool_calls()[0].arguments_json().unwrap(),
        json!({"input": "f(x)"})
    );

    let none = mock
        .chat(
            user("x")
                .tool(weather.clone())
                .tool_choice(ToolChoice::None),
        )
        .await
        .unwrap();
    assert_eq!(none.text(), "f(x)");

    // After the tool result, the loop ends with text.
    let d = Dialog::new()
        .user("Paris")
        .message(r.into_message())
        .tool_result("call_1", "21C");
    let end = mock.chat(ChatRequest::new(d).tool(weather)).await.unwrap();
    assert_eq!(end.text(), "f(21C)");
    assert_eq!(end.finish_reason, FinishReason::Stop);
}

#[tokio::test]
async fn default_stream_is_chunked_and_accumulates_to_the_plain_reply() {
    for chunking in [Chunking::Words, Chunking::Chars, Chunking::Fixed(4)] {
        let mock = MockDriver::builder().chunking(chunking).build();
        let plain = mock.chat(user("a b c")).await.unwrap();
        mock.reset();
        let items = drain(mock.chat_stream(user("a b c")).await.unwrap()).await;
        let expected = chunking.split("f(a b c)");
        assert!(expected.len() > 1);
        assert_eq!(texts(&items), expected, "{chunking:?}");
        assert!(matches!(items.last(), Some(Ok(StreamEvent::Finish { .. }))));
        assert!(items.iter().any(|i| matches!(i, Ok(StreamEvent::Usage(_)))));
        mock.reset();
        let streamed = collect_stream(mock.chat_stream(user("a b c")).await.unwrap())
            .await
            .unwrap();
        assert_eq!(streamed, plain);
    }
}

#[tokio::test]
async fn streamed_tool_calls_accumulate_to_the_plain_reply() {
    let mock = MockDriver::builder().chunking(Chunking::Fixed(3)).build();
    let req = user("go").tool(Tool::new("t", json!({"type": "object"})));
    let plain = mock.chat(req.clone()).await.unwrap();
    mock.reset();
    let streamed = collect_stream(mock.chat_stream(req).await.unwrap())
        .await
        .unwrap();
    assert_eq!(streamed, plain);
    let completion = collect_stream(
        mock.complete_stream(CompletionRequest::new("p"))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(completion.text(), "f(p)");
}

#[tokio::test]
async fn queued_replies_are_used_once_in_order_then_f_returns() {
    let mock = MockDriver::new();
    mock.push_text("one")
        .push_json(json!({"a": 1}))
        .push_tool_calls([ToolCall::new("c", "f", "{}")])
        .push(Reply::response(
            ChatResponse::from_text("custom")
                .with_usage(Usage::new(100, 7))
                .with_raw_finish_reason("length")
                .with_model("big"),
        ));
    assert_eq!(mock.pending(), 4);
    assert_eq!(mock.prompt("x").await.unwrap(), "one");
    assert_eq!(mock.prompt("x").await.unwrap(), "{\"a\":1}");
    let t = mock.chat(user("x")).await.unwrap();
    assert_eq!(t.finish_reason, FinishReason::ToolCalls);
    assert_eq!(t.tool_calls()[0].name, "f");
    let c = mock.chat(user("x")).await.unwrap();
    assert_eq!((c.text().as_str(), c.model.as_str()), ("custom", "big"));
    assert_eq!(c.usage, Usage::new(100, 7));
    assert_eq!(c.finish_reason, FinishReason::Length);
    assert_eq!(mock.pending(), 0);
    assert_eq!(mock.prompt("x").await.unwrap(), "f(x)");
}

#[tokio::test]
async fn scripted_replies_get_usage_id_and_model_filled_in() {
    let mock = MockDriver::new();
    mock.push_text("two words");
    let r = mock.chat(user("a b c").model("m-x")).await.unwrap();
    assert_eq!(r.usage, Usage::new(3, 2));
    assert_eq!((r.id.as_str(), r.model.as_str()), ("mock-1", "m-x"));
}

#[tokio::test]
async fn queued_errors_keep_kind_and_retry_after() {
    let mock = MockDriver::new();
    mock.push_error(
        LlmError::new(ErrorKind::RateLimited, "slow down")
            .with_status(429)
            .with_retry_after(Duration::from_secs(3)),
    );
    mock.push(Reply::error_kind(ErrorKind::QuotaExceeded, "no credit"));
    let e = mock.prompt("x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(e.status(), Some(429));
    // An error fails a stream call before any item.
    let e = mock.chat_stream(user("x")).await.err().unwrap();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn scripted_stream_plays_exactly_and_can_fail_after_chunk_n() {
    let script = ScriptedStream::new()
        .text("Hel")
        .text("lo")
        .usage(Usage::new(1, 2))
        .finish(FinishReason::Stop);
    let mock = MockDriver::new();
    mock.push_stream(script.clone());
    let items = drain(mock.chat_stream(user("x")).await.unwrap()).await;
    assert_eq!(items.len(), 4);
    assert_eq!(texts(&items), ["Hel", "lo"]);

    mock.push_stream(
        script
            .clone()
            .fail_after(1, LlmError::new(ErrorKind::Connection, "reset")),
    );
    let items = drain(mock.chat_stream(user("x")).await.unwrap()).await;
    assert_eq!(items.len(), 2, "one event, then the error, then nothing");
    // After content, by the stream contract: interrupted, the scripted error its cause.
    let err = items[1].as_ref().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    assert_eq!(err.cause_kind(), Some(ErrorKind::Connection));
    assert_eq!(err.partial().unwrap().text, "Hel");

    // Before any content, the scripted error itself.
    mock.push_stream(
        script
            .clone()
            .fail_after(0, LlmError::new(ErrorKind::Connection, "reset")),
    );
    let items = drain(mock.chat_stream(user("x")).await.unwrap()).await;
    assert_eq!(items[0].as_ref().unwrap_err().kind(), ErrorKind::Connection);

    // Accumulated by a plain call, the failure carries the partial text.
    mock.push_stream(script.fail_after(2, LlmError::new(ErrorKind::Server, "boom")));
    let err = mock.chat(user("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    assert_eq!(err.cause_kind(), Some(ErrorKind::Server));
    assert_eq!(err.partial().unwrap().text, "Hello");
}

#[tokio::test]
async fn a_scripted_stream_without_finish_is_a_truncation() {
    let mock = MockDriver::new();
    let cut = ScriptedStream::new().text("partial ").text("answ");
    mock.push_stream(cut.clone());
    let err = collect_stream(mock.chat_stream(user("x")).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    assert_eq!(err.partial().unwrap().text, "partial answ");
    mock.push_stream(cut);
    let err = mock.chat(user("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);

    // A failure scripted past the last event still happens.
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .fail_after(5, LlmError::new(ErrorKind::Timeout, "stalled")),
    );
    let items = drain(mock.chat_stream(user("x")).await.unwrap()).await;
    assert_eq!(items.len(), 2);
    let err = items[1].as_ref().unwrap_err();
    assert_eq!(err.cause_kind(), Some(ErrorKind::Timeout));
    // And in a plain call, even when the events before it finished the reply.
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .finish(FinishReason::Stop)
            .fail_after(2, LlmError::new(ErrorKind::Timeout, "stalled")),
    );
    let err = mock.chat(user("x")).await.unwrap_err();
    assert_eq!(err.cause_kind(), Some(ErrorKind::Timeout));
    assert_eq!(err.partial().unwrap().text, "a");
}

#[tokio::test]
async fn a_scripted_stream_built_from_a_response_plays_it_back() {
    let reply = ChatResponse::from_text("one two three")
        .with_reasoning("hm")
        .with_id("r1")
        .with_model("m")
        .with_usage(Usage::new(2, 3));
    let script = ScriptedStream::from_response(&reply, Chunking::Words);
    // Start, one reasoning delta, three words, usage, finish.
    assert_eq!(script.len(), 7);
    assert!(!script.is_empty());
    assert!(ScriptedStream::new().is_empty());
    let mock = MockDriver::new();
    mock.push_stream(script.reasoning(" more"));
    let items = drain(mock.chat_stream(user("x")).await.unwrap()).await;
    assert_eq!(texts(&items), ["one ", "two ", "three"]);
    assert!(matches!(
        items.last(),
        Some(Ok(StreamEvent::ReasoningDelta { text })) if text == " more"
    ));
}

#[tokio::test]
async fn scripted_finish_reasons_are_kept_and_tool_calls_get_theirs() {
    let mock = MockDriver::new();
    // Set without a raw reason: kept.
    let mut cut = ChatResponse::from_text("cut sh");
    cut.finish_reason = FinishReason::Length;
    mock.push(cut);
    assert_eq!(
        mock.chat(user("x")).await.unwrap().finish_reason,
        FinishReason::Length
    );
    // Not set: a reply of tool calls finishes with `tool_calls`, text with `stop`.
    let mut calls = ChatResponse::from_text("");
    calls.message.tool_calls.push(ToolCall::new("c", "f", "{}"));
    assert_eq!(calls.finish_reason, FinishReason::Stop, "as built");
    mock.push(calls);
    mock.push_text("done");
    assert_eq!(
        mock.chat(user("x")).await.unwrap().finish_reason,
        FinishReason::ToolCalls
    );
    assert_eq!(
        mock.chat(user("x")).await.unwrap().finish_reason,
        FinishReason::Stop
    );
}

#[tokio::test]
async fn scripted_tool_call_stream_accumulates() {
    let mock = MockDriver::new();
    mock.push_stream(
        ScriptedStream::new()
            .tool_call_delta(ToolCallDelta::new(0).with_id("c").with_name("f"))
            .tool_call_delta(ToolCallDelta::new(0).with_arguments("{\"a\""))
            .tool_call_delta(ToolCallDelta::new(0).with_arguments(":1}"))
            .finish(FinishReason::ToolCalls),
    );
    let r = mock.chat(user("x")).await.unwrap();
    assert_eq!(r.tool_calls(), [ToolCall::new("c", "f", "{\"a\":1}")]);
}

#[tokio::test(start_paused = true)]
async fn delays_follow_tokio_time() {
    let mock = MockDriver::new();
    mock.push_default_after(Duration::from_secs(30));
    mock.push(Reply::text("late").after(Duration::from_secs(5)));
    let start = tokio::time::Instant::now();
    assert_eq!(mock.prompt("x").await.unwrap(), "f(x)");
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(mock.prompt("x").await.unwrap(), "late");
    assert_eq!(start.elapsed(), Duration::from_secs(35));

    // A call still waiting can be timed out by the caller.
    mock.push_default_after(Duration::from_secs(60));
    let r = tokio::time::timeout(Duration::from_secs(1), mock.prompt("x")).await;
    assert!(r.is_err());
}

#[tokio::test(start_paused = true)]
async fn stream_gaps_follow_tokio_time() {
    let mock = MockDriver::new();
    mock.push_stream(
        ScriptedStream::new()
            .text("a")
            .text("b")
            .finish(FinishReason::Stop)
            .gap(Duration::from_millis(500)),
    );
    let start = tokio::time::Instant::now();
    let mut s = mock.chat_stream(user("x")).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    next_event(&mut s).await.unwrap().unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    drain(s).await;
    assert_eq!(start.elapsed(), Duration::from_millis(1500));
}

#[tokio::test]
async fn requests_are_recorded_and_reset_clears_everything() {
    let mock = MockDriver::new();
    assert!(mock.last_chat_request().is_none());
    mock.chat(user("a")).await.unwrap();
    drain(mock.chat_stream(user("b")).await.unwrap()).await;
    mock.complete(CompletionRequest::new("c")).await.unwrap();
    drain(
        mock.complete_stream(CompletionRequest::new("d"))
            .await
            .unwrap(),
    )
    .await;
    let _ = mock.chat(ChatRequest::new(Dialog::new())).await; // invalid, still recorded
    assert_eq!(mock.calls(), 5);
    let rec = mock.requests();
    assert!(matches!(rec[0], Recorded::Chat(_)) && !rec[0].is_stream());
    assert!(rec[1].is_stream() && rec[1].chat_request().is_some());
    assert_eq!(rec[2].completion_request().unwrap().prompt, "c");
    assert!(rec[3].is_stream() && rec[3].completion_request().is_some());
    assert_eq!(mock.chat_requests().len(), 3);
    assert!(mock.last_chat_request().unwrap().dialog.is_empty());

    mock.push_text("unused");
    mock.reset();
    assert_eq!(
        (mock.calls(), mock.pending(), mock.requests().len()),
        (0, 0, 0)
    );
    assert_eq!(mock.prompt("x").await.unwrap(), "f(x)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_get_each_queued_reply_exactly_once() {
    let mock = MockDriver::new();
    for i in 0..200 {
        mock.push_text(format!("r{i}"));
    }
    let driver: Arc<dyn LlmDriver> = Arc::new(mock.clone());
    let tasks: Vec<_> = (0..250)
        .map(|_| {
            let d = Arc::clone(&driver);
            tokio::spawn(async move { d.prompt("x").await })
        })
        .collect();
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap().unwrap());
    }
    let mut scripted: Vec<_> = got.iter().filter(|s| s.starts_with('r')).cloned().collect();
    scripted.sort();
    scripted.dedup();
    assert_eq!(scripted.len(), 200, "every scripted reply once, none twice");
    assert_eq!(got.iter().filter(|s| *s == "f(x)").count(), 50);
    assert_eq!(mock.calls(), 250);
    assert_eq!(mock.pending(), 0);
}

#[tokio::test]
async fn separate_mocks_do_not_share_state() {
    let a = MockDriver::new();
    let b = MockDriver::new();
    a.push_text("for a");
    assert_eq!(b.prompt("x").await.unwrap(), "f(x)");
    assert_eq!(a.prompt("x").await.unwrap(), "for a");
    assert_eq!((a.calls(), b.calls()), (1, 1));
}

#[test]
fn builder_settings_are_reported() {
    let mock = MockDriver::builder()
        .name("fake")
        .model("m-2")
        .capabilities(nova_llm_core::Capabilities::none().with_streaming(true))
        .build();
    assert_eq!(mock.name(), "fake");
    assert!(mock.capabilities().streaming && !mock.capabilities().tools);
    assert!(format!("{mock:?}").contains("m-2"));
}

#[test]
#[should_panic(expected = "1 scripted replies never used")]
fn a_strict_mock_panics_when_its_script_is_not_used_up() {
    let mock = MockDriver::builder().strict(true).build();
    mock.push_text("never asked for");
    drop(mock);
}

#[tokio::test]
async fn a_strict_mock_whose_script_was_used_drops_quietly() {
    let mock = MockDriver::builder().strict(true).build();
    let clone = mock.clone();
    mock.push_text("used");
    assert_eq!(clone.prompt("x").await.unwrap(), "used");
    drop(mock);
    drop(clone);
}
