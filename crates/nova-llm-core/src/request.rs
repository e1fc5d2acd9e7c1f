//! Requests: chat and plain completion, with the model parameters they share.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dialog::Dialog;
use crate::error::LlmError;

/// The sampling and length parameters most services accept.
///
/// Every field defaults to `None` (or empty): the service's own default applies, and a driver
/// omits the field from the wire request instead of sending `null`. Decimal parameters are
/// `f64`, as JSON numbers are, so `0.2` reaches the wire as `0.2` (an `f32` widened on the
/// way would be sent as `0.20000000298023224`).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelParams {
    /// Sampling temperature, `0.0..=2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, `0.0..=1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Most tokens the reply may have (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sequences where the model stops generating.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Seed for best-effort deterministic sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Presence penalty, `-2.0..=2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty, `-2.0..=2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// An end-user id the service may use for abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ModelParams {
    /// No parameters set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks every set parameter against its documented range.
    ///
    /// # Errors
    /// An [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) error naming the
    /// first parameter out of range.
    pub fn validate(&self) -> Result<(), LlmError> {
        fn range(name: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<(), LlmError> {
            match v {
                Some(x) if !(lo..=hi).contains(&x) => Err(LlmError::invalid_request(format!(
                    "`{name}` must be between {lo} and {hi}, got {x}"
                ))
                .with_param(name)),
                _ => Ok(()),
            }
        }
        range("temperature", self.temperature, 0.0, 2.0)?;
        range("top_p", self.top_p, 0.0, 1.0)?;
        range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        if self.max_tokens == Some(0) {
            return Err(LlmError::invalid_request("`max_tokens` must be at least 1")
                .with_param("max_tokens"));
        }
        Ok(())
    }
}

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
}

impl Tool {
    /// A tool taking arguments that match `parameters` (a JSON Schema).
    pub fn new(name: impl Into<String>, parameters: Value) -> Self {
        Tool {
            name: name.into(),
            description: None,
            parameters,
            strict: None,
        }
    }

    /// Sets the description. Default: none.
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
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

/// One chat call: the dialog and everything that shapes the reply.
///
/// ```
/// use nova_llm_core::{ChatRequest, Dialog};
///
/// let req = ChatRequest::new(Dialog::new().system("Be brief.").user("Hi"))
///     .model("gpt-4o-mini")
///     .temperature(0.2)
///     .max_tokens(64)
///     .extra("logprobs", true);
/// assert_eq!(req.params.temperature, Some(0.2));
/// assert!(req.validate().is_ok());
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model; `None` means the driver's default model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The conversation (hidden rows are never sent).
    pub dialog: Dialog,
    /// Sampling and length parameters.
    #[serde(default)]
    pub params: ModelParams,
    /// The shape of the reply. Default: text.
    #[serde(default, skip_serializing_if = "is_text")]
    pub response_format: ResponseFormat,
    /// Tools the model may call. Default: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// Whether and which tool must be called. Default: unset (service default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come in one reply. Default: unset (service default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Provider-specific parameters, sent verbatim and merged last (they win over the fields
    /// above). Default: none.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extras: Map<String, Value>,
}

fn is_text(f: &ResponseFormat) -> bool {
    matches!(f, ResponseFormat::Text)
}

impl ChatRequest {
    /// A request over `dialog` with every option at its default.
    pub fn new(dialog: impl Into<Dialog>) -> Self {
        ChatRequest {
            dialog: dialog.into(),
            ..Self::default()
        }
    }

    /// Sets the model. Default: the driver's default model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Replaces all model parameters at once. Default: none set.
    pub fn params(mut self, params: ModelParams) -> Self {
        self.params = params;
        self
    }

    /// Sets the temperature. Default: unset.
    pub fn temperature(mut self, t: f64) -> Self {
        self.params.temperature = Some(t);
        self
    }

    /// Sets top-p. Default: unset.
    pub fn top_p(mut self, p: f64) -> Self {
        self.params.top_p = Some(p);
        self
    }

