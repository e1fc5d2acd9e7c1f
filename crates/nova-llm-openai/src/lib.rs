//! # nova-llm-openai
//!
//! An [`LlmDriver`] for OpenAI's chat and legacy completion endpoints, and for every server
//! that speaks them: vLLM, Ollama, llama.cpp, LiteLLM, LM Studio, Azure OpenAI.
//!
//! The driver speaks the wire protocol and nothing more: no retries, no caching, no logging
//! of bodies (wrap it in `nova-llm-provider` for those). It is strict in what it sends
//! (unset parameters are omitted, hidden rows are never sent) and lenient in what it reads
//! (unknown fields, `null`s, unknown finish reasons, `reasoning_content`, legacy
//! `function_call`). Every failure is a classified [`LlmError`]; a stream cut short is a
//! `StreamInterrupted` error carrying the text received so far.
//!
//! ```no_run
//! use nova_llm_core::{ChatRequest, Dialog, LlmDriver};
//! use nova_llm_openai::OpenAiDriver;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), nova_llm_core::LlmError> {
//! // Reads OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_ORG_ID, OPENAI_PROJECT_ID.
//! let driver = OpenAiDriver::from_env()?;
//! let reply = driver
//!     .chat(ChatRequest::new(Dialog::new().user("Say hi")).model("gpt-4o-mini"))
//!     .await?;
//! println!("{}", reply.text());
//! # Ok(())
//! # }
//! ```
//!
//! Application code takes any driver, so its tests run on `nova-llm-mock` and production
//! runs on this driver. Failures are classified the same way everywhere:
//!
//! ```
//! use std::sync::Arc;
//! use nova_llm_core::{ErrorKind, LlmDriver, LlmError};
//! use nova_llm_openai::OpenAiDriver;
//!
//! async fn ask(driver: Arc<dyn LlmDriver>) -> Result<String, LlmError> {
//!     driver.prompt("What is the capital of France?").await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), LlmError> {
//! // In tests: the mock answers f(x).
//! let mock = Arc::new(nova_llm_mock::MockDriver::new());
//! assert_eq!(ask(mock).await?, "f(What is the capital of France?)");
//!
//! // A local OpenAI-compatible server (vLLM, Ollama, llama.cpp): no key needed. Nothing
//! // listens on port 9 here, so the call fails with a classified connection error.
//! let local = OpenAiDriver::builder()
//!     .base_url("http://127.0.0.1:9/v1")
//!     .default_model("llama3.2")
//!     .build()?;
//! let err = ask(Arc::new(local)).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Connection);
//! assert!(err.is_retryable());
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

mod config;
mod decode;
mod errors;
pub mod sse;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use nova_llm_core::{
    Capabilities, ChatRequest, ChatResponse, ChatStream, CompletionRequest, CompletionResponse,
    ErrorKind, LlmDriver, LlmError, StreamAccumulator, async_trait,
};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Response, Url};

pub use config::{DEFAULT_BASE_URL, DEFAULT_MODEL, OpenAiBuilder};
pub use decode::{ChunkDecoder, Item};
pub use nova_llm_core::ApiKey;
pub use wire::MaxTokensField;

/// The driver. Cheap to clone (the HTTP client and settings are shared).
#[derive(Clone)]
pub struct OpenAiDriver {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    client: reqwest::Client,
    chat_url: Url,
    completions_url: Url,
    /// Authorization (marked sensitive), organization, project, extra headers.
    headers: HeaderMap,
    default_model: String,
    request_timeout: Option<Duration>,
    stream_idle_timeout: Option<Duration>,
    max_response_bytes: usize,
    max_tokens_field: MaxTokensField,
    /// Kept to take it out of error texts a service echoes it in (it is sent from `headers`).
    api_key: Option<ApiKey>,
    azure_deployment: Option<String>,
}

impl Inner {
    /// `err` without the driver's key in any of its texts (a service or proxy may echo it).
    fn redact(&self, err: LlmError) -> LlmError {
        match &self.api_key {
            Some(key) => err.redact(key),
            None => err,
        }
    }
}

impl fmt::Debug for OpenAiDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("OpenAiDriver")
            .field("name", &i.name)
            .field("chat_url", &i.chat_url.as_str())
            .field("default_model", &i.default_model)
            .field(
                "api_key",
                &if i.api_key.is_some() {
                    "<redacted>"
                } else {
                    "<none>"
                },
            )
            .field("azure_deployment", &i.azure_deployment)
            .finish_non_exhaustive()
    }
}

