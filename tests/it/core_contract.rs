//! The core contract as a downstream crate sees it: a driver written outside `nova-llm-core`
//! in a few lines gets streaming, completion, prompt and structured output for free.

use std::sync::Arc;

use nova_llm_core::{
    ChatRequest, ChatResponse, CompletionRequest, Dialog, ErrorKind, LlmDriver, LlmDriverExt,
    LlmError, StreamEvent, Usage, async_trait, collect_stream, next_event,
};

/// A complete third-party driver: answers with the number of visible rows.
struct Counter;

#[async_trait]
impl LlmDriver for Counter {
    fn name(&self) -> &str {
        "counter"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        request.validate()?;
        let n = request.dialog.visible().count();
        let text = if request.response_format.is_json() {
            format!("{{\"rows\": {n}}}")
        } else {
            format!("{n} rows")
        };
        Ok(ChatResponse::from_text(text)
            .with_model(request.model.unwrap_or_else(|| "counter-1".into()))
            .with_usage(Usage::new(n as u64, 2)))
    }
}

#[tokio::test]
async fn an_outside_driver_gets_every_provided_method() {
    let d: Arc<dyn LlmDriver> = Arc::new(Counter);
    assert_eq!(d.name(), "counter");
    assert_eq!(d.prompt("x").await.unwrap(), "1 rows");

    let dialog = Dialog::new()
        .system("s")
        .user("a")
        .message(nova_llm_core::Message::user("hidden").with_hidden(true));
    let r = d.chat(ChatRequest::new(dialog.clone())).await.unwrap();
    assert_eq!(r.text(), "2 rows", "hidden rows are not counted as sent");

    let c = d.complete(CompletionRequest::new("p")).await.unwrap();
    assert_eq!((c.text.as_str(), c.model.as_str()), ("1 rows", "counter-1"));

    let mut stream = d
        .chat_stream(ChatRequest::new(dialog.clone()))
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while let Some(ev) = next_event(&mut stream).await {
        kinds.push(match ev.unwrap() {
            StreamEvent::Start(_) => "start",
            StreamEvent::TextDelta { .. } => "text",
            StreamEvent::Usage(_) => "usage",
            StreamEvent::Finish { .. } => "finish",
            _ => "other",
        });
    }
    assert_eq!(kinds, ["start", "text", "usage", "finish"]);

    let stream = d
        .chat_stream(ChatRequest::new(dialog.clone()))
        .await
        .unwrap();
    assert_eq!(collect_stream(stream).await.unwrap(), r);

    #[derive(serde::Deserialize)]
    struct Rows {
        rows: u32,
    }
    let req = ChatRequest::new(dialog).json_schema("rows", serde_json::json!({"type": "object"}));
    let rows: Rows = d.structured_as(req).await.unwrap();
    assert_eq!(rows.rows, 2);
}

#[tokio::test]
async fn drivers_are_shared_across_tasks() {
    let d: Arc<dyn LlmDriver> = Arc::new(Counter);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let d = Arc::clone(&d);
            tokio::spawn(async move { d.prompt("q").await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), "1 rows");
    }
    let err = d.prompt("").await;
    // An empty user row is still a row: the request is valid.
    assert!(err.is_ok());
    let err = d.chat(ChatRequest::new(Dialog::new())).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidRequest);
}
