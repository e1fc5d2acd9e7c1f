//! An event stream read off an HTTP response: bytes handed to the driver's decoder as they
//! come, the idle timeout between chunks, the stream contract's rules for errors and for a
//! stream cut short, and the key taken out of every error.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use nova_llm_core::{
    ApiKey, ChatStream, ErrorKind, LlmError, PartialOutput, StreamAccumulator, StreamEvent,
};
use reqwest::Response;

use crate::transport::from_body_read;

/// One decoded item of a stream.
pub type Item = Result<StreamEvent, LlmError>;

/// What a driver's stream decoder does: bytes in, events out, no I/O. It follows the
/// stream contract for what it produces; [`events`] drives it and handles the end.
pub trait Decoder: Send + 'static {
    /// Decodes `bytes`, appending items to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Item>);
    /// The input ended: appends what is still due (the finish of a complete stream).
    fn end(&mut self, out: &mut VecDeque<Item>);
    /// Whether the service marked its reply complete.
    fn is_complete(&self) -> bool;
    /// Whether the decoder stopped for good (the end marker, or an error produced).
    fn is_closed(&self) -> bool;
    /// The error of a stream that ended before the service marked it complete, carrying
    /// what arrived.
    fn truncated(&self, partial: PartialOutput) -> LlmError;
}

/// The events of `response`, decoded by `decoder`; nothing for `idle` (when set) is a
/// timeout; every error has `key` taken out of its texts. Fused: after the end it keeps
/// answering `None`. Dropping the stream aborts the HTTP request.
pub fn events<D: Decoder>(
    response: Response,
    decoder: D,
    idle: Option<Duration>,
    key: Option<ApiKey>,
) -> ChatStream {
    let state = State {
        decoder,
        idle,
        key,
        response: Some(response),
        queue: VecDeque::new(),
        acc: StreamAccumulator::new(),
        phase: Phase::Reading,
    };
    Box::pin(
        futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next().await?.map_err(|e| match &st.key {
                Some(key) => e.redact(key),
                None => e,
            });
            Some((item, st))
        })
        .fuse(),
    )
}

/// `stream`, its first item awaited: an error there fails the call itself, as the stream
/// contract wants of an error before anything was produced. For a service that reports
/// some failures inside a successful response (Gemini blocks a prompt with HTTP 200 and a
/// first event saying so). The first event, when it is one, is handed out first.
///
/// # Errors
/// The stream's first item, when it is an error.
pub async fn first_error_fails_the_call(mut stream: ChatStream) -> Result<ChatStream, LlmError> {
    match stream.next().await {
        Some(Err(e)) => Err(e),
        Some(Ok(first)) => Ok(Box::pin(
            futures_util::stream::iter([Ok(first)]).chain(stream),
        )),
        None => Ok(stream),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    /// The input ended (or the decoder closed): hand out what is queued, then end.
    Draining,
    Done,
}

struct State<D> {
    decoder: D,
    idle: Option<Duration>,
    /// Taken out of every error's texts (a service or proxy may echo it).
    key: Option<ApiKey>,
    /// Dropping it aborts the HTTP request.
    response: Option<Response>,
    queue: VecDeque<Item>,
    /// What was handed out so far, for the partial output of a failure.
    acc: StreamAccumulator,
    phase: Phase,
}

impl<D: Decoder> State<D> {
    fn close(&mut self) {
        self.phase = Phase::Done;
        self.queue.clear();
        self.response = None;
    }

    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(match item {
                    Ok(ev) => {
                        self.acc.push(&ev);
                        Ok(ev)
                    }
                    Err(e) => {
                        self.close();
                        Err(self.acc.interrupt(e))
                    }
                });
            }
            match self.phase {
                Phase::Done => return None,
                Phase::Draining => {
                    self.close();
                    if self.decoder.is_complete() {
                        return None;
                    }
                    return Some(Err(self.decoder.truncated(self.acc.partial())));
                }
                Phase::Reading => {}
            }
            if self.decoder.is_closed() {
                self.phase = Phase::Draining;
                continue;
            }
            let Some(response) = self.response.as_mut() else {
                self.phase = Phase::Draining;
                continue;
            };
            let chunk = match self.idle {
                Some(idle) => match tokio::time::timeout(idle, response.chunk()).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.close();
                        let err = LlmError::new(
                            ErrorKind::Timeout,
                            format!("the stream sent nothing for {idle:?} (idle timeout)"),
                        );
                        return Some(Err(self.acc.interrupt(err)));
                    }
                },
                None => response.chunk().await,
            };
            match chunk {
                Ok(Some(bytes)) => self.decoder.feed(&bytes, &mut self.queue),
                Ok(None) => {
                    self.decoder.end(&mut self.queue);
                    self.phase = Phase::Draining;
                }
                Err(e) => {
                    self.close();
                    let err = from_body_read(e);
                    return Some(Err(self.acc.interrupt(err)));
                }
            }
        }
    }
}
