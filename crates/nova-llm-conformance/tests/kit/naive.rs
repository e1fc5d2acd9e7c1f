//! A naive HTTP driver that keeps none of the rules of I/O, and the double of its naive
//! service: it reads whole bodies whatever their size, waits on a stream forever, shows
//! error bodies verbatim, keeps its key in `Debug`, sends whatever it is given, and runs
//! each exchange in a task of its own that nobody stops.

use std::sync::Arc;
use std::time::Duration;

use nova_llm_conformance::{Arrange, DriverUnderTest, Harness, Scenario, Setup, Step, WireReply};
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, ErrorKind, FinishReason, LlmDriver, LlmError,
    StreamEvent, Usage, async_trait,
};
use serde_json::{Value, json};

#[derive(Debug)]
struct Naive {
    url: String,
    key: String,
    client: reqwest::Client,
}

fn kind(status: u16) -> ErrorKind {
    match status {
        400 => ErrorKind::InvalidRequest,
        401 => ErrorKind::Authentication,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Server,
    }
}

impl Naive {
    async fn send(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::Response, LlmError> {
        let prompt = request
            .dialog
            .last_visible()
            .map(|m| m.text())
            .unwrap_or_default();
        let body = json!({"prompt": prompt, "stream": stream}).to_string();
        let response = self
            .client
            .post(&self.url)
            .header("authorization", format!("Bearer {}", self.key))
            .body(body)
            .send()
            .await
            .map_err(|e| LlmError::new(ErrorKind::Connection, e.to_string()))?;
        let status = response.status().as_u16();
        if status >= 400 {
            let text = response.text().await.unwrap_or_default();
            return Err(LlmError::new(kind(status), text).with_status(status));
        }
        Ok(response)
    }
}

#[async_trait]
impl LlmDriver for Naive {
    fn name(&self) -> &str {
        "naive"
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let me = Naive {
            url: self.url.clone(),
            key: self.key.clone(),
            client: self.client.clone(),
        };
        // In a task of its own: dropping the call does not stop it.
        let task = tokio::spawn(async move {
            let response = me.send(&request, false).await?;
            let bytes = response
                .bytes()
                .await
                .map_err(|e| LlmError::new(ErrorKind::Connection, e.to_string()))?;
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| LlmError::decode(format!("not JSON: {e}")))?;
            let text = v["text"].as_str().unwrap_or_default().to_owned();
            let usage = Usage::new(
                v["usage"][0].as_u64().unwrap_or(0),
                v["usage"][1].as_u64().unwrap_or(0),
            );
            Ok(ChatResponse::from_text(text).with_usage(usage))
        });
        task.await
            .map_err(|e| LlmError::new(ErrorKind::Other, e.to_string()))?
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let mut response = self.send(&request, true).await?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        // Read in a task nobody stops. Its idle timeout gives up, but with a bare timeout
        // error: not an interrupted stream, and without what arrived.
        tokio::spawn(async move {
            let mut line = String::new();
            loop {
                let chunk =
                    match tokio::time::timeout(Duration::from_secs(1), response.chunk()).await {
                        Ok(Ok(Some(chunk))) => chunk,
                        Ok(_) => break,
                        Err(_) => {
                            let _ = tx.send(Err(LlmError::new(ErrorKind::Timeout, "idle")));
                            // It reads on all the same.
                            continue;
                        }
                    };
                line.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = line.find("\n\n") {
                    let event: String = line.drain(..end + 2).collect();
                    let data = event.trim().trim_start_matches("data: ").to_owned();
                    let item = if data == "[DONE]" {
                        Ok(StreamEvent::finish(FinishReason::Stop))
                    } else {
                        Ok(StreamEvent::text(data))
                    };
                    if tx.send(item).is_err() {
                        // Not even this stops it: it reads on.
                    }
                }
            }
        });
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move {
                let item = rx.recv().await?;
                Some((item, rx))
            },
        )))
    }
}

/// The naive service's double: `{"text", "usage"}` bodies, `data: <text>` events.
#[derive(Default)]
pub(crate) struct NaiveHarness;

fn events(deltas: &[String]) -> Vec<String> {
    deltas.iter().map(|d| format!("data: {d}\n\n")).collect()
}

impl Harness for NaiveHarness {
    fn driver(&self, setup: &Setup) -> Arc<dyn DriverUnderTest> {
        // reqwest is built without a TLS provider of its own; the service is plain HTTP.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Arc::new(Naive {
            url: format!("{}/naive", setup.base_url),
            key: setup.api_key.expose().to_owned(),
            client: reqwest::Client::new(),
        })
    }

    fn arrange(&self, scenario: &Scenario) -> Arrange {
        Arrange::Wire(match scenario {
            Scenario::Text { text, usage } => WireReply::json(
                200,
                &json!({"text": text, "usage": [usage.input_tokens, usage.output_tokens]}),
            ),
            Scenario::Error { message, .. } => WireReply::json(401, &json!({"error": message})),
            Scenario::StreamStall { deltas, after } => {
                WireReply::stream("text/event-stream", events(&deltas[..*after])).then(Step::Stall)
            }
            Scenario::Oversize { bytes } => {
                let chunk = vec![b' '; 1 << 20];
                WireReply::stream("application/json", vec![chunk; bytes >> 20])
            }
            _ => return Arrange::Unsupported("the naive service knows text, errors and stalls"),
        })
    }
}