    /// Sets the maximum output tokens. Default: unset.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.params.max_tokens = Some(n);
        self
    }

    /// Adds a stop sequence. Default: none.
    pub fn stop(mut self, s: impl Into<String>) -> Self {
        self.params.stop.push(s.into());
        self
    }

    /// Sets the seed. Default: unset.
    pub fn seed(mut self, seed: i64) -> Self {
        self.params.seed = Some(seed);
        self
    }

    /// Sets the presence penalty. Default: unset.
    pub fn presence_penalty(mut self, p: f64) -> Self {
        self.params.presence_penalty = Some(p);
        self
    }

    /// Sets the frequency penalty. Default: unset.
    pub fn frequency_penalty(mut self, p: f64) -> Self {
        self.params.frequency_penalty = Some(p);
        self
    }

    /// Sets the end-user id. Default: unset.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.params.user = Some(user.into());
        self
    }

    /// Sets the response format. Default: text.
    pub fn response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = format;
        self
    }

    /// Asks for JSON matching `schema` (strict), under `name`.
    pub fn json_schema(self, name: impl Into<String>, schema: Value) -> Self {
        self.response_format(ResponseFormat::json_schema(name, schema))
    }

    /// Offers a tool. Default: no tools.
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.push(tool);
        self
    }

    /// Sets the tool choice. Default: unset.
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Allows or forbids several tool calls in one reply. Default: unset.
    pub fn parallel_tool_calls(mut self, allowed: bool) -> Self {
        self.parallel_tool_calls = Some(allowed);
        self
    }

    /// Adds a provider-specific parameter, passed through verbatim. Default: none.
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extras.insert(key.into(), value.into());
        self
    }

    /// Checks what any service would reject: nothing to send, parameters out of range,
    /// unnamed tools, a forced tool that is not offered.
    ///
    /// # Errors
    /// An [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) error saying what is
    /// wrong.
    pub fn validate(&self) -> Result<(), LlmError> {
        if self.dialog.visible().next().is_none() {
            return Err(LlmError::invalid_request(
                "the dialog has no visible rows: nothing to send",
            )
            .with_param("messages"));
        }
        self.params.validate()?;
        if let Some(t) = self.tools.iter().find(|t| t.name.trim().is_empty()) {
            return Err(LlmError::invalid_request(format!(
                "a tool in `tools` has an empty name (description: {:?})",
                t.description.as_deref().unwrap_or("")
            ))
            .with_param("tools"));
        }
        if let Some(ToolChoice::Tool(name)) = &self.tool_choice
            && !self.tools.iter().any(|t| &t.name == name)
        {
            return Err(LlmError::invalid_request(format!(
                "`tool_choice` names `{name}`, which is not among the offered tools"
            ))
            .with_param("tool_choice"));
        }
        if let ResponseFormat::JsonSchema(f) = &self.response_format
            && f.name.trim().is_empty()
        {
            return Err(LlmError::invalid_request(
                "the JSON schema in `response_format` needs a name",
            )
            .with_param("response_format"));
        }
        Ok(())
    }
}

impl From<Dialog> for ChatRequest {
    fn from(dialog: Dialog) -> Self {
        ChatRequest::new(dialog)
    }
}

/// A plain completion of a prompt (the legacy, non-chat path).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionRequest {
    /// The model; `None` means the driver's default model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The text to continue.
    pub prompt: String,
    /// Sampling and length parameters.
    #[serde(default)]
    pub params: ModelParams,
    /// Provider-specific parameters, sent verbatim and merged last. Default: none.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extras: Map<String, Value>,
}

