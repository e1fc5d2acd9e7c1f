//! Stream chunks, read leniently like whole responses.

use std::borrow::Cow;
use std::fmt;

use nova_llm_core::LlmError;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::Value;

use super::response::{
    WireError, WireErrorBody, WireUsage, content_text, decode_err, loose_arguments, nullable,
};

/// One stream chunk. Every chunk repeats the id, the model and the fingerprint, which only
/// the first one's `Start` event keeps: they are borrowed from the chunk's text (no
/// allocation per chunk) unless they contain escapes.
#[derive(Deserialize)]
pub(crate) struct WireChunk<'a> {
    #[serde(default, borrow, deserialize_with = "nullable_str")]
    pub(crate) id: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "nullable_str")]
    pub(crate) model: Cow<'a, str>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) choices: Vec<WireChunkChoice>,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
    #[serde(default)]
    pub(crate) error: Option<Value>,
    #[serde(default, borrow, deserialize_with = "nullable_str")]
    pub(crate) system_fingerprint: Cow<'a, str>,
}

/// A string borrowed from the input when it can be (no escapes), else copied; `null` is
/// empty, like a missing field.
fn nullable_str<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Cow<'a, str>, D::Error> {
    struct Text;
    impl<'de> Visitor<'de> for Text {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or null")
        }

        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(""))
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }
    d.deserialize_option(Text)
}

#[derive(Deserialize)]
pub(crate) struct WireChunkChoice {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) index: u32,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) delta: WireDelta,
    /// Legacy completions stream `text` instead of a delta.
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct WireDelta {
    #[serde(default)]
    pub(crate) content: Option<Value>,
    #[serde(default)]
    pub(crate) refusal: Option<String>,
    #[serde(default)]
    pub(crate) reasoning_content: Option<String>,
    #[serde(default)]
    pub(crate) reasoning: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) tool_calls: Vec<WireToolCallDelta>,
    #[serde(default)]
    pub(crate) function_call: Option<WireFunctionDelta>,
}

#[derive(Deserialize, Default)]
pub(crate) struct WireToolCallDelta {
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) index: usize,
    #[serde(default)]
    pub(crate) id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) function: WireFunctionDelta,
}

#[derive(Deserialize, Default)]
pub(crate) struct WireFunctionDelta {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default, deserialize_with = "loose_arguments")]
    pub(crate) arguments: String,
}

pub(crate) fn delta_text(content: Option<Value>) -> String {
    content_text(content)
}

/// Parses one stream chunk.
pub(crate) fn decode_chunk(data: &str) -> Result<WireChunk<'_>, LlmError> {
    serde_json::from_str(data).map_err(|e| decode_err("a stream chunk", e))
}

/// Reads an error out of a JSON value (`{"error": ...}` payloads, `event: error` data).
pub(crate) fn error_from_value(v: Value) -> Option<WireError> {
    match v {
        // `{"error": {...}}` (or `{"error": "text"}`, `{"detail": ...}`) around the error...
        Value::Object(ref obj) if obj.contains_key("error") || obj.contains_key("detail") => {
            serde_json::from_value::<WireErrorBody>(v)
                .ok()?
                .into_error()
        }
        // ...or the error object itself.
        Value::Object(_) => serde_json::from_value(v).ok(),
        Value::String(s) => Some(WireError {
            message: Some(s),
            ..WireError::default()
        }),
        _ => None,
    }
}
