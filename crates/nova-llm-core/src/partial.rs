//! What a stream delivered before it failed.

use serde::{Deserialize, Serialize};

use crate::tool_call::ToolCall;
use crate::usage::Usage;

/// What a stream delivered before it failed: carried by
/// [`ErrorKind::StreamInterrupted`](crate::ErrorKind::StreamInterrupted) errors (and attached
/// to other mid-stream errors) so that no generated output is lost.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialOutput {
    /// The reply's id, if it was sent.
    #[serde(default)]
    pub id: String,
    /// The model, if it was sent.
    #[serde(default)]
    pub model: String,
    /// The text received so far.
    #[serde(default)]
    pub text: String,
    /// The reasoning text received so far.
    #[serde(default)]
    pub reasoning: String,
    /// Tool calls received so far (the last one's arguments may be cut off).
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// Usage, if the service reported it before the failure.
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl PartialOutput {
    /// Whether nothing at all arrived.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty() && self.reasoning.is_empty() && self.tool_calls.is_empty()
    }
}
