//! Moving hash-placed rows home after shards were appended.
//!
//! First every shard records the new epoch, so handles with the old shard
//! list can no longer write anywhere. Then each row off its home moves in
//! three batches: freeze the source copy and read it (writes to a frozen
//! copy are refused and retried at the home); copy it home unless a row or a
//! tombstone is there (a row deleted meanwhile stays deleted); remove the
//! source. A crash at any step loses nothing — the row is readable at one of
//! its copies throughout — and running the rebalance again finishes the move.
//! When every row is home, every shard records the table as settled.

use futures::future::try_join_all;

use super::{sql, Probe, Router};
use crate::backend::calls::Trace;
use crate::backend::{Backend, Statement};
use crate::directory::MappingRecord;
use crate::error::{Error, Result};
use crate::key::RoutedKey;
use crate::model::Schema;
use crate::platform::now_ms;
use crate::strategy::Strategy;
use crate::value::Value;

/// What a rebalance did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebalanced {
    /// Rows moved to their hash home.
    pub moved: u64,
    /// Rows left off their home because their full home redirects to them.
    pub mapped: u64,
    /// Rows already at their home.
    pub at_home: u64,
}

impl<B: Backend> Router<B> {
    pub(crate) async fn rebalance(&self, schema: &'static Schema) -> Result<Rebalanced> {
        if self.placement.write != Strategy::Hash {
            return Err(Error::Config(
                "rebalance moves hash-placed rows; other strategies keep a claim for every key"
                    .into(),
            ));
        }
        let span = self.span("rebalance", schema.table, None);
        async {
            // Fence older handles out everywhere before anything moves.
            let stamp = [sql::fence(
                self.epoch(),
                schema.table,
                &Value::Null,
                sql::Guards::NONE,
                "",
            )];
            try_join_all((0..self.shards.len()).map(|i| self.batch(i, &stamp))).await?;

            let mut report = Rebalanced::default();
            // Rows this run moved onto each shard, so that they are not
            // counted again as "at home" when that shard's turn comes.
            let mut moved_into = vec![0u64; self.shards.len()];
            for source in 0..self.shards.len() {
                let mut at_home = 0u64;
                // One shard's keys at a time; rows are read one by one as they move.
                for key in self.query(source, &sql::keys(schema)).await? {
                    let key = RoutedKey::new(key.into_iter().next().unwrap_or(Value::Null));
                    let home = self.home(&key);
                    if home == source {
                        at_home += 1;
                    } else if self
                        .probe(schema, home, &key.value)
                        .await?
                        .redirect
                        .as_deref()
                        == Some(self.name(source))
                    {
                        report.mapped += 1;
                    } else if self.move_row(schema, source, home, &key).await? {
                        report.moved += 1;
                        moved_into[home] += 1;
                    }
                }
                report.at_home += at_home.saturating_sub(moved_into[source]);
            }
            // Rows a previous, interrupted run copied home were counted there.
            let settle: Vec<Statement> = sql::settle(schema.table, self.epoch()).into();
            try_join_all((0..self.shards.len()).map(|i| self.batch(i, &settle))).await?;
            Ok(report)
        }
        .traced(span)
        .await
    }

    /// Moves one row from `source` to `home`; `false` if it was gone already.
    async fn move_row(
        &self,
        schema: &'static Schema,
        source: usize,
        home: usize,
        key: &RoutedKey,
    ) -> Result<bool> {
        let fence = || {
            sql::fence(
                self.epoch(),
                schema.table,
                &key.value,
                sql::Guards::NONE,
                "",
            )
        };
        // 1. Freeze the source copy and read it, in one transaction.
        let freeze = [
            fence(),
            sql::add_mark(schema.table, &key.value, "moving", "", now_ms()),
            sql::probe_key(schema, &key.value, self.epoch()),
        ];
        let frozen = self.batch(source, &freeze).await?;
        let probe = Probe::in_batch(schema, frozen, 2);
        let Some(row) = probe.row else {
            let thaw = [sql::clear_mark(schema.table, &key.value, "moving")];
            self.batch(source, &thaw).await?;
            return Ok(false);
        };
        // 2. Copy it home, with its incarnation, unless a row or a tombstone is there.
        let mut copy = vec![fence(), sql::insert_copy(schema, &row)];
        if let Some(incarnation) = &probe.incarnation {
            copy.push(sql::copy_incarnation(
                schema,
                &key.value,
                incarnation,
                now_ms(),
            ));
        }
        self.batch(home, &copy).await?;
        // 3. Remove the source copy.
        let remove = [
            fence(),
            Statement::new(schema.sql.delete_by_key, vec![key.value.clone()]),
            sql::clear_mark(schema.table, &key.value, "moving"),
            sql::clear_mark(schema.table, &key.value, "inc"),
        ];
        self.batch(source, &remove).await?;
        // 4. Point the read path's alias records home.
        let record = MappingRecord::new(self.name(home), Some(&key.value), now_ms());
        let mut records = Vec::new();
        for lookup in schema.lookups {
            let alias = self
                .directory
                .key(schema.table, lookup.column, &row[lookup.index])?;
            records.push((alias, record.clone()));
        }
        self.directory.publish(&records).await;
        Ok(true)
    }
}
