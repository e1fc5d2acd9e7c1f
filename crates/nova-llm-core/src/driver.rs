//! The [`LlmDriver`] trait: one required method, everything else built on it.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dialog::Dialog;
use crate::error::LlmError;
use crate::model_json::parse_json_reply;
use crate::request::{ChatRequest, CompletionRequest};
use crate::response::{ChatResponse, CompletionResponse};
use crate::stream::{ChatStream, stream_from_events};

/// What a driver does natively, so that layers can route without trial and error.
///
/// A capability left `false` still works through the trait's default methods (a stream made
/// from a whole reply, a completion made from a chat); `true` means the service does it
/// itself.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Capabilities {
    /// Token-by-token streaming.
    pub streaming: bool,
    /// Tool (function) calling.
    pub tools: bool,
    /// JSON-schema constrained output.
    pub structured_output: bool,
    /// Image inputs.
    pub images: bool,
    /// A native plain-completion endpoint.
    pub completions: bool,
}

impl Capabilities {
    /// Nothing native.
    pub fn none() -> Self {
        Self::default()
    }

    /// Everything native.
    pub fn all() -> Self {
        Capabilities {
            streaming: true,
            tools: true,
            structured_output: true,
            images: true,
            completions: true,
        }
    }

    /// Sets native streaming. Default: `false`.
    pub fn with_streaming(mut self, yes: bool) -> Self {
        self.streaming = yes;
        self
    }

    /// Sets native tool calling. Default: `false`.
    pub fn with_tools(mut self, yes: bool) -> Self {
        self.tools = yes;
        self
    }

    /// Sets native structured output. Default: `false`.
    pub fn with_structured_output(mut self, yes: bool) -> Self {
        self.structured_output = yes;
        self
    }

    /// Sets image input. Default: `false`.
    pub fn with_images(mut self, yes: bool) -> Self {
        self.images = yes;
        self
    }

    /// Sets a native completion endpoint. Default: `false`.
    pub fn with_completions(mut self, yes: bool) -> Self {
        self.completions = yes;
        self
    }
}

/// The reply to a structured-output call: the parsed JSON and the whole response (usage,
/// model, request id).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct StructuredResponse {
    /// The reply parsed as JSON.
    pub value: Value,
    /// The reply as the service sent it.
    pub response: ChatResponse,
}

/// Talks to one LLM service.
///
/// Implement [`chat`](LlmDriver::chat); every other method has a default built on it, which
/// a driver overrides when its service has a native version (streaming, the legacy
/// completion endpoint). A driver only talks to its service: logging, metrics, retries and
/// caching belong to the layers that wrap it.
///
/// Use drivers as `Arc<dyn LlmDriver>`; `&T`, `Box<T>` and `Arc<T>` forward to `T`.
///
/// See the crate documentation for a complete driver in a few lines.
#[async_trait]
pub trait LlmDriver: Send + Sync {
    /// A short name for the driver (`openai`, `mock`, ...), used in events and metrics.
    ///
    /// Default: the type name.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// What the service does natively. Default: nothing.
    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
    }

    /// Sends the dialog and returns the assistant's reply with its usage.
    ///
    /// # Errors
    /// A classified [`LlmError`]: invalid parameters, HTTP errors, timeouts, malformed replies.
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError>;

    /// Streams the reply as typed events.
    ///
    /// An error before the stream produced anything fails this call; see
    /// [the stream contract](crate::stream). Default: runs [`chat`](LlmDriver::chat) and
    /// replays the whole reply as events.
    ///
    /// # Errors
    /// Whatever [`chat`](LlmDriver::chat) would return before any output.
    async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
        let response = self.chat(request).await?;
        Ok(stream_from_events(response.to_events()))
    }

    /// Completes a plain prompt. Default: a chat with one user row.
    ///
    /// # Errors
    /// As for [`chat`](LlmDriver::chat).
    async fn complete(&self, request: CompletionRequest) -> Result<CompletionResponse, LlmError> {
        let response = self.chat(request.to_chat()).await?;
        Ok(CompletionResponse::from(response))
    }

    /// Streams a plain completion as text deltas. Default: a streamed chat with one user row.
    ///
    /// # Errors
    /// As for [`chat_stream`](LlmDriver::chat_stream).
    async fn complete_stream(&self, request: CompletionRequest) -> Result<ChatStream, LlmError> {
        self.chat_stream(request.to_chat()).await
    }

    /// Sends `text` as the only user row and returns the reply's text.
    ///
    /// # Errors
    /// As for [`chat`](LlmDriver::chat).
    async fn prompt(&self, text: &str) -> Result<String, LlmError> {
        let response = self
            .chat(ChatRequest::new(Dialog::new().user(text)))
            .await?;
        Ok(response.text())
    }

    /// Asks for JSON (the request's response format must be JSON object or JSON Schema) and
    /// returns it parsed, with the whole response.
    ///
    /// A reply wrapped in a Markdown code fence is accepted. Default: [`chat`](LlmDriver::chat)
    /// then [`parse_json_reply`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) when the response
    /// format is text; [`ErrorKind::Decode`](crate::ErrorKind::Decode) when the reply is not
    /// valid JSON (also when it was cut off at the token limit);
    /// [`ErrorKind::ContentFiltered`](crate::ErrorKind::ContentFiltered) when the service
    /// withheld the reply; and anything [`chat`](LlmDriver::chat) returns.
    async fn structured(&self, request: ChatRequest) -> Result<StructuredResponse, LlmError> {
        if !request.response_format.is_json() {
            return Err(LlmError::invalid_request(
                "structured output needs a JSON response format (json object or json schema)",
            )
            .with_param("response_format"));
        }
        let response = self.chat(request).await?;
        let value = parse_json_reply(&response)?;
        Ok(StructuredResponse { value, response })
    }
}

