//! The sampling and length parameters most services accept, and the setters every
//! request type shares.

use serde::{Deserialize, Serialize};

use crate::error::LlmError;

/// The sampling and length parameters most services accept.
///
/// Every field defaults to `None` (or empty): the service's own default applies, and a driver
/// omits the field from the wire request instead of sending `null`. Decimal parameters are
/// `f64`, as JSON numbers are, so `0.2` reaches the wire as `0.2` (an `f32` widened on the
/// way would be sent as `0.20000000298023224`).
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelParams {
    /// Sampling temperature, `0.0..=2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass, `0.0..=1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Most tokens the reply may have (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sequences where the model stops generating.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// Seed for best-effort deterministic sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Presence penalty, `-2.0..=2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty, `-2.0..=2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// An end-user id the service may use for abuse monitoring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ModelParams {
    /// No parameters set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks every set parameter against its documented range.
    ///
    /// # Errors
    /// An [`ErrorKind::InvalidRequest`](crate::ErrorKind::InvalidRequest) error naming the
    /// first parameter out of range.
    pub fn validate(&self) -> Result<(), LlmError> {
        fn range(name: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<(), LlmError> {
            match v {
                Some(x) if !(lo..=hi).contains(&x) => Err(LlmError::invalid_request(format!(
                    "`{name}` must be between {lo} and {hi}, got {x}"
                ))
                .with_param(name)),
                _ => Ok(()),
            }
        }
        range("temperature", self.temperature, 0.0, 2.0)?;
        range("top_p", self.top_p, 0.0, 1.0)?;
        range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        if self.max_tokens == Some(0) {
            return Err(LlmError::invalid_request("`max_tokens` must be at least 1")
                .with_param("max_tokens"));
        }
        Ok(())
    }
}

/// The setters every request type has (model, parameters, provider extras), written once:
/// the type needs fields `model: Option<String>`, `params: ModelParams` and
/// `extras: Map<String, Value>`.
macro_rules! shared_setters {
    ($ty:ty) => {
        impl $ty {
            /// Sets the model. Default: the driver's default model.
            pub fn model(mut self, model: impl Into<String>) -> Self {
                self.model = Some(model.into());
                self
            }

            /// Replaces all model parameters at once. Default: none set.
            pub fn params(mut self, params: $crate::params::ModelParams) -> Self {
                self.params = params;
                self
            }

            /// Sets the temperature. Default: unset.
            pub fn temperature(mut self, t: f64) -> Self {
                self.params.temperature = Some(t);
                self
            }

            /// Sets top-p. Default: unset.
            pub fn top_p(mut self, p: f64) -> Self {
                self.params.top_p = Some(p);
                self
            }

            /// Sets the maximum output tokens. Default: unset.
            pub fn max_tokens(mut self, n: u32) -> Self {
                self.params.max_tokens = Some(n);
                self
            }

            /// Adds a stop sequence. Default: none.
            pub fn stop(mut self, s: impl Into<String>) -> Self {
                self.params.stop.push(s.into());
                self
            }

            /// Sets the seed. Default: unset.
            pub fn seed(mut self, seed: i64) -> Self {
                self.params.seed = Some(seed);
                self
            }

            /// Sets the presence penalty. Default: unset.
            pub fn presence_penalty(mut self, p: f64) -> Self {
                self.params.presence_penalty = Some(p);
                self
            }

            /// Sets the frequency penalty. Default: unset.
            pub fn frequency_penalty(mut self, p: f64) -> Self {
                self.params.frequency_penalty = Some(p);
                self
            }

            /// Sets the end-user id. Default: unset.
            pub fn user(mut self, user: impl Into<String>) -> Self {
                self.params.user = Some(user.into());
                self
            }

            /// Adds a provider-specific parameter, passed through verbatim and merged last
            /// (it wins over the fields above). Default: none.
            pub fn extra(
                mut self,
                key: impl Into<String>,
                value: impl Into<serde_json::Value>,
            ) -> Self {
                self.extras.insert(key.into(), value.into());
                self
            }
        }
    };
}

pub(crate) use shared_setters;
