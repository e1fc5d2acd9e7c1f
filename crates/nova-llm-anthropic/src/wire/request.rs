//! Request bodies of `POST /v1/messages`, written strictly: unset parameters are omitted,
//! extras are merged last.
//!
//! How the portable request becomes a Messages request:
//! - system rows (and `developer` rows) go into the top-level `system`, in order; the other
//!   rows become turns, consecutive rows of one role merged into one turn (the API wants
//!   user and assistant turns to alternate); tool rows become `tool_result` blocks of a user
//!   turn, with `is_error` for a failed tool; empty text is left out (the API rejects empty
//!   text blocks), and so is a turn left with no content;
//! - an assistant row sends back, first, its reasoning from this service (a `thinking`
//!   block with its signature, or a `redacted_thinking` block) unchanged, then its text,
//!   then its tool calls as `tool_use` blocks; reasoning from any other service, and
//!   reasoning without a signature, is left out;
//! - images and PDF documents go by `base64` source (a `data:` URL) or `url` source;
//! - a row's or tool's cache breakpoint is `cache_control` on its last block;
//! - `max_tokens` is required: the request's, else the driver's default (plus the reasoning
//!   budget, when there is one);
//! - sampling parameters (`temperature`, `top_p`, `seed`, the penalties) are not sent: the
//!   Messages API of this version has none of them. Put one in the extras to send it to a
//!   model or version that takes it.

use nova_llm_core::{
    CacheTtl, ChatRequest, ContentPart, DataUrl, Effort, LlmError, Message, Reasoning,
    ResponseFormat, Role, ToolChoice,
};
use serde::Serialize;
use serde_json::Value;

use crate::ORIGIN;

/// The smallest thinking budget the API takes.
pub(crate) const MIN_THINKING_BUDGET: u32 = 1024;

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<Turn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<System<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<WireToolChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfig<'a>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum System<'a> {
    Text(String),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
struct Turn<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Image {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Document {
        source: Source<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        title: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "ToolResultContent::is_empty")]
        content: ToolResultContent<'a>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControl>,
    },
}

impl Block<'_> {
    /// The block's `cache_control`, for the blocks that take one (not reasoning).
    fn cache_control(&mut self) -> Option<&mut Option<CacheControl>> {
        match self {
            Block::Text { cache_control, .. }
            | Block::Image { cache_control, .. }
            | Block::Document { cache_control, .. }
            | Block::ToolUse { cache_control, .. }
            | Block::ToolResult { cache_control, .. } => Some(cache_control),
            Block::Thinking { .. } | Block::RedactedThinking { .. } => None,
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolResultContent<'a> {
    Text(String),
    Blocks(Vec<Block<'a>>),
}

impl ToolResultContent<'_> {
    fn is_empty(&self) -> bool {
        match self {
            ToolResultContent::Text(t) => t.is_empty(),
            ToolResultContent::Blocks(b) => b.is_empty(),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// `{"type": "ephemeral"}`, with `"ttl": "1h"` for a long-lived entry (5 minutes is the
/// default and is not written).
#[derive(Serialize)]
struct CacheControl {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'static str>,
}

fn cache_control(ttl: Option<CacheTtl>) -> Option<CacheControl> {
    ttl.map(|t| CacheControl {
        kind: "ephemeral",
        ttl: matches!(t, CacheTtl::Long).then_some("1h"),
    })
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<CacheControl>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireToolChoice<'a> {
    Auto {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        disable_parallel_tool_use: bool,
    },
    None,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Thinking {
    Enabled { budget_tokens: u32 },
    Disabled,
    Adaptive,
}

#[derive(Serialize)]
struct OutputConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<OutputFormat<'a>>,
}

#[derive(Serialize)]
struct OutputFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    schema: &'a Value,
}

/// Anthropic's name for an effort level; `minimal`, which it lacks, is `low`.
fn effort(e: Effort) -> &'static str {
    match e {
        Effort::Minimal | Effort::Low => "low",
        Effort::Medium => "medium",
        Effort::High => "high",
        Effort::XHigh => "xhigh",
        Effort::Max => "max",
        _ => "medium",
    }
}

/// `thinking` and the effort of `output_config` for the portable control: off is
/// `disabled`; a budget is `enabled` with it (raised to the API's minimum of 1024); an
/// effort is `adaptive` thinking at that effort.
fn thinking(r: Option<Reasoning>) -> (Option<Thinking>, Option<&'static str>) {
    match r {
        None => (None, None),
        Some(Reasoning::Off) => (Some(Thinking::Disabled), None),
        Some(Reasoning::Budget(n)) => (
            Some(Thinking::Enabled {
                budget_tokens: n.max(MIN_THINKING_BUDGET),
            }),
            None,
        ),
        Some(Reasoning::Effort(e)) => (Some(Thinking::Adaptive), Some(effort(e))),
        Some(_) => (None, None),
    }
}

fn invalid(message: impl Into<String>, param: &str) -> LlmError {
    LlmError::invalid_request(message).with_param(param.to_owned())
}

/// An image or document source: a base64 `data:` URL, or a URL the service fetches.
fn source(url: &str) -> Source<'_> {
    match DataUrl::parse(url) {
        Some(d) => Source::Base64 {
            media_type: d.media_type,
            data: d.data,
        },
        None => Source::Url { url },
    }
}

/// The blocks of a part the API takes in user content and tool results; reasoning and
/// empty text are left out.
fn media_block(part: &ContentPart) -> Result<Option<Block<'_>>, LlmError> {
    Ok(match part {
        ContentPart::Text { text } if text.is_empty() => None,
        ContentPart::Text { text } => Some(Block::Text {
            text,
            cache_control: None,
        }),
        ContentPart::Image { url, .. } => Some(Block::Image {
            source: source(url),
            cache_control: None,
        }),
        ContentPart::Document { url, title } => {
            if let Some(d) = DataUrl::parse(url)
                && d.media_type != "application/pdf"
            {
                return Err(invalid(
                    format!(
                        "Anthropic takes PDF documents, not `{}` (send text as a text part)",
                        d.media_type
                    ),
                    "messages",
                ));
            }
            Some(Block::Document {
                source: source(url),
                title: title.as_deref(),
                cache_control: None,
            })
        }
        _ => None,
    })
}

