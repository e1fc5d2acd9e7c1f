//! API keys: never shown, and taken out of whatever a service sends back.

use std::fmt;

/// An API key. It never appears in `Debug` output, and drivers take it out of every error
/// they return ([`LlmError::redact`](crate::LlmError::redact)), even when a service or a
/// proxy echoes it back in an error body.
///
/// ```
/// use nova_llm_core::{ApiKey, ErrorKind, LlmError};
///
/// let key = ApiKey::new("sk-live-0123456789");
/// assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
/// let echoed = LlmError::new(ErrorKind::Authentication, "bad key sk-live-0123456789");
/// assert_eq!(echoed.redact(&key).message(), "bad key <redacted>");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// What a redacted key is replaced with.
pub(crate) const REDACTED: &str = "<redacted>";

/// Keys shorter than this are not searched for in texts: they cannot be told apart from
/// ordinary words (`EMPTY`, `ollama`), and no service issues keys that short.
const MIN_REDACTED_LEN: usize = 8;

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for code that must hand it on (an HTTP header). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `text` holds the key (always `false` for a key under 8 characters).
    pub fn appears_in(&self, text: &str) -> bool {
        self.0.len() >= MIN_REDACTED_LEN && text.contains(&self.0)
    }

    /// `text` with every occurrence of the key replaced by `<redacted>`.
    pub fn redact_in(&self, text: &str) -> String {
        if self.appears_in(text) {
            text.replace(&self.0, REDACTED)
        } else {
            text.to_owned()
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl From<String> for ApiKey {
    fn from(s: String) -> Self {
        ApiKey(s)
    }
}

impl From<&str> for ApiKey {
    fn from(s: &str) -> Self {
        ApiKey(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::ApiKey;

    #[test]
    fn a_key_is_found_and_replaced_only_when_long_enough_to_be_one() {
        let key = ApiKey::new("sk-0123456789");
        assert!(key.appears_in("Bearer sk-0123456789 rejected"));
        assert_eq!(
            key.redact_in("sk-0123456789 and sk-0123456789"),
            "<redacted> and <redacted>"
        );
        assert_eq!(key.redact_in("nothing here"), "nothing here");
        let short = ApiKey::new("EMPTY");
        assert!(!short.appears_in("EMPTY"));
        assert_eq!(short.redact_in("EMPTY"), "EMPTY");
        assert_eq!(format!("{short:?}"), "ApiKey(<redacted>)");
        assert_eq!(ApiKey::from("abc").expose(), "abc");
        assert_eq!(ApiKey::from(String::from("abc")), ApiKey::new("abc"));
    }
}
