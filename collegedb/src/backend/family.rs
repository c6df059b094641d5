//! What a database is built from: one backend's parts, and its shards.

use super::{Coordinator, MappingStore, ShardExecutor};
use crate::strategy::ShardLocation;

/// A family of backends: which executor, mapping store and coordinator go together.
pub trait Backend {
    /// Runs SQL on one shard.
    type Shard: ShardExecutor;
    /// Caches key → shard mappings for reads.
    type Mappings: MappingStore;
    /// Holds claims.
    type Coordinator: Coordinator;
}

/// One shard: its stable name, its executor and, for location placement, where it is.
pub struct ShardSpec<S> {
    /// The shard's name, as claims and mappings record it.
    pub name: String,
    /// Runs SQL on it.
    pub executor: S,
    /// Where it lives, for [`Strategy::Location`](crate::Strategy::Location).
    pub location: Option<ShardLocation>,
}

impl<S> ShardSpec<S> {
    /// A shard with no location.
    pub fn new(name: impl Into<String>, executor: S) -> Self {
        ShardSpec {
            name: name.into(),
            executor,
            location: None,
        }
    }

    /// The same shard, located.
    pub fn located(self, location: ShardLocation) -> Self {
        ShardSpec {
            location: Some(location),
            ..self
        }
    }
}