/// The blocks of an assistant row: its own service's reasoning, its text, its tool calls.
fn assistant_blocks(m: &Message) -> Result<Vec<Block<'_>>, LlmError> {
    let mut blocks = Vec::with_capacity(m.content.len() + m.tool_calls.len());
    for part in &m.content {
        match part {
            ContentPart::Reasoning(r) if r.is_from(ORIGIN) => {
                if let Some(data) = &r.redacted {
                    blocks.push(Block::RedactedThinking { data });
                } else if let Some(signature) = &r.signature {
                    blocks.push(Block::Thinking {
                        thinking: &r.text,
                        signature,
                    });
                }
            }
            ContentPart::Reasoning(_) => {}
            other => blocks.extend(media_block(other)?),
        }
    }
    for call in &m.tool_calls {
        let input = if call.arguments.trim().is_empty() {
            Value::Object(serde_json::Map::new())
        } else {
            match serde_json::from_str::<Value>(&call.arguments) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(invalid(
                        format!(
                            "the arguments of tool call `{}` ({}) are not a JSON object, which \
                             the Messages API requires",
                            call.id, call.name
                        ),
                        "messages",
                    ));
                }
            }
        };
        blocks.push(Block::ToolUse {
            id: &call.id,
            name: &call.name,
            input,
            cache_control: None,
        });
    }
    Ok(blocks)
}

/// The `tool_result` block of a tool row.
fn tool_result(m: &Message) -> Result<Block<'_>, LlmError> {
    let Some(id) = m.tool_call_id.as_deref() else {
        return Err(invalid(
            "a tool row has no `tool_call_id`: the Messages API needs the call it answers",
            "messages",
        ));
    };
    let only_text = m.content.iter().all(|p| p.as_text().is_some());
    let content = if only_text {
        ToolResultContent::Text(m.text())
    } else {
        let mut blocks = Vec::with_capacity(m.content.len());
        for p in &m.content {
            blocks.extend(media_block(p)?);
        }
        ToolResultContent::Blocks(blocks)
    };
    Ok(Block::ToolResult {
        tool_use_id: id,
        content,
        is_error: m.is_error,
        cache_control: None,
    })
}

/// Which side of the conversation a row is on: `None` for system rows.
fn side(role: &Role) -> Result<Option<&'static str>, LlmError> {
    Ok(match role {
        Role::System => None,
        Role::User | Role::Tool => Some("user"),
        Role::Assistant => Some("assistant"),
        Role::Other(r) if r == "developer" => None,
        other => {
            return Err(invalid(
                format!("the Messages API has no role `{other}` (user, assistant, system, tool)"),
                "messages",
            ));
        }
    })
}

/// Marks the last block that takes one with `cache_control`.
fn mark(blocks: &mut [Block<'_>], ttl: Option<CacheTtl>) {
    if ttl.is_none() {
        return;
    }
    if let Some(slot) = blocks.iter_mut().rev().find_map(Block::cache_control) {
        *slot = cache_control(ttl);
    }
}

/// The `system` value and the turns of `request`'s visible rows.
fn turns(request: &ChatRequest) -> Result<(Option<System<'_>>, Vec<Turn<'_>>), LlmError> {
    let mut system: Vec<&Message> = Vec::new();
    let mut turns: Vec<Turn<'_>> = Vec::new();
    for m in request.dialog.visible() {
        let Some(role) = side(&m.role)? else {
            system.push(m);
            continue;
        };
        let mut blocks = match m.role {
            Role::Assistant => assistant_blocks(m)?,
            Role::Tool => vec![tool_result(m)?],
            _ => {
                let mut b = Vec::with_capacity(m.content.len());
                for p in &m.content {
                    b.extend(media_block(p)?);
                }
                b
            }
        };
        mark(&mut blocks, m.cache_breakpoint);
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.append(&mut blocks),
            _ => turns.push(Turn {
                role,
                content: blocks,
            }),
        }
    }
    turns.retain(|t| !t.content.is_empty());
    Ok((system_value(&system), turns))
}

