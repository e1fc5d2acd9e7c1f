//! Stream helpers shared by the layers that may try again (retry, fallback): wait for the
//! first content event, then commit to the stream.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use nova_llm_core::{ChatStream, ErrorKind, LlmError, StreamAccumulator, StreamEvent};

/// Reads `stream` until its first content event (or its `Finish`, for an empty reply).
///
/// `Ok` returns a stream that replays what was read and then goes on; from then on the
/// call is committed: a later error item becomes a `StreamInterrupted` error carrying the
/// partial output (text, tool calls, usage), the original error as its source. `Err` means
/// nothing was shown yet, so the caller may try again or elsewhere: an error item, a stream
/// that ended early, or no content within `first_chunk` (a timeout).
pub(crate) async fn until_first_content(
    mut stream: ChatStream,
    first_chunk: Option<Duration>,
) -> Result<ChatStream, LlmError> {
    let mut buffered = VecDeque::new();
    let deadline = first_chunk.map(|d| tokio::time::Instant::now() + d);
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, stream.next()).await {
                Ok(item) => item,
                Err(_) => {
                    return Err(LlmError::new(
                        ErrorKind::Timeout,
                        format!(
                            "no content within {:?} (time to first chunk)",
                            first_chunk.unwrap_or_default()
                        ),
                    ));
                }
            },
            None => stream.next().await,
        };
        match next {
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
                Err(e) => {
                    let interrupted = if e.kind() == ErrorKind::StreamInterrupted {
                        st.acc.annotate(e)
                    } else {
                        LlmError::stream_interrupted(
                            format!("the stream failed after it started: {e}"),
                            st.acc.partial(),
                        )
                        .with_source(e)
                    };
                    Some((Err(interrupted), None))
                }
            }
        },
    ))
}