impl CompletionRequest {
    /// A completion of `prompt` with every option at its default.
    pub fn new(prompt: impl Into<String>) -> Self {
        CompletionRequest {
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// Sets the model. Default: the driver's default model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Replaces all model parameters. Default: none set.
    pub fn params(mut self, params: ModelParams) -> Self {
        self.params = params;
        self
    }

    /// Sets the maximum output tokens. Default: unset.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.params.max_tokens = Some(n);
        self
    }

    /// Sets the temperature. Default: unset.
    pub fn temperature(mut self, t: f64) -> Self {
        self.params.temperature = Some(t);
        self
    }

    /// Adds a provider-specific parameter. Default: none.
    pub fn extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extras.insert(key.into(), value.into());
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// An [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) error for a
    /// parameter out of range.
    pub fn validate(&self) -> Result<(), LlmError> {
        self.params.validate()
    }

    /// The same call as a chat request with one user row (how drivers without a native
    /// completion endpoint serve it).
    pub fn to_chat(&self) -> ChatRequest {
        ChatRequest {
            model: self.model.clone(),
            dialog: Dialog::new().user(self.prompt.clone()),
            params: self.params.clone(),
            extras: self.extras.clone(),
            ..ChatRequest::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Message};
    use serde_json::json;

    #[test]
    fn builder_sets_every_field() {
        let req = ChatRequest::new(Dialog::new().user("hi"))
            .model("m")
            .temperature(0.5)
            .top_p(0.9)
            .max_tokens(10)
            .stop("END")
            .stop("STOP")
            .seed(7)
            .presence_penalty(0.1)
            .frequency_penalty(-0.1)
            .user("u1")
            .json_schema("answer", json!({"type": "object"}))
            .tool(Tool::new("f", json!({"type": "object"})))
            .tool_choice(ToolChoice::Tool("f".into()))
            .parallel_tool_calls(false)
            .extra("top_k", 40);
        assert_eq!(req.model.as_deref(), Some("m"));
        assert_eq!(req.params.stop, ["END", "STOP"]);
        assert_eq!(req.params.seed, Some(7));
        assert_eq!(req.params.user.as_deref(), Some("u1"));
        assert_eq!(
            req.response_format.schema(),
            Some(&json!({"type": "object"}))
        );
        assert_eq!(req.extras["top_k"], 40);
        assert_eq!(req.parallel_tool_calls, Some(false));
        req.validate().unwrap();
    }

    #[test]
    fn validation_rejects_out_of_range_parameters() {
        let base = || ChatRequest::new(Dialog::new().user("hi"));
        let cases = [
            (base().temperature(2.5), "temperature"),
            (base().temperature(-0.1), "temperature"),
            (base().top_p(1.5), "top_p"),
            (base().presence_penalty(3.0), "presence_penalty"),
            (base().frequency_penalty(-2.5), "frequency_penalty"),
            (base().max_tokens(0), "max_tokens"),
            (base().temperature(f64::NAN), "temperature"),
            (base().tool(Tool::new(" ", json!({}))), "tools"),
            (
                base().tool_choice(ToolChoice::Tool("missing".into())),
                "tool_choice",
            ),
            (base().json_schema("", json!({})), "response_format"),
        ];
        for (req, param) in cases {
            let err = req.validate().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidRequest, "{param}");
            assert_eq!(err.param(), Some(param));
            assert!(err.to_string().contains(param), "{err}");
        }
    }

    #[test]
    fn a_dialog_with_only_hidden_rows_is_invalid() {
        let req = ChatRequest::new(Dialog::new().message(Message::user("x").with_hidden(true)));
        assert_eq!(
            req.validate().unwrap_err().kind(),
            ErrorKind::InvalidRequest
        );
        assert!(ChatRequest::default().validate().is_err());
    }

    #[test]
    fn unset_fields_are_omitted_when_serialized() {
        let req = ChatRequest::new(Dialog::new().user("hi"));
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            json!({"dialog": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "params": {}})
        );
        let back: ChatRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn full_request_round_trips() {
        let req = ChatRequest::new(Dialog::new().system("s").user("u"))
            .temperature(1.0)
            .response_format(ResponseFormat::JsonSchema(
                JsonSchemaFormat::new("x", json!({"type": "object"}))
                    .with_strict(false)
                    .with_description("d"),
            ))
            .tool(
                Tool::new("t", json!({}))
                    .with_strict(true)
                    .with_description("d"),
            )
            .tool_choice(ToolChoice::Required)
            .extra("k", json!({"nested": [1, 2]}));
        let text = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<ChatRequest>(&text).unwrap(), req);
        let fmt: ResponseFormat = serde_json::from_value(json!({"type": "json_object"})).unwrap();
        assert_eq!(fmt, ResponseFormat::JsonObject);
        assert!(fmt.is_json());
        assert!(!ResponseFormat::Text.is_json());
    }

    #[test]
    fn parameters_are_replaced_whole_and_a_dialog_is_a_request() {
        let params = ModelParams {
            temperature: Some(0.5),
            max_tokens: Some(9),
            ..ModelParams::default()
        };
        let chat = ChatRequest::from(Dialog::new().user("q")).params(params.clone());
        assert_eq!(chat.dialog.messages()[0].text(), "q");
        assert_eq!(chat.params, params);
        assert_eq!(
            CompletionRequest::new("p").params(params.clone()).params,
            params
        );
        // A schema format read without `strict` is strict.
        let f: JsonSchemaFormat =
            serde_json::from_value(serde_json::json!({"name": "n", "schema": {}})).unwrap();
        assert!(f.strict);
    }

    #[test]
    fn completion_becomes_a_one_row_chat() {
        let c = CompletionRequest::new("once upon")
            .model("m")
            .max_tokens(5)
            .temperature(0.0)
            .extra("echo", true);
        let chat = c.to_chat();
        assert_eq!(chat.dialog.len(), 1);
        assert_eq!(chat.dialog.messages()[0].text(), "once upon");
        assert_eq!(chat.model.as_deref(), Some("m"));
        assert_eq!(chat.params.max_tokens, Some(5));
        assert_eq!(chat.extras["echo"], true);
        assert!(
            CompletionRequest::new("x")
                .max_tokens(0)
                .validate()
                .is_err()
        );
    }
}