/// `system` as one string (rows joined by a blank line), or as text blocks when a row
/// carries a cache breakpoint.
fn system_value<'a>(rows: &[&'a Message]) -> Option<System<'a>> {
    let texts = || {
        rows.iter()
            .flat_map(|m| m.content.iter().filter_map(ContentPart::as_text))
            .filter(|t| !t.is_empty())
    };
    texts().next()?;
    if rows.iter().all(|m| m.cache_breakpoint.is_none()) {
        return Some(System::Text(texts().collect::<Vec<_>>().join("\n\n")));
    }
    let mut blocks = Vec::new();
    for m in rows {
        let mut row: Vec<Block<'a>> = m
            .content
            .iter()
            .filter_map(ContentPart::as_text)
            .filter(|t| !t.is_empty())
            .map(|text| Block::Text {
                text,
                cache_control: None,
            })
            .collect();
        mark(&mut row, m.cache_breakpoint);
        blocks.append(&mut row);
    }
    Some(System::Blocks(blocks))
}

fn tool_choice<'a>(request: &'a ChatRequest) -> Option<WireToolChoice<'a>> {
    let serial = request.parallel_tool_calls == Some(false);
    match &request.tool_choice {
        None if serial && !request.tools.is_empty() => Some(WireToolChoice::Auto {
            disable_parallel_tool_use: true,
        }),
        None => None,
        Some(ToolChoice::None) => Some(WireToolChoice::None),
        Some(ToolChoice::Required) => Some(WireToolChoice::Any {
            disable_parallel_tool_use: serial,
        }),
        Some(ToolChoice::Tool(name)) => Some(WireToolChoice::Tool {
            name,
            disable_parallel_tool_use: serial,
        }),
        Some(_) => Some(WireToolChoice::Auto {
            disable_parallel_tool_use: serial,
        }),
    }
}

/// The `max_tokens` to send: the request's, else `default` plus the thinking budget; a
/// budget must stay below it.
fn max_tokens(request: &ChatRequest, default: u32) -> Result<u32, LlmError> {
    let budget = match request.reasoning {
        Some(Reasoning::Budget(n)) => Some(n.max(MIN_THINKING_BUDGET)),
        _ => None,
    };
    match (request.params.max_tokens, budget) {
        (Some(max), Some(b)) if b >= max => Err(invalid(
            format!(
                "the reasoning budget ({b} tokens) must be below `max_tokens` ({max}): the \
                 Messages API counts thinking within max_tokens"
            ),
            "reasoning",
        )),
        (Some(max), _) => Ok(max),
        (None, Some(b)) => Ok(default.saturating_add(b)),
        (None, None) => Ok(default),
    }
}

/// The JSON body of `POST /v1/messages`.
pub(crate) fn encode_messages(
    request: &ChatRequest,
    model: &str,
    stream: bool,
    default_max_tokens: u32,
) -> Result<Vec<u8>, LlmError> {
    let format = match &request.response_format {
        ResponseFormat::JsonSchema(s) => Some(OutputFormat {
            kind: "json_schema",
            schema: &s.schema,
        }),
        ResponseFormat::JsonObject => {
            return Err(invalid(
                "the Messages API has no JSON mode: ask for JSON with a schema \
                 (`ResponseFormat::json_schema`)",
                "response_format",
            ));
        }
        _ => None,
    };
    let (thinking, effort) = thinking(request.reasoning);
    let output_config =
        (effort.is_some() || format.is_some()).then_some(OutputConfig { effort, format });
    let (system, messages) = turns(request)?;
    let body = WireRequest {
        model,
        max_tokens: max_tokens(request, default_max_tokens)?,
        messages,
        system,
        stop_sequences: &request.params.stop,
        metadata: request
            .params
            .user
            .as_deref()
            .map(|user_id| Metadata { user_id }),
        tools: request
            .tools
            .iter()
            .map(|t| WireTool {
                name: &t.name,
                description: t.description.as_deref(),
                input_schema: &t.parameters,
                strict: t.strict,
                cache_control: cache_control(t.cache_breakpoint),
            })
            .collect(),
        tool_choice: tool_choice(request),
        thinking,
        output_config,
        stream,
    };
    let encode_err = |e: serde_json::Error| {
        LlmError::invalid_request("the request could not be encoded as JSON").with_source(e)
    };
    if request.extras.is_empty() {
        return serde_json::to_vec(&body).map_err(encode_err);
    }
    let mut value = serde_json::to_value(&body).map_err(encode_err)?;
    if let Value::Object(map) = &mut value {
        // Provider extras are merged last: they win over every field above.
        for (k, v) in &request.extras {
            map.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&value).map_err(encode_err)
}
