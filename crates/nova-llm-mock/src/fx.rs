//! The default behaviour: the reply to `x` is `f(x)`, with deterministic usage, schema-valid
//! structured output and tool calls.

use nova_llm_core::{
    ChatRequest, ChatResponse, FinishReason, LlmError, Message, ResponseFormat, Role, ToolCall,
    ToolChoice, Usage,
};
use serde_json::{Map, Value};

/// How deep `$ref`s and nested schemas are followed before a value is cut short with `null`
/// (recursive schemas would otherwise never end).
const MAX_SCHEMA_DEPTH: usize = 16;

/// `f(x)`.
pub(crate) fn f(x: &str) -> String {
    format!("f({x})")
}

/// Whitespace-separated words, at least 1: the mock's documented token count.
pub(crate) fn words(text: &str) -> u64 {
    (text.split_whitespace().count() as u64).max(1)
}

/// The text the mock counts as sent: every visible row's text, tool calls' arguments included.
fn sent_words(request: &ChatRequest) -> u64 {
    let n: usize = request
        .dialog
        .visible()
        .map(|m| {
            m.text().split_whitespace().count()
                + m.tool_calls
                    .iter()
                    .map(|c| c.arguments.split_whitespace().count())
                    .sum::<usize>()
        })
        .sum();
    (n as u64).max(1)
}

/// The default reply to `request` (call number `call_no`, 1-based, names tool-call ids).
pub(crate) fn default_reply(
    request: &ChatRequest,
    default_model: &str,
    call_no: u64,
) -> Result<ChatResponse, LlmError> {
    request.validate()?;
    let last = request
        .dialog
        .last_visible()
        .ok_or_else(|| LlmError::invalid_request("the dialog has no visible rows"))?;
    let reply_to = f(&last.text());
    let model = request.model.as_deref().unwrap_or(default_model);

    let response = if let Some(call) = tool_call_for(request, last, &reply_to, call_no) {
        let output = words(&call.arguments);
        ChatResponse::from_tool_calls([call])
            .with_raw_finish_reason("tool_calls")
            .with_usage(Usage::new(sent_words(request), output))
    } else {
        let text = match &request.response_format {
            ResponseFormat::JsonSchema(s) => structured_text(&s.schema, &reply_to),
            ResponseFormat::JsonObject => Value::Object(Map::from_iter([(
                "reply".to_owned(),
                Value::String(reply_to),
            )]))
            .to_string(),
            _ => reply_to,
        };
        let output = words(&text);
        ChatResponse::from_text(text)
            .with_raw_finish_reason("stop")
            .with_usage(Usage::new(sent_words(request), output))
    };
    Ok(response
        .with_id(format!("mock-{call_no}"))
        .with_model(model))
}

fn structured_text(schema: &Value, base: &str) -> String {
    value_for_schema(schema, schema, base, 0).to_string()
}

/// The tool call the mock makes: when tools are offered, tool choice is not `none`, and the
/// last visible row is a user row.
fn tool_call_for(
    request: &ChatRequest,
    last: &Message,
    reply_to: &str,
    call_no: u64,
) -> Option<ToolCall> {
    if request.tools.is_empty() || last.role != Role::User {
        return None;
    }
    let tool = match &request.tool_choice {
        Some(ToolChoice::None) => return None,
        Some(ToolChoice::Tool(name)) => request.tools.iter().find(|t| &t.name == name)?,
        _ => request.tools.first()?,
    };
    let has_properties = tool
        .parameters
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    let args = if has_properties {
        value_for_schema(&tool.parameters, &tool.parameters, reply_to, 0)
    } else {
        Value::Object(Map::from_iter([(
            "input".to_owned(),
            Value::String(reply_to.to_owned()),
        )]))
    };
    Some(ToolCall::new(
        format!("call_{call_no}"),
        tool.name.clone(),
        args.to_string(),
    ))
}

