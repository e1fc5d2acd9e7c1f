//! The mock used the way application code holds a driver: `Arc<dyn LlmDriver>`, with the test
//! keeping its own handle to script and inspect.

use std::sync::Arc;

use nova_llm_core::{
    ChatRequest, Dialog, ErrorKind, LlmDriver, LlmError, Message, Tool, collect_stream,
};
use nova_llm_mock::{MockDriver, ScriptedStream};
use serde_json::json;

/// Application code under test: a tiny agent loop that runs tools until the model answers.
async fn agent(driver: Arc<dyn LlmDriver>, question: &str) -> Result<(String, usize), LlmError> {
    let tool = Tool::new(
        "lookup",
        json!({"type": "object", "properties": {"q": {"type": "string"}}}),
    );
    let mut dialog = Dialog::new().system("use tools").user(question);
    let mut tool_runs = 0;
    loop {
        let reply = driver
            .chat(ChatRequest::new(dialog.clone()).tool(tool.clone()))
            .await?;
        if reply.tool_calls().is_empty() {
            return Ok((reply.text(), tool_runs));
        }
        let calls = reply.tool_calls().to_vec();
        dialog.push(reply.into_message());
        for call in calls {
            tool_runs += 1;
            let q = call.arguments_json()?["q"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            dialog.push(Message::tool_result(call.id, format!("result for {q}")));
        }
    }
}

#[tokio::test]
async fn an_agent_loop_ends_naturally_on_the_default_mock() {
    let mock = MockDriver::new();
    let driver: Arc<dyn LlmDriver> = Arc::new(mock.clone());
    let (answer, runs) = agent(driver, "rust").await.unwrap();
    assert_eq!(runs, 1);
    assert_eq!(answer, "f(result for f(rust).q)");
    let sent = mock.chat_requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].dialog.len(),
        4,
        "system, user, assistant tool call, tool result"
    );
}

#[tokio::test]
async fn scripted_errors_reach_application_code_classified() {
    let mock = MockDriver::new();
    mock.push_error(LlmError::new(ErrorKind::Authentication, "bad key").with_status(401));
    let driver: Arc<dyn LlmDriver> = Arc::new(mock.clone());
    let err = agent(driver, "x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn hidden_rows_never_reach_the_model_through_dyn() {
    let mock = MockDriver::new();
    let driver: Arc<dyn LlmDriver> = Arc::new(mock.clone());
    let dialog = Dialog::new()
        .user("visible")
        .message(Message::assistant("private scratchpad").with_hidden(true));
    let r = driver.chat(ChatRequest::new(dialog)).await.unwrap();
    assert_eq!(r.text(), "f(visible)");
    // The request is recorded as sent, hidden row included: stripping is the driver's job
    // on the wire, and the mock answers as a model that never saw it.
    assert_eq!(mock.last_chat_request().unwrap().dialog.len(), 2);
}

#[tokio::test]
async fn a_truncated_stream_is_an_error_with_the_partial_text() {
    let mock = MockDriver::new();
    mock.push_stream(ScriptedStream::new().text("The answer is 4"));
    let driver: Arc<dyn LlmDriver> = Arc::new(mock);
    let stream = driver
        .chat_stream(ChatRequest::new(Dialog::new().user("2+2")))
        .await
        .unwrap();
    let err = collect_stream(stream).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StreamInterrupted);
    assert_eq!(err.partial().unwrap().text, "The answer is 4");
}
