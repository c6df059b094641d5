//! Reads by primary key and by alias. Reads never place keys.

use futures::future::join_all;
use tracing::Instrument;

use super::Located;
use crate::backend::{Backend, MappingStore};
use crate::database::Database;
use crate::directory::MappingRecord;
use crate::error::{Error, Result};
use crate::model::{Lookup, Model};
use crate::platform::now_ms;
use crate::strategy::{location, Strategy};
use crate::value::Value;

/// An alias record younger than this may belong to an insert still in flight
/// (aliases are written before the row), so a read that finds no row for it
/// leaves it alone; an older one is dangling and is removed.
pub(crate) const ALIAS_GRACE_MS: u64 = 5 * 60 * 1000;

impl<B: Backend> Database<B> {
    /// The row with primary key `key`, wherever it lives.
    pub async fn get<M: Model>(&self, key: Value) -> Result<Option<M>> {
        let span = self.span("get", M::TABLE, Some(&key));
        async {
            match self.locate_by_key::<M>(&key).await? {
                Some(found) => M::from_row(found.row).map(Some),
                None => Ok(None),
            }
        }
        .instrument(span)
        .await
    }

    /// The row whose lookup column `M::LOOKUPS[lookup]` equals `value`.
    pub async fn find_by<M: Model>(&self, lookup: usize, value: Value) -> Result<Option<M>> {
        let span = self.span("find_by", M::TABLE, Some(&value));
        async {
            match self
                .locate_by_alias::<M>(lookup_of::<M>(lookup)?, &value)
                .await?
            {
                Some(found) => M::from_row(found.row).map(Some),
                None => Ok(None),
            }
        }
        .instrument(span)
        .await
    }

    /// The name of the shard that holds the row with primary key `key`.
    pub async fn shard_of<M: Model>(&self, key: Value) -> Result<Option<&str>> {
        Ok(self
            .locate_by_key::<M>(&key)
            .await?
            .map(|found| self.shards[found.shard].name.as_str()))
    }

    /// Whether a key with no mapping may live off its hash home, so that a
    /// miss must probe the other shards before it can say "not found".
    fn may_live_off_home(&self) -> bool {
        let p = self.config.placement;
        !(p.read == Strategy::Hash
            && p.write == Strategy::Hash
            && self.config.max_shard_bytes.is_none())
    }

    /// Where the read strategy looks first for a key with no mapping.
    fn first_guess(&self, key: &Value) -> Option<usize> {
        match self.config.placement.read {
            Strategy::Hash => Some(self.home(key)),
            Strategy::Location { target } => {
                let locations: Vec<_> = self.shards.iter().map(|s| s.location).collect();
                Some(location::pick(
                    target,
                    &locations,
                    crate::strategy::hash::key_hash(&key.key_text()),
                ))
            }
            // Neither has a meaningful first place: probe every shard at once.
            Strategy::RoundRobin | Strategy::Random => None,
        }
    }

    /// Finds the row of primary key `key`: cache, hash home, mapping store, first guess, then a probe.
    pub(crate) async fn locate_by_key<M: Model>(&self, key: &Value) -> Result<Option<Located>> {
        let mapping_key = self.mapping_key::<M>(M::primary_key_column(), key)?;
        let mut tried = vec![false; self.shards.len()];

        if let Some(shard) = self.config.cache.get(&mapping_key) {
            let index = self.shard_index(&shard)?;
            tried[index] = true;
            if let Some(found) = self.try_key::<M>(index, key).await? {
                return Ok(Some(found));
            }
            self.config.cache.remove(&mapping_key);
        }

        // No round trip to the mapping store where placement can be computed.
        if self.config.placement.read == Strategy::Hash {
            let home = self.home(key);
            if !tried[home] {
                tried[home] = true;
                if let Some(found) = self.try_key::<M>(home, key).await? {
                    return Ok(Some(found));
                }
            }
        }

        let stored = self
            .mappings
            .get_many(std::slice::from_ref(&mapping_key))
            .await?;
        if let Some(json) = stored.into_iter().next().flatten() {
            let record = MappingRecord::parse(&mapping_key, &json)?;
            let index = self.shard_index(&record.shard)?;
            if !tried[index] {
                tried[index] = true;
                if let Some(found) = self.try_key::<M>(index, key).await? {
                    self.config.cache.put(&mapping_key, &record.shard);
                    return Ok(Some(found));
                }
            }
        }

        if !self.may_live_off_home() {
            // Jump hash only ever moves a key to an appended shard, so a key not
            // yet rebalanced is at one of its homes under fewer shards.
            for index in self.previous_homes(key) {
                if !tried[index] {
                    tried[index] = true;
                    if let Some(found) = self.try_key::<M>(index, key).await? {
                        return Ok(Some(found));
                    }
                }
            }
            return Ok(None);
        }
        if let Some(guess) = self.first_guess(key).filter(|&g| !tried[g]) {
            tried[guess] = true;
            if let Some(found) = self.try_key::<M>(guess, key).await? {
                return Ok(Some(found));
            }
        }
        self.probe(&tried, M::SQL.select_by_key, key).await
    }

