//! # nova-llm-gemini
//!
//! An [`LlmDriver`] for the Gemini API (`models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`), the key in the `x-goog-api-key` header, never in the
//! URL.
//!
//! The driver speaks the wire protocol and nothing more (wrap it in `nova-llm-provider`
//! for retries, caching, events and fallback to another service). What Gemini does
//! differently from the portable request is mapped here, once (the whole mapping is
//! written at the top of the `wire::request` module):
//!
//! - **System rows** go into `systemInstruction`; the assistant is `model`; answers come
//!   in `parts`.
//! - **Thought signatures survive the round trip.** Gemini attaches `thoughtSignature`s to
//!   the parts of its reply (a function call, a text, a thought); they come back as
//!   [`ReasoningPart`](nova_llm_core::ReasoningPart)s in the reply's row and go back, on
//!   the parts they came with, when the row is sent again. Reasoning from another service
//!   is never sent here.
//! - **Function calls** may come without ids: the driver makes ids, stable within a reply,
//!   and never sends them back; two calls of one function stay two calls. A tool result
//!   goes back as a `functionResponse` named after its call.
//! - **A blocked prompt** (HTTP 200, no candidates, `promptFeedback.blockReason`) is a
//!   `ContentFiltered` error, never an empty success, for plain and streamed calls alike.
//! - **Reasoning controls** become `thinkingConfig`: off is a budget of 0, a budget is
//!   `thinkingBudget`, an effort is `thinkingLevel`; thoughts are asked for so that they,
//!   and their signatures, come back.
//! - **Usage**: the prompt (with the tools' own prompt) is `input_tokens`, cached content
//!   its cache reads; candidates plus thoughts are `output_tokens`, thoughts its reasoning.
//!   A stream's usage, which the API repeats cumulatively, is reported once, at the end.
//!
//! ```no_run
//! use nova_llm_core::{ChatRequest, Dialog, Effort, LlmDriver, Reasoning};
//! use nova_llm_gemini::GeminiDriver;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), nova_llm_core::LlmError> {
//! // Reads GEMINI_API_KEY (or GOOGLE_API_KEY) and GOOGLE_GEMINI_BASE_URL.
//! let driver = GeminiDriver::from_env()?;
//! let request = ChatRequest::new(Dialog::new().user("Why is the sky blue?"))
//!     .model("gemini-2.5-flash")
//!     .reasoning(Reasoning::Effort(Effort::Low));
//! println!("{}", driver.chat(request).await?.text());
//! # Ok(())
//! # }
//! ```
//!
//! Application code takes any driver, so its tests run on `nova-llm-mock` and production
//! runs on this driver:
//!
//! ```
//! use std::sync::Arc;
//! use nova_llm_core::{ErrorKind, LlmDriver, LlmError};
//! use nova_llm_gemini::GeminiDriver;
//!
//! async fn ask(driver: Arc<dyn LlmDriver>) -> Result<String, LlmError> {
//!     driver.prompt("What is the capital of France?").await
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), LlmError> {
//! let mock = Arc::new(nova_llm_mock::MockDriver::new());
//! assert_eq!(ask(mock).await?, "f(What is the capital of France?)");
//!
//! // Nothing listens on port 9 here, so the call fails with a classified, retryable error.
//! let gemini = GeminiDriver::builder()
//!     .base_url("http://127.0.0.1:9")
//!     .api_key("AIza-example")
//!     .build()?;
//! let err = ask(Arc::new(gemini)).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Connection);
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
mod ids;
#[cfg(feature = "internals")]
pub mod internals;
#[cfg(test)]
mod tests;
mod wire;

use std::fmt;
use std::sync::Arc;

use nova_llm_core::{
    Capabilities, ChatRequest, ChatResponse, ChatStream, LlmDriver, LlmError, async_trait,
};
use nova_llm_http::Endpoint;
use reqwest::Url;

pub use config::{DEFAULT_API_VERSION, DEFAULT_BASE_URL, DEFAULT_MODEL, GeminiBuilder};
pub use nova_llm_core::ApiKey;

/// The `origin` of the reasoning this driver reads (thoughts and their signatures), and
/// the only reasoning it sends back.
pub const ORIGIN: &str = "gemini";

/// The driver. Cheap to clone (the HTTP client and settings are shared).
#[derive(Clone)]
pub struct GeminiDriver {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    /// The client, the headers (`x-goog-api-key` marked sensitive, extra headers), the
    /// timeouts and size limit, how errors read, and the key to take out of them.
    endpoint: Endpoint,
    /// `{base}/{version}/models`.
    models: String,
    default_model: String,
}

impl fmt::Debug for GeminiDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("GeminiDriver")
            .field("name", &i.name)
            .field("models", &i.models)
            .field("default_model", &i.default_model)
            .field(
                "api_key",
                &if i.endpoint.api_key.is_some() {
                    "<redacted>"
                } else {
                    "<none>"
                },
            )
            .finish_non_exhaustive()
    }
}

/// Whether `s` can stand as one segment of a URL path (a model name, a version).
pub(crate) fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

impl GeminiDriver {
    /// Settings for a driver.
    pub fn builder() -> GeminiBuilder {
        GeminiBuilder::default()
    }

    /// A driver configured from `GEMINI_API_KEY` (or `GOOGLE_API_KEY`) and
    /// `GOOGLE_GEMINI_BASE_URL`.
    ///
    /// # Errors
    /// See [`GeminiBuilder::from_env`] and [`GeminiBuilder::build`].
    pub fn from_env() -> Result<Self, LlmError> {
        GeminiBuilder::from_env()?.build()
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> &str {
        &self.inner.default_model
    }

    /// The URL of `method` on the request's model, and the body; both checked.
    fn prepare(&self, request: &ChatRequest, method: &str) -> Result<(Url, Vec<u8>), LlmError> {
        request.validate()?;
        let model = request
            .model
            .as_deref()
            .unwrap_or(&self.inner.default_model);
        // The API names models `models/gemini-…`; either form is taken.
        let model = model.strip_prefix("models/").unwrap_or(model);
        if !is_path_segment(model) {
            return Err(LlmError::invalid_request(format!(
                "`{model}` is not a model name (letters, digits, `-`, `.`, `_`)"
            ))
            .with_param("model"));
        }
        let url = Url::parse(&format!("{}/{model}:{method}", self.inner.models)).map_err(|e| {
            LlmError::invalid_request(format!("no URL for the model `{model}`")).with_source(e)
        })?;
        Ok((url, wire::encode_generate(request)?))
    }
}

#[async_trait]
impl LlmDriver for GeminiDriver {
    fn name(&self) -> &str {
        &self.inner.name
    }

    /// Streaming, tools, structured output and images are native; a plain completion is
    /// served as a one-turn chat.
    fn capabilities(&self) -> Capabilities {
        Capabilities::all().with_completions(false)
    }

    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let (url, body) = self.prepare(&request, "generateContent")?;
        self.inner
            .endpoint
            .call(
                &url,
                body,
                errors::metadata_from_headers,
                wire::decode_generate,
            )
            .await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let (mut url, body) = self.prepare(&request, "streamGenerateContent")?;
        url.query_pairs_mut().append_pair("alt", "sse");
        let stream = self
            .inner
            .endpoint
            .stream(
                &url,
                body,
                errors::metadata_from_headers,
                decode::ChunkDecoder::new,
            )
            .await?;
        // A blocked prompt is a 200 whose first event says so: it fails the call itself.
        nova_llm_http::first_error_fails_the_call(stream).await
    }
}
