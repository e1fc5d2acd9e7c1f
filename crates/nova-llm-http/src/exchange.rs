//! One HTTP exchange: a JSON body posted, the status checked, a body read up to a limit
//! and decoded, or an event stream opened; every error with the key taken out.

use std::time::Duration;

use nova_llm_core::{ApiKey, ChatStream, ErrorKind, LlmError, ResponseMetadata};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Client, Response, Url};

use crate::stream::{Decoder, events};
use crate::transport::{from_body_read, from_reqwest};

/// How a driver posts to its service: the client, the headers every request carries, the
/// timeouts, the response size limit, how the service's error responses read, and the key
/// to take out of every error. Made by [`Transport::endpoint`](crate::Transport::endpoint).
#[derive(Clone)]
pub struct Endpoint {
    /// The HTTP client (shared: cloning it is cheap).
    pub client: Client,
    /// Headers sent with every request (keys marked sensitive).
    pub headers: HeaderMap,
    /// For a whole reply, the limit on all of it; for a stream, on the wait for its head.
    pub request_timeout: Option<Duration>,
    /// The longest silence between two pieces of a stream.
    pub stream_idle_timeout: Option<Duration>,
    /// The largest body read (and the longest event line of a stream).
    pub max_response_bytes: usize,
    /// The error of a response whose status is not a success: status, headers, body (read
    /// up to the limit).
    pub error_of: fn(u16, &HeaderMap, &[u8]) -> LlmError,
    /// Taken out of every error's texts (a service or proxy may echo it).
    pub api_key: Option<ApiKey>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("request_timeout", &self.request_timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("api_key", &self.api_key)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// `err` without the key in any of its texts.
    pub fn redact(&self, err: LlmError) -> LlmError {
        match &self.api_key {
            Some(key) => err.redact(key),
            None => err,
        }
    }

    /// Posts `body` to `url` for a whole reply and decodes it: `metadata_of` reads the
    /// response headers (request id, rate limits), `decode` the body. A decode error
    /// carries the response's request id; every error is redacted.
    ///
    /// # Errors
    /// As [`exchange`](Self::exchange), or `decode`'s error.
    pub async fn call<T>(
        &self,
        url: &Url,
        body: Vec<u8>,
        metadata_of: fn(&HeaderMap) -> ResponseMetadata,
        decode: fn(&[u8], ResponseMetadata) -> Result<T, LlmError>,
    ) -> Result<T, LlmError> {
        let (headers, bytes) = self.exchange(url, body).await.map_err(|e| self.redact(e))?;
        let metadata = metadata_of(&headers);
        let request_id = metadata.request_id.clone();
        decode(&bytes, metadata).map_err(|e| {
            let e = match request_id {
                Some(id) => e.with_request_id(id),
                None => e,
            };
            self.redact(e)
        })
    }

    /// Posts `body` to `url` for an event stream decoded by the decoder `decoder_of` makes
    /// (of the response's metadata, read by `metadata_of`, and the line limit); every error
    /// redacted, the idle timeout applied.
    ///
    /// # Errors
    /// As [`open_stream`](Self::open_stream).
    pub async fn stream<D: Decoder>(
        &self,
        url: &Url,
        body: Vec<u8>,
        metadata_of: fn(&HeaderMap) -> ResponseMetadata,
        decoder_of: fn(ResponseMetadata, usize) -> D,
    ) -> Result<ChatStream, LlmError> {
        let response = self
            .open_stream(url, body)
            .await
            .map_err(|e| self.redact(e))?;
        let decoder = decoder_of(metadata_of(response.headers()), self.max_response_bytes);
        Ok(events(
            response,
            decoder,
            self.stream_idle_timeout,
            self.api_key.clone(),
        ))
    }

    /// A POST of the JSON `body` to `url` with the endpoint's headers.
    fn post(&self, url: &Url, body: Vec<u8>) -> reqwest::RequestBuilder {
        self.client
            .post(url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
    }

    /// Posts `body` for a whole reply, the request timeout covering all of it: the
    /// response's headers and its body.
    ///
    /// # Errors
    /// A transport error, the service's error for a non-success status, or a decode error
    /// for a body over the size limit.
    pub async fn exchange(
        &self,
        url: &Url,
        body: Vec<u8>,
    ) -> Result<(HeaderMap, Vec<u8>), LlmError> {
        let mut request = self.post(url, body);
        if let Some(t) = self.request_timeout {
            request = request.timeout(t);
        }
        let response = request
            .send()
            .await
            .map_err(|e| from_reqwest(e, "the request"))?;
        let mut response = self.success(response).await?;
        let headers = std::mem::take(response.headers_mut());
        let bytes = read_limited(response, self.max_response_bytes).await?;
        Ok((headers, bytes))
    }

    /// Posts `body` for an event stream; the request timeout covers only the wait for the
    /// response's head (the stream's pace is the idle timeout's business).
    ///
    /// # Errors
    /// A transport error or timeout, or the service's error for a non-success status.
    pub async fn open_stream(&self, url: &Url, body: Vec<u8>) -> Result<Response, LlmError> {
        let sent = self
            .post(url, body)
            .header("accept", "text/event-stream")
            .send();
        let response = match self.request_timeout {
            Some(t) => tokio::time::timeout(t, sent).await.map_err(|_| {
                LlmError::new(ErrorKind::Timeout, format!("no response within {t:?}"))
            })?,
            None => sent.await,
        }
        .map_err(|e| from_reqwest(e, "the request"))?;
        self.success(response).await
    }

    /// The response if its status is a success, else the service's error (with the body
    /// read up to the size limit).
    async fn success(&self, response: Response) -> Result<Response, LlmError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let body = read_limited(response, self.max_response_bytes)
            .await
            .unwrap_or_default();
        Err((self.error_of)(status.as_u16(), &headers, &body))
    }
}

/// Reads a body, failing with a decode error past `limit` bytes (before reading anything
/// when the length is announced).
///
/// # Errors
/// A decode error past the limit; a connection error when the body breaks off.
pub async fn read_limited(mut response: Response, limit: usize) -> Result<Vec<u8>, LlmError> {
    let too_big = || {
        LlmError::decode(format!(
            "the response body is larger than the {limit}-byte limit"
        ))
    };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_big());
    }
    let mut body = Vec::with_capacity(
        response
            .content_length()
            .map_or(8 * 1024, |n| n as usize)
            .min(limit),
    );
    while let Some(chunk) = response.chunk().await.map_err(from_body_read)? {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
