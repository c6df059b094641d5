//! Round-robin placement: the n-th new key goes to shard `n mod shards`.
//!
//! The counter `n` is kept by the coordinator (the Durable Object, or the
//! embedded mapping file), so it survives restarts and is shared by every
//! isolate.

/// The shard index for ticket `ticket` among `shards` shards.
pub fn pick(ticket: u64, shards: usize) -> usize {
    (ticket % shards as u64) as usize
}
