//! From the configuration's `[[models]]` to one provider per route: the driver, then
//! retries, the fallback chain, rate limits and a cache as configured, the gateway's
//! access checks outermost, and its metrics and spend listening to every call.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nova_llm_anthropic::AnthropicBuilder;
use nova_llm_core::{LlmDriver, LlmError};
use nova_llm_gemini::GeminiBuilder;
use nova_llm_mock::MockDriver;
use nova_llm_openai::OpenAiBuilder;
use nova_llm_provider::Provider;
use nova_llm_provider::fallback::FallbackLayer;
use nova_llm_provider::rate_limit::RateLimitLayer;
use nova_llm_provider::retry::RetryLayer;

use crate::Env;
use crate::access::AccessLayer;
use crate::config::{Config, DriverKind, ModelRoute};
use crate::metrics::MetricsListener;
use crate::shared::Shared;
use crate::spend::SpendListener;
use crate::timed::Timed;

/// One model clients may ask for.
#[derive(Debug)]
pub(crate) struct Route {
    /// The model asked of the service.
    pub(crate) upstream_model: String,
    /// The service's name for the opaque reasoning it signs (what a client sends back
    /// came from it).
    pub(crate) origin: &'static str,
    pub(crate) provider: Provider,
}

/// Every route, by the name clients send.
#[derive(Debug)]
pub(crate) struct Routes {
    by_name: HashMap<String, Route>,
    /// The names in the configuration's order (for `/v1/models`).
    names: Vec<String>,
}

impl Routes {
    /// The route clients call `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Route> {
        self.by_name.get(name)
    }

    /// The names, in the configuration's order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// A provider for each route of `config`.
    ///
    /// # Errors
    /// A driver that cannot be built (a base URL that does not parse, a header the key
    /// cannot be put in); a missing key is no error here, the service says so per call.
    pub(crate) fn build(
        config: &Config,
        env: &Env,
        shared: &Shared,
        access: &AccessLayer,
        metrics: &MetricsListener,
        spend: &SpendListener,
    ) -> Result<Routes, LlmError> {
        let mut drivers = HashMap::new();
        for m in &config.models {
            let d = driver(m, env).map_err(|e| {
                LlmError::new(
                    e.kind(),
                    format!("models `{}`: {}", m.name.get_ref(), e.message()),
                )
            })?;
            drivers.insert(m.name.get_ref().clone(), d);
        }
        // A configuration changed after `Config::parse` may name a route that is not there.
        let driver_of = |name: &str| {
            drivers.get(name).cloned().ok_or_else(|| {
                LlmError::invalid_request(format!(
                    "models.fallback names `{name}`, which no [[models]] serves"
                ))
            })
        };
        let mut by_name = HashMap::new();
        for m in &config.models {
            let name = m.name.get_ref();
            let driver = driver_of(name)?;
            let mut b = Provider::builder_shared(driver)
                .metrics(false)
                .listener(metrics.clone())
                .listener(spend.clone());
            if m.retries > 0 {
                b = b.retry(RetryLayer::new().max_attempts(m.retries.saturating_add(1)));
            }
            if !m.fallback.is_empty() {
                let mut chain = FallbackLayer::new();
                for f in &m.fallback {
                    let target = config
                        .models
                        .iter()
                        .find(|t| t.name.get_ref() == f.get_ref())
                        .map(ModelRoute::upstream_model);
                    chain = chain.then(driver_of(f.get_ref())?, target);
                }
                b = b.fallback(chain);
            }
            if m.rpm.is_some() || m.tpm.is_some() || m.max_in_flight.is_some() {
                let mut limits = RateLimitLayer::new();
                if let Some(n) = m.max_in_flight {
                    limits = limits.max_in_flight(n);
                }
                if let Some(n) = m.rpm {
                    limits = limits.requests(n, Duration::from_secs(60));
                }
                if let Some(n) = m.tpm {
                    limits = limits.tokens_per_minute(n);
                }
                b = b.rate_limit(limits.backend(shared.windows(&format!("route:{name}:"))));
            }
            if let Some(c) = m.cache {
                let ttl = c.ttl_secs.map(Duration::from_secs);
                b = b.cache(shared.cache(name, c.capacity as u64, ttl));
            }
            b = b.insert_after("events", access.clone());
            by_name.insert(
                name.clone(),
                Route {
                    upstream_model: m.upstream_model().to_owned(),
                    origin: match m.driver {
                        DriverKind::Anthropic => nova_llm_anthropic::ORIGIN,
                        DriverKind::Gemini => nova_llm_gemini::ORIGIN,
                        DriverKind::Openai => "openai",
                        DriverKind::Mock => "mock",
                    },
                    provider: b.build(),
                },
            );
        }
        Ok(Routes {
            by_name,
            names: config
                .models
                .iter()
                .map(|m| m.name.get_ref().clone())
                .collect(),
        })
    }
}

/// The driver of a route, timed (the gateway's added latency is its time less the
/// driver's).
fn driver(m: &ModelRoute, env: &Env) -> Result<Arc<dyn LlmDriver>, LlmError> {
    let base_url = m.base_url.clone();
    let key_env = m.api_key_env.clone();
    // The route's settings first, then the process's environment.
    let lookup = move |default_key: &str, default_url: &str| {
        let base_url = base_url.clone();
        let key_env = key_env.clone();
        let env = Arc::clone(env);
        let default_key = default_key.to_owned();
        let default_url = default_url.to_owned();
        move |name: &str| {
            if name == default_url
                && let Some(u) = &base_url
            {
                return Some(u.clone());
            }
            if name == default_key
                && let Some(var) = &key_env
            {
                return env(var);
            }
            env(name)
        }
    };
    let model = m.upstream_model().to_owned();
    let inner: Arc<dyn LlmDriver> = match m.driver {
        DriverKind::Mock => Arc::new(MockDriver::new()),
        DriverKind::Openai => Arc::new(
            OpenAiBuilder::from_lookup(lookup("OPENAI_API_KEY", "OPENAI_BASE_URL"))?
                .default_model(model)
                .build()?,
        ),
        DriverKind::Anthropic => Arc::new(
            AnthropicBuilder::from_lookup(lookup("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"))?
                .default_model(model)
                .build()?,
        ),
        DriverKind::Gemini => {
            // Gemini's key comes from GEMINI_API_KEY, else GOOGLE_API_KEY.
            let key_env = m.api_key_env.clone();
            let base = lookup("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL");
            Arc::new(
                GeminiBuilder::from_lookup(move |name| match (name, &key_env) {
                    ("GOOGLE_API_KEY", Some(_)) => None,
                    _ => base(name),
                })?
                .default_model(model)
                .build()?,
            )
        }
    };
    Ok(Arc::new(Timed::new(inner)))
}
