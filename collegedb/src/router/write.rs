//! Inserts, updates and deletes, with alias keys written before the row and
//! removed after it.

use futures::future::{join_all, try_join_all};
use tracing::Instrument;

use super::read::lookup_of;
use super::{unique_violation, Located};
use crate::backend::{Backend, Coordinator, MappingStore, ShardExecutor, Statement};
use crate::database::Database;
use crate::directory::MappingRecord;
use crate::error::{Error, Result};
use crate::model::{Lookup, Model};
use crate::platform::now_ms;
use crate::value::Value;

/// An alias this write put in the mapping store, to take back if the row write fails.
struct AliasSlot {
    column: &'static str,
    key: String,
}

impl<B: Backend> Database<B> {
    /// Inserts a new row.
    ///
    /// Fails with [`Error::DuplicateKey`] if the primary key exists and
    /// [`Error::DuplicateAlias`] if a lookup value is taken; either way no
    /// mapping is left behind.
    pub async fn insert<M: Model>(&self, model: &M) -> Result<()> {
        let row = model.to_row()?;
        B::Shard::check(&row)?;
        let key = row[M::PRIMARY_KEY].clone();
        let span = self.span("insert", M::TABLE, Some(&key));
        self.insert_row::<M>(row, key).instrument(span).await
    }

    async fn insert_row<M: Model>(&self, row: Vec<Value>, key: Value) -> Result<()> {
        let pk_key = self.mapping_key::<M>(M::primary_key_column(), &key)?;
        let mut keys = vec![pk_key.clone()];
        for lookup in M::LOOKUPS {
            keys.push(self.mapping_key::<M>(lookup.column, &row[lookup.index])?);
        }
        // One bulk read for the primary key's mapping and every alias.
        let mut stored = self.mappings.get_many(&keys).await?.into_iter();
        let pk_record = match stored.next().flatten() {
            Some(json) => Some(MappingRecord::parse(&pk_key, &json)?),
            None => None,
        };

        let (shard, write_pk_mapping) = match &pk_record {
            // A mapped key goes where its mapping says; the shard's PRIMARY KEY reports a duplicate.
            Some(record) => (self.shard_index(&record.shard)?, false),
            None => {
                let placed = self.place_new::<M>(&key, &pk_key).await?;
                (placed.shard, placed.needs_mapping)
            }
        };
        let coordinator_placed =
            write_pk_mapping && !self.config.placement.write.is_deterministic();
        self.record_shard(shard);

        let aliases = M::LOOKUPS.iter().zip(keys.into_iter().skip(1)).zip(stored);
        let slots = self.claim_aliases::<M>(&row, &key, shard, aliases).await?;
        let outcome = async {
            if write_pk_mapping {
                let record = MappingRecord::new(&self.shards[shard].name, None, now_ms());
                self.mappings.put(&pk_key, &record.to_json()).await?;
            }
            self.shards[shard]
                .executor
                .execute(&Statement::new(M::SQL.insert, row))
                .await
        }
        .await;
        if let Err(err) = outcome {
            self.release_aliases(&slots).await;
            let err = self.classify::<M>(err, &key);
            // A duplicate key's placement is the existing row's: keep it and its mapping.
            if !matches!(err, Error::DuplicateKey { .. }) {
                if write_pk_mapping {
                    self.forget(&pk_key).await;
                }
                if let (true, Some(coordinator)) = (coordinator_placed, &self.coordinator) {
                    if let Err(e) = coordinator.release(&pk_key).await {
                        tracing::warn!(error = %e, "could not release the placement of a failed insert");
                    }
                }
            }
            return Err(err);
        }

        if write_pk_mapping {
            self.config.cache.put(&pk_key, &self.shards[shard].name);
        }
        for slot in &slots {
            self.config.cache.put(&slot.key, &self.shards[shard].name);
        }
        self.count_change(shard, 1).await;
        Ok(())
    }

