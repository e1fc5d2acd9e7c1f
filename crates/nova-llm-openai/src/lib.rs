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
#[cfg_attr(
    not(feature = "internals"),
    allow(unreachable_pub, reason = "public only through `internals`")
)]
mod decode;
mod errors;
#[cfg(feature = "internals")]
pub mod internals;
#[cfg(test)]
mod tests;
mod wire;

use std::fmt;
use std::sync::Arc;

use nova_llm_core::{
    Capabilities, ChatRequest, ChatResponse, ChatStream, CompletionRequest, CompletionResponse,
    LlmDriver, LlmError, ResponseMetadata, async_trait,
};
use nova_llm_http::Endpoint;
use reqwest::Url;

pub use config::{DEFAULT_BASE_URL, DEFAULT_MODEL, OpenAiBuilder};
pub use nova_llm_core::ApiKey;
pub use wire::MaxTokensField;

/// The driver. Cheap to clone (the HTTP client and settings are shared).
#[derive(Clone)]
pub struct OpenAiDriver {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// The client, the headers (authorization marked sensitive, organization, project,
    /// extra headers), the timeouts and size limit, how errors read, and the key to take
    /// out of them.
    endpoint: Endpoint,
    chat_url: Url,
    completions_url: Url,
    default_model: String,
    max_tokens_field: MaxTokensField,
    azure_deployment: Option<String>,
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
                &if i.endpoint.api_key.is_some() {
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
        request.validate()?;
        let model = self.model(&request.model);
        let body = wire::encode_chat(&request, model, false, self.inner.max_tokens_field)?;
        self.exchange(&self.inner.chat_url, body, wire::decode_chat)
            .await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        request.validate()?;
        let model = self.model(&request.model);
        let body = wire::encode_chat(&request, model, true, self.inner.max_tokens_field)?;
        self.stream(&self.inner.chat_url, body).await
    }

    async fn complete(&self, request: CompletionRequest) -> Result<CompletionResponse, LlmError> {
        request.validate()?;
        let body = wire::encode_completion(&request, self.model(&request.model), false)?;
        self.exchange(&self.inner.completions_url, body, wire::decode_completion)
            .await
    }

    async fn complete_stream(&self, request: CompletionRequest) -> Result<ChatStream, LlmError> {
        request.validate()?;
        let body = wire::encode_completion(&request, self.model(&request.model), true)?;
        self.stream(&self.inner.completions_url, body).await
    }
}

impl OpenAiDriver {
    /// Posts `body` for a whole reply and decodes it with `decode`.
    async fn exchange<T>(
        &self,
        url: &Url,
        body: Vec<u8>,
        decode: fn(&[u8], ResponseMetadata) -> Result<T, LlmError>,
    ) -> Result<T, LlmError> {
        let e = &self.inner.endpoint;
        e.call(url, body, errors::metadata_from_headers, decode)
            .await
    }

    /// Opens an event stream for `body`.
    async fn stream(&self, url: &Url, body: Vec<u8>) -> Result<ChatStream, LlmError> {
        let e = &self.inner.endpoint;
        e.stream(
            url,
            body,
            errors::metadata_from_headers,
            decode::ChunkDecoder::new,
        )
        .await
    }
}
