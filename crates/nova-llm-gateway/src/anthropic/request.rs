//! Anthropic's `/v1/messages` request body, read into a core request: what the official
//! Anthropic SDKs send.

use nova_llm_core::{
    ChatRequest, ContentPart, DataUrl, Dialog, LlmError, Message, ModelParams, Reasoning,
    ReasoningPart, Role, Tool, ToolCall, ToolChoice,
};
use serde::Deserialize;
use serde_json::Value;

/// A messages call as the client asked for it.
#[derive(Debug)]
pub(crate) struct MessagesCall {
    pub(crate) request: ChatRequest,
    pub(crate) model: String,
    pub(crate) stream: bool,
}

#[derive(Deserialize)]
struct Body {
    model: String,
    max_tokens: u32,
    messages: Vec<InMessage>,
    #[serde(default)]
    system: Option<System>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    stop_sequences: Vec<String>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<InTool>>,
    #[serde(default)]
    tool_choice: Option<InToolChoice>,
    #[serde(default)]
    thinking: Option<Thinking>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum System {
    Text(String),
    Blocks(Vec<TextBlock>),
}

#[derive(Deserialize)]
struct TextBlock {
    text: String,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Thinking {
    Enabled {
        budget_tokens: u32,
    },
    Disabled,
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

#[derive(Deserialize)]
struct InTool {
    name: String,
    #[serde(default)]
    description: Option<String>,
    input_schema: Value,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    content: InContent,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InContent {
    Text(String),
    Blocks(Vec<Block>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
        #[serde(default)]
        title: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<ResultContent>,
        #[serde(default)]
        is_error: bool,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Unsupported,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    #[serde(other)]
    Unsupported,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ResultContent {
    Text(String),
    Blocks(Vec<ResultBlock>),
}

#[derive(Deserialize)]
struct ResultBlock {
    #[serde(default)]
    text: Option<String>,
}

fn bad(message: impl Into<String>) -> LlmError {
    LlmError::invalid_request(message)
}

/// Reads a `/v1/messages` body (not yet validated). Opaque reasoning the client sends
/// back is marked as coming from `origin` (the route's service: it came from there).
///
/// # Errors
/// `InvalidRequest` naming what is wrong.
pub(crate) fn messages(body: &[u8], origin: &str) -> Result<MessagesCall, LlmError> {
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a messages request: {e}")))?;
    let mut dialog = Dialog::new();
    match b.system {
        None => {}
        Some(System::Text(t)) => dialog.push(Message::system(t)),
        Some(System::Blocks(blocks)) => {
            let text: Vec<String> = blocks.into_iter().map(|b| b.text).collect();
            dialog.push(Message::system(text.join("\n")));
        }
    }
    for m in b.messages {
        for message in message(m, origin)? {
            dialog.push(message);
        }
    }
    let mut params = ModelParams::default();
    params.max_tokens = Some(b.max_tokens);
    params.temperature = b.temperature;
    params.top_p = b.top_p;
    params.stop = b.stop_sequences;
    params.user = b.metadata.and_then(|m| m.user_id);
    let mut request = ChatRequest::new(dialog).params(params);
    request.model = Some(b.model.clone());
    if let Some(k) = b.top_k {
        request.extras.insert("top_k".into(), Value::from(k));
    }
    for t in b.tools.into_iter().flatten() {
        let mut tool = Tool::new(t.name, t.input_schema);
        if let Some(d) = t.description {
            tool = tool.with_description(d);
        }
        request = request.tool(tool);
    }
    if let Some(choice) = b.tool_choice {
        let (choice, no_parallel) = match choice {
            InToolChoice::Auto {
                disable_parallel_tool_use,
            } => (ToolChoice::Auto, disable_parallel_tool_use),
            InToolChoice::Any {
                disable_parallel_tool_use,
            } => (ToolChoice::Required, disable_parallel_tool_use),
            InToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (ToolChoice::Tool(name), disable_parallel_tool_use),
            InToolChoice::None => (ToolChoice::None, None),
        };
        request = request.tool_choice(choice);
        if let Some(no) = no_parallel {
            request.parallel_tool_calls = Some(!no);
        }
    }
    match b.thinking {
        Some(Thinking::Enabled { budget_tokens }) => {
            request = request.reasoning(Reasoning::Budget(budget_tokens));
        }
        Some(Thinking::Disabled) => request = request.reasoning(Reasoning::Off),
        Some(Thinking::Other) | None => {}
    }
    Ok(MessagesCall {
        request,
        model: b.model,
        stream: b.stream.unwrap_or(false),
    })
}

/// One Anthropic message as core rows: tool results become rows of their own (before the
/// rest of the turn, as the API requires them first).
fn message(m: InMessage, origin: &str) -> Result<Vec<Message>, LlmError> {
    let role = match m.role.as_str() {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => return Err(bad(format!("messages: role `{other}` is not supported"))),
    };
    let blocks = match m.content {
        InContent::Text(t) => return Ok(vec![Message::new(role, t)]),
        InContent::Blocks(b) => b,
    };
    let mut out = Vec::new();
    let mut row = Message::new(role, "");
    row.content.clear();
    for block in blocks {
        match block {
            Block::Text { text } => row.content.push(ContentPart::text(text)),
            Block::Image { source } => row.content.push(ContentPart::Image {
                url: source_url(source)?,
                detail: None,
            }),
            Block::Document { source, title } => row.content.push(ContentPart::Document {
                url: source_url(source)?,
                title,
            }),
            Block::ToolUse { id, name, input } => {
                let args = if input.is_null() {
                    "{}".to_owned()
                } else {
                    input.to_string()
                };
                row = row.with_tool_call(ToolCall::new(id, name, args));
            }
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let text = match content {
                    None => String::new(),
                    Some(ResultContent::Text(t)) => t,
                    Some(ResultContent::Blocks(b)) => b
                        .into_iter()
                        .filter_map(|b| b.text)
                        .collect::<Vec<_>>()
                        .join(""),
                };
                out.push(if is_error {
                    Message::tool_error(tool_use_id, text)
                } else {
                    Message::tool_result(tool_use_id, text)
                });
            }
            Block::Thinking {
                thinking,
                signature,
            } => {
                let mut part = ReasoningPart::new(thinking);
                if let Some(s) = signature {
                    part = part.with_signature(s, origin);
                }
                row = row.with_reasoning(part);
            }
            Block::RedactedThinking { data } => {
                row = row.with_reasoning(ReasoningPart::redacted(data, origin));
            }
            Block::Unsupported => {
                return Err(bad(
                    "messages: a content block of this type is not supported",
                ));
            }
        }
    }
    if !row.content.is_empty() || !row.tool_calls.is_empty() {
        out.push(row);
    }
    Ok(out)
}

fn source_url(source: Source) -> Result<String, LlmError> {
    match source {
        Source::Base64 { media_type, data } => Ok(DataUrl::base64(&media_type, &data)),
        Source::Url { url } => Ok(url),
        Source::Unsupported => Err(bad("messages: only base64 and url sources are supported")),
    }
}
