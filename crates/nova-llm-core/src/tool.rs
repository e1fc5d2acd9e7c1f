//! Tools the model may call, and whether it must.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache_hint::CacheTtl;

/// A function the model may call.
///
/// ```
/// use nova_llm_core::Tool;
/// use serde_json::json;
///
/// let weather = Tool::new("get_weather", json!({
///     "type": "object",
///     "properties": { "city": { "type": "string" } },
///     "required": ["city"]
/// }))
/// .with_description("Current weather for a city");
/// assert_eq!(weather.name, "get_weather");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The function name the model calls it by.
    pub name: String,
    /// What the tool does, for the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    /// Whether the service must follow the schema exactly. Default: unset (service default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// A prompt-caching breakpoint after this tool (tools come first in the prompt), for
    /// services that take one. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_breakpoint: Option<CacheTtl>,
}

impl Tool {
    /// A tool taking arguments that match `parameters` (a JSON Schema).
    pub fn new(name: impl Into<String>, parameters: Value) -> Self {
        Tool {
            name: name.into(),
            description: None,
            parameters,
            strict: None,
            cache_breakpoint: None,
        }
    }

    /// Sets the description. Default: none.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Marks a prompt-caching breakpoint after this tool. Default: none.
    pub fn with_cache_breakpoint(mut self, ttl: CacheTtl) -> Self {
        self.cache_breakpoint = Some(ttl);
        self
    }

    /// Sets strict schema adherence. Default: unset.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = Some(strict);
        self
    }
}

/// Whether and which tool the model must call.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides (the service default when tools are offered).
    Auto,
    /// The model must not call a tool.
    None,
    /// The model must call at least one tool.
    Required,
    /// The model must call the named tool.
    Tool(String),
}
