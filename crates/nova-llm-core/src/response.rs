//! Responses: the assistant's reply, why it stopped, what it cost in tokens, and what the
//! service said about itself (request id, rate limits).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::dialog::Message;
pub use crate::metadata::{RateLimitSnapshot, ResponseMetadata};
use crate::tool_call::ToolCall;
pub use crate::usage::Usage;

/// Why the model stopped, normalized across services.
///
/// The service's own word is kept beside it (`raw_finish_reason`); values this crate does not
/// know are kept as [`FinishReason::Other`] so an unusual server never breaks parsing.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    #[default]
    Stop,
    /// The output hit the token limit.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// Content was withheld by a filter (OpenAI `content_filter`, Gemini `SAFETY`).
    ContentFilter,
    /// The model declined to answer (Anthropic `refusal`, an OpenAI reply with a
    /// `refusal`): the model's own decision, not a filter's.
    Refusal,
    /// The service paused a long-running turn of its own tools (Anthropic `pause_turn`):
    /// send the reply back as it is to let it continue.
    PauseTurn,
    /// Generation stopped because the output recited training data (Gemini `RECITATION`).
    Recitation,
    /// The service ended the reply without saying why: no finish reason at all (some
    /// OpenAI-compatible servers and proxies end a stream with `[DONE]` alone), an empty
    /// one, or Gemini's `FINISH_REASON_UNSPECIFIED`. The reply is complete (the service
    /// marked its end), but it is not known to be a natural stop.
    Unspecified,
    /// Anything else, verbatim.
    Other(String),
}

impl FinishReason {
    /// Normalizes a service's finish reason: OpenAI's (`stop`, `length`, `tool_calls`,
    /// `function_call`, `content_filter`), Anthropic's (`end_turn`, `stop_sequence`,
    /// `max_tokens`, `tool_use`, `refusal`, `pause_turn`, `model_context_window_exceeded`),
    /// Gemini's (`STOP`, `MAX_TOKENS`, `SAFETY`, `RECITATION`, `PROHIBITED_CONTENT`, ...)
    /// and the local servers' (`eos`, `model_length`).
    pub fn from_raw(raw: &str) -> Self {
        match raw {
            "stop" | "STOP" | "eos" | "eos_token" | "end_turn" | "stop_sequence" | "end" => {
                FinishReason::Stop
            }
            "length"
            | "max_tokens"
            | "MAX_TOKENS"
            | "model_length"
            | "model_context_window_exceeded" => FinishReason::Length,
            "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
            "content_filter" | "safety" | "SAFETY" | "PROHIBITED_CONTENT" | "BLOCKLIST"
            | "SPII" | "IMAGE_SAFETY" => FinishReason::ContentFilter,
            "refusal" => FinishReason::Refusal,
            "pause_turn" => FinishReason::PauseTurn,
            "recitation" | "RECITATION" => FinishReason::Recitation,
            "" | "unspecified" | "FINISH_REASON_UNSPECIFIED" => FinishReason::Unspecified,
            other => FinishReason::Other(other.to_owned()),
        }
    }

    /// The normalized name (`stop`, `length`, `tool_calls`, `content_filter`, `refusal`,
    /// `pause_turn`, `recitation`, `unspecified`, or the raw value for
    /// [`FinishReason::Other`]).
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Refusal => "refusal",
            FinishReason::PauseTurn => "pause_turn",
            FinishReason::Recitation => "recitation",
            FinishReason::Unspecified => "unspecified",
            FinishReason::Other(s) => s,
        }
    }
}

impl From<String> for FinishReason {
    fn from(s: String) -> Self {
        match FinishReason::from_raw(&s) {
            FinishReason::Other(_) => FinishReason::Other(s),
            known => known,
        }
    }
}

impl From<FinishReason> for String {
    fn from(r: FinishReason) -> Self {
        match r {
            FinishReason::Other(s) => s,
            known => known.as_str().to_owned(),
        }
    }
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reply to a chat call.
///
/// ```
/// use nova_llm_core::{ChatResponse, FinishReason, Usage};
///
/// let r = ChatResponse::from_text("Four.").with_usage(Usage::new(12, 2));
/// assert_eq!(r.text(), "Four.");
/// assert_eq!(r.finish_reason, FinishReason::Stop);
/// assert_eq!(r.usage.total_tokens, 14);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The service's id for the reply (empty when it sent none).
    #[serde(default)]
    pub id: String,
    /// The model that answered, as the service named it.
    #[serde(default)]
    pub model: String,
    /// The assistant row: reasoning, text and tool calls.
    pub message: Message,
    /// Why generation stopped, normalized.
    #[serde(default)]
    pub finish_reason: FinishReason,
    /// The finish reason exactly as the service sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_finish_reason: Option<String>,
    /// Token counts.
    #[serde(default)]
    pub usage: Usage,
    /// Request id and rate-limit state.
    #[serde(default)]
    pub metadata: ResponseMetadata,
}