    /// Replaces the row with `model`'s primary key.
    ///
    /// Changed lookup values get their new alias before the row changes and
    /// lose the old one after. Fails with [`Error::NotFound`] if the row does not exist.
    pub async fn update<M: Model>(&self, model: &M) -> Result<()> {
        let row = model.to_row()?;
        B::Shard::check(&row)?;
        let key = row[M::PRIMARY_KEY].clone();
        let span = self.span("update", M::TABLE, Some(&key));
        async {
            let Some(Located { shard, row: old }) = self.locate_by_key::<M>(&key).await? else {
                return Err(Error::NotFound {
                    table: M::TABLE,
                    key: key.key_text(),
                });
            };
            let changed: Vec<_> = M::LOOKUPS
                .iter()
                .filter(|l| old[l.index] != row[l.index])
                .collect();
            let mut new_keys = Vec::with_capacity(changed.len());
            for lookup in &changed {
                new_keys.push(self.mapping_key::<M>(lookup.column, &row[lookup.index])?);
            }
            let stored = if new_keys.is_empty() {
                Vec::new()
            } else {
                self.mappings.get_many(&new_keys).await?
            };
            let aliases = changed.iter().copied().zip(new_keys).zip(stored);
            let slots = self.claim_aliases::<M>(&row, &key, shard, aliases).await?;

            let statement = Statement::new(M::SQL.update, row);
            if let Err(err) = self.shards[shard].executor.execute(&statement).await {
                self.release_aliases(&slots).await;
                return Err(self.classify::<M>(err, &key));
            }
            for slot in &slots {
                self.config.cache.put(&slot.key, &self.shards[shard].name);
            }
            for lookup in changed {
                let old_key = self.mapping_key::<M>(lookup.column, &old[lookup.index])?;
                self.forget(&old_key).await;
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Deletes the row with primary key `key`, then its aliases. Returns whether a row was deleted.
    pub async fn delete<M: Model>(&self, key: Value) -> Result<bool> {
        let span = self.span("delete", M::TABLE, Some(&key));
        async {
            match self.locate_by_key::<M>(&key).await? {
                Some(found) => self.delete_located::<M>(found).await.map(|_| true),
                None => Ok(false),
            }
        }
        .instrument(span)
        .await
    }

    /// Deletes the row whose lookup column `M::LOOKUPS[lookup]` equals `value`,
    /// then every key of that row. Returns whether a row was deleted.
    pub async fn delete_by<M: Model>(&self, lookup: usize, value: Value) -> Result<bool> {
        let span = self.span("delete_by", M::TABLE, Some(&value));
        async {
            match self
                .locate_by_alias::<M>(lookup_of::<M>(lookup)?, &value)
                .await?
            {
                Some(found) => self.delete_located::<M>(found).await.map(|_| true),
                None => Ok(false),
            }
        }
        .instrument(span)
        .await
    }

    /// Removes a found row, then its aliases, then its primary-key mapping.
    async fn delete_located<M: Model>(&self, found: Located) -> Result<()> {
        let key = found.row[M::PRIMARY_KEY].clone();
        let statement = Statement::new(M::SQL.delete_by_key, vec![key.clone()]);
        self.shards[found.shard]
            .executor
            .execute(&statement)
            .await?;
        let aliases = M::LOOKUPS
            .iter()
            .map(|l| self.mapping_key::<M>(l.column, &found.row[l.index]))
            .collect::<Result<Vec<_>>>()?;
        for alias in &aliases {
            self.config.cache.remove(alias);
        }
        try_join_all(aliases.iter().map(|alias| self.mappings.delete(alias))).await?;
        // A key at its hash home under hash placement has no mapping to remove.
        let recomputable =
            self.config.placement.write.is_deterministic() && found.shard == self.home(&key);
        if !recomputable {
            let pk_key = self.mapping_key::<M>(M::primary_key_column(), &key)?;
            self.mappings.delete(&pk_key).await?;
            self.config.cache.remove(&pk_key);
            if let Some(coordinator) = &self.coordinator {
                coordinator.release(&pk_key).await?;
            }
        }
        self.count_change(found.shard, -1).await;
        Ok(())
    }

    /// Checks that each alias is free (or stale, or already this row's), then
    /// writes the ones that are not already this row's, all at once, before
    /// the row is written.
    async fn claim_aliases<M: Model>(
        &self,
        row: &[Value],
        key: &Value,
        shard: usize,
        aliases: impl Iterator<Item = ((&'static Lookup, String), Option<String>)>,
    ) -> Result<Vec<AliasSlot>> {
        let mut slots = Vec::new();
        let record = MappingRecord::new(&self.shards[shard].name, Some(key), now_ms());
        for ((lookup, alias_key), json) in aliases {
            let taken = match json {
                None => false,
                Some(json) => {
                    let existing = MappingRecord::parse(&alias_key, &json)?;
                    if existing.primary_key(&alias_key)? == *key {
                        if existing.shard == record.shard {
                            // Already ours (a retried write): nothing to claim.
                            continue;
                        }
                        false
                    } else {
                        // Another row's alias: taken unless that row no longer has this value.
                        let index = self.shard_index(&existing.shard)?;
                        let select = vec![row[lookup.index].clone()];
                        !self
                            .query_on(index, lookup.select, select)
                            .await?
                            .is_empty()
                    }
                }
            };
            if taken {
                return Err(Error::DuplicateAlias {
                    table: M::TABLE,
                    column: lookup.column,
                });
            }
            slots.push(AliasSlot {
                column: lookup.column,
                key: alias_key,
            });
        }
        let json = record.to_json();
        let puts = join_all(slots.iter().map(|slot| self.mappings.put(&slot.key, &json))).await;
        if let Some(err) = puts.into_iter().find_map(Result::err) {
            // Some puts may have landed: take them all back.
            self.release_aliases(&slots).await;
            return Err(err);
        }
        Ok(slots)
    }

    /// Takes back aliases this write put, after the row write failed.
    async fn release_aliases(&self, slots: &[AliasSlot]) {
        join_all(slots.iter().map(|slot| {
            tracing::debug!(
                column = slot.column,
                "taking back an alias of a failed write"
            );
            self.forget(&slot.key)
        }))
        .await;
    }

    /// Removes a mapping, best effort: a leftover mapping is harmless (reads
    /// check the row), while failing the caller's operation here would not be.
    async fn forget(&self, key: &str) {
        self.config.cache.remove(key);
        if let Err(err) = self.mappings.delete(key).await {
            tracing::warn!(error = %err, "could not remove a mapping; reads will ignore it");
        }
    }

    /// Keeps the coordinator's key counts, best effort: the row is already written.
    pub(crate) async fn count_change(&self, shard: usize, delta: i64) {
        if let Some(coordinator) = &self.coordinator {
            if let Err(err) = coordinator
                .adjust_count(&self.shards[shard].name, delta)
                .await
            {
                tracing::warn!(error = %err, "could not update the shard's key count");
            }
        }
    }

    /// Turns a shard's UNIQUE failure into the typed duplicate error.
    fn classify<M: Model>(&self, err: Error, key: &Value) -> Error {
        match unique_violation(&err, M::TABLE) {
            Some(column) if column == M::primary_key_column() => Error::DuplicateKey {
                table: M::TABLE,
                key: key.key_text(),
            },
            Some(column) => match M::LOOKUPS.iter().find(|l| l.column == column) {
                Some(lookup) => Error::DuplicateAlias {
                    table: M::TABLE,
                    column: lookup.column,
                },
                None => err,
            },
            None => err,
        }
    }
}
