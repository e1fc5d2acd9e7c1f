//! Cross-crate integration tests: one binary, one module per area.

mod core_contract;
mod mock_as_dyn;
