//! Prompt-caching hints: where a user marks the end of a prefix worth caching.

use serde::{Deserialize, Serialize};

/// How long a prompt-cache entry made at a breakpoint should live.
///
/// A breakpoint on a row (the system prompt, a long document, the last turn) or on a tool
/// asks the service to cache the prompt up to and including it, so the next call that
/// starts the same way is cheaper and faster. Drivers of services that take breakpoints
/// send them (Anthropic's `cache_control`); others ignore them (OpenAI caches prefixes on
/// its own). A breakpoint never changes the answer, so the provider's response cache
/// leaves it out of its key.
///
/// ```
/// use nova_llm_core::{CacheTtl, Dialog, Message};
///
/// let dialog = Dialog::new()
///     .message(Message::system("You are a patient tutor. <long rules>").with_cache_breakpoint(CacheTtl::Short))
///     .user("What is a monad?");
/// assert_eq!(dialog.messages()[0].cache_breakpoint, Some(CacheTtl::Short));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheTtl {
    /// The service's default, short lifetime (Anthropic: 5 minutes).
    #[default]
    Short,
    /// A long lifetime (Anthropic: 1 hour, written at a higher price).
    Long,
}
