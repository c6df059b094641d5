//! The router: finds the shard of a key, places new keys, and fans out.
//!
//! Each file adds one group of operations to [`Database`](crate::Database):
//!
//! - [`read`]: `get` and `find_by`: cache, then (under hash) the key's home,
//!   then the mapping store, then a probe of the other shards. Reads never
//!   place a key or write a mapping.
//! - [`place`]: where a new key goes, by the write strategy, through the
//!   coordinator when the placement cannot be recomputed.
//! - [`write`]: `insert`, `update`, `delete`: alias keys are written before the
//!   row and removed after it, so a crash leaves at worst a dangling alias
//!   (which reads ignore and clean up), never an unreachable row.
//! - [`fanout`]: `create_schema`, `list`, `count`: every shard at once.
//! - [`rebalance`]: moving hash-placed rows home after shards are appended.

pub mod fanout;
pub mod place;
pub mod read;
pub mod rebalance;
pub mod write;

use tracing::Span;

use crate::backend::{Backend, ShardExecutor, Statement};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::strategy::hash;
use crate::value::Value;

/// A row found on a shard: the shard's index and the row's values.
pub(crate) struct Located {
    pub shard: usize,
    pub row: Vec<Value>,
}

/// A short, non-reversible tag of a key for logs: keys (emails!) never appear in spans.
pub(crate) fn key_tag(key: &Value) -> String {
    format!("{:016x}", hash::key_hash(&key.key_text()))
}

/// If `err` is a UNIQUE constraint failure on `table`, the column it names.
pub(crate) fn unique_violation<'e>(err: &'e Error, table: &str) -> Option<&'e str> {
    let Error::Shard { message, .. } = err else {
        return None;
    };
    let rest = &message
        [message.find("UNIQUE constraint failed: ")? + "UNIQUE constraint failed: ".len()..];
    let column = rest.strip_prefix(table)?.strip_prefix('.')?;
    Some(column.split([',', ' ', ':']).next().unwrap_or(column))
}

impl<B: Backend> Database<B> {
    /// The span of one operation; `shard` is recorded once known.
    pub(crate) fn span(&self, op: &'static str, table: &'static str, key: Option<&Value>) -> Span {
        tracing::debug_span!(
            "collegedb",
            op,
            table,
            key = key.map(key_tag).unwrap_or_default(),
            strategy = self.config.placement.write.kind().name(),
            shard = tracing::field::Empty,
        )
    }

    /// The mapping key of `value` in `M`'s column `column`.
    pub(crate) fn mapping_key<M: Model>(
        &self,
        column: &'static str,
        value: &Value,
    ) -> Result<String> {
        use crate::backend::MappingStore as _;
        self.config
            .keys
            .key(M::TABLE, column, value, self.mappings.max_key_len())
    }

    /// The hash home of a primary key among all shards.
    pub(crate) fn home(&self, key: &Value) -> usize {
        hash::home(&key.key_text(), self.shards.len())
    }

    /// The key's homes had there been fewer shards, newest first, without repeats.
    pub(crate) fn previous_homes(&self, key: &Value) -> Vec<usize> {
        let hash = hash::key_hash(&key.key_text());
        let mut homes: Vec<usize> = Vec::new();
        for count in (1..self.shards.len()).rev() {
            let home = hash::jump(hash, count);
            if !homes.contains(&home) {
                homes.push(home);
            }
        }
        homes
    }

    /// Runs one query on shard `index`, naming the shard in the span.
    pub(crate) async fn query_on(
        &self,
        index: usize,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<Vec<Vec<Value>>> {
        self.shards[index]
            .executor
            .query(&Statement::new(sql, params))
            .await
    }

    /// The row with primary key `key` on shard `index`, if it is there.
    pub(crate) async fn fetch_by_key<M: Model>(
        &self,
        index: usize,
        key: &Value,
    ) -> Result<Option<Vec<Value>>> {
        let mut rows = self
            .query_on(index, M::SQL.select_by_key, vec![key.clone()])
            .await?;
        Ok(rows.pop())
    }

    pub(crate) fn record_shard(&self, index: usize) {
        Span::current().record("shard", self.shards[index].name.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_violations_name_their_column() {
        let err = Error::Shard {
            shard: "s".into(),
            message: "UNIQUE constraint failed: users.email".into(),
        };
        assert_eq!(unique_violation(&err, "users"), Some("email"));
        assert_eq!(unique_violation(&err, "posts"), None);
        let d1 = Error::Shard {
            shard: "s".into(),
            message: "D1_ERROR: UNIQUE constraint failed: users.id: SQLITE_CONSTRAINT".into(),
        };
        assert_eq!(unique_violation(&d1, "users"), Some("id"));
    }
}
