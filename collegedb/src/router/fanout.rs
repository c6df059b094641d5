//! Operations on every shard at once: schema, list and count.

use futures::future::try_join_all;

use super::{sql, Router};
use crate::backend::calls::Trace;
use crate::backend::{Backend, Statement};
use crate::error::{Error, Result};
use crate::key::RoutedKey;
use crate::model::{Model, Schema};
use crate::query::Query;
use crate::value::Value;

impl<B: Backend> Router<B> {
    /// Creates the router's tables, the table and its unique lookup
    /// indexes on every shard, each shard in one transaction. Safe to call
    /// again, and after appending shards: a new shard takes the table's
    /// settled epoch from the others, so the table stays unsettled until a
    /// rebalance has moved its rows.
    pub(crate) async fn create_schema(&self, schema: &'static Schema) -> Result<()> {
        let span = self.span("create_schema", schema.table, None);
        async {
            let meta: Vec<Statement> = sql::META
                .iter()
                .map(|s| Statement::new(*s, Vec::new()))
                .collect();
            try_join_all((0..self.shards.len()).map(|i| self.batch(i, &meta))).await?;
            let settled_epoch = sql::settled_epoch(schema.table);
            let settled =
                try_join_all((0..self.shards.len()).map(|i| self.query(i, &settled_epoch))).await?;
            let epoch = settled
                .iter()
                .filter_map(|rows| match rows.first().and_then(|r| r.first()) {
                    Some(Value::Integer(e)) => Some(*e),
                    _ => None,
                })
                .min()
                .unwrap_or(self.epoch() as i64);
            let mut statements: Vec<Statement> = schema
                .sql
                .create
                .iter()
                .map(|s| Statement::new(*s, Vec::new()))
                .collect();
            statements.push(sql::settle_if_new(schema.table, epoch));
            try_join_all((0..self.shards.len()).map(|i| self.batch(i, &statements))).await?;
            Ok(())
        }
        .traced(span)
        .await
    }

    /// Every row of `M`, ordered by primary key, each once: a row caught
    /// mid-move is read from its live copy, not the frozen one. Each shard
    /// is read in pages by key and the pages merged as they come (see
    /// [`Router::page`]): memory holds the result and one page per shard.
    pub(crate) async fn list<M: Model>(&self) -> Result<Vec<M>> {
        Ok(self.page(&Query::<M>::new()).await?.rows)
    }

    /// The number of rows, each counted once: a frozen copy whose live
    /// copy is already home is not counted. The shards are read at once;
    /// while any of them says rows may be moving, again one at a time (see
    /// [`Router::each_shard_last_first`]).
    pub(crate) async fn count(&self, schema: &'static Schema) -> Result<u64> {
        let span = self.span("count", schema.table, None);
        async {
            let statement = sql::count(schema, self.epoch());
            let all: Vec<usize> = (0..self.shards.len()).collect();
            let answers = self.each_shard(&all, |i| self.query(i, &statement)).await;
            let mut counts = self.shard_counts(answers)?;
            if counts.iter().any(|c| c.unsettled || !c.frozen.is_empty()) {
                counts = self.shard_counts(self.each_shard_last_first(&all, &statement).await)?;
            }
            let mut total: u64 = counts.iter().map(|c| c.rows).sum();
            for (shard, count) in counts.into_iter().enumerate() {
                for key in count.frozen {
                    let key = RoutedKey::new(key);
                    let home = self.home(&key);
                    if home != shard && self.probe(schema, home, &key.value).await?.row.is_some() {
                        total -= 1;
                    }
                }
            }
            Ok(total)
        }
        .traced(span)
        .await
    }

    /// The rows stored on each shard, in shard order (a row mid-move is on two).
    pub(crate) async fn count_per_shard(
        &self,
        schema: &'static Schema,
    ) -> Result<Vec<(String, u64)>> {
        let span = self.span("count_per_shard", schema.table, None);
        async {
            let statement = sql::count(schema, self.epoch());
            let all: Vec<usize> = (0..self.shards.len()).collect();
            let answers = self.each_shard(&all, |i| self.query(i, &statement)).await;
            let counts = self.shard_counts(answers)?;
            Ok(self
                .shards
                .iter()
                .zip(counts)
                .map(|(shard, count)| (shard.name.clone(), count.rows))
                .collect())
        }
        .traced(span)
        .await
    }

    /// Each shard's answer to [`sql::count`], or the shards that failed.
    fn shard_counts(
        &self,
        answers: Vec<(usize, Result<Vec<Vec<Value>>>)>,
    ) -> Result<Vec<ShardCount>> {
        let answers = self.all_or_failed(answers)?;
        let mut counts = Vec::with_capacity(answers.len());
        for (shard, rows) in self.shards.iter().zip(answers) {
            let malformed = |row: &[Value]| Error::Shard {
                shard: shard.name.clone(),
                message: format!("a row count came back as {row:?}"),
            };
            let mut rows = rows.into_iter();
            let mut count = match rows.next().as_deref() {
                Some([Value::Integer(0), Value::Integer(n), Value::Integer(unsettled)])
                    if *n >= 0 =>
                {
                    ShardCount {
                        rows: *n as u64,
                        unsettled: *unsettled != 0,
                        frozen: Vec::new(),
                    }
                }
                other => return Err(malformed(other.unwrap_or_default())),
            };
            for row in rows {
                match row.as_slice() {
                    [Value::Integer(1), key, Value::Null] => count.frozen.push(key.clone()),
                    other => return Err(malformed(other)),
                }
            }
            counts.push(count);
        }
        Ok(counts)
    }
}

/// One shard's answer to [`sql::count`].
struct ShardCount {
    rows: u64,
    /// The table is unsettled for this reader: rows may be moving.
    unsettled: bool,
    /// The keys of the frozen copies (rows being moved away).
    frozen: Vec<Value>,
}
