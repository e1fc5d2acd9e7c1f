//! Request bodies of `models/{model}:generateContent` (and `:streamGenerateContent`),
//! written strictly: unset parameters are omitted, extras are merged last.
//!
//! How the portable request becomes a Gemini request:
//! - system rows (and `developer` rows) go into `systemInstruction`, in order; the other
//!   rows become `contents` with roles `user` and `model`, consecutive rows of one role
//!   merged into one content; tool rows become `functionResponse` parts of a `user`
//!   content, named after the call they answer (found by its id earlier in the dialog);
//!   empty text is left out, and so is a content left with no part;
//! - a tool's result that is a JSON object is sent as the `response` itself; other text as
//!   `{"output": text}`, or `{"error": text}` for a failed tool (the API's convention);
//! - a model row sends back its own thought signatures on the parts they came with: a
//!   reasoning part from Gemini with text is a `thought` part (with its signature); one with
//!   a signature alone goes on the next part sent (text or function call), or, with none
//!   after it, on an empty text part as the API sent it. Reasoning from any other service
//!   is left out;
//! - function-call ids this driver made up (the API may send none) are not sent back;
//! - images and PDFs go as `inlineData` (a `data:` URL) or `fileData` (another URL, with
//!   its media type guessed from the extension);
//! - the schema of structured output goes as `responseJsonSchema` and a tool's as
//!   `parametersJsonSchema`, both of which take JSON Schema, with `$schema` removed (the
//!   endpoint rejects it); what the API still refuses comes back as its own 400, with its
//!   message;
//! - temperature, top-p, the output limit, stop sequences, seed and the penalties go in
//!   `generationConfig`; the user id and `parallel_tool_calls` have no Gemini field and are
//!   not sent; prompt-caching breakpoints are ignored (Gemini caches by explicit cached
//!   content);
//! - the extras are merged into the body last; an extra `generationConfig` object is
//!   merged field by field into the generation config (so `topK` can be added without
//!   replacing the rest).

use std::collections::HashMap;

use nova_llm_core::{
    ChatRequest, ContentPart, DataUrl, Effort, LlmError, Message, Reasoning, ResponseFormat, Role,
    ToolChoice,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ORIGIN;
use crate::ids::is_made_up;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    contents: Vec<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemInstruction<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolGroup<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct SystemInstruction<'a> {
    parts: Vec<Part<'a>>,
}

#[derive(Serialize)]
struct Content<'a> {
    role: &'static str,
    parts: Vec<Part<'a>>,
}

/// A part: exactly one of the data fields, and perhaps a thought signature.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<Blob<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<FileData<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponse<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    mime_type: Option<&'static str>,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    args: Value,
}

#[derive(Serialize)]
struct FunctionResponse<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    name: &'a str,
    response: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolGroup<'a> {
    function_declarations: Vec<FunctionDeclaration<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionDeclaration<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters_json_schema: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: FunctionCallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FunctionCallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<[&'a str; 1]>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.temperature.is_none()
            && self.top_p.is_none()
            && self.max_output_tokens.is_none()
            && self.stop_sequences.is_empty()
            && self.seed.is_none()
            && self.presence_penalty.is_none()
            && self.frequency_penalty.is_none()
            && self.response_mime_type.is_none()
            && self.response_json_schema.is_none()
            && self.thinking_config.is_none()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    include_thoughts: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_budget: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_level: Option<&'static str>,
}

/// `thinkingConfig` for the portable control: off is a budget of 0; a budget is that
/// budget; an effort is that `thinkingLevel` (`MINIMAL` to `XHIGH`; `max` is `XHIGH`);
/// thoughts are asked for whenever the model may think, so that they, and their
/// signatures, come back.
fn thinking(r: Option<Reasoning>) -> Option<ThinkingConfig> {
    let (budget, level) = match r? {
        Reasoning::Off => {
            return Some(ThinkingConfig {
                include_thoughts: None,
                thinking_budget: Some(0),
                thinking_level: None,
            });
        }
        Reasoning::Budget(n) => (Some(n), None),
        Reasoning::Effort(e) => (
            None,
            Some(match e {
                Effort::Minimal => "MINIMAL",
                Effort::Low => "LOW",
                Effort::Medium => "MEDIUM",
                Effort::High => "HIGH",
                _ => "XHIGH",
            }),
        ),
        _ => return None,
    };
    Some(ThinkingConfig {
        include_thoughts: Some(true),
        thinking_budget: budget,
        thinking_level: level,
    })
}

fn invalid(message: impl Into<String>) -> LlmError {
    LlmError::invalid_request(message).with_param("messages")
}

