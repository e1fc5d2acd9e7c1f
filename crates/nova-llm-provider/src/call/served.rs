//! Which driver answered a call that a layer sent elsewhere.

use std::sync::Arc;

/// Put in a call's extensions by a layer that sent the call to another driver than the
/// provider's own (the `fallback` layer, when a target answers): that driver's name. The
/// `events` layer reports it as [`Completion::served_by`](crate::Completion::served_by),
/// and metrics count the call under it, so a call Claude answered after Gemini failed is
/// Claude's. A middleware that routes calls elsewhere puts it there too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedBy(pub Arc<str>);
