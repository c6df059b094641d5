//! Moving hash-placed rows to their home after shards were appended.
//!
//! Each row moves by copy → verify → switch its alias mappings → remove the
//! source. A crash at any step loses nothing: until the source is removed the
//! row is at both places, and reads look at the home first; re-running the
//! rebalance finishes the move. Readers that hold an old alias mapping (KV
//! lag) still find the row: an alias read that misses on its mapped shard
//! probes the others.

use tracing::Instrument;

use crate::backend::{Backend, MappingStore, ShardExecutor, Statement};
use crate::database::Database;
use crate::directory::MappingRecord;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::platform::now_ms;
use crate::strategy::Strategy;

/// What a rebalance did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebalanced {
    /// Rows moved to their hash home.
    pub moved: u64,
    /// Rows left off their home because a mapping places them there.
    pub mapped: u64,
    /// Rows already at their home.
    pub at_home: u64,
}

impl<B: Backend> Database<B> {
    /// Moves every `M` row that is not at its hash home there (hash placement only).
    pub async fn rebalance<M: Model>(&self) -> Result<Rebalanced> {
        if self.config.placement.write != Strategy::Hash {
            return Err(Error::Config(
                "rebalance moves hash-placed rows; other strategies keep a mapping for every key"
                    .into(),
            ));
        }
        let span = self.span("rebalance", M::TABLE, None);
        async {
            let mut report = Rebalanced::default();
            // Rows this run moved onto each shard, so they are not counted
            // again as "at home" when that shard's turn comes.
            let mut moved_into = vec![0u64; self.shards.len()];
            for source in 0..self.shards.len() {
                let rows = self.query_on(source, M::SQL.select_all, Vec::new()).await?;
                let mut at_home: u64 = 0;
                for row in rows {
                    let key = row[M::PRIMARY_KEY].clone();
                    let home = self.home(&key);
                    if home == source {
                        at_home += 1;
                        continue;
                    }
                    let pk_key = self.mapping_key::<M>(M::primary_key_column(), &key)?;
                    let mapped = self
                        .mappings
                        .get_many(std::slice::from_ref(&pk_key))
                        .await?;
                    if let Some(json) = mapped.into_iter().next().flatten() {
                        if MappingRecord::parse(&pk_key, &json)?.shard == self.shards[source].name {
                            report.mapped += 1;
                            continue;
                        }
                    }
                    self.move_row::<M>(source, home, row).await?;
                    report.moved += 1;
                    moved_into[home] += 1;
                }
                report.at_home += at_home.saturating_sub(moved_into[source]);
            }
            Ok(report)
        }
        .instrument(span)
        .await
    }

    async fn move_row<M: Model>(
        &self,
        source: usize,
        home: usize,
        row: Vec<crate::Value>,
    ) -> Result<()> {
        let key = row[M::PRIMARY_KEY].clone();
        // Copy, unless an interrupted run already did: then the home copy is
        // the one writes have been reaching (reads look there first).
        if self.fetch_by_key::<M>(home, &key).await?.is_none() {
            self.shards[home]
                .executor
                .execute(&Statement::new(M::SQL.insert, row.clone()))
                .await?;
        }
        // Verify before anything points at the copy.
        if self.fetch_by_key::<M>(home, &key).await?.is_none() {
            return Err(Error::Shard {
                shard: self.shards[home].name.clone(),
                message: format!("a copied `{}` row could not be read back", M::TABLE),
            });
        }
        let record = MappingRecord::new(&self.shards[home].name, Some(&key), now_ms());
        for lookup in M::LOOKUPS {
            let alias = self.mapping_key::<M>(lookup.column, &row[lookup.index])?;
            self.mappings.put(&alias, &record.to_json()).await?;
            self.config.cache.put(&alias, &self.shards[home].name);
        }
        let statement = Statement::new(M::SQL.delete_by_key, vec![key]);
        self.shards[source].executor.execute(&statement).await?;
        self.count_change(source, -1).await;
        self.count_change(home, 1).await;
        Ok(())
    }
}
