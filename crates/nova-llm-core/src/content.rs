//! One part of a message's content: text, an image, a document, reasoning.

use serde::{Deserialize, Serialize};

use crate::media::DataUrl;
use crate::reasoning::ReasoningPart;

/// One part of a message's content.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, by `https:` URL or `data:` URL.
    Image {
        /// Where the image is (`https://...` or `data:image/png;base64,...`).
        url: String,
        /// Resolution hint for services that take one (`low`, `high`, `auto`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A document (a PDF), by `https:` URL or `data:` URL.
    Document {
        /// Where the document is (`https://...` or `data:application/pdf;base64,...`).
        url: String,
        /// A title, for services that take one (and a file name for those that want one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// Reasoning the model did (assistant rows), with the opaque data some services want
    /// back in the next turn. Never part of the row's [`text`](crate::Message::text).
    Reasoning(ReasoningPart),
}

impl ContentPart {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into() }
    }

    /// An image part from a URL (`https:` or `data:`), with no detail hint.
    pub fn image_url(url: impl Into<String>) -> Self {
        ContentPart::Image {
            url: url.into(),
            detail: None,
        }
    }

    /// A PDF sent inline: `data` is its base64 encoding.
    pub fn pdf_base64(data: &str) -> Self {
        Self::document_url(DataUrl::base64("application/pdf", data))
    }

    /// A document part from a URL (`https:` or `data:`), with no title.
    pub fn document_url(url: impl Into<String>) -> Self {
        ContentPart::Document {
            url: url.into(),
            title: None,
        }
    }

    /// The text of a text part, `None` for other parts.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            ContentPart::Text { text } => Some(text),
            _ => None,
        }
    }

    /// The reasoning of a reasoning part, `None` for other parts.
    pub fn as_reasoning(&self) -> Option<&ReasoningPart> {
        match self {
            ContentPart::Reasoning(r) => Some(r),
            _ => None,
        }
    }
}
