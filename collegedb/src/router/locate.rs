//! Finding rows: by primary key and by alias. Reads never place keys, take
//! claims or write anything.
//!
//! By primary key under hash placement: the home shard, which also says
//! whether the table is unsettled and whether the key was redirected off a
//! full home (one query); while unsettled, the key's previous homes, then the
//! home once more (a move copies before it deletes, so this cannot miss a
//! row). Under other placements: the process cache, the read strategy's first
//! guess, the mapping store, then the coordinator's claim.
//!
//! By alias: the process cache, the mapping store, then the coordinator's
//! claim, whose owner is located by primary key if its row moved.

use super::{Found, Probe, Router};
use crate::backend::calls::Trace;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::key::{owner_value, RoutedKey};
use crate::model::{Lookup, Model, Schema};
use crate::strategy::{location, Strategy};
use crate::value::Value;

impl Probe {
    fn found(self, shard: usize) -> Option<Found> {
        let incarnation = self.incarnation;
        self.row.map(|row| Found {
            shard,
            row,
            incarnation,
        })
    }
}

impl<B: Backend> Router<B> {
    pub(crate) async fn get<M: Model>(&self, key: Value) -> Result<Option<M>> {
        self.get_row(M::SCHEMA, key)
            .await?
            .map(M::from_row)
            .transpose()
    }

    pub(crate) async fn find_by<M: Model>(&self, lookup: usize, value: Value) -> Result<Option<M>> {
        self.find_row(M::SCHEMA, lookup, value)
            .await?
            .map(M::from_row)
            .transpose()
    }

    /// [`Router::get`] without the model's type: the row's columns.
    async fn get_row(&self, schema: &'static Schema, key: Value) -> Result<Option<Vec<Value>>> {
        let key = RoutedKey::new(key);
        let span = self.span("get", schema.table, Some(&key));
        let found = self.locate(schema, &key).traced(span).await?;
        Ok(found.map(|found| found.row))
    }

    /// [`Router::find_by`] without the model's type: the row's columns.
    async fn find_row(
        &self,
        schema: &'static Schema,
        lookup: usize,
        value: Value,
    ) -> Result<Option<Vec<Value>>> {
        let lookup = lookup_of(schema, lookup)?;
        let span = self.span_by_value("find_by", schema.table, &value);
        let found = self
            .locate_alias(schema, lookup, &value)
            .traced(span)
            .await?;
        Ok(found.map(|found| found.row))
    }

    pub(crate) async fn shard_of(
        &self,
        schema: &'static Schema,
        key: Value,
    ) -> Result<Option<&str>> {
        let key = RoutedKey::new(key);
        let span = self.span("shard_of", schema.table, Some(&key));
        Ok(self
            .locate(schema, &key)
            .traced(span)
            .await?
            .map(|found| self.name(found.shard)))
    }

    /// The row of primary key `key`, wherever it lives. A row found at its
    /// hash home comes without its incarnation: see [`Router::locate_life`].
    pub(crate) async fn locate(
        &self,
        schema: &'static Schema,
        key: &RoutedKey,
    ) -> Result<Option<Found>> {
        self.locate_as(schema, key, false).await
    }

    /// [`Router::locate`], with the row's incarnation wherever it is found.
    pub(crate) async fn locate_life(
        &self,
        schema: &'static Schema,
        key: &RoutedKey,
    ) -> Result<Option<Found>> {
        self.locate_as(schema, key, true).await
    }

    async fn locate_as(
        &self,
        schema: &'static Schema,
        key: &RoutedKey,
        life: bool,
    ) -> Result<Option<Found>> {
        let found = if self.hash_placed() {
            self.locate_hashed(schema, key, life).await?
        } else {
            self.locate_claimed(schema, key).await?
        };
        if let Some(found) = &found {
            self.record_shard(found.shard);
        }
        Ok(found)
    }

    async fn locate_hashed(
        &self,
        schema: &'static Schema,
        key: &RoutedKey,
        life: bool,
    ) -> Result<Option<Found>> {
        let home = self.home(key);
        // A home copy is the live one: a read needs only the row there.
        let value = &key.value;
        let at_home = || async move {
            match life {
                true => self.probe(schema, home, value).await,
                false => self.peek(schema, home, value).await,
            }
        };
        let probe = at_home().await?;
        if probe.row.is_some() {
            return Ok(probe.found(home));
        }
        if let Some(target) = &probe.redirect {
            let index = self.shard_index(target)?;
            return Ok(self.probe(schema, index, &key.value).await?.found(index));
        }
        if !probe.unsettled {
            return Ok(None);
        }
        for previous in self.previous_homes(key) {
            let found = self.probe(schema, previous, &key.value).await?;
            if found.row.is_some() {
                if found.moving {
                    // Frozen for a move: the home copy, once there, is the live one.
                    if let Some(at_home) = at_home().await?.found(home) {
                        return Ok(Some(at_home));
                    }
                }
                return Ok(found.found(previous));
            }
        }
        // A row that left a previous home after we looked there is home now.
        Ok(at_home().await?.found(home))
    }

