//! The directory: key → shard mappings, kept in a [`MappingStore`](crate::MappingStore)
//! and cached in process.
//!
//! A record is found by its mapping key (see [`keys`]) and holds the shard
//! and, for alias keys, the primary key of the row it points to (see
//! [`record`]). Primary-key mappings exist only where a placement cannot be
//! recomputed: keys placed by round-robin, random or location, keys placed
//! off their hash home because it was full, and keys moved off their home.

pub mod cache;
pub mod keys;
pub mod record;

pub use cache::MappingCache;
pub use keys::KeyCodec;
pub use record::MappingRecord;
