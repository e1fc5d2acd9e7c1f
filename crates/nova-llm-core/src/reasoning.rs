//! Reasoning ("thinking"): the part of an assistant row that carries it across turns, and
//! the portable control that asks for it.

use serde::{Deserialize, Serialize};

/// Reasoning a model did before it answered, as an assistant row carries it.
///
/// Some services sign their reasoning or return it encrypted, and want it back unchanged
/// in the next turn: Anthropic rejects a tool-result turn whose `thinking` block lost its
/// `signature`; Gemini wants its `thoughtSignature` back. Such a part keeps the opaque
/// data beside the text, with the service it came from in `origin`. A driver sends back
/// the opaque reasoning of its own service only; reasoning from another service (after a
/// fallback, say) is left out, never sent where it would be rejected.
///
/// ```
/// use nova_llm_core::{Message, ReasoningPart};
///
/// let part = ReasoningPart::new("2 + 2 is 4").with_signature("EqQBCgIYAh...", "anthropic");
/// assert!(part.is_from("anthropic"));
/// assert!(!part.is_from("gemini"));
/// let row = Message::assistant("Four.").with_reasoning(part);
/// assert_eq!(row.reasoning().as_deref(), Some("2 + 2 is 4"));
/// assert_eq!(row.text(), "Four."); // reasoning is not the reply's text
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasoningPart {
    /// The reasoning text (a summary, with some services; empty when the service withheld
    /// it and sent only a signature or redacted data).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub text: String,
    /// The service's signature over the reasoning: opaque, sent back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Reasoning the service returned redacted or encrypted: opaque, sent back unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
    /// The service the opaque data came from (`anthropic`, `gemini`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl ReasoningPart {
    /// Reasoning text with no opaque data.
    pub fn new(text: impl Into<String>) -> Self {
        ReasoningPart {
            text: text.into(),
            ..Self::default()
        }
    }

    /// Redacted (encrypted) reasoning from the service `origin`.
    pub fn redacted(data: impl Into<String>, origin: impl Into<String>) -> Self {
        ReasoningPart {
            redacted: Some(data.into()),
            origin: Some(origin.into()),
            ..Self::default()
        }
    }

    /// Sets the signature and the service it came from. Default: none.
    pub fn with_signature(
        mut self,
        signature: impl Into<String>,
        origin: impl Into<String>,
    ) -> Self {
        self.signature = Some(signature.into());
        self.origin = Some(origin.into());
        self
    }

    /// Whether the part carries opaque data (a signature or redacted reasoning).
    pub fn is_opaque(&self) -> bool {
        self.signature.is_some() || self.redacted.is_some()
    }

    /// Whether the part's opaque data came from the service `origin`.
    pub fn is_from(&self, origin: &str) -> bool {
        self.origin.as_deref() == Some(origin)
    }
}

/// How much a model should reason before it answers: one portable setting that each driver
/// maps to its service (OpenAI `reasoning_effort`, Anthropic `thinking` and
/// `output_config.effort`, Gemini `thinkingConfig`). Unset, the service's default applies;
/// anything vendor-specific still goes through the request's extras.
///
/// ```
/// use nova_llm_core::{ChatRequest, Dialog, Effort, Reasoning};
///
/// let req = ChatRequest::new(Dialog::new().user("Prove it.")).reasoning(Reasoning::Budget(4096));
/// assert_eq!(req.reasoning, Some(Reasoning::Budget(4096)));
/// let quick = ChatRequest::new(Dialog::new().user("Hi")).reasoning(Reasoning::Effort(Effort::Low));
/// assert_eq!(quick.reasoning.map(|r| r.to_string()).as_deref(), Some("effort low"));
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reasoning {
    /// No reasoning (where the model allows turning it off).
    Off,
    /// At most this many tokens of reasoning (at least 1; services set their own minimum,
    /// Anthropic's is 1024).
    Budget(u32),
    /// A level of effort, the service choosing how much to reason.
    Effort(Effort),
}

/// A level of reasoning effort. Services take subsets; a driver maps a level its service
/// lacks to the nearest one it has (and says so in its docs).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effort {
    /// As little as the model allows.
    Minimal,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Higher than high (`xhigh`).
    #[serde(rename = "xhigh")]
    XHigh,
    /// As much as the model allows.
    Max,
}

impl Effort {
    /// The level's wire name (`minimal`, `low`, `medium`, `high`, `xhigh`, `max`), as
    /// OpenAI and Anthropic spell it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Effort::Minimal => "minimal",
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::XHigh => "xhigh",
            Effort::Max => "max",
        }
    }
}

impl std::fmt::Display for Reasoning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reasoning::Off => f.write_str("off"),
            Reasoning::Budget(n) => write!(f, "budget {n} tokens"),
            Reasoning::Effort(e) => write!(f, "effort {}", e.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasoning_parts_round_trip_and_omit_what_they_lack() {
        let signed = ReasoningPart::new("why").with_signature("sig", "anthropic");
        let json = serde_json::to_value(&signed).unwrap();
        assert_eq!(
            json,
            json!({"text": "why", "signature": "sig", "origin": "anthropic"})
        );
        assert_eq!(
            serde_json::from_value::<ReasoningPart>(json).unwrap(),
            signed
        );
        let hidden = ReasoningPart::redacted("opaque", "anthropic");
        assert!(hidden.is_opaque() && hidden.text.is_empty());
        assert!(!ReasoningPart::new("plain").is_opaque());
        assert!(!ReasoningPart::new("plain").is_from("anthropic"));
    }

    #[test]
    fn the_control_has_one_json_shape_per_setting() {
        for (r, j) in [
            (Reasoning::Off, json!("off")),
            (Reasoning::Budget(2048), json!({"budget": 2048})),
            (Reasoning::Effort(Effort::XHigh), json!({"effort": "xhigh"})),
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), j);
            assert_eq!(serde_json::from_value::<Reasoning>(j).unwrap(), r);
        }
        assert!(Effort::Minimal < Effort::Max);
        assert_eq!(Reasoning::Off.to_string(), "off");
        assert_eq!(Reasoning::Budget(9).to_string(), "budget 9 tokens");
    }
}
