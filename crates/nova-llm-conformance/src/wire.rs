//! How a service double answers on the wire: a status, headers and a body written step by
//! step, so that it can also cut, stall or overflow on purpose.

use std::time::Duration;

/// One step of a reply's body.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these bytes (one chunk of a chunked body).
    Bytes(Vec<u8>),
    /// Wait this long before the next step.
    Pause(Duration),
    /// Send nothing more and keep the connection open until the client closes it.
    Stall,
    /// Close the connection at once, without ending the body: a cut.
    Cut,
}

/// A service double's reply to one request.
///
/// ```
/// use nova_llm_conformance::{Step, WireReply};
///
/// let ok = WireReply::json(200, &serde_json::json!({"text": "hi"}));
/// assert_eq!(ok.status, 200);
/// let events = ["data: {\"t\":\"a\"}\n\n", "data: {\"t\":\"b\"}\n\n"];
/// let cut = WireReply::stream("text/event-stream", events).then(Step::Cut);
/// assert_eq!(cut.body.len(), 3);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireReply {
    /// The HTTP status.
    pub status: u16,
    /// Headers besides the framing ones the kit writes (`content-length` or
    /// `transfer-encoding`, `connection: close`).
    pub headers: Vec<(String, String)>,
    /// The body, step by step.
    pub body: Vec<Step>,
    /// Whether the body is sent chunked (a stream), or with its length declared (only
    /// when it is bytes alone).
    pub chunked: bool,
}

impl WireReply {
    /// A JSON body with its length declared.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::whole(status, "application/json", body.to_string().into_bytes())
    }

    /// A body with its length declared.
    pub fn whole(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        WireReply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: vec![Step::Bytes(body.into())],
            chunked: false,
        }
    }

    /// A stream with status 200, each item written as one chunk.
    pub fn stream<I>(content_type: &str, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>>,
    {
        WireReply {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: items.into_iter().map(|b| Step::Bytes(b.into())).collect(),
            chunked: true,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds a step after the body so far (a body that gets one is sent chunked).
    pub fn then(mut self, step: Step) -> Self {
        self.body.push(step);
        self.chunked = true;
        self
    }
}
