//! Testing application code with the mock: the default `f(x)` answer, scripted replies and
//! errors, and assertions on what was sent. Run: `cargo run -p nova-llm-cli --example
//! testing_with_mock`.

// An example stops at the first surprise, like a test.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::sync::Arc;

use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver, LlmError};
use nova_llm_mock::MockDriver;

/// The application code under test: it only knows `LlmDriver`.
async fn summarize(driver: Arc<dyn LlmDriver>, text: &str) -> Result<String, LlmError> {
    let request = ChatRequest::new(Dialog::new().system("Summarize in one line.").user(text))
        .temperature(0.2);
    Ok(driver.chat(request).await?.text())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mock = MockDriver::new();
    let driver: Arc<dyn LlmDriver> = Arc::new(mock.clone());

    // By default the mock answers f(x) to x.
    assert_eq!(
        summarize(driver.clone(), "a long text").await.unwrap(),
        "f(a long text)"
    );

    // Script the next replies: a text, then a rate-limit error.
    mock.push_text("A short summary.");
    mock.push_error(LlmError::new(ErrorKind::RateLimited, "slow down"));
    assert_eq!(
        summarize(driver.clone(), "x").await.unwrap(),
        "A short summary."
    );
    let err = summarize(driver.clone(), "x").await.unwrap_err();
    assert!(err.is_retryable());

    // Check what the code sent.
    let sent = mock.last_chat_request().unwrap();
    assert_eq!(sent.params.temperature, Some(0.2));
    assert_eq!(sent.dialog.messages()[0].text(), "Summarize in one line.");
    println!("all {} calls behaved as expected", mock.calls());
}
