//! `GenerateContentResponse`s, read leniently (unknown fields ignored, `null`s and missing
//! fields defaults): a plain reply is one, and every event of a stream is one. A
//! [`Reader`] turns them into core events the same way for both.

use std::collections::VecDeque;
use std::fmt;

use nova_llm_core::{
    ChatResponse, FinishReason, LlmError, ResponseMetadata, StreamAccumulator, StreamEvent,
    StreamStart, ToolCallDelta, Usage,
};
use nova_llm_http::Item;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::ORIGIN;
use crate::errors::{WireError, blocked, from_stream_error};
use crate::ids::made_up;

/// One response (or stream chunk). Every chunk repeats the model version and the response
/// id, which only the first one's start event keeps: they are borrowed from the chunk's
/// text (no allocation per chunk) unless they hold escapes.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireResponse<'a> {
    /// Only the first candidate is read (the driver asks for one).
    #[serde(default)]
    candidates: First<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    /// Kept as text until needed: a stream repeats it, cumulative, in every chunk, and
    /// only the last is reported.
    #[serde(default, borrow)]
    usage_metadata: Option<&'a RawValue>,
    #[serde(default, borrow)]
    model_version: Option<&'a RawValue>,
    #[serde(default, borrow)]
    response_id: Option<&'a RawValue>,
    /// An error in place of a chunk, mid-stream.
    #[serde(default)]
    error: Option<WireError>,
}

/// The first element of a JSON array (the rest skipped, nothing collected); `null` or an
/// empty array is none.
struct First<T>(Option<T>);

impl<T> Default for First<T> {
    fn default() -> Self {
        First(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for First<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Seq<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Seq<T> {
            type Value = First<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array or null")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(First(None))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<T>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_any(Seq(std::marker::PhantomData))
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(default)]
    thought_signature: Option<String>,
    #[serde(default)]
    function_call: Option<Box<WireFunctionCall>>,
}

#[derive(Deserialize, Default)]
struct WireFunctionCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
    #[serde(default)]
    block_reason_message: Option<String>,
}

/// The string a raw JSON value holds; empty for anything else.
fn text_of(raw: Option<&RawValue>) -> String {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
        .unwrap_or_default()
}

/// Token counts as the API reports them (cumulative within a stream).
#[derive(Deserialize, Default, Clone, Copy, Debug)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    total_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
}

impl UsageMetadata {
    /// The core's usage: input is the prompt and the tools' own prompt (search results,
    /// code output), the cached content its cache reads; output is the candidates and the
    /// thoughts, the thoughts its reasoning.
    fn into_usage(self) -> Usage {
        let input =
            self.prompt_token_count.unwrap_or(0) + self.tool_use_prompt_token_count.unwrap_or(0);
        let thoughts = self.thoughts_token_count;
        let output = self.candidates_token_count.unwrap_or(0) + thoughts.unwrap_or(0);
        let mut u = Usage::new(input, output);
        if let Some(total) = self.total_token_count {
            u.total_tokens = total;
        }
        u.cache_read_tokens = self.cached_content_token_count;
        u.reasoning_tokens = thoughts;
        u
    }
}

/// Turns responses into events: the start once, each part's content in order (a thought
/// signature before the part it rides on, after a thought's text), each function call
/// whole, with an id made when the API sent none. The usage (cumulative in a stream) and
/// the finish are kept for [`finish`](Self::finish), so each is reported once, last.
#[derive(Debug)]
pub(crate) struct Reader {
    metadata: Option<ResponseMetadata>,
    calls: usize,
    /// The last usage's JSON (its buffer reused from chunk to chunk).
    usage: String,
    finish: Option<String>,
    saw_candidate: bool,
}

impl Reader {
    /// A reader whose start event carries `metadata`.
    pub(crate) fn new(metadata: ResponseMetadata) -> Self {
        Reader {
            metadata: Some(metadata),
            calls: 0,
            usage: String::new(),
            finish: None,
            saw_candidate: false,
        }
    }

    /// Whether a finish reason arrived.
    pub(crate) fn is_finished(&self) -> bool {
        self.finish.is_some()
    }

