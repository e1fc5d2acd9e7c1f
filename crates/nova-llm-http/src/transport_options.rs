//! The transport settings every HTTP driver's builder takes, with their defaults, and the
//! checks of a base URL and of the headers a driver sends.

use std::time::Duration;

use nova_llm_core::{ApiKey, LlmError};
use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::exchange::Endpoint;

/// Timeouts, the response size limit and the client: what every HTTP driver's builder
/// sets the same way. A driver's builder holds one and documents each setter; `endpoint`
/// makes the driver's [`Endpoint`] of it.
#[derive(Debug, Clone)]
pub struct Transport {
    /// Time allowed to connect (not applied to an injected client). Default: 10 s.
    pub connect_timeout: Option<Duration>,
    /// Time allowed for a whole plain call, and for a stream's response head. Default:
    /// 600 s.
    pub request_timeout: Option<Duration>,
    /// Longest silence between two pieces of a stream. Default: 120 s.
    pub stream_idle_timeout: Option<Duration>,
    /// Largest response body read (and stream line). Default: 32 MiB.
    pub max_response_bytes: usize,
    /// A client of the user's own. Default: [`default_client`](crate::default_client).
    pub client: Option<reqwest::Client>,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            connect_timeout: Some(Duration::from_secs(10)),
            request_timeout: Some(Duration::from_secs(600)),
            stream_idle_timeout: Some(Duration::from_secs(120)),
            max_response_bytes: 32 << 20,
            client: None,
        }
    }
}

impl Transport {
    /// The endpoint that sends `headers` with every request, reads error responses with
    /// `error_of`, and takes `api_key` out of every error.
    ///
    /// # Errors
    /// [`ErrorKind::Other`](nova_llm_core::ErrorKind::Other) when the default client cannot
    /// be built.
    pub fn endpoint(
        self,
        headers: HeaderMap,
        api_key: Option<ApiKey>,
        error_of: fn(u16, &HeaderMap, &[u8]) -> LlmError,
    ) -> Result<Endpoint, LlmError> {
        let client = match self.client {
            Some(c) => c,
            None => crate::default_client(self.connect_timeout)?,
        };
        Ok(Endpoint {
            client,
            headers,
            request_timeout: self.request_timeout,
            stream_idle_timeout: self.stream_idle_timeout,
            max_response_bytes: self.max_response_bytes.max(1024),
            error_of,
            api_key,
        })
    }
}

/// `url` (trailing slashes dropped) if it is an `http` or `https` URL.
///
/// # Errors
/// An invalid-request error naming what is wrong.
pub fn base_url(url: &str) -> Result<Url, LlmError> {
    let base = Url::parse(url.trim_end_matches('/')).map_err(|e| {
        LlmError::invalid_request(format!("the base URL `{url}` is not a valid URL")).with_source(e)
    })?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(LlmError::invalid_request(format!(
            "the base URL must be http or https, not `{}`",
            base.scheme()
        )));
    }
    Ok(base)
}

/// `base` with `path` appended to its path.
pub fn join_path(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}/{path}", base.path().trim_end_matches('/')));
    url
}

/// Adds a header, checked.
///
/// # Errors
/// An invalid-request error for a name or value that cannot be sent in HTTP.
pub fn insert_header(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), LlmError> {
    let n = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| LlmError::invalid_request(format!("`{name}` is not a valid header name")))?;
    let v = HeaderValue::from_str(value).map_err(|_| {
        LlmError::invalid_request(format!("the value of header `{name}` is not valid"))
    })?;
    headers.insert(n, v);
    Ok(())
}

/// Adds the header that carries a key, marked sensitive (never shown by the client).
///
/// # Errors
/// An invalid-request error that never shows the value.
pub fn insert_secret(
    headers: &mut HeaderMap,
    name: &'static str,
    value: &str,
) -> Result<(), LlmError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        LlmError::invalid_request(
            "the API key has characters that cannot be sent in an HTTP header",
        )
    })?;
    v.set_sensitive(true);
    headers.insert(HeaderName::from_static(name), v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_headers_and_paths_are_checked() {
        let base = base_url("http://127.0.0.1:8080/proxy/").unwrap();
        assert_eq!(
            join_path(&base, "v1/messages").as_str(),
            "http://127.0.0.1:8080/proxy/v1/messages"
        );
        assert_eq!(
            join_path(&base_url("https://api.example.com").unwrap(), "v1").as_str(),
            "https://api.example.com/v1"
        );
        assert!(base_url("not a url").is_err());
        assert!(base_url("ftp://example.com").is_err());
        let mut h = HeaderMap::new();
        insert_header(&mut h, "x-trace", "1").unwrap();
        assert!(insert_header(&mut h, "bad name", "1").is_err());
        assert!(insert_header(&mut h, "x-a", "bad\nvalue").is_err());
        insert_secret(&mut h, "x-api-key", "sk-0123456789").unwrap();
        assert!(h["x-api-key"].is_sensitive());
        let err = insert_secret(&mut h, "x-api-key", "sk-bad\nkey").unwrap_err();
        assert!(!err.to_string().contains("sk-bad"));
    }
}