/// A value valid for `schema`: string properties `k` become `"<base>.k"`, numbers their
/// minimum (or 0), booleans `true`, arrays `minItems` (at least one) items, enums and consts
/// their first value; `$ref`s into `#/$defs` or `#/definitions` are followed.
pub(crate) fn value_for_schema(schema: &Value, root: &Value, base: &str, depth: usize) -> Value {
    if depth > MAX_SCHEMA_DEPTH {
        return Value::Null;
    }
    let Some(obj) = schema.as_object() else {
        // `true` (anything goes) or an odd schema: a string is as good as anything.
        return Value::String(base.to_owned());
    };
    if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
        return match resolve_ref(root, target) {
            Some(s) => value_for_schema(s, root, base, depth + 1),
            None => Value::Null,
        };
    }
    if let Some(c) = obj.get("const") {
        return c.clone();
    }
    if let Some(first) = obj
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = obj.get(key).and_then(Value::as_array).and_then(|v| {
            // Prefer a branch that is not `null`.
            v.iter()
                .find(|s| s.get("type").and_then(Value::as_str) != Some("null"))
                .or_else(|| v.first())
        }) {
            return value_for_schema(first, root, base, depth + 1);
        }
    }
    let ty = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if obj.contains_key("properties") => "object",
        _ if obj.contains_key("items") => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                for (k, sub) in props {
                    let v = value_for_schema(sub, root, &format!("{base}.{k}"), depth + 1);
                    out.insert(k.clone(), v);
                }
            }
            Value::Object(out)
        }
        "array" => {
            let min = obj
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            let max = obj
                .get("maxItems")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX);
            let n = min.min(max).min(64);
            let item_schema = obj.get("items").cloned().unwrap_or(Value::Bool(true));
            let item = value_for_schema(&item_schema, root, base, depth + 1);
            Value::Array((0..n).map(|_| item.clone()).collect())
        }
        "integer" => Value::from(smallest(obj).ceil() as i64),
        "number" => {
            serde_json::Number::from_f64(smallest(obj)).map_or(Value::from(0), Value::Number)
        }
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => Value::String(base.to_owned()),
    }
}

/// The smallest number a schema allows: its `minimum`, one past its `exclusiveMinimum`, or 0.
fn smallest(obj: &serde_json::Map<String, Value>) -> f64 {
    obj.get("minimum")
        .and_then(Value::as_f64)
        .or_else(|| {
            obj.get("exclusiveMinimum")
                .and_then(Value::as_f64)
                .map(|m| m + 1.0)
        })
        .unwrap_or(0.0)
}

fn resolve_ref<'a>(root: &'a Value, target: &str) -> Option<&'a Value> {
    let path = target.strip_prefix('#')?;
    if path.is_empty() {
        return Some(root);
    }
    root.pointer(path)
}

