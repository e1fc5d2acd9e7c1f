//! One HTTP exchange: a JSON body posted, the status checked, a body read up to a limit.

use std::time::Duration;

use nova_llm_core::{ErrorKind, LlmError};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Client, Response, Url};

use crate::transport::{from_body_read, from_reqwest};

/// How a driver posts to its service: the client, the headers every request carries, the
/// request timeout, the response size limit, and how the service's error responses read.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The HTTP client (shared: cloning it is cheap).
    pub client: Client,
    /// Headers sent with every request (keys marked sensitive).
    pub headers: HeaderMap,
    /// For a whole reply, the limit on all of it; for a stream, on the wait for its head.
    pub request_timeout: Option<Duration>,
    /// The largest body read (and the longest event line of a stream).
    pub max_response_bytes: usize,
    /// The error of a response whose status is not a success: status, headers, body (read
    /// up to the limit).
    pub error_of: fn(u16, &HeaderMap, &[u8]) -> LlmError,
}

impl Endpoint {
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
