//! An event stream read off the HTTP response: bytes decoded into events as they come,
//! the idle timeout between chunks, the partial output of a failure, and the end.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use nova_llm_core::{ChatStream, ErrorKind, LlmError, StreamAccumulator};
use reqwest::Response;

use crate::decode::{self, ChunkDecoder, Item};
use crate::{Inner, errors};

/// The stream of `response`, decoded; errors are the driver's (its key taken out).
pub(crate) fn events(driver: Arc<Inner>, response: Response) -> ChatStream {
    let metadata = errors::metadata_from_headers(response.headers());
    let state = StreamState {
        decoder: ChunkDecoder::new(metadata, driver.max_response_bytes),
        idle: driver.stream_idle_timeout,
        driver,
        response: Some(response),
        queue: VecDeque::new(),
        acc: StreamAccumulator::new(),
        phase: Phase::Reading,
    };
    // Fused: polling again after the end keeps answering `None`.
    Box::pin(
        futures_util::stream::unfold(state, |mut st| async move {
            let item = st.next().await?.map_err(|e| st.driver.redact(e));
            Some((item, st))
        })
        .fuse(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    /// The input ended (or `[DONE]` arrived): hand out what is queued, then end.
    Draining,
    Done,
}

struct StreamState {
    /// The driver's settings (its key, to take out of errors).
    driver: Arc<Inner>,
    /// Dropping it aborts the HTTP request.
    response: Option<Response>,
    decoder: ChunkDecoder,
    queue: VecDeque<Item>,
    /// What was handed out so far, for the partial output of a failure.
    acc: StreamAccumulator,
    idle: Option<Duration>,
    phase: Phase,
}

impl StreamState {
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
                    return Some(Err(decode::truncated(self.acc.partial())));
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
                    let err = errors::from_body_read(e);
                    return Some(Err(self.acc.interrupt(err)));
                }
            }
        }
    }
}