impl OpenAiDriver {
    /// Settings for a driver.
    pub fn builder() -> OpenAiBuilder {
        OpenAiBuilder::default()
    }

    /// A driver configured from `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID` and
    /// `OPENAI_PROJECT_ID`.
    ///
    /// # Errors
    /// See [`OpenAiBuilder::from_env`] and [`OpenAiBuilder::build`].
    pub fn from_env() -> Result<Self, LlmError> {
        OpenAiBuilder::from_env()?.build()
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> &str {
        &self.inner.default_model
    }

    fn model<'a>(&'a self, requested: &'a Option<String>) -> &'a str {
        requested.as_deref().unwrap_or(&self.inner.default_model)
    }

    /// Sends a JSON body; returns the response if its status is a success, else the
    /// classified error (with the body read up to the size limit).
    async fn send(&self, url: &Url, body: Vec<u8>, stream: bool) -> Result<Response, LlmError> {
        let i = &self.inner;
        let mut req = i
            .client
            .post(url.clone())
            .headers(i.headers.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if stream {
            req = req.header("accept", "text/event-stream");
        } else if let Some(t) = i.request_timeout {
            req = req.timeout(t);
        }
        let sent = req.send();
        let response = match (stream, i.request_timeout) {
            (true, Some(t)) => match tokio::time::timeout(t, sent).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(LlmError::new(
                        ErrorKind::Timeout,
                        format!("no response within {t:?}"),
                    ));
                }
            },
            _ => sent.await,
        }
        .map_err(|e| errors::from_reqwest(e, "the request"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = read_limited(response, i.max_response_bytes)
            .await
            .unwrap_or_default();
        Err(errors::from_status(status.as_u16(), &headers, &body))
    }

    async fn stream(&self, url: &Url, body: Vec<u8>) -> Result<ChatStream, LlmError> {
        let response = self
            .send(url, body, true)
            .await
            .map_err(|e| self.inner.redact(e))?;
        let metadata = errors::metadata_from_headers(response.headers());
        let state = StreamState {
            driver: Arc::clone(&self.inner),
            response: Some(response),
            decoder: ChunkDecoder::new(metadata, self.inner.max_response_bytes),
            queue: VecDeque::new(),
            acc: StreamAccumulator::new(),
            idle: self.inner.stream_idle_timeout,
            phase: Phase::Reading,
        };
        // Fused: polling again after the end keeps answering `None`.
        Ok(Box::pin(
            futures_util::stream::unfold(state, |mut st| async move {
                let item = st.next().await?.map_err(|e| st.driver.redact(e));
                Some((item, st))
            })
            .fuse(),
        ))
    }
}

/// Reads a body, failing with a decode error past `limit` bytes.
async fn read_limited(mut response: Response, limit: usize) -> Result<Vec<u8>, LlmError> {
    let too_big = || {
        LlmError::decode(format!(
            "the response body is larger than the {limit}-byte limit"
        ))
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(8 * 1024, |n| n as usize)
            .min(limit),
    );
    while let Some(chunk) = response.chunk().await.map_err(errors::from_body_read)? {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    /// The input ended (or `[DONE]` arrived): hand out what is queued, then end.
    Draining,
    Done,
}

struct StreamState {
    /// The driver's settings (its key, to take out of errors).
    driver: Arc<Inner>,
    /// Dropping it aborts the HTTP request.
    response: Option<Response>,
    decoder: ChunkDecoder,
    queue: VecDeque<Item>,
    /// What was handed out so far, for the partial output of a failure.
    acc: StreamAccumulator,
    idle: Option<Duration>,
    phase: Phase,
}

impl StreamState {
    fn close(&mut self) {
        self.phase = Phase::Done;
        self.queue.clear();
        self.response = None;
    }

    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(match item {
                    Ok(ev) => {
                        self.acc.push(&ev);
                        Ok(ev)
                    }
                    Err(e) => {
                        self.close();
                        Err(self.acc.interrupt(e))
                    }
                });
            }
            match self.phase {
                Phase::Done => return None,
                Phase::Draining => {
                    self.close();
                    if self.decoder.is_complete() {
                        return None;
                    }
                    return Some(Err(decode::truncated(self.acc.partial())));
                }
                Phase::Reading => {}
            }
            if self.decoder.is_closed() {
                self.phase = Phase::Draining;
                continue;
            }
            let Some(response) = self.response.as_mut() else {
                self.phase = Phase::Draining;
                continue;
            };
            let chunk = match self.idle {
                Some(idle) => match tokio::time::timeout(idle, response.chunk()).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.close();
                        let err = LlmError::new(
                            ErrorKind::Timeout,
                            format!("the stream sent nothing for {idle:?} (idle timeout)"),
                        );
                        return Some(Err(self.acc.interrupt(err)));
                    }
                },
                None => response.chunk().await,
            };
            match chunk {
                Ok(Some(bytes)) => self.decoder.feed(&bytes, &mut self.queue),
                Ok(None) => {
                    self.decoder.end(&mut self.queue);
                    self.phase = Phase::Draining;
                }
                Err(e) => {
                    self.close();
                    let err = errors::from_body_read(e);
                    return Some(Err(self.acc.interrupt(err)));
                }
            }
        }
    }
}