/// Typed helpers for every driver (blanket-implemented; not object-safe, so kept out of
/// [`LlmDriver`]).
pub trait LlmDriverExt: LlmDriver {
    /// A structured call deserialized into `T`.
    ///
    /// ```
    /// # use nova_llm_core::*;
    /// # use async_trait::async_trait;
    /// # struct Fixed;
    /// # #[async_trait]
    /// # impl LlmDriver for Fixed {
    /// #     async fn chat(&self, _: ChatRequest) -> Result<ChatResponse, LlmError> {
    /// #         Ok(ChatResponse::from_text(r#"{"city": "Paris", "celsius": 21}"#))
    /// #     }
    /// # }
    /// # futures_util::FutureExt::now_or_never(async {
    /// #[derive(serde::Deserialize)]
    /// struct Weather { city: String, celsius: i32 }
    ///
    /// let req = ChatRequest::new(Dialog::new().user("Weather in Paris?"))
    ///     .json_schema("weather", serde_json::json!({"type": "object"}));
    /// let w: Weather = Fixed.structured_as(req).await?;
    /// assert_eq!((w.city.as_str(), w.celsius), ("Paris", 21));
    /// # Ok::<(), LlmError>(())
    /// # }).unwrap().unwrap();
    /// ```
    ///
    /// # Errors
    /// As for [`LlmDriver::structured`], and [`ErrorKind::Decode`](crate::ErrorKind::Decode)
    /// when the JSON does not fit `T`.
    fn structured_as<T: DeserializeOwned>(
        &self,
        request: ChatRequest,
    ) -> impl Future<Output = Result<T, LlmError>> + Send {
        async move {
            let reply = self.structured(request).await?;
            serde_json::from_value(reply.value).map_err(|e| {
                LlmError::decode(format!(
                    "the JSON reply does not match `{}`",
                    std::any::type_name::<T>()
                ))
                .with_source(e)
            })
        }
    }
}

impl<D: LlmDriver + ?Sized> LlmDriverExt for D {}

macro_rules! forward_driver {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: LlmDriver + ?Sized> LlmDriver for $ty {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
                (**self).chat(request).await
            }
            async fn chat_stream(&self, request: ChatRequest) -> Result<ChatStream, LlmError> {
                (**self).chat_stream(request).await
            }
            async fn complete(
                &self,
                request: CompletionRequest,
            ) -> Result<CompletionResponse, LlmError> {
                (**self).complete(request).await
            }
            async fn complete_stream(
                &self,
                request: CompletionRequest,
            ) -> Result<ChatStream, LlmError> {
                (**self).complete_stream(request).await
            }
            async fn prompt(&self, text: &str) -> Result<String, LlmError> {
                (**self).prompt(text).await
            }
            async fn structured(
                &self,
                request: ChatRequest,
            ) -> Result<StructuredResponse, LlmError> {
                (**self).structured(request).await
            }
        }
    )*};
}

forward_driver!(&T, Box<T>, Arc<T>);