/// `schema` without `$schema` (at any depth), which the endpoint rejects.
fn cleaned(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "$schema")
                .map(|(k, v)| (k.clone(), cleaned(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(cleaned).collect()),
        other => other.clone(),
    }
}

/// The media type of a file by its URL's extension, for `fileData`.
fn media_type_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// The part of an image or document.
fn media(url: &str) -> Part<'_> {
    match DataUrl::parse(url) {
        Some(d) => Part {
            inline_data: Some(Blob {
                mime_type: d.media_type,
                data: d.data,
            }),
            ..Part::default()
        },
        None => Part {
            file_data: Some(FileData {
                mime_type: media_type_of(url),
                file_uri: url,
            }),
            ..Part::default()
        },
    }
}

fn text(t: &str) -> Part<'_> {
    Part {
        text: Some(t),
        ..Part::default()
    }
}

/// The parts of a user row: text, images and documents (reasoning is not sent).
fn user_parts(m: &Message) -> Vec<Part<'_>> {
    m.content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text: t } if t.is_empty() => None,
            ContentPart::Text { text: t } => Some(text(t)),
            ContentPart::Image { url, .. } | ContentPart::Document { url, .. } => Some(media(url)),
            _ => None,
        })
        .collect()
}

/// Adds `part`, with the signature waiting for it.
fn push<'a>(mut part: Part<'a>, pending: &mut Option<&'a str>, parts: &mut Vec<Part<'a>>) {
    if part.thought_signature.is_none() {
        part.thought_signature = pending.take();
    }
    parts.push(part);
}

/// The parts of a model row, its thought signatures on the parts they came with.
fn model_parts(m: &Message) -> Result<Vec<Part<'_>>, LlmError> {
    let mut parts = Vec::with_capacity(m.content.len() + m.tool_calls.len());
    // A signature with no text waits for the part it belongs to.
    let mut pending: Option<&str> = None;
    for p in &m.content {
        match p {
            ContentPart::Text { text: t } if !t.is_empty() => {
                push(text(t), &mut pending, &mut parts);
            }
            ContentPart::Reasoning(r) if r.is_from(ORIGIN) => {
                if !r.text.is_empty() {
                    let thought = Part {
                        text: Some(&r.text),
                        thought: Some(true),
                        thought_signature: r.signature.as_deref(),
                        ..Part::default()
                    };
                    // A pending signature belonged to a part of its own.
                    if let Some(sig) = pending.take() {
                        parts.push(Part {
                            text: Some(""),
                            thought_signature: Some(sig),
                            ..Part::default()
                        });
                    }
                    parts.push(thought);
                } else if let Some(sig) = r.signature.as_deref()
                    && let Some(earlier) = pending.replace(sig)
                {
                    parts.push(Part {
                        text: Some(""),
                        thought_signature: Some(earlier),
                        ..Part::default()
                    });
                }
            }
            _ => {}
        }
    }
    for call in &m.tool_calls {
        let args = if call.arguments.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            match serde_json::from_str::<Value>(&call.arguments) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(invalid(format!(
                        "the arguments of tool call `{}` ({}) are not a JSON object, which the \
                         Gemini API requires",
                        call.id, call.name
                    )));
                }
            }
        };
        let part = Part {
            function_call: Some(FunctionCall {
                id: (!is_made_up(&call.id) && !call.id.is_empty()).then_some(call.id.as_str()),
                name: &call.name,
                args,
            }),
            ..Part::default()
        };
        push(part, &mut pending, &mut parts);
    }
    if let Some(sig) = pending {
        parts.push(Part {
            text: Some(""),
            thought_signature: Some(sig),
            ..Part::default()
        });
    }
    Ok(parts)
}

/// The `functionResponse` part of a tool row; `names` maps call ids to function names.
fn function_response<'a>(
    m: &'a Message,
    names: &HashMap<&'a str, &'a str>,
) -> Result<Part<'a>, LlmError> {
    let Some(id) = m.tool_call_id.as_deref() else {
        return Err(invalid(
            "a tool row has no `tool_call_id`: Gemini needs the call it answers",
        ));
    };
    let Some(name) = names.get(id).copied().or(m.name.as_deref()) else {
        return Err(invalid(format!(
            "no earlier tool call has the id `{id}`, and the tool row names no function: \
             Gemini needs the function's name"
        )));
    };
    let body = m.text();
    let response = match serde_json::from_str::<Value>(&body) {
        Ok(v @ Value::Object(_)) if !m.is_error => v,
        _ => {
            let key = if m.is_error { "error" } else { "output" };
            let value = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
            let mut map = Map::new();
            map.insert(key.to_owned(), value);
            Value::Object(map)
        }
    };
    Ok(Part {
        function_response: Some(FunctionResponse {
            id: (!is_made_up(id)).then_some(id),
            name,
            response,
        }),
        ..Part::default()
    })
}

