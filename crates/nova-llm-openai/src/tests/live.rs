//! An opt-in test against the real OpenAI API: runs only when `OPENAI_API_KEY` is set (and
//! `NOVA_LIVE_MODEL` picks the model, default `gpt-4o-mini`). Without the key it reports
//! that it skipped and checks nothing.

use nova_llm_core::{ChatRequest, Dialog, LlmDriver, collect_stream};

use crate::OpenAiDriver;

#[tokio::test]
async fn live_chat_and_stream_against_openai() {
    if std::env::var("OPENAI_API_KEY").map_or(true, |k| k.trim().is_empty()) {
        eprintln!("live OpenAI test skipped: OPENAI_API_KEY is not set");
        return;
    }
    let model = std::env::var("NOVA_LIVE_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into());
    let d = OpenAiDriver::from_env().unwrap();
    let req = ChatRequest::new(Dialog::new().user("Reply with the single word: pong"))
        .model(model)
        .max_tokens(10);
    let r = d.chat(req.clone()).await.unwrap();
    assert!(r.text().to_lowercase().contains("pong"), "{}", r.text());
    assert!(r.usage.total_tokens > 0);
    let s = collect_stream(d.chat_stream(req).await.unwrap())
        .await
        .unwrap();
    assert!(s.text().to_lowercase().contains("pong"));
    assert!(
        s.usage.total_tokens > 0,
        "include_usage gives streamed usage"
    );
}
