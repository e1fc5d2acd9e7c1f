//! A call the assistant asks the caller to make.

use serde::{Deserialize, Serialize};

/// A call the assistant asked the caller to make. Its arguments, parsed:
/// [`arguments_json`](Self::arguments_json) (with the other parsers of what a model
/// writes as JSON).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ToolCall {
    /// The id the tool result must refer to.
    pub id: String,
    /// The tool (function) name.
    pub name: String,
    /// The arguments exactly as the model wrote them: usually, but not surely, JSON.
    pub arguments: String,
}

impl ToolCall {
    /// A tool call.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }
}
