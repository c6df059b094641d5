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
    /// copy is already home is not counted.
    pub(crate) async fn count(&self, schema: &'static Schema) -> Result<u64> {
        let span = self.span("count", schema.table, None);
        async {
            let counts = self.counts(schema).await?;
            let mut total: u64 = counts.iter().map(|(rows, _)| rows).sum();
            for (shard, (_, frozen)) in counts.iter().enumerate() {
                if *frozen == 0 {
                    continue;
                }
                for key in self.query(shard, &sql::frozen_keys(schema)).await? {
                    let key = RoutedKey::new(key.into_iter().next().unwrap_or(Value::Null));
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
        let counts = self.counts(schema).traced(span).await?;
        Ok(self
            .shards
            .iter()
            .zip(counts)
            .map(|(shard, (rows, _))| (shard.name.clone(), rows))
            .collect())
    }

    /// `(rows, frozen rows)` of every shard.
    async fn counts(&self, schema: &'static Schema) -> Result<Vec<(u64, u64)>> {
        self.counts_of(&sql::count(schema)).await
    }

    /// [`Router::counts`] with the model's count statement: one copy for every model.
    async fn counts_of(&self, statement: &Statement) -> Result<Vec<(u64, u64)>> {
        let all: Vec<usize> = (0..self.shards.len()).collect();
        let answers = self
            .each_shard(&all, |i| async move { self.query(i, statement).await })
            .await;
        let answers = self.all_or_failed(answers)?;
        self.shards
            .iter()
            .zip(answers)
            .map(|(shard, rows)| match rows.first().map(Vec::as_slice) {
                Some([Value::Integer(rows), Value::Integer(frozen)])
                    if *rows >= 0 && *frozen >= 0 =>
                {
                    Ok((*rows as u64, *frozen as u64))
                }
                other => Err(Error::Shard {
                    shard: shard.name.clone(),
                    message: format!("a row count came back as {other:?}"),
                }),
            })
            .collect()
    }
}
