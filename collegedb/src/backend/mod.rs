//! The small traits a backend implements: a SQL executor per shard, a mapping
//! store, and a coordinator for placements that cannot be recomputed.
//!
//! Futures returned by these traits are not required to be `Send`: Workers
//! futures are not, and generic code over them must not ask for it.
#![allow(async_fn_in_trait)] // deliberately no `Send` bound; see above.

use crate::error::Result;
use crate::strategy::AllocationRequest;
use crate::value::Value;

#[cfg(feature = "embedded")]
pub mod embedded;

#[cfg(all(feature = "cloudflare", target_arch = "wasm32"))]
pub mod cloudflare;

/// One statement and its bound parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL, with numbered (`?1`) or positional (`?`) parameters.
    pub sql: String,
    /// The values bound to it.
    pub params: Vec<Value>,
}

impl Statement {
    /// A statement with parameters.
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}

/// Runs SQL on one shard.
pub trait ShardExecutor {
    /// Refuses parameters this backend cannot bind as given (D1: over 100,
    /// or integers beyond ±2^53). The router asks before a write places a key
    /// or touches a mapping, so a refused write leaves nothing behind.
    /// Accepts everything unless a backend says otherwise.
    fn check(params: &[Value]) -> Result<()>
    where
        Self: Sized,
    {
        let _ = params;
        Ok(())
    }

    /// Runs a statement that returns no rows; returns the number of rows changed.
    async fn execute(&self, statement: &Statement) -> Result<u64>;
    /// Runs a query; each row holds its values in the order of the select list.
    async fn query(&self, statement: &Statement) -> Result<Vec<Vec<Value>>>;
    /// Runs statements atomically, in one transaction (D1: one `batch()`).
    async fn batch(&self, statements: &[Statement]) -> Result<()>;
    /// The size of the shard's database in bytes (`page_count * page_size`).
    async fn size_bytes(&self) -> Result<u64>;
}

/// One page of keys from [`MappingStore::list`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyPage {
    /// Keys of this page, in the store's order.
    pub keys: Vec<String>,
    /// Where the next page starts, or `None` after the last page.
    pub cursor: Option<String>,
}

/// A key-value store for key → shard mappings (Workers KV, or a local file).
///
/// It may be eventually consistent: the router never relies on a miss to
/// decide a placement.
pub trait MappingStore {
    /// The longest key the store accepts, in bytes.
    fn max_key_len(&self) -> usize;
    /// Reads several keys in one operation, in the order given.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>>;
    /// Writes one key.
    async fn put(&self, key: &str, value: &str) -> Result<()>;
    /// Removes one key; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Lists keys that start with `prefix`, one page at a time.
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KeyPage>;
}

/// Key counts of one shard, kept by the coordinator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardStats {
    /// The shard.
    pub shard: String,
    /// Keys placed on it (inserts minus deletes).
    pub count: i64,
    /// When the count last changed, in milliseconds since the Unix epoch.
    pub updated_ms: u64,
}

/// The strongly consistent authority for placements that cannot be recomputed
/// (random, round-robin, location), and the keeper of per-shard key counts.
pub trait Coordinator {
    /// Places `key` unless it already has a placement, and returns the placement
    /// that holds: asking twice for the same key gives the same shard.
    async fn allocate(&self, key: &str, request: &AllocationRequest) -> Result<String>;
    /// Forgets the placement of `key` (after its row is deleted).
    async fn release(&self, key: &str) -> Result<()>;
    /// Adds `delta` to a shard's key count.
    async fn adjust_count(&self, shard: &str, delta: i64) -> Result<()>;
    /// The key count of every shard that has one.
    async fn stats(&self) -> Result<Vec<ShardStats>>;
}

/// A family of backends: which executor, mapping store and coordinator go together.
pub trait Backend {
    /// Runs SQL on one shard.
    type Shard: ShardExecutor;
    /// Keeps key → shard mappings.
    type Mappings: MappingStore;
    /// Places keys that cannot be recomputed.
    type Coordinator: Coordinator;
}