impl Default for ChatResponse {
    fn default() -> Self {
        ChatResponse {
            id: String::new(),
            model: String::new(),
            message: Message::assistant(""),
            finish_reason: FinishReason::Stop,
            raw_finish_reason: None,
            usage: Usage::default(),
            metadata: ResponseMetadata::default(),
        }
    }
}

impl ChatResponse {
    /// A reply holding `message`, finish reason `stop`, no usage.
    pub fn new(message: Message) -> Self {
        ChatResponse {
            message,
            ..ChatResponse::default()
        }
    }

    /// An assistant text reply.
    pub fn from_text(text: impl Into<String>) -> Self {
        Self::new(Message::assistant(text))
    }

    /// A reply asking for `calls`, finish reason `tool_calls`.
    pub fn from_tool_calls(calls: impl IntoIterator<Item = ToolCall>) -> Self {
        let mut message = Message::assistant("");
        message.tool_calls = calls.into_iter().collect();
        Self::new(message).with_finish_reason(FinishReason::ToolCalls)
    }

    /// Sets the id. Default: empty.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Sets the model name. Default: empty.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sets the usage. Default: all zero.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Sets the normalized finish reason. Default: `stop`.
    pub fn with_finish_reason(mut self, reason: FinishReason) -> Self {
        self.finish_reason = reason;
        self
    }

    /// Sets the raw finish reason and the normalized one derived from it.
    pub fn with_raw_finish_reason(mut self, raw: impl Into<String>) -> Self {
        let raw = raw.into();
        self.finish_reason = FinishReason::from_raw(&raw);
        self.raw_finish_reason = Some(raw);
        self
    }

    /// Adds reasoning text (a [`ReasoningPart`](crate::ReasoningPart) before the reply's
    /// text). Default: none.
    pub fn with_reasoning(mut self, reasoning: impl Into<String>) -> Self {
        self.message = self
            .message
            .with_reasoning(crate::ReasoningPart::new(reasoning));
        self
    }

    /// Sets the metadata. Default: empty.
    pub fn with_metadata(mut self, metadata: ResponseMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The reply's text parts joined with newlines (empty for a pure tool call).
    pub fn text(&self) -> String {
        self.message.text()
    }

    /// The reasoning texts joined with newlines; `None` when the reply has none. The parts
    /// themselves, with their signatures, are in the message.
    pub fn reasoning(&self) -> Option<String> {
        self.message.reasoning()
    }

    /// The tool calls the model asked for.
    pub fn tool_calls(&self) -> &[ToolCall] {
        &self.message.tool_calls
    }

    /// The assistant row, ready to append to the dialog.
    pub fn into_message(self) -> Message {
        self.message
    }
}

/// The reply to a plain completion.
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    /// The service's id for the reply.
    #[serde(default)]
    pub id: String,
    /// The model that answered.
    #[serde(default)]
    pub model: String,
    /// The generated text.
    pub text: String,
    /// Why generation stopped, normalized.
    #[serde(default)]
    pub finish_reason: FinishReason,
    /// The finish reason exactly as the service sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_finish_reason: Option<String>,
    /// Token counts.
    #[serde(default)]
    pub usage: Usage,
    /// Request id and rate-limit state.
    #[serde(default)]
    pub metadata: ResponseMetadata,
}

impl CompletionResponse {
    /// A completion of `text`, finish reason `stop`, no usage.
    pub fn new(text: impl Into<String>) -> Self {
        CompletionResponse {
            text: text.into(),
            ..CompletionResponse::default()
        }
    }

    /// Sets the usage. Default: all zero.
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Sets the model name. Default: empty.
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }
}

impl From<ChatResponse> for CompletionResponse {
    /// The text of a chat reply as a completion (how the default completion path works).
    fn from(r: ChatResponse) -> Self {
        CompletionResponse {
            text: r.message.text(),
            id: r.id,
            model: r.model,
            finish_reason: r.finish_reason,
            raw_finish_reason: r.raw_finish_reason,
            usage: r.usage,
            metadata: r.metadata,
        }
    }
}

