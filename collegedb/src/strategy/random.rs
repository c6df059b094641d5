//! Random placement: a uniformly random shard.

use crate::platform::random_u64;

/// A random shard index among `shards` shards.
pub fn pick(shards: usize) -> usize {
    (random_u64() % shards as u64) as usize
}
