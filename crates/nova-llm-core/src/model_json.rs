//! What a model writes as JSON (a structured reply, a tool call's arguments), parsed into
//! values; anything that is not JSON is a decode error that says what it got.

use serde_json::{Map, Value};

use crate::error::{ErrorKind, LlmError};
use crate::response::{ChatResponse, FinishReason};
use crate::tool_call::ToolCall;

/// Parses a reply's text as JSON, tolerating a surrounding Markdown code fence.
///
/// # Errors
/// [`ErrorKind::ContentFiltered`] when the reply was withheld, [`ErrorKind::Decode`] when
/// the text is not JSON (the message says when the reply was cut off at the token limit).
pub fn parse_json_reply(response: &ChatResponse) -> Result<Value, LlmError> {
    if response.finish_reason == FinishReason::ContentFilter {
        return Err(LlmError::new(
            ErrorKind::ContentFiltered,
            "the service withheld the structured reply",
        ));
    }
    let text = response.text();
    let body = strip_code_fence(&text);
    serde_json::from_str(body).map_err(|e| {
        let why = if response.finish_reason == FinishReason::Length {
            "the reply was cut off at the token limit before the JSON was complete"
        } else {
            "the reply is not valid JSON"
        };
        LlmError::decode(format!(
            "{why} ({} bytes, starting {:?})",
            text.len(),
            prefix(body, 40)
        ))
        .with_source(e)
    })
}

fn strip_code_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    // Skip an info string such as `json` up to the end of the first line.
    let rest = rest.split_once('\n').map_or("", |(_, body)| body);
    rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
}

fn prefix(s: &str, max_chars: usize) -> &str {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl ToolCall {
    /// The arguments parsed as JSON (an empty string counts as `{}`).
    ///
    /// # Errors
    /// An [`ErrorKind::Decode`] error when the model wrote invalid JSON.
    pub fn arguments_json(&self) -> Result<Value, LlmError> {
        if self.arguments.trim().is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        serde_json::from_str(&self.arguments).map_err(|e| {
            LlmError::decode(format!(
                "tool call `{}` has invalid JSON arguments",
                self.name
            ))
            .with_source(e)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_arguments_parse_or_give_a_decode_error() {
        let ok = ToolCall::new("1", "f", r#"{"a": 1}"#);
        assert_eq!(ok.arguments_json().unwrap()["a"], 1);
        let empty = ToolCall::new("1", "f", "  ");
        assert_eq!(empty.arguments_json().unwrap(), serde_json::json!({}));
        let bad = ToolCall::new("1", "f", "{\"a\": ");
        let err = bad.arguments_json().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("`f`"));
    }

    #[test]
    fn fence_stripping_handles_odd_input() {
        assert_eq!(strip_code_fence("```"), "");
        assert_eq!(strip_code_fence("```json"), "");
        assert_eq!(strip_code_fence("  {}  "), "{}");
        assert_eq!(strip_code_fence("```\n[1]\n```"), "[1]");
        assert_eq!(prefix("héllo", 2), "hé");
    }
}
