//! Stream events, one struct per event name, read in one pass (no buffering of a tagged
//! union): `message_start`, `content_block_start`, `content_block_delta`,
//! `message_delta`, `error`. `content_block_stop`, `message_stop` and `ping` carry nothing
//! the decoder needs beyond their name.

use std::borrow::Cow;

use serde::Deserialize;

use super::response::{WireBlock, WireError, WireMessage, WireUsage};

/// `message_start`.
#[derive(Deserialize)]
pub(crate) struct MessageStart {
    #[serde(default)]
    pub(crate) message: WireMessage,
}

/// `content_block_start`.
#[derive(Deserialize)]
pub(crate) struct BlockStart {
    pub(crate) index: usize,
    pub(crate) content_block: WireBlock,
}

/// `content_block_delta`: the delta's fields side by side (only those of its type are
/// present).
#[derive(Deserialize)]
pub(crate) struct BlockDelta<'a> {
    pub(crate) index: usize,
    #[serde(borrow)]
    pub(crate) delta: Delta<'a>,
}

#[derive(Deserialize)]
pub(crate) struct Delta<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) kind: Cow<'a, str>,
    #[serde(default)]
    pub(crate) text: Option<String>,
    #[serde(default)]
    pub(crate) thinking: Option<String>,
    #[serde(default)]
    pub(crate) signature: Option<String>,
    #[serde(default)]
    pub(crate) partial_json: Option<String>,
}

/// `message_delta`: why the reply stopped, and the final (cumulative) usage.
#[derive(Deserialize)]
pub(crate) struct MessageDelta {
    #[serde(default)]
    pub(crate) delta: StopDelta,
    #[serde(default)]
    pub(crate) usage: Option<WireUsage>,
}

#[derive(Deserialize, Default)]
pub(crate) struct StopDelta {
    #[serde(default)]
    pub(crate) stop_reason: Option<String>,
}

/// `error`.
#[derive(Deserialize)]
pub(crate) struct StreamError {
    #[serde(default)]
    pub(crate) error: WireError,
}