/// `systemInstruction` and `contents` of the visible rows.
#[allow(clippy::type_complexity)]
fn contents(
    request: &ChatRequest,
) -> Result<(Option<SystemInstruction<'_>>, Vec<Content<'_>>), LlmError> {
    let mut system: Vec<Part<'_>> = Vec::new();
    let mut contents: Vec<Content<'_>> = Vec::new();
    let mut names: HashMap<&str, &str> = HashMap::new();
    for m in request.dialog.visible() {
        let (role, mut parts) = match &m.role {
            Role::System => {
                system.extend(user_parts(m));
                continue;
            }
            Role::Other(r) if r == "developer" => {
                system.extend(user_parts(m));
                continue;
            }
            Role::User => ("user", user_parts(m)),
            Role::Assistant => {
                for c in &m.tool_calls {
                    names.insert(&c.id, &c.name);
                }
                ("model", model_parts(m)?)
            }
            Role::Tool => ("user", vec![function_response(m, &names)?]),
            other => {
                return Err(invalid(format!(
                    "Gemini has no role `{other}` (user, assistant, system, tool)"
                )));
            }
        };
        match contents.last_mut() {
            Some(last) if last.role == role => last.parts.append(&mut parts),
            _ => contents.push(Content { role, parts }),
        }
    }
    contents.retain(|c| !c.parts.is_empty());
    let system = (!system.is_empty()).then_some(SystemInstruction { parts: system });
    Ok((system, contents))
}

fn tool_config(choice: Option<&ToolChoice>) -> Option<ToolConfig<'_>> {
    let (mode, name) = match choice? {
        ToolChoice::Auto => ("AUTO", None),
        ToolChoice::None => ("NONE", None),
        ToolChoice::Required => ("ANY", None),
        ToolChoice::Tool(name) => ("ANY", Some([name.as_str()])),
        _ => ("AUTO", None),
    };
    Some(ToolConfig {
        function_calling_config: FunctionCallingConfig {
            mode,
            allowed_function_names: name,
        },
    })
}

/// The JSON body of `:generateContent` and `:streamGenerateContent`.
pub(crate) fn encode_generate(request: &ChatRequest) -> Result<Vec<u8>, LlmError> {
    let (mime, schema) = match &request.response_format {
        ResponseFormat::JsonSchema(s) => (Some("application/json"), Some(cleaned(&s.schema))),
        ResponseFormat::JsonObject => (Some("application/json"), None),
        _ => (None, None),
    };
    let p = &request.params;
    let (system_instruction, contents) = contents(request)?;
    let declarations: Vec<FunctionDeclaration<'_>> = request
        .tools
        .iter()
        .map(|t| FunctionDeclaration {
            name: &t.name,
            description: t.description.as_deref(),
            parameters_json_schema: cleaned(&t.parameters),
        })
        .collect();
    let body = WireRequest {
        contents,
        system_instruction,
        tools: if declarations.is_empty() {
            Vec::new()
        } else {
            vec![ToolGroup {
                function_declarations: declarations,
            }]
        },
        tool_config: tool_config(request.tool_choice.as_ref()),
        generation_config: GenerationConfig {
            temperature: p.temperature,
            top_p: p.top_p,
            max_output_tokens: p.max_tokens,
            stop_sequences: &p.stop,
            seed: p.seed,
            presence_penalty: p.presence_penalty,
            frequency_penalty: p.frequency_penalty,
            response_mime_type: mime,
            response_json_schema: schema,
            thinking_config: thinking(request.reasoning),
        },
    };
    let encode_err = |e: serde_json::Error| {
        LlmError::invalid_request("the request could not be encoded as JSON").with_source(e)
    };
    if request.extras.is_empty() {
        return serde_json::to_vec(&body).map_err(encode_err);
    }
    let mut value = serde_json::to_value(&body).map_err(encode_err)?;
    if let Value::Object(map) = &mut value {
        for (k, v) in &request.extras {
            match (k.as_str(), v, map.get_mut(k)) {
                ("generationConfig", Value::Object(extra), Some(Value::Object(config))) => {
                    for (ek, ev) in extra {
                        config.insert(ek.clone(), ev.clone());
                    }
                }
                _ => {
                    map.insert(k.clone(), v.clone());
                }
            }
        }
    }
    serde_json::to_vec(&value).map_err(encode_err)
}
