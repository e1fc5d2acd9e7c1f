//! Request bodies, written strictly: unset parameters are omitted, never `null`; provider
//! extras are merged last.

use nova_llm_core::{
    ChatRequest, CompletionRequest, ContentPart, DataUrl, Effort, LlmError, Message, ModelParams,
    Reasoning, ResponseFormat, Role, ToolChoice,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

/// The `reasoning_effort` of the portable control: `none` for off, the level as it is, and
/// a token budget as the level that spends about as much (OpenAI takes no budget): under
/// 2,048 tokens `low`, under 16,384 `medium`, else `high`.
fn reasoning_effort(r: Reasoning) -> &'static str {
    match r {
        Reasoning::Off => "none",
        Reasoning::Budget(n) if n < 2_048 => Effort::Low.as_str(),
        Reasoning::Budget(n) if n < 16_384 => Effort::Medium.as_str(),
        Reasoning::Budget(_) => Effort::High.as_str(),
        Reasoning::Effort(e) => e.as_str(),
        _ => Effort::Medium.as_str(),
    }
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
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt_cache_breakpoint: Option<Breakpoint>,
    },
    ImageUrl {
        image_url: WireImage<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt_cache_breakpoint: Option<Breakpoint>,
    },
    File {
        file: WireFile<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt_cache_breakpoint: Option<Breakpoint>,
    },
}

impl WirePart<'_> {
    fn mark_breakpoint(&mut self) {
        let (WirePart::Text {
            prompt_cache_breakpoint: b,
            ..
        }
        | WirePart::ImageUrl {
            prompt_cache_breakpoint: b,
            ..
        }
        | WirePart::File {
            prompt_cache_breakpoint: b,
            ..
        }) = self;
        *b = Some(Breakpoint { mode: "explicit" });
    }
}

/// `{"mode": "explicit"}`: the end of a prefix to cache (its lifetime is the request's).
#[derive(Serialize)]
struct Breakpoint {
    mode: &'static str,
}

#[derive(Serialize)]
struct WireFile<'a> {
    filename: &'a str,
    file_data: &'a str,
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

/// The part of `p` sent to the service: reasoning is not (OpenAI takes none back), a
/// document only inline.
fn wire_part(p: &ContentPart) -> Result<Option<WirePart<'_>>, LlmError> {
    Ok(Some(match p {
        ContentPart::Text { text } => WirePart::Text {
            text,
            prompt_cache_breakpoint: None,
        },
        ContentPart::Image { url, detail } => WirePart::ImageUrl {
            image_url: WireImage {
                url,
                detail: detail.as_deref(),
            },
            prompt_cache_breakpoint: None,
        },
        ContentPart::Document { url, title } => {
            if DataUrl::parse(url).is_none() {
                return Err(LlmError::invalid_request(
                    "OpenAI's chat API takes a document inline only (a base64 `data:` URL), \
                     not by URL",
                )
                .with_param("messages"));
            }
            WirePart::File {
                file: WireFile {
                    filename: title.as_deref().unwrap_or("document.pdf"),
                    file_data: url,
                },
                prompt_cache_breakpoint: None,
            }
        }
        _ => return Ok(None),
    }))
}

fn wire_message(m: &Message) -> Result<WireMessage<'_>, LlmError> {
    let sent = |p: &ContentPart| !matches!(p, ContentPart::Reasoning(_));
    let only_text = m
        .content
        .iter()
        .filter(|p| sent(p))
        .all(|p| p.as_text().is_some());
    let content = if !m.content.iter().any(sent) {
        if m.role == Role::Assistant && !m.tool_calls.is_empty() {
            WireContent::Null(None)
        } else {
            WireContent::Text(String::new())
        }
    } else if only_text && m.cache_breakpoint.is_none() {
        WireContent::Text(m.text())
    } else {
        let mut parts = Vec::with_capacity(m.content.len());
        for p in &m.content {
            parts.extend(wire_part(p)?);
        }
        if m.cache_breakpoint.is_some()
            && let Some(last) = parts.last_mut()
        {
            last.mark_breakpoint();
        }
        WireContent::Parts(parts)
    };
    Ok(WireMessage {
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
    })
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
        messages: request
            .dialog
            .visible()
            .map(wire_message)
            .collect::<Result<_, _>>()?,
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
        reasoning_effort: request.reasoning.map(reasoning_effort),
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