    /// The events of one response; an error item (and `Err`) for a blocked prompt or an
    /// error in its place.
    pub(crate) fn read(&mut self, r: WireResponse<'_>, out: &mut VecDeque<Item>) -> Result<(), ()> {
        if let Some(e) = &r.error {
            out.push_back(Err(from_stream_error(e)));
            return Err(());
        }
        if r.candidates.0.is_none()
            && let Some(feedback) = &r.prompt_feedback
            && let Some(reason) = feedback.block_reason.as_deref()
        {
            // Before anything else: the prompt itself was refused.
            out.push_back(Err(blocked(
                reason,
                feedback.block_reason_message.as_deref(),
            )));
            return Err(());
        }
        if let Some(metadata) = self.metadata.take() {
            out.push_back(Ok(StreamEvent::start(
                StreamStart::new(text_of(r.response_id), text_of(r.model_version))
                    .with_metadata(metadata),
            )));
        }
        if let Some(u) = r.usage_metadata {
            self.usage.clear();
            self.usage.push_str(u.get());
        }
        let Some(candidate) = r.candidates.0 else {
            return Ok(());
        };
        self.saw_candidate = true;
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            self.part(part, out);
        }
        if let Some(reason) = candidate.finish_reason.filter(|r| !r.is_empty()) {
            self.finish = Some(reason);
        }
        Ok(())
    }

    fn part(&mut self, part: WirePart, out: &mut VecDeque<Item>) {
        let signature = part
            .thought_signature
            .filter(|s| !s.is_empty())
            .map(|signature| StreamEvent::ReasoningSignature {
                signature,
                origin: ORIGIN.to_owned(),
            });
        if part.thought == Some(true) {
            if let Some(t) = part.text.filter(|t| !t.is_empty()) {
                out.push_back(Ok(StreamEvent::reasoning(t)));
            }
            out.extend(signature.map(Ok));
            return;
        }
        out.extend(signature.map(Ok));
        if let Some(call) = part.function_call {
            let index = self.calls;
            self.calls += 1;
            let id = call
                .id
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| made_up(index));
            let args = match call.args {
                None | Some(Value::Null) => "{}".to_owned(),
                Some(v) => v.to_string(),
            };
            out.push_back(Ok(StreamEvent::tool_call(
                ToolCallDelta::new(index)
                    .with_id(id)
                    .with_name(call.name)
                    .with_arguments(args),
            )));
        } else if let Some(t) = part.text.filter(|t| !t.is_empty()) {
            out.push_back(Ok(StreamEvent::text(t)));
        }
    }

    /// The usage (if reported) and the finish: `STOP` with function calls is why it
    /// stopped (the API says `STOP` for both); the raw value is kept.
    pub(crate) fn finish(&mut self, out: &mut VecDeque<Item>) {
        if !self.usage.is_empty() {
            // A usage that does not read is left out rather than failing a finished reply.
            if let Ok(u) = serde_json::from_str::<UsageMetadata>(&self.usage) {
                out.push_back(Ok(StreamEvent::usage(u.into_usage())));
            }
            self.usage.clear();
        }
        let Some(raw) = self.finish.take() else {
            return;
        };
        let reason = match FinishReason::from_raw(&raw) {
            FinishReason::Stop if self.calls > 0 => FinishReason::ToolCalls,
            other => other,
        };
        out.push_back(Ok(StreamEvent::Finish {
            reason,
            raw: Some(raw),
        }));
    }
}

fn decode_err(e: serde_json::Error) -> LlmError {
    LlmError::decode(format!("the reply is not a Gemini response: {e}")).with_source(e)
}

/// Reads one stream event's response (text already checked to be UTF-8, which
/// `from_str` does not check again).
pub(crate) fn parse(data: &str) -> Result<WireResponse<'_>, LlmError> {
    serde_json::from_str(data).map_err(decode_err)
}

/// Decodes the body of a plain `:generateContent`, through the same [`Reader`] and
/// accumulator as a stream.
pub(crate) fn decode_generate(
    body: &[u8],
    metadata: ResponseMetadata,
) -> Result<ChatResponse, LlmError> {
    let response: WireResponse<'_> = serde_json::from_slice(body).map_err(decode_err)?;
    let mut reader = Reader::new(metadata);
    let mut items = VecDeque::new();
    // An error is among the items.
    let _ = reader.read(response, &mut items);
    if !reader.saw_candidate && !items.iter().any(Result::is_err) {
        return Err(LlmError::decode(
            "the reply has no candidates and says nothing of a blocked prompt",
        ));
    }
    let finished = reader.is_finished();
    reader.finish(&mut items);
    if !finished {
        // A whole reply that says nothing of why it ended.
        items.push_back(Ok(StreamEvent::finish(FinishReason::Unspecified)));
    }
    let mut acc = StreamAccumulator::new();
    for item in items {
        acc.push(&item?);
    }
    acc.finish()
}