    async fn locate_claimed(
        &self,
        schema: &'static Schema,
        key: &RoutedKey,
    ) -> Result<Option<Found>> {
        let pk_key =
            self.directory
                .read_key(schema.table, schema.primary_key_column(), &key.value)?;
        let mut tried = vec![false; self.shards.len()];
        let mut try_shard = |index: usize| {
            let first = !tried[index];
            tried[index] = true;
            first
        };

        if let Some(index) = self.cached_shard(&pk_key) {
            try_shard(index);
            if let Some(found) = self.probe(schema, index, &key.value).await?.found(index) {
                return Ok(Some(found));
            }
            self.directory.unlearn(&pk_key);
        }
        if let Some(index) = self.first_guess(key).filter(|&i| try_shard(i)) {
            if let Some(found) = self.probe(schema, index, &key.value).await?.found(index) {
                return Ok(Some(found));
            }
        }
        if let Some(shard) = self.directory.resolve(&pk_key).await {
            if let Some(index) = self.known_shard(&shard).filter(|&i| try_shard(i)) {
                if let Some(found) = self.probe(schema, index, &key.value).await?.found(index) {
                    self.directory.remember(pk_key, shard);
                    return Ok(Some(found));
                }
            }
        }
        let holder = self
            .directory
            .holders(std::slice::from_ref(&pk_key))
            .await?
            .pop()
            .flatten();
        if let Some(holder) = holder {
            let index = self.claimed_shard(&holder.shard)?;
            if try_shard(index) {
                if let Some(found) = self.probe(schema, index, &key.value).await?.found(index) {
                    self.directory.remember(pk_key, holder.shard);
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// The row whose lookup column equals `value`.
    pub(crate) async fn locate_alias(
        &self,
        schema: &'static Schema,
        lookup: &'static Lookup,
        value: &Value,
    ) -> Result<Option<Found>> {
        self.directory
            .require_authority("lookup values are claimed at the coordinator")?;
        let alias_key = self
            .directory
            .read_key(schema.table, lookup.column, value)?;
        let mut tried = vec![false; self.shards.len()];

        if let Some(index) = self.cached_shard(&alias_key) {
            tried[index] = true;
            if let Some(found) = self.alias_at(schema, index, lookup, value).await? {
                return Ok(Some(found));
            }
            self.directory.unlearn(&alias_key);
        }
        if let Some(shard) = self.directory.resolve(&alias_key).await {
            if let Some(index) = self.known_shard(&shard).filter(|&i| !tried[i]) {
                tried[index] = true;
                if let Some(found) = self.alias_at(schema, index, lookup, value).await? {
                    self.directory.remember(alias_key, shard);
                    return Ok(Some(found));
                }
            }
        }
        // The mapping store lags or lost it: ask the authority.
        let Some(holder) = self
            .directory
            .holders(std::slice::from_ref(&alias_key))
            .await?
            .pop()
            .flatten()
        else {
            return Ok(None);
        };
        let index = self.claimed_shard(&holder.shard)?;
        if !tried[index] {
            if let Some(found) = self.alias_at(schema, index, lookup, value).await? {
                self.directory.remember(alias_key, holder.shard);
                return Ok(Some(found));
            }
        }
        // The owner's row moved since it took the claim: find it by its key.
        let owner = RoutedKey::new(owner_value(&holder.owner)?);
        Ok(self
            .locate(schema, &owner)
            .await?
            .filter(|found| found.row[lookup.index] == *value))
    }

    /// The row on shard `index` whose lookup equals `value`; a copy frozen
    /// for a move defers to the live copy found by primary key.
    async fn alias_at(
        &self,
        schema: &'static Schema,
        index: usize,
        lookup: &Lookup,
        value: &Value,
    ) -> Result<Option<Found>> {
        let probe = self.probe_lookup(schema, index, lookup, value).await?;
        if !probe.moving {
            if probe.row.is_some() {
                self.record_shard(index);
            }
            return Ok(probe.found(index));
        }
        let Some(row) = &probe.row else {
            return Ok(None);
        };
        let key = RoutedKey::new(row[schema.primary_key].clone());
        Ok(self
            .locate(schema, &key)
            .await?
            .filter(|found| found.row[lookup.index] == *value))
    }

    /// The cached shard of a mapping key, if this database has that shard.
    fn cached_shard(&self, key: &str) -> Option<usize> {
        let index = self
            .directory
            .cached_with(key, |shard| self.known_shard(shard))?;
        if index.is_none() {
            self.directory.unlearn(key);
        }
        index
    }

    /// A shard named by a read-path record, if this database has it: a record
    /// naming another database's shard is only a stale hint here.
    fn known_shard(&self, name: &str) -> Option<usize> {
        self.shards.iter().position(|s| s.name == name)
    }

    /// Where the read strategy looks first for a key placed by a coordinator.
    fn first_guess(&self, key: &RoutedKey) -> Option<usize> {
        match self.placement.read {
            Strategy::Hash => Some(self.home(key)),
            Strategy::Location { target } => {
                let locations: Vec<_> = self.shards.iter().map(|s| s.location).collect();
                Some(location::pick(target, &locations, key.hash))
            }
            Strategy::RoundRobin | Strategy::Random => None,
        }
    }
}

/// `schema.lookups[index]`, or a clear error for a hand-written call with a bad index.
pub(crate) fn lookup_of(schema: &'static Schema, index: usize) -> Result<&'static Lookup> {
    schema.lookups.get(index).ok_or_else(|| {
        Error::Config(format!(
            "`{}` has {} lookup column(s); there is no lookup #{index}",
            schema.table,
            schema.lookups.len()
        ))
    })
}
