//! Which call: the trait method it came through and its provider-assigned id.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which trait method a call came through.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `chat`, `prompt` or `structured`.
    Chat,
    /// `chat_stream`.
    ChatStream,
    /// `complete` (the plain-prompt path).
    Completion,
    /// `complete_stream`.
    CompletionStream,
}

impl Operation {
    /// Whether the caller receives a stream of events.
    pub fn is_stream(self) -> bool {
        matches!(self, Operation::ChatStream | Operation::CompletionStream)
    }

    /// The OpenTelemetry GenAI operation name: `chat` or `text_completion`.
    pub fn gen_ai_name(self) -> &'static str {
        match self {
            Operation::Chat | Operation::ChatStream => "chat",
            Operation::Completion | Operation::CompletionStream => "text_completion",
        }
    }
}

/// A provider-assigned id, unique within the process, carried by every event of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl RequestId {
    /// The next id of this process.
    #[inline]
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        RequestId(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nova-{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{Operation, RequestId};

    #[test]
    fn operations_say_whether_they_stream() {
        assert!(Operation::ChatStream.is_stream() && Operation::CompletionStream.is_stream());
        assert!(!Operation::Chat.is_stream() && !Operation::Completion.is_stream());
    }

    #[test]
    fn request_ids_are_new_numbers_shown_with_a_prefix() {
        let (a, b) = (RequestId::next(), RequestId::next());
        assert!(b.get() > a.get());
        assert_eq!(a.to_string(), format!("nova-{}", a.get()));
    }
}
