//! The trait that groups one backend's parts.

use super::{Coordinator, MappingStore, ShardExecutor};

/// A family of backends: which executor, mapping store and coordinator go together.
pub trait Backend {
    /// Runs SQL on one shard.
    type Shard: ShardExecutor;
    /// Caches key → shard mappings for reads.
    type Mappings: MappingStore;
    /// Holds claims.
    type Coordinator: Coordinator;
}