#[async_trait]
impl LlmDriver for OpenAiDriver {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::all()
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        self.chat_once(request)
            .await
            .map_err(|e| self.inner.redact(e))
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        request.validate()?;
        let body = wire::encode_chat(
            &request,
            self.model(&request.model),
            true,
            self.inner.max_tokens_field,
        )?;
        self.stream(&self.inner.chat_url, body).await
    }

    async fn complete(&self, request: CompletionRequest) -> Result<CompletionResponse, LlmError> {
        self.complete_once(request)
            .await
            .map_err(|e| self.inner.redact(e))
    }

    async fn complete_stream(&self, request: CompletionRequest) -> Result<ChatStream, LlmError> {
        request.validate()?;
        let body = wire::encode_completion(&request, self.model(&request.model), true)?;
        self.stream(&self.inner.completions_url, body).await
    }
}

impl OpenAiDriver {
    async fn chat_once(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        request.validate()?;
        let body = wire::encode_chat(
            &request,
            self.model(&request.model),
            false,
            self.inner.max_tokens_field,
        )?;
        let response = self.send(&self.inner.chat_url, body, false).await?;
        let metadata = errors::metadata_from_headers(response.headers());
        let bytes = read_limited(response, self.inner.max_response_bytes).await?;
        let request_id = metadata.request_id.clone();
        wire::decode_chat(&bytes, metadata).map_err(|e| tag_request_id(e, request_id))
    }

    async fn complete_once(
        &self,
        request: CompletionRequest,
    ) -> Result<CompletionResponse, LlmError> {
        request.validate()?;
        let body = wire::encode_completion(&request, self.model(&request.model), false)?;
        let response = self.send(&self.inner.completions_url, body, false).await?;
        let metadata = errors::metadata_from_headers(response.headers());
        let bytes = read_limited(response, self.inner.max_response_bytes).await?;
        let request_id = metadata.request_id.clone();
        wire::decode_completion(&bytes, metadata).map_err(|e| tag_request_id(e, request_id))
    }
}

fn tag_request_id(err: LlmError, request_id: Option<String>) -> LlmError {
    match request_id {
        Some(id) => err.with_request_id(id),
        None => err,
    }
}

#[doc(hidden)]
/// Entry points for the fuzz targets and benchmarks: decode a whole response body.
pub mod fuzzing {
    use nova_llm_core::{ChatResponse, CompletionResponse, LlmError, ResponseMetadata};

    /// Decodes a `/chat/completions` body.
    ///
    /// # Errors
    /// A decode error for anything that is not a chat completion.
    pub fn decode_chat(body: &[u8]) -> Result<ChatResponse, LlmError> {
        crate::wire::decode_chat(body, ResponseMetadata::default())
    }

    /// Decodes a `/completions` body.
    ///
    /// # Errors
    /// A decode error for anything that is not a completion.
    pub fn decode_completion(body: &[u8]) -> Result<CompletionResponse, LlmError> {
        crate::wire::decode_completion(body, ResponseMetadata::default())
    }

    /// Encodes a chat request body as the driver would send it.
    ///
    /// # Errors
    /// As the driver.
    pub fn encode_chat(request: &nova_llm_core::ChatRequest) -> Result<Vec<u8>, LlmError> {
        crate::wire::encode_chat(
            request,
            "gpt-4o-mini",
            false,
            crate::MaxTokensField::MaxCompletionTokens,
        )
    }
}
