//! Cross-crate integration tests: one binary, one module per area.

// A test panics on what it does not expect, helpers included.
#![allow(clippy::unwrap_used)]

mod across_vendors;
mod core_contract;
mod fault_matrix;
mod mock_as_dyn;
mod provider_over_openai;
mod soak;
mod vendor_matrix;
