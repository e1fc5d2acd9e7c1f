//! The gateway's configuration: a TOML file naming the models it serves, what serves
//! each, and the keys that may call it. Checked whole at start; every error names the line
//! and the field.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The whole configuration.
#[non_exhaustive]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How the server listens and protects itself.
    #[serde(default)]
    pub server: ServerConfig,
    /// The models clients may ask for, each with what serves it.
    #[serde(default)]
    pub models: Vec<ModelRoute>,
    /// Gateway keys. With none, the gateway is open (for local use); with any, every call
    /// needs one as a bearer token.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// The server's own settings.
#[non_exhaustive]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen. Default: `127.0.0.1:4000`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes (a larger one is a 413). Default: 10 MiB.
    #[serde(default = "default_body_bytes")]
    pub max_body_bytes: usize,
    /// How long a client may take to send its request headers (a connection that sends
    /// nothing is closed after as long); 0 for no limit (a fifth more throughput under
    /// heavy load, for a gateway behind a proxy that has its own). Default: 10 s.
    #[serde(default = "default_header_secs")]
    pub header_timeout_secs: u64,
    /// How long a client may take to send its request body. Default: 30 s.
    #[serde(default = "default_body_secs")]
    pub body_timeout_secs: u64,
    /// How long in-flight calls and streams may run on after a shutdown signal. Default:
    /// 30 s.
    #[serde(default = "default_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Log each call's prompt and reply in the access log. Default: off (method, path,
    /// status, model, key name and timings only).
    #[serde(default)]
    pub log_bodies: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            max_body_bytes: default_body_bytes(),
            header_timeout_secs: default_header_secs(),
            body_timeout_secs: default_body_secs(),
            shutdown_grace_secs: default_grace_secs(),
            log_bodies: false,
        }
    }
}

impl ServerConfig {
    /// How long a client may take to send its headers (`None`: no limit).
    pub fn header_timeout(&self) -> Option<Duration> {
        (self.header_timeout_secs > 0).then(|| Duration::from_secs(self.header_timeout_secs))
    }

    /// How long a client may take to send its body.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    /// How long in-flight work may run on after a shutdown signal.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}
fn default_body_bytes() -> usize {
    10 * 1024 * 1024
}
fn default_header_secs() -> u64 {
    10
}
fn default_body_secs() -> u64 {
    30
}
fn default_grace_secs() -> u64 {
    30
}

/// The services a route can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// The built-in test double (answers `f(x)`); no key, no network.
    Mock,
    /// OpenAI or any OpenAI-compatible server.
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// The Gemini API.
    Gemini,
}

/// One model clients may ask for, and what serves it.
#[non_exhaustive]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRoute {
    /// The name clients send as `model`.
    pub name: Spanned<String>,
    /// The service that answers.
    pub driver: DriverKind,
    /// The model asked of that service. Default: `name`.
    #[serde(default)]
    pub model: Option<String>,
    /// The service's base URL. Default: the driver's (or its environment variable's).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The environment variable holding the service's key. Default: the driver's own
    /// (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`). The key itself never
    /// appears in the file.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Other routes' names to try in order when this one fails before its first content.
    #[serde(default)]
    pub fallback: Vec<Spanned<String>>,
    /// Retries of a failed attempt (retryable errors only). Default: 0.
    #[serde(default)]
    pub retries: u32,
    /// Requests a minute to the service.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens a minute to the service (estimated, then corrected).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// Calls in flight to the service at once, per gateway process (others wait).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// A cache of replies.
    #[serde(default)]
    pub cache: Option<CacheConfig>,
}

impl ModelRoute {
    /// The model asked of the service.
    pub fn upstream_model(&self) -> &str {
        self.model.as_deref().unwrap_or(self.name.get_ref())
    }
}

/// A route's cache.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Replies kept in memory (ignored with Redis, which has its own memory policy).
    #[serde(default = "default_cache_capacity")]
    pub capacity: usize,
    /// How long a reply stays. Default: no limit in memory, one day in Redis.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

fn default_cache_capacity() -> usize {
    10_000
}

/// One gateway key.
#[non_exhaustive]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for logs, metrics and errors (never the key).
    pub name: Spanned<String>,
    /// The key's SHA-256, in hex (`nova serve --hash-key TOKEN` prints it): the file never
    /// holds the key itself.
    pub sha256: Spanned<String>,
    /// The models this key may call. Default: all.
    #[serde(default)]
    pub models: Option<Vec<Spanned<String>>>,
    /// Requests a minute with this key, across models.
    #[serde(default)]
    pub rpm: Option<u64>,
    /// Tokens a minute with this key (estimated at admission, corrected after plain calls).
    #[serde(default)]
    pub tpm: Option<u64>,
    /// The most this key may spend, in US dollars, in each `budget_period`.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// The budget's period (`1h`, `1d`, `30d`...), aligned to the Unix epoch. Default: `1d`.
    #[serde(default)]
    pub budget_period: Option<Spanned<String>>,
}