/// Usage of a reply computed the documented way (for scripted replies that carry none).
pub(crate) fn usage_for(request: &ChatRequest, reply: &ChatResponse) -> Usage {
    let out_text = if reply.message.tool_calls.is_empty() {
        reply.text()
    } else {
        reply
            .message
            .tool_calls
            .iter()
            .map(|c| c.arguments.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Usage::new(sent_words(request), words(&out_text))
}

/// The finish reason a scripted reply gets when it did not set one.
pub(crate) fn finish_for(reply: &ChatResponse) -> FinishReason {
    if reply.message.tool_calls.is_empty() {
        FinishReason::Stop
    } else {
        FinishReason::ToolCalls
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(schema: Value) -> Value {
        value_for_schema(&schema, &schema, "f(x)", 0)
    }

    #[test]
    fn string_properties_are_named_after_the_reply() {
        let s = json!({"type": "object", "properties": {
            "name": {"type": "string"},
            "inner": {"type": "object", "properties": {"city": {"type": "string"}}}
        }});
        assert_eq!(
            v(s),
            json!({"name": "f(x).name", "inner": {"city": "f(x).inner.city"}})
        );
    }

    #[test]
    fn other_types_get_schema_valid_values() {
        let s = json!({"type": "object", "properties": {
            "n": {"type": "integer", "minimum": 3},
            "x": {"type": "number"},
            "ok": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "color": {"type": "string", "enum": ["red", "green"]},
            "maybe": {"type": ["null", "integer"]},
            "either": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
            "fixed": {"const": 42},
            "none": {"type": "array", "maxItems": 0}
        }});
        assert_eq!(
            v(s),
            json!({"n": 3, "x": 0.0, "ok": true, "tags": ["f(x).tags", "f(x).tags"], "color": "red",
                   "maybe": 0, "either": true, "fixed": 42, "none": []})
        );
    }

    #[test]
    fn refs_are_followed_and_recursion_is_cut() {
        let s = json!({
            "$defs": {"node": {"type": "object", "properties": {
                "label": {"type": "string"}, "next": {"$ref": "#/$defs/node"}}}},
            "$ref": "#/$defs/node"
        });
        let out = v(s);
        assert_eq!(out["label"], "f(x).label");
        assert_eq!(out["next"]["label"], "f(x).next.label");
        assert_eq!(v(json!({"$ref": "#/nowhere"})), Value::Null);
    }

    #[test]
    fn types_are_inferred_and_exclusive_minimums_kept_out_of() {
        let s = json!({"type": "object", "properties": {
            "implied_object": {"properties": {"a": {"type": "string"}}},
            "implied_array": {"items": {"type": "boolean"}},
            "nothing": {"type": "null"},
            "untyped": {"description": "free text"},
            "above": {"type": "integer", "exclusiveMinimum": 3},
            "above_x": {"type": "number", "exclusiveMinimum": 0.5}
        }});
        assert_eq!(
            v(s),
            json!({"implied_object": {"a": "f(x).implied_object.a"}, "implied_array": [true],
                   "nothing": null, "untyped": "f(x).untyped", "above": 4, "above_x": 1.5})
        );
    }

    /// `levels` schemas, each inside the next with `wrap`, around a boolean.
    fn nested(levels: usize, wrap: impl Fn(Value) -> Value) -> Value {
        (0..levels).fold(json!({"type": "boolean"}), |inner, _| wrap(inner))
    }

    /// The value `levels` steps down from `value` (into an object's `a` or an array's first
    /// item).
    fn down(mut value: &Value, levels: usize) -> &Value {
        for _ in 0..levels {
            value = value
                .get("a")
                .or_else(|| value.get(0))
                .unwrap_or(&Value::Null);
        }
        value
    }

    #[test]
    fn schemas_nested_past_16_levels_are_cut_with_null() {
        // 16 levels of nesting are followed; the 17th is cut, whatever nests it.
        let in_object = |inner| json!({"type": "object", "properties": {"a": inner}});
        let in_array = |inner| json!({"type": "array", "items": inner});
        let in_any_of = |inner| json!({"anyOf": [inner]});
        assert_eq!(down(&v(nested(16, in_object)), 16), &json!(true));
        assert_eq!(down(&v(nested(17, in_object)), 17), &Value::Null);
        assert!(down(&v(nested(17, in_object)), 16).is_object());
        assert_eq!(down(&v(nested(16, in_array)), 16), &json!(true));
        assert_eq!(down(&v(nested(17, in_array)), 17), &Value::Null);
        assert_eq!(v(nested(16, in_any_of)), json!(true));
        assert_eq!(v(nested(17, in_any_of)), Value::Null);
        // A schema that refers to itself and nothing else ends too.
        assert_eq!(v(json!({"$ref": "#"})), Value::Null);
    }

    #[test]
    fn word_counts_are_never_zero() {
        assert_eq!(words(""), 1);
        assert_eq!(words("a b  c"), 3);
    }
}
