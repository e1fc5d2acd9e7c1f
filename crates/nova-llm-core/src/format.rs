//! The shape a reply must have: free text, any JSON object, or JSON matching a schema.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The shape the reply must have.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    #[default]
    Text,
    /// Any valid JSON object.
    JsonObject,
    /// JSON matching a JSON Schema.
    JsonSchema(JsonSchemaFormat),
}

impl ResponseFormat {
    /// JSON matching `schema`, under `name`, strict (the service enforces the schema exactly).
    pub fn json_schema(name: impl Into<String>, schema: Value) -> Self {
        ResponseFormat::JsonSchema(JsonSchemaFormat::new(name, schema))
    }

    /// The schema when this is [`ResponseFormat::JsonSchema`].
    pub fn schema(&self) -> Option<&Value> {
        match self {
            ResponseFormat::JsonSchema(f) => Some(&f.schema),
            _ => None,
        }
    }

    /// Whether the reply is expected to be JSON.
    pub fn is_json(&self) -> bool {
        !matches!(self, ResponseFormat::Text)
    }
}

/// A named JSON Schema the reply must match.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// A name for the schema (`[a-zA-Z0-9_-]`, at most 64 characters on OpenAI).
    pub name: String,
    /// The JSON Schema.
    pub schema: Value,
    /// Whether the service must follow the schema exactly. Default: `true`.
    #[serde(default = "default_true")]
    pub strict: bool,
    /// What the schema is for, shown to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn default_true() -> bool {
    true
}

impl JsonSchemaFormat {
    /// A strict schema format with no description.
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        JsonSchemaFormat {
            name: name.into(),
            schema,
            strict: true,
            description: None,
        }
    }

    /// Sets whether the schema is enforced exactly. Default: `true`.
    pub fn with_strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Sets the description. Default: none.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}
