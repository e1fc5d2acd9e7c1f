//! Cost: an embedded, versioned price table, overridable and extendable.

mod prices;

pub(crate) use prices::lookup_model;
pub use prices::{LongPrompt, PRICE_TABLE_VERSION, Price, PriceTable};
