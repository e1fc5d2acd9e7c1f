//! From options to a provider over the chosen driver.

use std::sync::Arc;

use nova_llm_anthropic::{AnthropicBuilder, AnthropicDriver};
use nova_llm_core::{ChatRequest, Dialog, ErrorKind, LlmDriver, LlmError, ModelParams};
use nova_llm_gemini::{GeminiBuilder, GeminiDriver};
use nova_llm_mock::MockDriver;
use nova_llm_openai::{OpenAiBuilder, OpenAiDriver};
use nova_llm_provider::Provider;
use nova_llm_provider::cache::CacheLayer;
use nova_llm_provider::fallback::FallbackLayer;
use nova_llm_provider::rate_limit::RateLimitLayer;
use nova_llm_provider::retry::RetryLayer;

use crate::args::{Common, DriverKind};

/// An OpenAI driver for `base_url` (or `OPENAI_BASE_URL`), keyed from the environment.
fn openai(base_url: Option<&str>) -> Result<OpenAiDriver, LlmError> {
    let base_url = base_url.map(str::to_owned);
    OpenAiBuilder::from_lookup(|name| match name {
        "OPENAI_BASE_URL" if base_url.is_some() => base_url.clone(),
        _ => std::env::var(name).ok(),
    })?
    .build()
}

/// An Anthropic driver for `base_url` (or `ANTHROPIC_BASE_URL`), keyed from the
/// environment.
fn anthropic(base_url: Option<&str>) -> Result<AnthropicDriver, LlmError> {
    let base_url = base_url.map(str::to_owned);
    AnthropicBuilder::from_lookup(|name| match name {
        "ANTHROPIC_BASE_URL" if base_url.is_some() => base_url.clone(),
        _ => std::env::var(name).ok(),
    })?
    .build()
}

/// A Gemini driver for `base_url` (or `GOOGLE_GEMINI_BASE_URL`), keyed from the
/// environment.
fn gemini(base_url: Option<&str>) -> Result<GeminiDriver, LlmError> {
    let base_url = base_url.map(str::to_owned);
    GeminiBuilder::from_lookup(|name| match name {
        "GOOGLE_GEMINI_BASE_URL" if base_url.is_some() => base_url.clone(),
        _ => std::env::var(name).ok(),
    })?
    .build()
}

/// The driver of `kind`, at `base_url` (or its environment's), keyed from the environment.
fn driver_of(kind: DriverKind, base_url: Option<&str>) -> Result<Arc<dyn LlmDriver>, LlmError> {
    Ok(match kind {
        DriverKind::Mock => Arc::new(MockDriver::new()),
        DriverKind::Openai => Arc::new(openai(base_url)?),
        DriverKind::Anthropic => Arc::new(anthropic(base_url)?),
        DriverKind::Gemini => Arc::new(gemini(base_url)?),
    })
}

/// The fallback chain of the options: the flags paired by position (see `Common`). A
/// position that names no other driver and no base URL falls back on the provider's own
/// driver (with another model).
fn fallback_chain(
    c: &Common,
    primary: &Arc<dyn LlmDriver>,
) -> Result<Option<FallbackLayer>, LlmError> {
    let n = c
        .fallback_driver
        .len()
        .max(c.fallback_model.len())
        .max(c.fallback_base_url.len());
    if n == 0 {
        return Ok(None);
    }
    let mut chain = FallbackLayer::new();
    for i in 0..n {
        let url = c.fallback_base_url.get(i).map(String::as_str);
        let named = c.fallback_driver.get(i).copied();
        let kind = named.unwrap_or(if url.is_some() {
            DriverKind::Openai
        } else {
            c.driver
        });
        let driver = if kind == c.driver && url.is_none() {
            Arc::clone(primary)
        } else {
            driver_of(kind, url)?
        };
        chain = chain.then(driver, c.fallback_model.get(i).map(String::as_str));
    }
    Ok(Some(chain))
}

/// The provider the options ask for: the driver, then retries, fallback, rate limits and a
/// cache when asked (`cache` also when the command wants one anyway).
pub(crate) fn provider(c: &Common, cache: bool) -> Result<Provider, LlmError> {
    let driver = driver_of(c.driver, c.base_url.as_deref())?;
    let mut b = Provider::builder_shared(Arc::clone(&driver));
    if c.retries > 0 {
        b = b.retry(RetryLayer::new().max_attempts(c.retries.saturating_add(1)));
    }
    if let Some(chain) = fallback_chain(c, &driver)? {
        b = b.fallback(chain);
    }
    if c.rpm.is_some() || c.tpm.is_some() {
        let mut limits = RateLimitLayer::new();
        if let Some(n) = c.rpm {
            limits = limits.requests_per_minute(n);
        }
        if let Some(n) = c.tpm {
            limits = limits.tokens_per_minute(n);
        }
        b = b.rate_limit(limits);
    }
    if cache || c.cache {
        b = b.cache(CacheLayer::in_memory(10_000, None));
    }
    Ok(b.build())
}

/// A request with the options' model and parameters.
pub(crate) fn request(c: &Common, dialog: Dialog) -> Result<ChatRequest, LlmError> {
    let mut params = ModelParams::default();
    params.temperature = c.temperature;
    params.top_p = c.top_p;
    params.max_tokens = c.max_tokens;
    params.seed = c.seed;
    params.stop = c.stop.clone();
    params.validate()?;
    let mut r = ChatRequest::new(dialog).params(params);
    r.model = c.model.clone();
    Ok(r)
}

/// A hint for an error, where one helps.
pub(crate) fn hint(err: &LlmError, c: &Common) -> Option<String> {
    let (key, default_url) = match c.driver {
        DriverKind::Anthropic => ("ANTHROPIC_API_KEY", nova_llm_anthropic::DEFAULT_BASE_URL),
        DriverKind::Gemini => ("GEMINI_API_KEY", nova_llm_gemini::DEFAULT_BASE_URL),
        _ => ("OPENAI_API_KEY", nova_llm_openai::DEFAULT_BASE_URL),
    };
    // The hosted services' keys; a local OpenAI-compatible server needs none.
    let hosted = matches!(c.driver, DriverKind::Anthropic | DriverKind::Gemini);
    match err.kind() {
        ErrorKind::Authentication if err.status().is_none() && hosted => {
            Some(format!("export {key}=..."))
        }
        ErrorKind::Authentication if err.status().is_none() => Some(format!(
            "export {key}=sk-..., or pass --base-url for a local server that needs no key"
        )),
        ErrorKind::Authentication => Some(format!("check that {key} holds a valid key")),
        ErrorKind::Connection => Some(format!(
            "is the server at {} running and reachable?",
            c.base_url.as_deref().unwrap_or(default_url)
        )),
        ErrorKind::RateLimited => Some(match err.retry_after() {
            Some(d) => format!(
                "retry in {:.0} s, or pass --retries 3",
                d.as_secs_f64().ceil()
            ),
            None => "pass --retries 3 to retry automatically".into(),
        }),
        ErrorKind::NotFound => Some("check --model and --base-url".into()),
        _ => None,
    }
}
