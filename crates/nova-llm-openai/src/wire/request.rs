//! Request bodies, written strictly: unset parameters are omitted, never `null`; provider
//! extras are merged last.

use nova_llm_core::{
    ChatRequest, CompletionRequest, ContentPart, LlmError, Message, ModelParams, ResponseFormat,
    Role, ToolChoice,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Which field carries the output-token limit.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_completion_tokens` (OpenAI's current name; required by reasoning models).
    MaxCompletionTokens,
    /// `max_tokens` (the name most compatible servers read).
    MaxTokens,
}

impl MaxTokensField {
    fn as_str(self) -> &'static str {
        match self {
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
            MaxTokensField::MaxTokens => "max_tokens",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

#[derive(Serialize)]
struct WireParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop: &'a Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

impl<'a> WireParams<'a> {
    fn new(p: &'a ModelParams) -> Self {
        WireParams {
            temperature: p.temperature,
            top_p: p.top_p,
            stop: &p.stop,
            seed: p.seed,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            user: p.user.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct WireChatRequest<'a> {
    model: &'a str,
    messages: Vec<WireMessage<'a>>,
    #[serde(flatten)]
    params: WireParams<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<WireResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'a str,
    /// `None` is written as `null` on purpose: an assistant row with only tool calls.
    content: WireContent<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<WireToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum WireContent<'a> {
    Null(Option<()>),
    Text(String),
    Parts(Vec<WirePart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WirePart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: WireImage<'a> },
}

#[derive(Serialize)]
struct WireImage<'a> {
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct WireToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionOut<'a>,
}

#[derive(Serialize)]
struct WireFunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireResponseFormat<'a> {
    JsonObject,
    JsonSchema { json_schema: WireJsonSchema<'a> },
}

#[derive(Serialize)]
struct WireJsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct WireTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: WireFunctionDef<'a>,
}

#[derive(Serialize)]
struct WireFunctionDef<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

fn wire_message(m: &Message) -> WireMessage<'_> {
    let only_text = m.content.iter().all(|p| p.as_text().is_some());
    let content = if m.content.is_empty() {
        if m.role == Role::Assistant && !m.tool_calls.is_empty() {
            WireContent::Null(None)
        } else {
            WireContent::Text(String::new())
        }
    } else if only_text {
        WireContent::Text(m.text())
    } else {
        WireContent::Parts(
            m.content
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(WirePart::Text { text }),
                    ContentPart::Image { url, detail } => Some(WirePart::ImageUrl {
                        image_url: WireImage {
                            url,
                            detail: detail.as_deref(),
                        },
                    }),
                    _ => None,
                })
                .collect(),
        )
    };
    WireMessage {
        role: m.role.as_str(),
        content,
        name: m.name.as_deref(),
        tool_calls: m
            .tool_calls
            .iter()
            .map(|c| WireToolCallOut {
                id: &c.id,
                kind: "function",
                function: WireFunctionOut {
                    name: &c.name,
                    arguments: &c.arguments,
                },
            })
            .collect(),
        tool_call_id: m.tool_call_id.as_deref(),
    }
}

fn wire_tool_choice(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => Value::from("auto"),
        ToolChoice::None => Value::from("none"),
        ToolChoice::Required => Value::from("required"),
        ToolChoice::Tool(name) => {
            serde_json::json!({"type": "function", "function": {"name": name}})
        }
        _ => Value::from("auto"),
    }
}

fn finish_body(
    body: &impl Serialize,
    max_tokens: Option<(MaxTokensField, u32)>,
    extras: &Map<String, Value>,
) -> Result<Vec<u8>, LlmError> {
    let encode_err = |e: serde_json::Error| {
        LlmError::invalid_request("the request could not be encoded as JSON").with_source(e)
    };
    if max_tokens.is_none() && extras.is_empty() {
        return serde_json::to_vec(body).map_err(encode_err);
    }
    let mut value = serde_json::to_value(body).map_err(encode_err)?;
    if let Value::Object(map) = &mut value {
        if let Some((field, n)) = max_tokens {
            map.insert(field.as_str().to_owned(), Value::from(n));
        }
        // Provider extras are merged last: they win over every field above.
        for (k, v) in extras {
            map.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&value).map_err(encode_err)
}

/// The JSON body of `POST /chat/completions`.
pub(crate) fn encode_chat(
    request: &ChatRequest,
    model: &str,
    stream: bool,
    max_tokens_field: MaxTokensField,
) -> Result<Vec<u8>, LlmError> {
    let response_format = match &request.response_format {
        ResponseFormat::JsonObject => Some(WireResponseFormat::JsonObject),
        ResponseFormat::JsonSchema(s) => Some(WireResponseFormat::JsonSchema {
            json_schema: WireJsonSchema {
                name: &s.name,
                schema: &s.schema,
                strict: s.strict,
                description: s.description.as_deref(),
            },
        }),
        _ => None,
    };
    let body = WireChatRequest {
        model,
        messages: request.dialog.visible().map(wire_message).collect(),
        params: WireParams::new(&request.params),
        response_format,
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                kind: "function",
                function: WireFunctionDef {
                    name: &t.name,
                    description: t.description.as_deref(),
                    parameters: &t.parameters,
                    strict: t.strict,
                },
            })
            .collect(),
        tool_choice: request.tool_choice.as_ref().map(wire_tool_choice),
        parallel_tool_calls: request.parallel_tool_calls,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    let max = request.params.max_tokens.map(|n| (max_tokens_field, n));
    finish_body(&body, max, &request.extras)
}

#[derive(Serialize)]
struct WireCompletionRequest<'a> {
    model: &'a str,
    prompt: &'a str,
    #[serde(flatten)]
    params: WireParams<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

/// The JSON body of `POST /completions` (the legacy endpoint always calls it `max_tokens`).
pub(crate) fn encode_completion(
    request: &CompletionRequest,
    model: &str,
    stream: bool,
) -> Result<Vec<u8>, LlmError> {
    let body = WireCompletionRequest {
        model,
        prompt: &request.prompt,
        params: WireParams::new(&request.params),
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    let max = request
        .params
        .max_tokens
        .map(|n| (MaxTokensField::MaxTokens, n));
    finish_body(&body, max, &request.extras)
}
