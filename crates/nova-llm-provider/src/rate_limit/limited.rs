//! What an admitted call holds, and the stream that holds it until the stream ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use nova_llm_core::{ChatStream, LlmError, StreamEvent};
use tokio::sync::OwnedSemaphorePermit;

use super::backend::{RateLimitBackend, Ticket};
use super::signals::Signals;

/// What an admitted call holds.
#[derive(Debug)]
pub(super) struct Admission {
    pub(super) _permit: Option<OwnedSemaphorePermit>,
    pub(super) ticket: Ticket,
    pub(super) scope: Arc<str>,
}

/// A stream that holds the call's slot until it ends or is dropped. Written by hand (no
/// `unfold`): it is on the path of every event.
pub(super) struct Limited {
    inner: ChatStream,
    /// `None` once the stream ended: the slot is back.
    admission: Option<Admission>,
    backend: Arc<dyn RateLimitBackend>,
    signals: Option<Arc<Signals>>,
    usage: Option<u64>,
    /// The `Finish`, held while the token count is corrected.
    settling: Option<(Settle, Result<StreamEvent, LlmError>)>,
}

type Settle = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Limited {
    /// Wraps a stream: it learns from the headers on its `Start` (with `signals`), and
    /// corrects the token count in `backend` with its usage before handing out its
    /// `Finish`.
    pub(super) fn wrap(
        inner: ChatStream,
        admission: Admission,
        backend: Arc<dyn RateLimitBackend>,
        signals: Option<Arc<Signals>>,
    ) -> ChatStream {
        Box::pin(Limited {
            inner,
            admission: Some(admission),
            backend,
            signals,
            usage: None,
            settling: None,
        })
    }
}

impl Stream for Limited {
    type Item = Result<StreamEvent, LlmError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some((settle, _)) = this.settling.as_mut() {
            if settle.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            // Finished: the slot goes back now.
            this.admission = None;
            return Poll::Ready(this.settling.take().map(|(_, finish)| finish));
        }
        let Some(admission) = this.admission.as_ref() else {
            return Poll::Ready(None);
        };
        let item = match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                this.admission = None;
                return Poll::Ready(None);
            }
            Poll::Ready(Some(item)) => item,
        };
        let scope: &str = &admission.scope;
        match &item {
            Ok(StreamEvent::Start(start)) => {
                if let (Some(sig), Some(snap)) = (&this.signals, &start.metadata.rate_limit) {
                    sig.learn(scope, Some(snap), None);
                }
            }
            Ok(StreamEvent::Usage(u)) => this.usage = Some(u.input_tokens + u.output_tokens),
            Ok(StreamEvent::Finish { .. }) => {
                if let Some(actual) = this.usage {
                    let backend = Arc::clone(&this.backend);
                    let scope = scope.to_owned();
                    let ticket = admission.ticket;
                    // A failed correction leaves the estimate counted: safe.
                    let settle: Settle = Box::pin(async move {
                        let _ = backend.reconcile(&scope, ticket, actual).await;
                    });
                    this.settling = Some((settle, item));
                    return Pin::new(this).poll_next(cx);
                }
                this.admission = None;
            }
            Err(e) => {
                if let Some(sig) = &this.signals {
                    sig.learn(scope, e.rate_limit(), e.retry_after());
                }
                this.admission = None;
            }
            Ok(_) => {}
        }
        Poll::Ready(Some(item))
    }
}