impl KeyConfig {
    /// The budget's period.
    pub fn period(&self) -> Duration {
        self.budget_period
            .as_ref()
            .and_then(|p| humantime::parse_duration(p.get_ref()).ok())
            .unwrap_or(Duration::from_secs(86_400))
    }
}

/// A configuration that cannot be used: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong, naming the field.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "config line {line}: {}", self.message),
            None => write!(f, "config: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The built-in configuration: one route, `mock`, on the test double; no keys.
    pub fn builtin_mock() -> Config {
        let mut config = Config {
            server: ServerConfig::default(),
            models: Vec::new(),
            keys: Vec::new(),
        };
        config.models.push(ModelRoute {
            name: Spanned::new(0..0, "mock".to_owned()),
            driver: DriverKind::Mock,
            model: None,
            base_url: None,
            api_key_env: None,
            fallback: Vec::new(),
            retries: 0,
            rpm: None,
            tpm: None,
            max_in_flight: None,
            cache: None,
        });
        config
    }

    /// Parses and checks `text`.
    ///
    /// # Errors
    /// The first problem found, with its line and field: TOML syntax, an unknown field, a
    /// wrong type, a route or key named twice, a fallback naming no route, a key allowed a
    /// model no route serves, a hash that is not 64 hex digits, a budget period that does
    /// not parse, a limit of zero.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        config.check(text)?;
        Ok(config)
    }

    fn check(&self, text: &str) -> Result<(), ConfigError> {
        let at = |span: std::ops::Range<usize>, message: String| ConfigError {
            line: Some(line_of(text, span.start)),
            message,
        };
        if self.models.is_empty() {
            return Err(ConfigError {
                line: None,
                message: "no [[models]]: the gateway would serve nothing".into(),
            });
        }
        let mut names = BTreeSet::new();
        for m in &self.models {
            if m.name.get_ref().is_empty() {
                return Err(at(m.name.span(), "models.name is empty".into()));
            }
            if !names.insert(m.name.get_ref().as_str()) {
                return Err(at(
                    m.name.span(),
                    format!("models.name `{}` is named twice", m.name.get_ref()),
                ));
            }
            let in_flight = m.max_in_flight.map(|n| n as u64);
            for (field, v) in [("rpm", m.rpm), ("tpm", m.tpm), ("max_in_flight", in_flight)] {
                if v == Some(0) {
                    return Err(at(
                        m.name.span(),
                        format!(
                            "models.{field} of `{}` is 0: it admits nothing",
                            m.name.get_ref()
                        ),
                    ));
                }
            }
        }
        for m in &self.models {
            for f in &m.fallback {
                if !names.contains(f.get_ref().as_str()) {
                    return Err(at(
                        f.span(),
                        format!(
                            "models.fallback names `{}`, which no [[models]] serves",
                            f.get_ref()
                        ),
                    ));
                }
                if f.get_ref() == m.name.get_ref() {
                    return Err(at(
                        f.span(),
                        format!("models.fallback of `{}` names itself", m.name.get_ref()),
                    ));
                }
            }
        }
        let mut key_names = BTreeSet::new();
        let mut hashes = BTreeSet::new();
        for k in &self.keys {
            if !key_names.insert(k.name.get_ref().as_str()) {
                return Err(at(
                    k.name.span(),
                    format!("keys.name `{}` is named twice", k.name.get_ref()),
                ));
            }
            let hash = k.sha256.get_ref();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(at(
                    k.sha256.span(),
                    "keys.sha256 must be 64 hex digits (the SHA-256 of the key; \
                     `nova serve --hash-key TOKEN` prints it)"
                        .into(),
                ));
            }
            if !hashes.insert(hash.to_ascii_lowercase()) {
                return Err(at(
                    k.sha256.span(),
                    "keys.sha256 is given to two keys".into(),
                ));
            }
            for m in k.models.iter().flatten() {
                if !names.contains(m.get_ref().as_str()) {
                    return Err(at(
                        m.span(),
                        format!(
                            "keys.models names `{}`, which no [[models]] serves",
                            m.get_ref()
                        ),
                    ));
                }
            }
            if let Some(p) = &k.budget_period {
                match humantime::parse_duration(p.get_ref()) {
                    Ok(d) if d.as_secs() > 0 => {}
                    _ => {
                        return Err(at(
                            p.span(),
                            format!(
                                "keys.budget_period `{}` is not a period such as `1h` or `30d`",
                                p.get_ref()
                            ),
                        ));
                    }
                }
            }
            match k.budget_usd {
                Some(b) if !b.is_finite() || b < 0.0 => {
                    return Err(at(
                        k.name.span(),
                        format!(
                            "keys.budget_usd of `{}` must be a positive number",
                            k.name.get_ref()
                        ),
                    ));
                }
                _ => {}
            }
            for (field, v) in [("rpm", k.rpm), ("tpm", k.tpm)] {
                if v == Some(0) {
                    return Err(at(
                        k.name.span(),
                        format!(
                            "keys.{field} of `{}` is 0: it admits nothing",
                            k.name.get_ref()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}
