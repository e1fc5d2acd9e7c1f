//! The HTTP client a driver makes when it is given none.

use std::sync::Arc;
use std::time::Duration;

use nova_llm_core::{ErrorKind, LlmError};

/// A reqwest client with rustls (the ring provider) and the Mozilla root certificates,
/// HTTP/1.1, that follows no redirects and retries nothing: a 301/302 would resend a POST
/// as a GET without its body, so a redirect is reported as an error with its status; a
/// driver makes one attempt, retrying is the provider's job.
///
/// # Errors
/// An [`ErrorKind::Other`] error if TLS or the client cannot be set up.
pub fn default_client(connect_timeout: Option<Duration>) -> Result<reqwest::Client, LlmError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            LlmError::new(ErrorKind::Other, "could not set up TLS protocol versions").with_source(e)
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never());
    if let Some(t) = connect_timeout {
        builder = builder.connect_timeout(t);
    }
    builder.build().map_err(|e| {
        LlmError::new(ErrorKind::Other, "could not build the HTTP client").with_source(e)
    })
}
