//! Configuration: key, endpoint, headers, timeouts, limits; `from_env`; Azure.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{ApiKey, ErrorKind, LlmError};
use nova_llm_http::{Transport, insert_header, insert_secret, join_path};
use reqwest::Url;
use reqwest::header::HeaderMap;

use crate::OpenAiDriver;
use crate::wire::MaxTokensField;

/// OpenAI's API, the default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The model used when a request names none. Override with [`OpenAiBuilder::default_model`].
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

#[derive(Clone, Debug)]
struct Azure {
    api_version: String,
    deployment: String,
}

/// Builds an [`OpenAiDriver`]. Every setter documents its default.
///
/// ```
/// use std::time::Duration;
/// use nova_llm_openai::OpenAiDriver;
///
/// // A local vLLM or Ollama server needs no key.
/// let local = OpenAiDriver::builder()
///     .base_url("http://127.0.0.1:11434/v1")
///     .default_model("llama3.2")
///     .name("ollama")
///     .stream_idle_timeout(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(nova_llm_core::LlmDriver::name(&local), "ollama");
/// # Ok::<(), nova_llm_core::LlmError>(())
/// ```
#[derive(Clone)]
pub struct OpenAiBuilder {
    name: String,
    api_key: Option<ApiKey>,
    base_url: String,
    organization: Option<String>,
    project: Option<String>,
    default_model: String,
    headers: Vec<(String, String)>,
    transport: Transport,
    azure: Option<Azure>,
    max_tokens_field: Option<MaxTokensField>,
}

impl fmt::Debug for OpenAiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiBuilder")
            .field("name", &self.name)
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url)
            .field("organization", &self.organization)
            .field("project", &self.project)
            .field("default_model", &self.default_model)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("transport", &self.transport)
            .field("azure", &self.azure)
            .finish_non_exhaustive()
    }
}

impl Default for OpenAiBuilder {
    fn default() -> Self {
        OpenAiBuilder {
            name: "openai".into(),
            api_key: None,
            base_url: DEFAULT_BASE_URL.into(),
            organization: None,
            project: None,
            default_model: DEFAULT_MODEL.into(),
            headers: Vec::new(),
            transport: Transport::default(),
            azure: None,
            max_tokens_field: None,
        }
    }
}

impl OpenAiBuilder {
    /// The driver's name in events and metrics. Default: `openai`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The API key, sent as `Authorization: Bearer …` (or `api-key` for Azure). Default:
    /// none (local servers need none).
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The API's base URL, up to and including the version (`…/v1`). Default:
    /// `https://api.openai.com/v1`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The `OpenAI-Organization` header. Default: none.
    pub fn organization(mut self, org: impl Into<String>) -> Self {
        self.organization = Some(org.into());
        self
    }

    /// The `OpenAI-Project` header. Default: none.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// The model for requests that name none. Default: `gpt-4o-mini`.
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

