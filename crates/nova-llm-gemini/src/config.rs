//! Configuration: key, endpoint, API version, headers, timeouts, limits; `from_env`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{ApiKey, ErrorKind, LlmError};
use nova_llm_http::{Transport, insert_header, insert_secret, join_path};
use reqwest::header::HeaderMap;

use crate::GeminiDriver;

/// The Gemini API, the default base URL.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";
/// The API version in the path by default: the one the official SDK uses
/// (`google-genai` 3.6.1 on PyPI).
pub const DEFAULT_API_VERSION: &str = "v1";
/// The model used when a request names none. Override with
/// [`GeminiBuilder::default_model`].
pub const DEFAULT_MODEL: &str = "gemini-2.5-flash";

/// Builds a [`GeminiDriver`]. Every setter documents its default.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_gemini::GeminiDriver;
///
/// let driver = GeminiDriver::builder()
///     .api_key("AIza-example")
///     .api_version("v1beta")
///     .default_model("gemini-2.5-pro")
///     .stream_idle_timeout(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(driver.default_model(), "gemini-2.5-pro");
/// # Ok::<(), nova_llm_core::LlmError>(())
/// ```
#[derive(Clone)]
pub struct GeminiBuilder {
    name: String,
    api_key: Option<ApiKey>,
    base_url: String,
    api_version: String,
    default_model: String,
    headers: Vec<(String, String)>,
    transport: Transport,
}

impl fmt::Debug for GeminiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiBuilder")
            .field("name", &self.name)
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url)
            .field("api_version", &self.api_version)
            .field("default_model", &self.default_model)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl Default for GeminiBuilder {
    fn default() -> Self {
        GeminiBuilder {
            name: "gemini".into(),
            api_key: None,
            base_url: DEFAULT_BASE_URL.into(),
            api_version: DEFAULT_API_VERSION.into(),
            default_model: DEFAULT_MODEL.into(),
            headers: Vec::new(),
            transport: Transport::default(),
        }
    }
}

impl GeminiBuilder {
    /// The driver's name in events and metrics. Default: `gemini`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The API key, sent in the `x-goog-api-key` header (never in the URL, which ends up
    /// in logs). Default: none (a gateway in front of the API may need none).
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The API's base URL, without the version. Default: [`DEFAULT_BASE_URL`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The API version in the path (`v1`, `v1beta`). Default: [`DEFAULT_API_VERSION`].
    pub fn api_version(mut self, version: impl Into<String>) -> Self {
        self.api_version = version.into();
        self
    }

    /// The model for requests that name none. Default: [`DEFAULT_MODEL`].
    pub fn default_model(mut self, model: impl Into<String>) -> Self {
        self.default_model = model.into();
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

    /// Time allowed for a whole non-streamed call, and for a streamed call to start.
    /// Default: 600 s.
    pub fn request_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.transport.request_timeout = timeout.into();
        self
    }

    /// Longest silence allowed between two pieces of a stream. Default: 120 s.
    pub fn stream_idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.transport.stream_idle_timeout = timeout.into();
        self
    }

    /// Largest response body read (and largest single stream line). Default: 32 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.transport.max_response_bytes = bytes.max(1024);
        self
    }

    /// Uses this HTTP client. Default: a client with rustls and the Mozilla root
    /// certificates that follows no redirects and retries nothing.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.transport.client = Some(client);
        self
    }

    /// Settings from the environment: the key from `GEMINI_API_KEY`, then
    /// `GOOGLE_API_KEY`; the base URL from `GOOGLE_GEMINI_BASE_URL` (as the official SDK
    /// reads it).
    ///
    /// # Errors
    /// [`ErrorKind::Authentication`] when neither key variable is set.
    pub fn from_env() -> Result<Self, LlmError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with a custom lookup (for tests and config systems).
    ///
    /// # Errors
    /// As for [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = GeminiBuilder::default();
        if let Some(url) = get("GOOGLE_GEMINI_BASE_URL") {
            b = b.base_url(url);
        }
        match get("GEMINI_API_KEY").or_else(|| get("GOOGLE_API_KEY")) {
            Some(key) => Ok(b.api_key(key)),
            None => Err(LlmError::new(
                ErrorKind::Authentication,
                "GEMINI_API_KEY (or GOOGLE_API_KEY) is not set",
            )),
        }
    }

    /// The driver.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`] for a base URL that is not an `http(s)` URL, an API
    /// version that is not one path segment, or a key or header that cannot be sent in
    /// HTTP (the message never shows the key); [`ErrorKind::Other`] when the HTTP client
    /// cannot be built.
    pub fn build(self) -> Result<GeminiDriver, LlmError> {
        let base = nova_llm_http::base_url(&self.base_url)?;
        if !crate::is_path_segment(&self.api_version) {
            return Err(LlmError::invalid_request(format!(
                "the API version `{}` is not one path segment",
                self.api_version
            )));
        }
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.api_key {
            insert_secret(&mut headers, "x-goog-api-key", key.expose())?;
        }
        for (k, v) in &self.headers {
            insert_header(&mut headers, k, v)?;
        }
        let endpoint =
            self.transport
                .endpoint(headers, self.api_key, crate::errors::from_status)?;
        let models = join_path(&base, &format!("{}/models", self.api_version));
        Ok(GeminiDriver {
            inner: Arc::new(crate::Inner {
                name: self.name,
                endpoint,
                models: models.as_str().trim_end_matches('/').to_owned(),
                default_model: self.default_model,
            }),
        })
    }
}
