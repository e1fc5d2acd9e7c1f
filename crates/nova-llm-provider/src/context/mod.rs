//! Context management: token counting, context windows, trimming that keeps a dialog
//! valid, the `context` middleware and a budgeted `Conversation`.

mod conversation;
mod counter;
mod layer;
mod trim;
mod windows;

pub use conversation::Conversation;
#[cfg(feature = "tiktoken")]
pub use counter::TiktokenCounter;
pub use counter::{Estimator, TokenCounter};
pub use layer::ContextLayer;
pub use trim::{TrimStrategy, Trimmed, trim, trim_counted};
pub use windows::ContextWindows;
