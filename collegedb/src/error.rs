//! The one error type of CollegeDB, with stable codes.

/// Everything that can go wrong in CollegeDB.
///
/// Each variant has a stable code (see [`Error::code`]) that is safe to match
/// on, log or return to clients; messages may be reworded between releases,
/// codes never are.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A mapping, a coordinator or the caller named a shard that is not configured.
    #[error(
        "unknown shard `{shard}`: configure it on the database or fix the mapping that names it"
    )]
    UnknownShard {
        /// The shard name that was not found.
        shard: String,
    },

    /// The database was opened with no shards.
    #[error("no shards are configured: give the database at least one shard")]
    NoShards,

    /// Every shard is at or over the configured size limit, so a new key has nowhere to go.
    #[error("every shard is at or over the size limit of {limit_bytes} bytes: add a shard or raise the limit")]
    ShardsFull {
        /// The configured per-shard limit.
        limit_bytes: u64,
    },

    /// An insert used a primary key that already exists.
    #[error("a `{table}` row with primary key `{key}` already exists: update it, or insert with another key")]
    DuplicateKey {
        /// The table.
        table: &'static str,
        /// The primary key, as text.
        key: String,
    },

    /// An insert or update gave a lookup column a value that another row already has.
    #[error("`{table}.{column}` must be unique, and another row already has this value: pick another value")]
    DuplicateAlias {
        /// The table.
        table: &'static str,
        /// The lookup column.
        column: &'static str,
    },

    /// An update named a row that does not exist, or that vanished while it was written.
    #[error("no `{table}` row has primary key `{key}`: insert it first")]
    NotFound {
        /// The table.
        table: &'static str,
        /// The primary key, as text.
        key: String,
    },

    /// A stored value could not be decoded into the model's field type.
    #[error("column `{table}.{column}`: expected {expected}, found {found}: the row does not match the model; migrate the column or change the field type")]
    Decode {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// What the model expects.
        expected: &'static str,
        /// What the row holds.
        found: String,
    },

    /// An integer does not fit where it must go: a field type, or D1's exact range of ±2^53.
    #[error("integer {value} is out of range for {target}: store it as TEXT or use a wider type")]
    IntegerOutOfRange {
        /// The value, as text (it may not fit in an `i64`).
        value: String,
        /// Where it had to fit.
        target: &'static str,
    },

    /// A value could not be encoded for storage (for example a `#[sharded(json)]` field).
    #[error("column `{column}` could not be encoded: {message}")]
    Encode {
        /// The column.
        column: &'static str,
        /// Why.
        message: String,
    },

    /// A statement binds more parameters than the backend allows (D1: 100).
    #[error(
        "a statement binds {count} parameters but the backend allows {limit}: split the write"
    )]
    TooManyParameters {
        /// Parameters bound.
        count: usize,
        /// The backend's limit.
        limit: usize,
    },

    /// A shard's database reported an error.
    #[error("shard `{shard}` failed: {message}")]
    Shard {
        /// The shard.
        shard: String,
        /// The database's own message.
        message: String,
    },

    /// The mapping store (KV, or the embedded mapping file) failed.
    #[error("the mapping store failed: {0}")]
    MappingStore(String),

    /// The coordinator (Durable Object, or the embedded authority) failed or answered badly.
    #[error("the shard coordinator failed: {0}")]
    Coordinator(String),

    /// A stored mapping record could not be read; the key is reported hashed.
    #[error("the mapping record for `{key}` is corrupt ({message}): delete it and the router will find the row again")]
    CorruptMapping {
        /// The mapping key as stored.
        key: String,
        /// Why it could not be read.
        message: String,
    },

    /// A mapping key is longer than the store allows (KV: 512 bytes), which can happen with plain-text keys.
    #[error("the mapping key for `{table}.{column}` is {len} bytes, over the store's limit of {limit}: keep hashed keys on")]
    KeyTooLong {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The store's limit.
        limit: usize,
    },

    /// The database was configured inconsistently.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A shard refused a statement by a constraint. The router turns the
    /// constraints of its own statements into the errors above; this one
    /// reaches callers only for statements they wrote themselves.
    #[error("shard `{shard}` refused the statement: {violation:?}")]
    Constraint {
        /// The shard.
        shard: String,
        /// The constraint.
        violation: crate::violation::Violation,
    },

    /// This handle's shard list is older than one a shard has already seen
    /// (a Worker version still serving during a deploy, or a long-lived
    /// handle): it may not write, or it could put a row where current
    /// handles cannot find it.
    #[error("shard `{shard}` belongs to a newer shard list than this handle's {shards} shards: reopen the database with the current shard list")]
    StaleTopology {
        /// The shard that refused the write.
        shard: String,
        /// How many shards this handle knows.
        shards: usize,
    },

    /// The row is being moved to its home shard by a rebalance, and stayed
    /// so for every retry of this write. Nothing was written: retry later,
    /// or finish the rebalance.
    #[error("the `{table}` row `{key}` is being moved between shards: retry, or run the rebalance to completion")]
    RowMoving {
        /// The table.
        table: &'static str,
        /// The primary key, as text.
        key: String,
    },

    /// A query was built in a way that cannot run: a cursor from another
    /// query, a selected column the model does not have, a cursor together
    /// with an offset, or a column that is not a key where one is needed.
    #[error("invalid query on `{table}`: {message}")]
    InvalidQuery {
        /// The table.
        table: &'static str,
        /// What is wrong, and how to fix it.
        message: String,
    },

    /// A statement is longer than the backend accepts (D1: 100,000 bytes).
    #[error("a statement of {bytes} bytes is over the backend's limit of {limit}: narrow the query (a long `IN` list, or many conditions)")]
    StatementTooLong {
        /// The statement's length in bytes.
        bytes: usize,
        /// The backend's limit.
        limit: usize,
    },

    /// A query across shards could not read some shards. Nothing partial
    /// was returned; [`Query::partial`](crate::Query::partial) opts into
    /// the healthy shards' rows with the failures listed instead.
    #[error("{} of the shards failed: {}", failures.len(), ShardFailure::names(failures))]
    ShardsFailed {
        /// Each failed shard with its error, in shard order.
        failures: Vec<ShardFailure>,
    },

    /// An aggregate's integer sum does not fit in 64 bits (SQLite reports
    /// the same sum on one database as "integer overflow").
    #[error("the sum of `{table}.{column}` overflows a 64-bit integer")]
    IntegerOverflow {
        /// The table.
        table: &'static str,
        /// The summed column.
        column: &'static str,
    },

    /// A local file or directory could not be used.
    #[error("I/O error on `{path}`: {message}")]
    Io {
        /// The path.
        path: String,
        /// The system's message.
        message: String,
    },
}

