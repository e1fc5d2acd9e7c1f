//! One attempt of a call, for the layers that may try again (retry, fallback): made as the
//! caller made the call, and, for a stream, committed at its first content event.

use std::collections::VecDeque;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use nova_llm_core::{
    ChatRequest, ChatResponse, ChatStream, ErrorKind, LlmError, StreamAccumulator, StreamEvent,
    collect_stream, stream_from_events,
};

use super::middleware::Next;
use crate::call::CallContext;

/// How the caller made the call, so each attempt is made the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// A plain call: each attempt is a whole reply.
    Plain,
    /// A streamed call: each attempt is a stream, read until its first content.
    Stream,
}

impl Attempt {
    /// Starts one attempt through `next` (the request is handed on at once, so the
    /// attempt's future does not carry it); await its [`outcome`](Started::outcome).
    pub(crate) fn start<'b>(
        self,
        request: ChatRequest,
        cx: &'b mut CallContext,
        next: Next<'b>,
    ) -> Started<'b> {
        match self {
            Attempt::Plain => Started::Plain(next.chat(request, cx)),
            Attempt::Stream => Started::Stream(next.chat_stream(request, cx)),
        }
    }
}

/// An attempt under way.
pub(crate) enum Started<'b> {
    Plain(BoxFuture<'b, Result<ChatResponse, LlmError>>),
    Stream(BoxFuture<'b, Result<ChatStream, LlmError>>),
}

impl Started<'_> {
    /// The attempt's outcome. `Err` means nothing was shown yet: the layer may try again
    /// or elsewhere.
    pub(crate) async fn outcome(self) -> Result<Outcome, LlmError> {
        match self {
            Started::Plain(reply) => Ok(Outcome::Reply(Box::new(reply.await?))),
            Started::Stream(stream) => until_first_content(stream.await?)
                .await
                .map(Outcome::Stream),
        }
    }
}

/// What an attempt of a layer that may try again gave: a reply, or a stream committed at
/// its first content. Either answers a plain call or a streamed one.
pub(crate) enum Outcome {
    Reply(Box<ChatResponse>),
    Stream(ChatStream),
}

impl Outcome {
    /// The reply of a plain call (a stream read to its end).
    pub(crate) async fn into_reply(self) -> Result<ChatResponse, LlmError> {
        match self {
            Outcome::Reply(r) => Ok(*r),
            Outcome::Stream(s) => collect_stream(s).await,
        }
    }

    /// The stream of a streamed call (a reply replayed as events).
    pub(crate) fn into_stream(self) -> ChatStream {
        match self {
            Outcome::Stream(s) => s,
            Outcome::Reply(r) => stream_from_events(r.to_events()),
        }
    }
}

/// Reads `stream` until its first content event (or its `Finish`, for an empty reply).
///
/// `Ok` returns a stream that replays what was read and then goes on; from then on the
/// call is committed: a later error item becomes a `StreamInterrupted` error carrying the
/// partial output (text, tool calls, usage), the original error as its source. `Err` means
/// nothing was shown yet, so the caller may try again or elsewhere: an error item, or a
/// stream that ended early. (A limit on the wait is the caller's: the timeout layer puts
/// one around this.)
pub(crate) async fn until_first_content(mut stream: ChatStream) -> Result<ChatStream, LlmError> {
    let mut buffered = VecDeque::new();
    loop {
        match stream.next().await {
            Some(Ok(event)) => {
                let commit = event.is_content() || matches!(event, StreamEvent::Finish { .. });
                buffered.push_back(event);
                if commit {
                    break;
                }
            }
            Some(Err(e)) => return Err(e),
            None => {
                return Err(LlmError::new(
                    ErrorKind::StreamInterrupted,
                    "the stream ended before any content",
                ));
            }
        }
    }
    Ok(committed(buffered, stream))
}

struct Committed {
    buffered: VecDeque<StreamEvent>,
    rest: ChatStream,
    acc: StreamAccumulator,
}

/// The buffered events, then the rest; errors become `StreamInterrupted` with the partial.
fn committed(buffered: VecDeque<StreamEvent>, rest: ChatStream) -> ChatStream {
    let state = Committed {
        buffered,
        rest,
        acc: StreamAccumulator::new(),
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let mut st = state?;
            let item = match st.buffered.pop_front() {
                Some(e) => Ok(e),
                None => st.rest.next().await?,
            };
            match item {
                Ok(event) => {
                    st.acc.push(&event);
                    Some((Ok(event), Some(st)))
                }
                // Committed at its first content: by the stream contract, a later error is
                // `StreamInterrupted` with the partial output (the driver's own already is).
                Err(e) => Some((Err(st.acc.interrupt(e)), None)),
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use nova_llm_core::{ChatResponse, Usage, collect_stream, stream_from_events};

    use super::Outcome;

    #[tokio::test]
    async fn either_outcome_answers_a_plain_call_and_a_stream_alike() {
        let reply = ChatResponse::from_text("two words").with_usage(Usage::new(3, 2));
        let as_stream = || Outcome::Stream(stream_from_events(reply.to_events()));
        let as_reply = || Outcome::Reply(Box::new(reply.clone()));
        assert_eq!(as_reply().into_reply().await.unwrap(), reply);
        assert_eq!(as_stream().into_reply().await.unwrap(), reply);
        for outcome in [as_reply(), as_stream()] {
            assert_eq!(collect_stream(outcome.into_stream()).await.unwrap(), reply);
        }
    }
}
