//! Configuration: key, endpoint, API version, beta flags, headers, timeouts, limits;
//! `from_env`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{ApiKey, ErrorKind, LlmError};
use nova_llm_http::{Transport, insert_header, insert_secret, join_path};
use reqwest::header::HeaderMap;

use crate::AnthropicDriver;

/// Anthropic's API, the default base URL (the path `/v1/messages` is added to it).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` sent by default: the version of the official SDK this driver's
/// wire format was read from (`anthropic` 2.17.0 on PyPI).
pub const DEFAULT_API_VERSION: &str = "2026-10-21";
/// The model used when a request names none. Override with
/// [`AnthropicBuilder::default_model`].
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-6";
/// The `max_tokens` sent when a request sets none (the Messages API requires one). With a
/// reasoning budget, the budget is added to it, so the answer keeps this much room.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Builds an [`AnthropicDriver`]. Every setter documents its default.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_anthropic::AnthropicDriver;
///
/// let driver = AnthropicDriver::builder()
///     .api_key("sk-ant-example")
///     .default_model("claude-haiku-4-5")
///     .beta("context-1m-2025-08-07")
///     .stream_idle_timeout(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(driver.default_model(), "claude-haiku-4-5");
/// # Ok::<(), nova_llm_core::LlmError>(())
/// ```
#[derive(Clone)]
pub struct AnthropicBuilder {
    name: String,
    api_key: Option<ApiKey>,
    base_url: String,
    api_version: String,
    betas: Vec<String>,
    default_model: String,
    default_max_tokens: u32,
    headers: Vec<(String, String)>,
    transport: Transport,
}

impl fmt::Debug for AnthropicBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicBuilder")
            .field("name", &self.name)
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("betas", &self.betas)
            .field("default_model", &self.default_model)
            .field("default_max_tokens", &self.default_max_tokens)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Default for AnthropicBuilder {
    fn default() -> Self {
        AnthropicBuilder {
            name: "anthropic".into(),
            api_key: None,
            base_url: DEFAULT_BASE_URL.into(),
            api_version: DEFAULT_API_VERSION.into(),
            betas: Vec::new(),
            default_model: DEFAULT_MODEL.into(),
            default_max_tokens: DEFAULT_MAX_TOKENS,
            headers: Vec::new(),
            transport: Transport::default(),
        }
    }
}

impl AnthropicBuilder {
    /// The driver's name in events and metrics. Default: `anthropic`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The API key, sent as `x-api-key`. Default: none (a gateway in front of the API may
    /// need none).
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The API's base URL, without `/v1`. Default: `https://api.anthropic.com`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The `anthropic-version` header. Default: [`DEFAULT_API_VERSION`].
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// A beta flag, sent in the `anthropic-beta` header (several are joined with commas).
    /// Default: none.
    pub fn beta(mut self, flag: impl Into<String>) -> Self {
        self.betas.push(flag.into());
        self
    }

    /// The model for requests that name none. Default: [`DEFAULT_MODEL`].
    pub fn default_model(mut self, model: impl Into<String>) -> Self {
        self.default_model = model.into();
        self
    }

    /// The `max_tokens` for requests that set none (the API requires one). Default:
    /// [`DEFAULT_MAX_TOKENS`] (at least 1).
    pub fn default_max_tokens(mut self, tokens: u32) -> Self {
        self.default_max_tokens = tokens.max(1);
        self
    }

    /// An extra header sent with every request. Default: none.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Time allowed to connect. Default: 10 s. Not applied to an injected client.
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.transport.connect_timeout = timeout.into();
        self
    }

    /// Time allowed for a whole non-streamed call, and for a streamed call to start
    /// (response headers received). Default: 600 s.
    pub fn request_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.transport.request_timeout = timeout.into();
        self
    }

    /// Longest silence allowed between two pieces of a stream before it ends with a
    /// timeout error (the API sends `ping` events meanwhile). Default: 120 s.
    pub fn stream_idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.transport.stream_idle_timeout = timeout.into();
        self
    }

    /// Largest response body read (and largest single stream line); beyond it the call
    /// fails with a decode error. Default: 32 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.transport.max_response_bytes = bytes.max(1024);
        self
    }

    /// Uses this HTTP client (proxies, custom TLS, pool settings). Default: a client with
    /// rustls and the Mozilla root certificates that follows no redirects and retries
    /// nothing.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.transport.client = Some(client);
        self
    }

    /// Settings from the environment, as Anthropic's SDKs read them: `ANTHROPIC_API_KEY`
    /// and `ANTHROPIC_BASE_URL`.
    ///
    /// # Errors
    /// [`ErrorKind::Authentication`] when `ANTHROPIC_API_KEY` is unset or empty.
    pub fn from_env() -> Result<Self, LlmError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with a custom lookup (for tests and config systems).
    ///
    /// # Errors
    /// As for [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = AnthropicBuilder::default();
        if let Some(url) = get("ANTHROPIC_BASE_URL") {
            b = b.base_url(url);
        }
        match get("ANTHROPIC_API_KEY") {
            Some(key) => Ok(b.api_key(key)),
            None => Err(LlmError::new(
                ErrorKind::Authentication,
                "ANTHROPIC_API_KEY is not set",
            )),
        }
    }

    /// The driver.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`] for a base URL that is not an `http(s)` URL, or a key or
    /// header that cannot be sent in HTTP (the message never shows the key);
    /// [`ErrorKind::Other`] when the HTTP client cannot be built.
    pub fn build(self) -> Result<AnthropicDriver, LlmError> {
        let base = nova_llm_http::base_url(&self.base_url)?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.api_key {
            insert_secret(&mut headers, "x-api-key", key.expose())?;
        }
        insert_header(&mut headers, "anthropic-version", &self.api_version)?;
        if !self.betas.is_empty() {
            insert_header(&mut headers, "anthropic-beta", &self.betas.join(","))?;
        }
        for (k, v) in &self.headers {
            insert_header(&mut headers, k, v)?;
        }
        let endpoint =
            self.transport
                .endpoint(headers, self.api_key, crate::errors::from_status)?;
        Ok(AnthropicDriver {
            inner: Arc::new(crate::Inner {
                name: self.name,
                endpoint,
                messages_url: join_path(&base, "v1/messages"),
                default_model: self.default_model,
                default_max_tokens: self.default_max_tokens,
            }),
        })
    }
}
