//! The kit's own tests: the mock passes it; a deliberately wrong driver fails each rule.

// A test panics on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod mock;
mod naive;
mod wrong;
