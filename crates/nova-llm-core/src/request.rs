//! Requests: chat and plain completion, with the model parameters and setters they share.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dialog::Dialog;
use crate::error::LlmError;
pub use crate::format::{JsonSchemaFormat, ResponseFormat};
pub use crate::params::ModelParams;
use crate::params::shared_setters;
pub use crate::reasoning::{Effort, Reasoning};
pub use crate::tool::{Tool, ToolChoice};

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
    /// How much the model should reason, mapped by each driver to its service. Default:
    /// unset (service default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// Provider-specific parameters, sent verbatim and merged last (they win over the fields
    /// above). Default: none.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extras: Map<String, Value>,
}

fn is_text(f: &ResponseFormat) -> bool {
    matches!(f, ResponseFormat::Text)
}

shared_setters!(ChatRequest);

impl ChatRequest {
    /// A request over `dialog` with every option at its default.
    pub fn new(dialog: impl Into<Dialog>) -> Self {
        ChatRequest {
            dialog: dialog.into(),
            ..Self::default()
        }
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

    /// Sets how much the model should reason. Default: unset (service default).
    pub fn reasoning(mut self, reasoning: Reasoning) -> Self {
        self.reasoning = Some(reasoning);
        self
    }

    /// Checks what any service would reject: nothing to send, parameters out of range,
    /// unnamed tools, a forced tool that is not offered, a reasoning budget of zero.
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
        if self.reasoning == Some(Reasoning::Budget(0)) {
            return Err(LlmError::invalid_request(
                "a reasoning budget of 0 tokens: use `Reasoning::Off` for no reasoning",
            )
            .with_param("reasoning"));
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

shared_setters!(CompletionRequest);

impl CompletionRequest {
    /// A completion of `prompt` with every option at its default.
    pub fn new(prompt: impl Into<String>) -> Self {
        CompletionRequest {
            prompt: prompt.into(),
            ..Self::default()
        }
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
            .reasoning(Reasoning::Effort(Effort::High))
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
        assert_eq!(req.reasoning, Some(Reasoning::Effort(Effort::High)));
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
            (base().reasoning(Reasoning::Budget(0)), "reasoning"),
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
        // The same setters as a chat request (written once for both).
        let all = CompletionRequest::new("p")
            .top_p(0.5)
            .stop("END")
            .seed(3)
            .presence_penalty(0.1)
            .frequency_penalty(0.2)
            .user("u");
        assert_eq!(all.params.top_p, Some(0.5));
        assert_eq!(all.params.stop, ["END"]);
        assert_eq!(
            (all.params.seed, all.params.user.as_deref()),
            (Some(3), Some("u"))
        );
        assert_eq!(
            (all.params.presence_penalty, all.params.frequency_penalty),
            (Some(0.1), Some(0.2))
        );
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