// Compile-time guard: drivers must be shareable across tasks as `Arc<dyn LlmDriver>`.
const _: fn() = || {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Arc<dyn LlmDriver>>();
    shareable::<Box<dyn LlmDriver>>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulate::collect_stream;
    use crate::response::Usage;
    use crate::stream::{StreamEvent, next_event};
    use crate::{ErrorKind, FinishReason, Message, ToolCall};
    use std::sync::Mutex;

    /// Answers with a fixed reply and records the requests it got.
    struct Fixed {
        reply: ChatResponse,
        seen: Mutex<Vec<ChatRequest>>,
    }

    impl Fixed {
        fn new(reply: ChatResponse) -> Self {
            Fixed {
                reply,
                seen: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl LlmDriver for Fixed {
        async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
            request.validate()?;
            self.seen.lock().unwrap().push(request);
            Ok(self.reply.clone())
        }
    }

    fn run<F: Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("the test drivers never wait")
    }

    #[test]
    fn defaults_are_built_on_chat() {
        let d = Fixed::new(ChatResponse::from_text("hi there").with_usage(Usage::new(2, 2)));
        assert_eq!(run(d.prompt("hello")).unwrap(), "hi there");
        assert_eq!(
            d.seen.lock().unwrap()[0].dialog.messages()[0].text(),
            "hello"
        );

        let c = run(d.complete(CompletionRequest::new("once"))).unwrap();
        assert_eq!(c.text, "hi there");
        assert_eq!(c.usage.total_tokens, 4);

        let stream = run(d.chat_stream(ChatRequest::new(Dialog::new().user("x")))).unwrap();
        let streamed = run(collect_stream(stream)).unwrap();
        assert_eq!(streamed, d.reply);

        let mut stream = run(d.complete_stream(CompletionRequest::new("y"))).unwrap();
        let mut text = String::new();
        while let Some(ev) = run(next_event(&mut stream)) {
            if let StreamEvent::TextDelta { text: t } = ev.unwrap() {
                text.push_str(&t);
            }
        }
        assert_eq!(text, "hi there");
    }

    #[test]
    fn errors_before_output_fail_the_stream_call_itself() {
        let d = Fixed::new(ChatResponse::from_text("x"));
        let err = run(d.chat_stream(ChatRequest::new(Dialog::new())))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
    }

    #[test]
    fn structured_parses_json_and_accepts_code_fences() {
        let req =
            || ChatRequest::new(Dialog::new().user("q")).json_schema("s", serde_json::json!({}));
        let d = Fixed::new(ChatResponse::from_text("```json\n{\"a\": [1, 2]}\n```"));
        let r = run(d.structured(req())).unwrap();
        assert_eq!(r.value, serde_json::json!({"a": [1, 2]}));
        assert_eq!(r.response.text(), "```json\n{\"a\": [1, 2]}\n```");

        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct A {
            a: Vec<u8>,
        }
        assert_eq!(
            run(d.structured_as::<A>(req())).unwrap(),
            A { a: vec![1, 2] }
        );

        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)] // only the failure to deserialize is tested
        struct B {
            b: String,
        }
        let err = run(d.structured_as::<B>(req())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("does not match"));
    }

    #[test]
    fn invalid_or_truncated_json_is_a_decode_error_not_a_panic() {
        let req = ChatRequest::new(Dialog::new().user("q"))
            .response_format(crate::ResponseFormat::JsonObject);
        let d = Fixed::new(ChatResponse::from_text("{\"a\": 1, \"b\": \"unfinish"));
        let err = run(d.structured(req.clone())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        assert!(std::error::Error::source(&err).is_some());

        let cut = Fixed::new(
            ChatResponse::from_text("{\"a\": ").with_finish_reason(FinishReason::Length),
        );
        let err = run(cut.structured(req.clone())).unwrap_err();
        assert!(err.to_string().contains("token limit"), "{err}");

        let filtered =
            Fixed::new(ChatResponse::from_text("").with_finish_reason(FinishReason::ContentFilter));
        let err = run(filtered.structured(req)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ContentFiltered);
    }

    #[test]
    fn structured_needs_a_json_response_format() {
        let d = Fixed::new(ChatResponse::from_text("{}"));
        let err = run(d.structured(ChatRequest::new(Dialog::new().user("q")))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidRequest);
        assert!(d.seen.lock().unwrap().is_empty(), "nothing may be sent");
    }

    #[test]
    fn tool_calls_come_back_on_the_reply() {
        let d = Fixed::new(ChatResponse::from_tool_calls([ToolCall::new(
            "c1",
            "lookup",
            r#"{"q": "rust"}"#,
        )]));
        let req = ChatRequest::new(Dialog::new().user("search")).tool(crate::Tool::new(
            "lookup",
            serde_json::json!({"type": "object"}),
        ));
        let r = run(d.chat(req)).unwrap();
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.tool_calls()[0].arguments_json().unwrap()["q"], "rust");
        // The reply goes back into the dialog, followed by the tool result.
        let next = Dialog::new()
            .user("search")
            .message(r.into_message())
            .message(Message::tool_result("c1", "found"));
        assert_eq!(next.len(), 3);
    }

    #[test]
    fn pointers_forward_to_the_driver() {
        let d = Arc::new(Fixed::new(ChatResponse::from_text("a")));
        let as_dyn: Arc<dyn LlmDriver> = d.clone();
        let boxed: Box<dyn LlmDriver> = Box::new(Fixed::new(ChatResponse::from_text("b")));
        assert_eq!(run(as_dyn.prompt("q")).unwrap(), "a");
        let by_ref: &dyn LlmDriver = &*as_dyn;
        assert_eq!(
            run(<&dyn LlmDriver as LlmDriver>::prompt(&by_ref, "q")).unwrap(),
            "a"
        );
        assert_eq!(run(boxed.prompt("q")).unwrap(), "b");
        assert_eq!(d.seen.lock().unwrap().len(), 2);
        assert!(as_dyn.name().ends_with("Fixed"));
        assert_eq!(as_dyn.capabilities(), Capabilities::none());
        assert!(Capabilities::all().with_images(false).streaming);
        let each = Capabilities::none()
            .with_streaming(true)
            .with_tools(true)
            .with_structured_output(true)
            .with_images(true)
            .with_completions(true);
        assert_eq!(each, Capabilities::all());
    }
}
