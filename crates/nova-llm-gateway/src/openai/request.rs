//! OpenAI's request bodies, read into core requests: what the official SDKs send to
//! `/v1/chat/completions` and `/v1/completions`.

use nova_llm_core::{
    ChatRequest, CompletionRequest, ContentPart, Dialog, LlmError, Message, ModelParams, Reasoning,
    ResponseFormat, Role, Tool, ToolCall, ToolChoice,
};
use nova_llm_core::{Effort, JsonSchemaFormat};
use serde::Deserialize;
use serde_json::{Map, Value};

/// A chat call as the client asked for it.
#[derive(Debug)]
pub(crate) struct ChatCall {
    pub(crate) request: ChatRequest,
    /// The route's name (the client's `model`).
    pub(crate) model: String,
    pub(crate) stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub(crate) include_usage: bool,
}

/// A legacy completion as the client asked for it.
#[derive(Debug)]
pub(crate) struct CompletionCall {
    pub(crate) request: CompletionRequest,
    pub(crate) model: String,
    pub(crate) stream: bool,
    pub(crate) include_usage: bool,
}

#[derive(Deserialize)]
struct ChatBody {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    params: Params,
    #[serde(default)]
    tools: Option<Vec<InTool>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    reasoning_effort: Option<String>,
    /// Everything else: sent on as the request's extras.
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
struct CompletionBody {
    model: String,
    prompt: Prompt,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    params: Params,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The sampling parameters both endpoints take.
#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    n: Option<u32>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<InContent>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<InToolCall>>,
    #[serde(default)]
    tool_call_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InContent {
    Text(String),
    Parts(Vec<InPart>),
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    File {
        file: InFile,
    },
    Refusal {
        refusal: String,
    },
    #[serde(other)]
    Unsupported,
}

#[derive(Deserialize)]
struct ImageUrl {
    url: String,
}

#[derive(Deserialize)]
struct InFile {
    #[serde(default)]
    file_data: Option<String>,
    #[serde(default)]
    file_id: Option<String>,
}

#[derive(Deserialize)]
struct InToolCall {
    id: String,
    function: InFunctionCall,
}

#[derive(Deserialize)]
struct InFunctionCall {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct InTool {
    #[serde(rename = "type")]
    kind: String,
    function: InFunction,
}

#[derive(Deserialize)]
struct InFunction {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    strict: Option<bool>,
}

fn bad(message: impl Into<String>) -> LlmError {
    LlmError::invalid_request(message)
}

/// Reads a `/v1/chat/completions` body (not yet validated: the route is checked first).
///
/// # Errors
/// `InvalidRequest` naming what is wrong: JSON that is not a chat request, a part or a
/// setting this gateway cannot carry (audio, `n` above 1).
pub(crate) fn chat(body: &[u8]) -> Result<ChatCall, LlmError> {
    let b: ChatBody = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a chat completion request: {e}")))?;
    let mut dialog = Dialog::new();
    for m in b.messages {
        dialog.push(message(m)?);
    }
    let mut request = ChatRequest::new(dialog).params(params(b.params)?);
    request.model = Some(b.model.clone());
    if let Some(tools) = b.tools {
        for t in tools {
            if t.kind != "function" {
                return Err(bad(format!("tools: type `{}` is not supported", t.kind)));
            }
            let mut tool = Tool::new(
                t.function.name,
                t.function
                    .parameters
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            );
            if let Some(d) = t.function.description {
                tool = tool.with_description(d);
            }
            if let Some(s) = t.function.strict {
                tool = tool.with_strict(s);
            }
            request = request.tool(tool);
        }
    }
    if let Some(choice) = b.tool_choice {
        request = request.tool_choice(tool_choice(&choice)?);
    }
    request.parallel_tool_calls = b.parallel_tool_calls;
    if let Some(format) = b.response_format {
        request = request.response_format(response_format(&format)?);
    }
    if let Some(effort) = b.reasoning_effort {
        request = request.reasoning(reasoning(&effort)?);
    }
    request.extras = b.extra;
    Ok(ChatCall {
        request,
        model: b.model,
        stream: b.stream.unwrap_or(false),
        include_usage: b.stream_options.is_some_and(|o| o.include_usage),
    })
}

/// Reads a `/v1/completions` body.
///
/// # Errors
/// `InvalidRequest`: not a completion request, or several prompts at once.
pub(crate) fn completion(body: &[u8]) -> Result<CompletionCall, LlmError> {
    let b: CompletionBody = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the body is not a completion request: {e}")))?;
    let prompt = match b.prompt {
        Prompt::One(p) => p,
        Prompt::Many(mut ps) if ps.len() == 1 => ps.remove(0),
        Prompt::Many(_) => return Err(bad("prompt: one prompt a request is supported")),
    };
    let mut request = CompletionRequest::new(prompt).params(params(b.params)?);
    request.model = Some(b.model.clone());
    request.extras = b.extra;
    Ok(CompletionCall {
        request,
        model: b.model,
        stream: b.stream.unwrap_or(false),
        include_usage: b.stream_options.is_some_and(|o| o.include_usage),
    })
}

fn params(p: Params) -> Result<ModelParams, LlmError> {
    if p.n.is_some_and(|n| n != 1) {
        return Err(bad("n: one choice a request is supported"));
    }
    let mut params = ModelParams::default();
    params.temperature = p.temperature;
    params.top_p = p.top_p;
    params.max_tokens = p.max_completion_tokens.or(p.max_tokens);
    params.stop = match p.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    params.seed = p.seed;
    params.presence_penalty = p.presence_penalty;
    params.frequency_penalty = p.frequency_penalty;
    params.user = p.user;
    params.validate()?;
    Ok(params)
}

fn message(m: InMessage) -> Result<Message, LlmError> {
    let role = match m.role.as_str() {
        "system" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "tool" => Role::Tool,
        "developer" => Role::Other("developer".into()),
        other => return Err(bad(format!("messages: role `{other}` is not supported"))),
    };
    if role == Role::Tool {
        let id = m
            .tool_call_id
            .ok_or_else(|| bad("messages: a tool message needs tool_call_id"))?;
        let text = match m.content {
            None => String::new(),
            Some(InContent::Text(t)) => t,
            Some(InContent::Parts(parts)) => parts
                .into_iter()
                .filter_map(|p| match p {
                    InPart::Text { text } => Some(text),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(""),
        };
        return Ok(Message::tool_result(id, text));
    }
    let mut message = Message::new(role, "");
    message.content.clear();
    match m.content {
        None => {}
        Some(InContent::Text(t)) => message.content.push(ContentPart::text(t)),
        Some(InContent::Parts(parts)) => {
            for p in parts {
                message.content.push(part(p)?);
            }
        }
    }
    for call in m.tool_calls.into_iter().flatten() {
        message = message.with_tool_call(ToolCall::new(
            call.id,
            call.function.name,
            call.function.arguments,
        ));
    }
    if let Some(name) = m.name {
        message = message.with_name(name);
    }
    Ok(message)
}

fn part(p: InPart) -> Result<ContentPart, LlmError> {
    Ok(match p {
        InPart::Text { text } => ContentPart::text(text),
        InPart::Refusal { refusal } => ContentPart::text(refusal),
        InPart::ImageUrl { image_url } => ContentPart::image_url(image_url.url),
        InPart::File { file } => match (file.file_data, file.file_id) {
            (Some(data), _) => match data.strip_prefix("data:application/pdf;base64,") {
                Some(b64) => ContentPart::pdf_base64(b64),
                None => ContentPart::pdf_base64(&data),
            },
            (None, Some(_)) => {
                return Err(bad(
                    "messages: a file by file_id is not supported (send file_data)",
                ));
            }
            (None, None) => return Err(bad("messages: a file part needs file_data")),
        },
        InPart::Unsupported => {
            return Err(bad(
                "messages: only text, image_url and file parts are supported",
            ));
        }
    })
}

fn tool_choice(v: &Value) -> Result<ToolChoice, LlmError> {
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(bad(format!("tool_choice `{other}` is not supported"))),
        },
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(|n| ToolChoice::Tool(n.to_owned()))
            .ok_or_else(|| bad("tool_choice: an object needs function.name")),
        _ => Err(bad("tool_choice must be a string or an object")),
    }
}

fn response_format(v: &Value) -> Result<ResponseFormat, LlmError> {
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let js = v
                .get("json_schema")
                .ok_or_else(|| bad("response_format: json_schema is missing"))?;
            let name = js.get("name").and_then(Value::as_str).unwrap_or("response");
            let schema = js
                .get("schema")
                .cloned()
                .unwrap_or(Value::Object(Map::new()));
            let mut format = JsonSchemaFormat::new(name, schema);
            if let Some(s) = js.get("strict").and_then(Value::as_bool) {
                format = format.with_strict(s);
            }
            if let Some(d) = js.get("description").and_then(Value::as_str) {
                format = format.with_description(d);
            }
            Ok(ResponseFormat::JsonSchema(format))
        }
        _ => Err(bad(
            "response_format.type must be text, json_object or json_schema",
        )),
    }
}

fn reasoning(effort: &str) -> Result<Reasoning, LlmError> {
    Ok(match effort {
        "none" => Reasoning::Off,
        "minimal" => Reasoning::Effort(Effort::Minimal),
        "low" => Reasoning::Effort(Effort::Low),
        "medium" => Reasoning::Effort(Effort::Medium),
        "high" => Reasoning::Effort(Effort::High),
        "xhigh" => Reasoning::Effort(Effort::XHigh),
        other => return Err(bad(format!("reasoning_effort `{other}` is not supported"))),
    })
}
