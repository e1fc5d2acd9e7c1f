//! The hash map of the provider's internal maps.

/// A hash map with a hasher seeded per process and much cheaper than the standard SipHash
/// on short keys: the provider's internal maps are looked up several times per call.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