    /// Finds the row whose lookup column equals `value`: cache, mapping store, then a probe.
    pub(crate) async fn locate_by_alias<M: Model>(
        &self,
        lookup: &Lookup,
        value: &Value,
    ) -> Result<Option<Located>> {
        let alias_key = self.mapping_key::<M>(lookup.column, value)?;
        let mut tried = vec![false; self.shards.len()];

        if let Some(shard) = self.config.cache.get(&alias_key) {
            let index = self.shard_index(&shard)?;
            tried[index] = true;
            if let Some(found) = self.try_alias(index, lookup, value).await? {
                return Ok(Some(found));
            }
            self.config.cache.remove(&alias_key);
        }

        let stored = self
            .mappings
            .get_many(std::slice::from_ref(&alias_key))
            .await?;
        let record = match stored.into_iter().next().flatten() {
            Some(json) => Some(MappingRecord::parse(&alias_key, &json)?),
            None => None,
        };
        if let Some(record) = &record {
            let index = self.shard_index(&record.shard)?;
            if !tried[index] {
                tried[index] = true;
                if let Some(found) = self.try_alias(index, lookup, value).await? {
                    self.config.cache.put(&alias_key, &record.shard);
                    return Ok(Some(found));
                }
            }
        }

        // The mapping store may lag behind a write made elsewhere: ask the shards.
        let found = self.probe(&tried, lookup.select, value).await?;
        if found.is_none() {
            if let Some(record) =
                record.filter(|r| now_ms().saturating_sub(r.updated) > ALIAS_GRACE_MS)
            {
                tracing::info!(shard = %record.shard, "removing a dangling alias");
                self.mappings.delete(&alias_key).await?;
            }
        }
        Ok(found)
    }

    async fn try_key<M: Model>(&self, index: usize, key: &Value) -> Result<Option<Located>> {
        let row = self.fetch_by_key::<M>(index, key).await?;
        Ok(row.map(|row| {
            self.record_shard(index);
            Located { shard: index, row }
        }))
    }

    async fn try_alias(
        &self,
        index: usize,
        lookup: &Lookup,
        value: &Value,
    ) -> Result<Option<Located>> {
        let mut rows = self
            .query_on(index, lookup.select, vec![value.clone()])
            .await?;
        Ok(rows.pop().map(|row| {
            self.record_shard(index);
            Located { shard: index, row }
        }))
    }

    /// Asks every shard not yet tried at once. A shard that fails makes the
    /// probe fail unless another shard has the row: "not found" must be true.
    async fn probe(&self, tried: &[bool], sql: &str, value: &Value) -> Result<Option<Located>> {
        let untried: Vec<usize> = (0..self.shards.len()).filter(|&i| !tried[i]).collect();
        let answers = join_all(
            untried
                .iter()
                .map(|&i| self.query_on(i, sql, vec![value.clone()])),
        )
        .await;
        let mut failure = None;
        for (&index, answer) in untried.iter().zip(answers) {
            match answer {
                Ok(mut rows) => {
                    if let Some(row) = rows.pop() {
                        self.record_shard(index);
                        return Ok(Some(Located { shard: index, row }));
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        failure.map_or(Ok(None), Err)
    }
}

/// `M::LOOKUPS[index]`, or a clear error for a hand-written call with a bad index.
pub(crate) fn lookup_of<M: Model>(index: usize) -> Result<&'static Lookup> {
    M::LOOKUPS.get(index).ok_or_else(|| {
        Error::Config(format!(
            "`{}` has {} lookup column(s); there is no lookup #{index}",
            M::TABLE,
            M::LOOKUPS.len()
        ))
    })
}