    /// Time allowed for a whole non-streamed call, and for a streamed call to start
    /// (response headers received). Default: 600 s.
    pub fn request_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.transport.request_timeout = timeout.into();
        self
    }

    /// Longest silence allowed between two pieces of a stream before it ends with a
    /// timeout error. Default: 120 s.
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

    /// Uses this HTTP client (proxies, custom TLS, connection pool settings). Default: a
    /// client with rustls and the Mozilla root certificates that follows no redirects and
    /// retries nothing (give yours `redirect::Policy::none()` and `retry::never()` to keep
    /// that behaviour).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.transport.client = Some(client);
        self
    }

    /// Which field carries the output-token limit. Default: `max_completion_tokens` for
    /// OpenAI and Azure, `max_tokens` for other servers (what most compatible servers read).
    pub fn max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens_field = Some(field);
        self
    }

    /// Azure OpenAI: requests go to `{endpoint}/openai/deployments/{deployment}/…` with the
    /// `api-version` query and the key in the `api-key` header. The deployment is the default
    /// model. Default: not Azure.
    pub fn azure(
        mut self,
        endpoint: impl AsRef<str>,
        deployment: impl Into<String>,
        api_version: impl Into<String>,
    ) -> Self {
        let deployment = deployment.into();
        self.base_url = format!(
            "{}/openai/deployments/{}",
            endpoint.as_ref().trim_end_matches('/'),
            deployment
        );
        self.default_model = deployment.clone();
        self.azure = Some(Azure {
            api_version: api_version.into(),
            deployment,
        });
        self
    }

    /// Settings from the environment, as OpenAI's SDKs read them: `OPENAI_API_KEY`,
    /// `OPENAI_BASE_URL`, `OPENAI_ORG_ID`, `OPENAI_PROJECT_ID`.
    ///
    /// # Errors
    /// [`ErrorKind::Authentication`] when `OPENAI_API_KEY` is unset or empty while the base URL
    /// is OpenAI's own (a local server set by `OPENAI_BASE_URL` needs no key).
    pub fn from_env() -> Result<Self, LlmError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with a custom lookup (for tests and config systems).
    ///
    /// # Errors
    /// As for [`from_env`](Self::from_env).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, LlmError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = OpenAiBuilder::default();
        if let Some(url) = get("OPENAI_BASE_URL") {
            b = b.base_url(url);
        }
        match get("OPENAI_API_KEY") {
            Some(key) => b = b.api_key(key),
            None if is_openai_host(&b.base_url) => {
                return Err(LlmError::new(
                    ErrorKind::Authentication,
                    "OPENAI_API_KEY is not set (a local server set with OPENAI_BASE_URL needs none)",
                ));
            }
            None => {}
        }
        if let Some(org) = get("OPENAI_ORG_ID") {
            b = b.organization(org);
        }
        if let Some(project) = get("OPENAI_PROJECT_ID") {
            b = b.project(project);
        }
        Ok(b)
    }

    /// The driver.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`] for a base URL that is not an `http(s)` URL, or a key or
    /// header that cannot be sent in HTTP (the message never shows the key);
    /// [`ErrorKind::Other`] when the HTTP client cannot be built.
    pub fn build(self) -> Result<OpenAiDriver, LlmError> {
        let base = nova_llm_http::base_url(&self.base_url)?;
        let endpoint = |path: &str| {
            let mut url = join_path(&base, path);
            if let Some(az) = &self.azure {
                url.query_pairs_mut()
                    .append_pair("api-version", &az.api_version);
            }
            url
        };
        let chat_url = endpoint("chat/completions");
        let completions_url = endpoint("completions");

        let mut headers = HeaderMap::new();
        if let Some(key) = &self.api_key {
            match self.azure {
                Some(_) => insert_secret(&mut headers, "api-key", key.expose())?,
                None => insert_secret(
                    &mut headers,
                    "authorization",
                    &format!("Bearer {}", key.expose()),
                )?,
            }
        }
        if let Some(org) = &self.organization {
            insert_header(&mut headers, "openai-organization", org)?;
        }
        if let Some(project) = &self.project {
            insert_header(&mut headers, "openai-project", project)?;
        }
        for (k, v) in &self.headers {
            insert_header(&mut headers, k, v)?;
        }
        let max_tokens_field = self.max_tokens_field.unwrap_or(
            if self.azure.is_some() || is_openai_host(base.as_str()) {
                MaxTokensField::MaxCompletionTokens
            } else {
                MaxTokensField::MaxTokens
            },
        );
        let endpoint =
            self.transport
                .endpoint(headers, self.api_key, crate::errors::from_status)?;
        Ok(OpenAiDriver {
            inner: Arc::new(crate::Inner {
                name: self.name,
                endpoint,
                chat_url,
                completions_url,
                default_model: self.default_model,
                max_tokens_field,
                azure_deployment: self.azure.map(|a| a.deployment),
            }),
        })
    }
}

fn is_openai_host(url: &str) -> bool {
    Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h == "api.openai.com"))
        .unwrap_or(false)
}