impl Error {
    /// The stable, documented code of this error.
    ///
    /// | code | meaning |
    /// |---|---|
    /// | `unknown_shard` | a shard name is not configured |
    /// | `no_shards` | the database has no shards |
    /// | `shards_full` | every shard is at or over the size limit |
    /// | `duplicate_key` | the primary key already exists |
    /// | `duplicate_alias` | a lookup value is already taken |
    /// | `not_found` | an update named a missing row |
    /// | `decode` | a stored value does not fit the model |
    /// | `integer_out_of_range` | an integer does not fit its target |
    /// | `encode` | a value could not be encoded |
    /// | `too_many_parameters` | a statement binds too many parameters |
    /// | `shard` | a shard's database failed |
    /// | `mapping_store` | the mapping store failed |
    /// | `coordinator` | the coordinator failed |
    /// | `corrupt_mapping` | a mapping record is unreadable |
    /// | `key_too_long` | a mapping key is over the store's limit |
    /// | `config` | the configuration is inconsistent |
    /// | `io` | a local file could not be used |
    /// | `constraint` | a shard refused a caller's own statement by a constraint |
    /// | `stale_topology` | the handle's shard list is older than the shards' |
    /// | `row_moving` | the row is being moved by a rebalance: retry |
    /// | `invalid_query` | a query cannot run as built |
    /// | `statement_too_long` | a statement is over the backend's size limit |
    /// | `shards_failed` | a query across shards could not read some shards |
    /// | `integer_overflow` | an aggregate's integer sum overflows |
    ///
    /// ```
    /// let err = collegedb::Error::NoShards;
    /// assert_eq!(err.code(), "no_shards");
    /// ```
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownShard { .. } => "unknown_shard",
            Error::NoShards => "no_shards",
            Error::ShardsFull { .. } => "shards_full",
            Error::DuplicateKey { .. } => "duplicate_key",
            Error::DuplicateAlias { .. } => "duplicate_alias",
            Error::NotFound { .. } => "not_found",
            Error::Decode { .. } => "decode",
            Error::IntegerOutOfRange { .. } => "integer_out_of_range",
            Error::Encode { .. } => "encode",
            Error::TooManyParameters { .. } => "too_many_parameters",
            Error::Shard { .. } => "shard",
            Error::MappingStore(_) => "mapping_store",
            Error::Coordinator(_) => "coordinator",
            Error::CorruptMapping { .. } => "corrupt_mapping",
            Error::KeyTooLong { .. } => "key_too_long",
            Error::Config(_) => "config",
            Error::Io { .. } => "io",
            Error::Constraint { .. } => "constraint",
            Error::StaleTopology { .. } => "stale_topology",
            Error::RowMoving { .. } => "row_moving",
            Error::InvalidQuery { .. } => "invalid_query",
            Error::StatementTooLong { .. } => "statement_too_long",
            Error::ShardsFailed { .. } => "shards_failed",
            Error::IntegerOverflow { .. } => "integer_overflow",
        }
    }
}

/// One shard that a query across shards could not read.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardFailure {
    /// The shard's name.
    pub shard: String,
    /// Why it failed.
    pub error: Error,
}

impl ShardFailure {
    fn names(failures: &[ShardFailure]) -> String {
        failures
            .iter()
            .map(|f| format!("`{}` ({})", f.shard, f.error))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The result type of CollegeDB.
pub type Result<T, E = Error> = std::result::Result<T, E>;