impl From<CompletionResponse> for ChatResponse {
    /// A completion as a chat reply with one assistant text row.
    fn from(r: CompletionResponse) -> Self {
        ChatResponse {
            id: r.id,
            model: r.model,
            message: Message::assistant(r.text),
            finish_reason: r.finish_reason,
            raw_finish_reason: r.raw_finish_reason,
            usage: r.usage,
            metadata: r.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn finish_reasons_are_normalized_and_unknown_ones_kept() {
        assert_eq!(FinishReason::from_raw("stop"), FinishReason::Stop);
        assert_eq!(FinishReason::from_raw("eos"), FinishReason::Stop);
        assert_eq!(FinishReason::from_raw("max_tokens"), FinishReason::Length);
        assert_eq!(
            FinishReason::from_raw("function_call"),
            FinishReason::ToolCalls
        );
        assert_eq!(
            FinishReason::from_raw("content_filter"),
            FinishReason::ContentFilter
        );
        for (raw, want) in [
            ("refusal", FinishReason::Refusal),
            ("pause_turn", FinishReason::PauseTurn),
            ("RECITATION", FinishReason::Recitation),
            ("SAFETY", FinishReason::ContentFilter),
            ("STOP", FinishReason::Stop),
            ("MAX_TOKENS", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
        ] {
            assert_eq!(FinishReason::from_raw(raw), want, "{raw}");
            // The normalized name reads back as the same reason.
            assert_eq!(FinishReason::from(want.to_string()), want);
        }
        assert_eq!(
            FinishReason::from_raw("MALFORMED_FUNCTION_CALL"),
            FinishReason::Other("MALFORMED_FUNCTION_CALL".into())
        );
        for unsaid in ["", "FINISH_REASON_UNSPECIFIED", "unspecified"] {
            assert_eq!(FinishReason::from_raw(unsaid), FinishReason::Unspecified);
        }
        let parsed: FinishReason = serde_json::from_str("\"unspecified\"").unwrap();
        assert_eq!(parsed, FinishReason::Unspecified);
        assert_eq!(FinishReason::Unspecified.to_string(), "unspecified");
        let parsed: FinishReason = serde_json::from_str("\"weird\"").unwrap();
        assert_eq!(parsed.as_str(), "weird");
        assert_eq!(
            serde_json::to_string(&FinishReason::ToolCalls).unwrap(),
            "\"tool_calls\""
        );
    }

    #[test]
    fn a_finish_reason_displays_as_its_wire_name() {
        assert_eq!(FinishReason::ToolCalls.to_string(), "tool_calls");
        assert_eq!(FinishReason::Other("eos_x".into()).to_string(), "eos_x");
    }

    #[test]
    fn raw_finish_reason_is_kept_beside_the_normalized_one() {
        let r = ChatResponse::from_text("x").with_raw_finish_reason("eos");
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(r.raw_finish_reason.as_deref(), Some("eos"));
    }

    #[test]
    fn response_round_trips_through_json() {
        let r = ChatResponse::from_tool_calls([ToolCall::new("c1", "f", "{}")])
            .with_id("id1")
            .with_model("m")
            .with_reasoning("thought")
            .with_usage(Usage::new(3, 4))
            .with_metadata(
                ResponseMetadata::new()
                    .with_request_id("req")
                    .with_rate_limit(
                        RateLimitSnapshot::new()
                            .with_requests(Some(100), Some(99))
                            .with_tokens(Some(1000), Some(900))
                            .with_resets(Some(Duration::from_millis(1500)), None),
                    ),
            );
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.metadata.request_id.as_deref(), Some("req"));
        let snap = r.metadata.rate_limit.as_ref().unwrap();
        assert_eq!(
            (snap.limit_requests, snap.remaining_requests),
            (Some(100), Some(99))
        );
        assert_eq!(
            (snap.limit_tokens, snap.remaining_tokens),
            (Some(1000), Some(900))
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<ChatResponse>(&json).unwrap(), r);
        assert!(!r.metadata.rate_limit.as_ref().unwrap().is_empty());
        assert!(RateLimitSnapshot::new().is_empty());
    }

    #[test]
    fn chat_and_completion_responses_convert() {
        let chat = ChatResponse::from_text("done")
            .with_usage(Usage::new(1, 1))
            .with_model("m");
        let c = CompletionResponse::from(chat.clone());
        assert_eq!(c.text, "done");
        assert_eq!(c.usage, chat.usage);
        let built = CompletionResponse::new("done")
            .with_usage(Usage::new(1, 1))
            .with_model("m");
        assert_eq!((built.usage, built.model.as_str()), (chat.usage, "m"));
        let back = ChatResponse::from(c);
        assert_eq!(back.text(), "done");
        assert_eq!(back.model, "m");
    }
}
