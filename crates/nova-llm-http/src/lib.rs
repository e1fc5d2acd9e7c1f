//! # nova-llm-http
//!
//! The HTTP plumbing nova-llm's drivers share, and nothing of any service's wire format:
//!
//! - [`SseParser`]: an incremental Server-Sent Events parser, bounded by the largest event
//!   (a hostile server cannot make it grow), tolerant of every line ending and split.
//! - [`Transport`]: the settings every driver's builder takes (timeouts, size limit,
//!   client) with their defaults, and [`base_url`], [`insert_header`], [`insert_secret`]
//!   to check what a builder is given.
//! - [`Endpoint`]: one call, a JSON body posted with the driver's headers, the status
//!   checked (the service's error made by the driver's own `error_of`), a body read up to
//!   a size limit ([`read_limited`]) and decoded; or a stream opened, its timeout on the
//!   head only, and decoded; every error with the driver's key taken out.
//! - [`events`]: the event stream off a response, bytes handed to the driver's
//!   [`Decoder`], with the idle timeout, the stream contract's rules for errors after
//!   content and for a stream cut short, and the key taken out of every error.
//! - [`from_reqwest`], [`from_body_read`]: transport failures as classified errors;
//!   [`retry_after`]; [`one_line`] for a service's message; [`default_client`] (rustls,
//!   no redirects, no retries).
//!
//! A driver is its wire format plus these. The stream below is what a driver hands out,
//! here over a loopback server answering with a canned event stream and a decoder that
//! takes every `data:` line as text:
//!
//! ```
//! use std::collections::VecDeque;
//! use nova_llm_core::{collect_stream, LlmError, PartialOutput, StreamEvent, FinishReason};
//! use nova_llm_http::{events, Decoder, Item, SseEvent, SseParser};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! /// Every `data:` line is text; `data: END` finishes the reply.
//! struct Lines { sse: SseParser, done: bool }
//!
//! impl Decoder for Lines {
//!     fn feed(&mut self, bytes: &[u8], out: &mut VecDeque<Item>) {
//!         let mut events: Vec<SseEvent> = Vec::new();
//!         if let Err(e) = self.sse.push(bytes, &mut events) {
//!             out.push_back(Err(LlmError::decode(e.to_string())));
//!         }
//!         for e in events {
//!             if e.data == "END" {
//!                 self.done = true;
//!                 out.push_back(Ok(StreamEvent::finish(FinishReason::Stop)));
//!             } else {
//!                 out.push_back(Ok(StreamEvent::text(e.data)));
//!             }
//!         }
//!     }
//!     fn end(&mut self, _out: &mut VecDeque<Item>) {}
//!     fn is_complete(&self) -> bool { self.done }
//!     fn is_closed(&self) -> bool { self.done }
//!     fn truncated(&self, partial: PartialOutput) -> LlmError {
//!         LlmError::stream_interrupted("no END", partial)
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}/", listener.local_addr()?);
//! tokio::spawn(async move {
//!     let (mut socket, _) = listener.accept().await?;
//!     let mut request = [0u8; 1024];
//!     let _ = socket.read(&mut request).await?;
//!     socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n\
//!         data: Hel\n\ndata: lo\n\ndata: END\n\n").await?;
//!     Ok::<_, std::io::Error>(())
//! });
//! let response = nova_llm_http::default_client(None)?.get(url).send().await?;
//! let decoder = Lines { sse: SseParser::new(64 * 1024), done: false };
//! let reply = collect_stream(events(response, decoder, None, None)).await?;
//! assert_eq!(reply.text(), "Hello");
//! # Ok(())
//! # }
//! ```
#![doc(test(attr(deny(warnings))))]

mod client;
mod exchange;
mod message;
mod retry_after;
mod sse;
mod stream;
mod transport;
mod transport_options;

pub use client::default_client;
pub use exchange::{Endpoint, read_limited};
pub use message::{MAX_MESSAGE_CHARS, one_line};
pub use retry_after::{header, retry_after};
pub use sse::{LineTooLong, SseEvent, SseParser};
pub use stream::{Decoder, Item, events, first_error_fails_the_call};
pub use transport::{from_body_read, from_reqwest};
pub use transport_options::{Transport, base_url, insert_header, insert_secret, join_path};
