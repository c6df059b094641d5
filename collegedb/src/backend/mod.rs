//! The small traits a backend implements — a SQL executor per shard, a
//! mapping store (the read-path cache of key → shard), and the coordinator
//! (the strongly consistent authority for claims) — grouped by
//! [`Backend`]. The embedded and Cloudflare backends live beside this
//! folder (`embedded/`, `cloudflare/`), importing these traits.
//!
//! Futures returned by these traits are not required to be `Send`: Workers
//! futures are not, and generic code over them must not ask for it.
#![allow(async_fn_in_trait)] // deliberately no `Send` bound; see above.

pub(crate) mod calls;
pub(crate) mod claims;
pub(crate) mod family;
pub mod intercept;
mod partitioned;

pub use crate::violation::{Fence, Violation};
pub use claims::{Claim, ClaimReply, ClaimRequest, Holder, Release, Target};
pub use partitioned::Partitioned;
// One public path: `collegedb::Backend`, where `Database<B: Backend>` names it.
pub(crate) use family::{Backend, ShardSpec};
// The coordinator's half of placement: what a router asks it to decide.
pub use crate::strategy::{AllocationRequest, StrategyKind};

use std::borrow::Cow;

use crate::error::Result;
use crate::value::Value;

/// One statement and its bound parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL, with numbered (`?1`) or positional (`?`) parameters.
    /// Borrowed when the text is fixed, so hot paths allocate none.
    pub sql: Cow<'static, str>,
    /// The values bound to it.
    pub params: Vec<Value>,
}

impl Statement {
    /// A statement with parameters.
    pub fn new(sql: impl Into<Cow<'static, str>>, params: Vec<Value>) -> Self {
        Statement {
            sql: sql.into(),
            params,
        }
    }
}

/// What one statement of a batch did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Rows inserted, updated or deleted by the statement itself (SQLite's `changes()`).
    pub changed: u64,
    /// The rows it returned (a `SELECT`, or `RETURNING`), values in select-list order.
    pub rows: Vec<Vec<Value>>,
}

/// Runs SQL on one shard.
///
/// Errors are typed at this boundary: a constraint failure is
/// [`Error::Constraint`](crate::Error::Constraint) with a parsed
/// [`Violation`], never a message for the router to parse.
pub trait ShardExecutor {
    /// Refuses parameters this backend cannot bind as given (D1: over 100,
    /// or integers beyond ±2^53). The router asks before a write takes a
    /// claim, so a refused write leaves nothing behind.
    /// Accepts everything unless a backend says otherwise.
    fn check(params: &[Value]) -> Result<()>
    where
        Self: Sized,
    {
        let _ = params;
        Ok(())
    }

    /// Refuses a whole statement this backend would refuse: its parameters
    /// ([`ShardExecutor::check`]) and, on D1, its length. Queries ask before
    /// any shard is sent anything.
    fn check_statement(statement: &Statement) -> Result<()>
    where
        Self: Sized,
    {
        Self::check(&statement.params)
    }

    /// Runs a read-only query; each row holds its values in select-list order.
    async fn query(&self, statement: &Statement) -> Result<Vec<Vec<Value>>>;
    /// Runs statements atomically, in one transaction and one round trip
    /// (D1: one `batch()`), and reports what each did. If any statement
    /// fails, none has any effect.
    async fn batch(&self, statements: &[Statement]) -> Result<Vec<Outcome>>;
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

/// The read-path cache of key → shard mappings (Workers KV, or a local file).
///
/// It may be eventually consistent and may lose writes: the router never
/// judges uniqueness or placement by it, and checks every row it points to.
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

/// The strongly consistent authority for everything that must be unique
/// across shards: lookup values, and primary keys whose shard cannot be
/// recomputed from the key (see [`ClaimRequest`]).
///
/// Every method is one request and atomic.
pub trait Coordinator {
    /// Takes every claim of `request` or none of them (see [`ClaimReply`]).
    async fn claim(&self, request: &ClaimRequest) -> Result<ClaimReply>;
    /// Compare-and-delete: removes each claim only if it is still held by the
    /// given owner and incarnation. Missing or re-taken claims are left alone.
    async fn release(&self, releases: &[Release]) -> Result<()>;
    /// The current holders of `keys`, in order.
    async fn holders(&self, keys: &[String]) -> Result<Vec<Option<Holder>>>;
}
