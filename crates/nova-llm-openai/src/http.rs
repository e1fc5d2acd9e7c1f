//! The HTTP exchange: a JSON body posted with the driver's headers, a success handed back,
//! anything else read (up to the size limit) into a classified error.

use nova_llm_core::{ErrorKind, LlmError, ResponseMetadata};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{RequestBuilder, Response, Url};

use crate::{Inner, errors};

impl Inner {
    /// A POST of `body` to `url` with the driver's headers.
    fn post(&self, url: &Url, body: Vec<u8>) -> RequestBuilder {
        self.client
            .post(url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
    }

    /// Posts `body` for a whole reply, the request timeout covering all of it, and decodes
    /// the body with `decode` (a decode error carries the response's request id).
    pub(crate) async fn exchange<T>(
        &self,
        url: &Url,
        body: Vec<u8>,
        decode: fn(&[u8], ResponseMetadata) -> Result<T, LlmError>,
    ) -> Result<T, LlmError> {
        let mut request = self.post(url, body);
        if let Some(t) = self.request_timeout {
            request = request.timeout(t);
        }
        let response = request
            .send()
            .await
            .map_err(|e| errors::from_reqwest(e, "the request"))?;
        let response = self.success(response).await?;
        let metadata = errors::metadata_from_headers(response.headers());
        let request_id = metadata.request_id.clone();
        let bytes = read_limited(response, self.max_response_bytes).await?;
        decode(&bytes, metadata).map_err(|e| match request_id {
            Some(id) => e.with_request_id(id),
            None => e,
        })
    }

    /// Posts `body` for an event stream; the request timeout covers only the wait for the
    /// response's head (the stream's pace is the idle timeout's business).
    pub(crate) async fn open_stream(&self, url: &Url, body: Vec<u8>) -> Result<Response, LlmError> {
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
        .map_err(|e| errors::from_reqwest(e, "the request"))?;
        self.success(response).await
    }

    /// The response if its status is a success, else the classified error (with the body
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
        Err(errors::from_status(status.as_u16(), &headers, &body))
    }
}

/// Reads a body, failing with a decode error past `limit` bytes.
pub(crate) async fn read_limited(
    mut response: Response,
    limit: usize,
) -> Result<Vec<u8>, LlmError> {
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
    while let Some(chunk) = response.chunk().await.map_err(errors::from_body_read)? {
        if body.len() + chunk.len() > limit {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
