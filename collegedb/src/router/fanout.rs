//! Operations on every shard at once.

use std::cmp::Ordering;

use futures::future::{join_all, try_join_all};
use tracing::Instrument;

use crate::backend::{Backend, ShardExecutor, Statement};
use crate::database::Database;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::value::Value;

impl<B: Backend> Database<B> {
    /// Creates `M`'s table and its unique lookup indexes on every shard, each
    /// shard in one transaction. Safe to call again.
    pub async fn create_schema<M: Model>(&self) -> Result<()> {
        let span = self.span("create_schema", M::TABLE, None);
        let statements: Vec<Statement> = M::SQL
            .create
            .iter()
            .map(|sql| Statement::new(*sql, Vec::new()))
            .collect();
        try_join_all(self.shards.iter().map(|s| s.executor.batch(&statements)))
            .instrument(span)
            .await
            .map(drop)
    }

    /// Every row of `M` on every shard, ordered by primary key.
    pub async fn list<M: Model>(&self) -> Result<Vec<M>> {
        let span = self.span("list", M::TABLE, None);
        async {
            let mut rows: Vec<Vec<Value>> = self
                .on_every_shard(M::SQL.select_all)
                .await?
                .into_iter()
                .flatten()
                .collect();
            rows.sort_by(|a, b| compare(&a[M::PRIMARY_KEY], &b[M::PRIMARY_KEY]));
            // A row caught mid-move by an interrupted rebalance is on two shards.
            rows.dedup_by(|a, b| a[M::PRIMARY_KEY] == b[M::PRIMARY_KEY]);
            rows.into_iter().map(M::from_row).collect()
        }
        .instrument(span)
        .await
    }

    /// The number of `M` rows on every shard together.
    pub async fn count<M: Model>(&self) -> Result<u64> {
        Ok(self
            .count_per_shard::<M>()
            .await?
            .iter()
            .map(|(_, n)| n)
            .sum())
    }

    /// The number of `M` rows on each shard, in shard order.
    pub async fn count_per_shard<M: Model>(&self) -> Result<Vec<(String, u64)>> {
        let span = self.span("count", M::TABLE, None);
        let answers = self.on_every_shard(M::SQL.count).instrument(span).await?;
        self.shards
            .iter()
            .zip(answers)
            .map(|(shard, rows)| match rows.first().and_then(|r| r.first()) {
                Some(Value::Integer(n)) if *n >= 0 => Ok((shard.name.clone(), *n as u64)),
                other => Err(Error::Shard {
                    shard: shard.name.clone(),
                    message: format!("COUNT(*) returned {other:?}"),
                }),
            })
            .collect()
    }

    /// Runs one parameterless query on every shard concurrently. Fails if any
    /// shard fails: a partial answer would silently miss rows.
    async fn on_every_shard(&self, sql: &'static str) -> Result<Vec<Vec<Vec<Value>>>> {
        let statement = Statement::new(sql, Vec::new());
        let answers = join_all(self.shards.iter().map(|s| s.executor.query(&statement))).await;
        answers.into_iter().collect()
    }
}

/// Orders primary keys: integers numerically, text bytewise, integers before text.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Integer(_), _) => Ordering::Less,
        (_, Value::Integer(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}
