//! The command line, as clap reads it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Talk to a large language model: the built-in mock (no key, no network), Anthropic,
/// Gemini, or any OpenAI-compatible server.
#[derive(Debug, Parser)]
#[command(name = "nova", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// One chat turn: prints the reply.
    Chat(ChatArgs),
    /// A plain completion of a prompt (the legacy completions endpoint with OpenAI).
    Complete(CompleteArgs),
    /// An interactive conversation: /stats, /reset, /system TEXT, /exit.
    Repl(ReplArgs),
    /// An OpenAI-compatible gateway over the provider (the built-in mock route without
    /// --config).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The gateway's TOML configuration (models, keys, limits). Default: one route,
    /// `mock`, on the built-in mock; no keys.
    #[arg(long, env = "NOVA_GATEWAY_CONFIG")]
    pub(crate) config: Option<std::path::PathBuf>,
    /// Where to listen (overrides the configuration's server.listen).
    #[arg(long)]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Share caches, rate limits and budgets with every instance on this Redis.
    #[arg(long, env = "NOVA_GATEWAY_REDIS")]
    pub(crate) redis: Option<String>,
    /// Print the SHA-256 of a gateway key (for the configuration's keys.sha256) and exit.
    #[arg(long, value_name = "TOKEN")]
    pub(crate) hash_key: Option<String>,
    /// Check the configuration and exit.
    #[arg(long)]
    pub(crate) check: bool,
}

/// Which driver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DriverKind {
    /// The built-in mock: answers f(x) to x.
    Mock,
    /// OpenAI, or any OpenAI-compatible server with --base-url.
    Openai,
    /// Anthropic's Messages API (the key from ANTHROPIC_API_KEY).
    Anthropic,
    /// The Gemini API (the key from GEMINI_API_KEY or GOOGLE_API_KEY).
    Gemini,
}

#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The driver.
    #[arg(long, env = "NOVA_DRIVER", value_enum, default_value = "mock")]
    pub(crate) driver: DriverKind,
    /// The model (default: the driver's).
    #[arg(long)]
    pub(crate) model: Option<String>,
    /// The server's base URL, such as http://localhost:11434/v1 (default: OPENAI_BASE_URL,
    /// ANTHROPIC_BASE_URL or GOOGLE_GEMINI_BASE_URL, as the driver reads it, else the
    /// service's own). The key comes from the driver's environment variable only; a local
    /// server needs none.
    #[arg(long)]
    pub(crate) base_url: Option<String>,
    /// Sampling temperature.
    #[arg(long)]
    pub(crate) temperature: Option<f64>,
    /// Nucleus sampling.
    #[arg(long)]
    pub(crate) top_p: Option<f64>,
    /// The most tokens to generate.
    #[arg(long)]
    pub(crate) max_tokens: Option<u32>,
    /// A seed for reproducible sampling.
    #[arg(long)]
    pub(crate) seed: Option<i64>,
    /// A stop sequence (repeatable).
    #[arg(long)]
    pub(crate) stop: Vec<String>,
    /// Print latency, time to first token, tokens (with cache reads and writes, and
    /// reasoning, when the service reports them), the model that answered and the cost to
    /// stderr.
    #[arg(long)]
    pub(crate) stats: bool,
    /// Retry retryable failures this many times.
    #[arg(long, default_value_t = 0)]
    pub(crate) retries: u32,
    /// After the retries, try this driver (repeatable: a chain, tried in order). The
    /// fallback flags pair up by position: the first --fallback-driver goes with the
    /// first --fallback-model and the first --fallback-base-url. Default for a position
    /// with no driver: an OpenAI-compatible server if it has a base URL, else --driver.
    #[arg(long, value_enum)]
    pub(crate) fallback_driver: Vec<DriverKind>,
    /// After the retries, try this model (repeatable, paired as above; default: the
    /// driver's own default model).
    #[arg(long)]
    pub(crate) fallback_model: Vec<String>,
    /// The base URL of a fallback's server (repeatable, paired as above).
    #[arg(long)]
    pub(crate) fallback_base_url: Vec<String>,
    /// At most this many requests per minute.
    #[arg(long)]
    pub(crate) rpm: Option<u64>,
    /// At most this many tokens per minute.
    #[arg(long)]
    pub(crate) tpm: Option<u64>,
    /// Answer repeated identical requests from an in-memory cache.
    #[arg(long)]
    pub(crate) cache: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ChatArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// A system instruction.
    #[arg(long)]
    pub(crate) system: Option<String>,
    /// Print the reply as it arrives.
    #[arg(long)]
    pub(crate) stream: bool,
    /// Ask for JSON matching the JSON Schema in FILE; print the JSON.
    #[arg(long, value_name = "FILE")]
    pub(crate) json_schema: Option<PathBuf>,
    /// Print the whole response as JSON (with --stream: each event, one JSON per line).
    #[arg(long)]
    pub(crate) json: bool,
    /// What to say.
    pub(crate) prompt: String,
}

#[derive(Debug, Args)]
pub(crate) struct CompleteArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Print the completion as it arrives.
    #[arg(long)]
    pub(crate) stream: bool,
    /// Print the whole response as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// The text to continue.
    pub(crate) prompt: String,
}

#[derive(Debug, Args)]
pub(crate) struct ReplArgs {
    #[command(flatten)]
    pub(crate) common: Common,
    /// A system instruction.
    #[arg(long)]
    pub(crate) system: Option<String>,
    /// The most tokens of history sent with each turn (older turns are dropped).
    #[arg(long, default_value_t = 8_000)]
    pub(crate) budget: usize,
    /// Wait for whole replies instead of streaming them.
    #[arg(long)]
    pub(crate) no_stream: bool,
}
