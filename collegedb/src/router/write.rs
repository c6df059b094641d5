//! Inserts, updates and deletes.
//!
//! Order: claims first, then the row (in one batch behind the shard's
//! fence), then releases — so a crash or a lost reply leaves at worst a
//! claim without a row, which a later write proves stale and takes over,
//! never a row without its claims. The read-path records (KV) are written
//! alongside the row and are only ever hints.
//!
//! A write whose reply was lost may have committed: its clean-up gives back
//! only claims it took itself, and only when the shard refused the row.

use futures::future::join_all;

use super::claims::{duplicate_key, ClaimSpec};
use super::locate::lookup_of;
use super::sql::{self, Guards};
use super::{fenced, refused, unique_columns, yield_now, Found, Probe, Router, ATTEMPTS};
use crate::backend::calls::{self, Service, Trace};
use crate::backend::{Backend, Fence, ShardExecutor, Target};
use crate::directory::MappingRecord;
use crate::error::{Error, Result};
use crate::key::{nonce, RoutedKey};
use crate::model::{Model, Schema};
use crate::platform::now_ms;
use crate::strategy::{hash, location, random, AllocationRequest, Strategy};
use crate::value::Value;

/// Where a new row goes, before any claim is taken.
struct Plan {
    target: Target,
    /// The primary key needs a placement claim (it cannot be recomputed).
    placement: bool,
    /// The key's full home, to be marked with a redirect to the shard used instead.
    spilled_from: Option<usize>,
    guards: Guards,
}

/// A new row and its key.
#[derive(Clone, Copy)]
struct NewRow<'r> {
    schema: &'static Schema,
    row: &'r [Value],
    key: &'r RoutedKey,
}

impl<B: Backend> Router<B> {
    pub(crate) async fn insert<M: Model>(&self, model: &M) -> Result<()> {
        self.insert_encoded(M::SCHEMA, model.to_row()?).await
    }

    /// [`Router::insert`] of an encoded row.
    async fn insert_encoded(&self, schema: &'static Schema, row: Vec<Value>) -> Result<()> {
        B::Shard::check(&row)?;
        let key = RoutedKey::new(row[schema.primary_key].clone());
        let span = self.span("insert", schema.table, Some(&key));
        self.insert_row(schema, &row, &key).traced(span).await
    }

    async fn insert_row(
        &self,
        schema: &'static Schema,
        row: &[Value],
        key: &RoutedKey,
    ) -> Result<()> {
        // A new row's incarnation is the nonce of the attempt that writes it.
        let mut incarnation = nonce();
        let mut plan = self.plan(key).await?;
        let lookups = self.lookup_claims(schema, row, |_| true)?;
        for _ in 0..ATTEMPTS {
            let mut specs = Vec::with_capacity(lookups.len() + 1);
            if plan.placement {
                specs.push(self.placement_claim(schema, key)?);
            }
            specs.extend(lookups.iter().cloned());
            let granted = self
                .take_claims(
                    schema,
                    key,
                    &incarnation,
                    &incarnation,
                    plan.target.clone(),
                    &specs,
                )
                .await?;
            self.record_shard(granted.shard);
            let records = self.records(key, granted.shard, &specs);
            let written = async {
                if let Some(home) = plan.spilled_from {
                    self.redirect(schema, home, granted.shard, key).await?;
                }
                let claimed = !specs.is_empty();
                let new = NewRow { schema, row, key };
                self.write_new(&new, granted.shard, &incarnation, claimed, plan.guards)
                    .await
            };
            let (written, ()) = futures::join!(written, self.directory.publish(&records));
            match written {
                Ok(()) => return Ok(()),
                Err(err) if fenced(&err) == Some(Fence::Redirected) => {
                    // Placed off this home before: the placement claim decides,
                    // and the stale redirect goes with the row write.
                    self.give_back(key, &incarnation, &granted.fresh).await;
                    let home = self.home(key);
                    plan = Plan {
                        target: Target::Shard(self.name(home).to_owned()),
                        placement: true,
                        spilled_from: None,
                        guards: plan.guards.without(Guards::REDIRECT),
                    };
                }
                Err(err) if fenced(&err) == Some(Fence::Revoked) => {
                    // Another write proved this attempt's row absent and
                    // revoked it. Try again as a new attempt: its claims'
                    // proof says exactly whether a row now holds the key or
                    // a value (duplicate) or the revoking write gave up.
                    self.give_back(key, &incarnation, &granted.fresh).await;
                    incarnation = nonce();
                }
                Err(err) => {
                    if refused(&err) || matches!(err, Error::DuplicateKey { .. }) {
                        self.give_back(key, &incarnation, &granted.fresh).await;
                        let keys: Vec<String> = records.into_iter().map(|(k, _)| k).collect();
                        self.directory.forget(&keys).await;
                    }
                    return Err(self.classify(schema, err, key));
                }
            }
        }
        Err(Error::Coordinator(
            "the placement of this key kept changing; retry the insert".into(),
        ))
    }

    /// Where a new key goes, by the write strategy, among shards under the size limit.
    async fn plan(&self, key: &RoutedKey) -> Result<Plan> {
        let eligible = self.eligible_shards().await?;
        let write = self.placement.write;
        if write == Strategy::Hash {
            let home = self.home(key);
            if eligible.contains(&home) {
                return Ok(Plan {
                    target: Target::Shard(self.name(home).to_owned()),
                    placement: false,
                    spilled_from: None,
                    guards: Guards::UNSETTLED
                        .with(Guards::REDIRECT)
                        .with(Guards::REVOKED),
                });
            }
            // The home is full: the next best, hashed over the eligible shards.
            let shard = eligible[hash::jump(key.hash, eligible.len())];
            return Ok(Plan {
                target: Target::Shard(self.name(shard).to_owned()),
                placement: true,
                spilled_from: Some(home),
                guards: Guards::REVOKED,
            });
        }
        let proposed = match write {
            Strategy::Random => Some(eligible[random::pick(eligible.len())]),
            Strategy::Location { target } => {
                let locations: Vec<_> = eligible.iter().map(|&i| self.shards[i].location).collect();
                Some(eligible[location::pick(target, &locations, key.hash)])
            }
            Strategy::RoundRobin | Strategy::Hash => None,
        };
        Ok(Plan {
            target: Target::Allocate(AllocationRequest {
                strategy: write.kind(),
                candidates: eligible.iter().map(|&i| self.name(i).to_owned()).collect(),
                proposed: proposed.map(|i| self.name(i).to_owned()),
            }),
            placement: true,
            spilled_from: None,
            guards: Guards::REVOKED,
        })
    }

    /// The shards that may take new keys: all, or those under the size limit.
    async fn eligible_shards(&self) -> Result<Vec<usize>> {
        let Some(limit) = self.max_shard_bytes else {
            return Ok((0..self.shards.len()).collect());
        };
        let sizes = join_all(self.shards.iter().map(|s| {
            calls::count(Service::Shard);
            s.executor.size_bytes()
        }))
        .await;
        let mut eligible = Vec::new();
        for (index, size) in sizes.into_iter().enumerate() {
            if size? < limit {
                eligible.push(index);
            }
        }
        if eligible.is_empty() {
            return Err(Error::ShardsFull { limit_bytes: limit });
        }
        Ok(eligible)
    }

    /// Marks the key's full home with a redirect to `shard`, unless the key
    /// is already there (or, unsettled, at a previous home).
    async fn redirect(
        &self,
        schema: &'static Schema,
        home: usize,
        shard: usize,
        key: &RoutedKey,
    ) -> Result<()> {
        let statements = [
            sql::fence(self.epoch(), schema.table, &key.value, Guards::NONE, ""),
            sql::probe_key(schema, &key.value, self.epoch()),
            sql::clear_mark(schema.table, &key.value, "redirect"),
            sql::add_mark(
                schema.table,
                &key.value,
                "redirect",
                self.name(shard),
                now_ms(),
            ),
        ];
        let outcomes = self.batch(home, &statements).await?;
        let probe = Probe::in_batch(schema, outcomes, 1);
        if probe.row.is_some() || (probe.unsettled && self.at_previous_home(schema, key).await?) {
            return Err(duplicate_key(schema, key));
        }
        Ok(())
    }

    /// Writes a new row on `shard` behind the fence. While the table is
    /// unsettled, the key's previous homes are checked first (each check
    /// also records the epoch there, fencing out older handles). `claimed`:
    /// the row has claims, which name its incarnation.
    async fn write_new(
        &self,
        new: &NewRow<'_>,
        shard: usize,
        incarnation: &str,
        claimed: bool,
        mut guards: Guards,
    ) -> Result<()> {
        let NewRow { schema, row, key } = *new;
        loop {
            let statements = [
                sql::fence(self.epoch(), schema.table, &key.value, guards, incarnation),
                sql::clear_mark(schema.table, &key.value, "gone"),
                sql::clear_mark(schema.table, &key.value, "inc"),
                sql::clear_mark(schema.table, &key.value, "redirect"),
                sql::insert(schema, row),
                sql::incarnation(
                    schema,
                    &key.value,
                    incarnation,
                    claimed,
                    self.epoch(),
                    now_ms(),
                ),
            ];
            match self.batch(shard, &statements).await {
                Err(err) if fenced(&err) == Some(Fence::Unsettled) => {
                    if self.at_previous_home(schema, key).await? {
                        return Err(duplicate_key(schema, key));
                    }
                    guards = guards.without(Guards::UNSETTLED);
                }
                other => return other.map(drop),
            }
        }
    }

    /// Whether the key's row is at one of its previous homes.
    async fn at_previous_home(&self, schema: &'static Schema, key: &RoutedKey) -> Result<bool> {
        for previous in self.previous_homes(key) {
            let statements = [
                sql::fence(self.epoch(), schema.table, &key.value, Guards::NONE, ""),
                sql::probe_key(schema, &key.value, self.epoch()),
            ];
            let outcomes = self.batch(previous, &statements).await?;
            if Probe::in_batch(schema, outcomes, 1).row.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub(crate) async fn update<M: Model>(&self, model: &M) -> Result<()> {
        self.update_encoded(M::SCHEMA, model.to_row()?).await
    }

    /// [`Router::update`] of an encoded row.
    async fn update_encoded(&self, schema: &'static Schema, row: Vec<Value>) -> Result<()> {
        B::Shard::check(&row)?;
        let key = RoutedKey::new(row[schema.primary_key].clone());
        let span = self.span("update", schema.table, Some(&key));
        self.update_row(schema, &row, &key).traced(span).await
    }

    /// Tries the row's likely shard first (the hash home, or the cached
    /// shard), then wherever it is found; a row that changed, moved or is
    /// frozen for a move in between is located again.
    async fn update_row(
        &self,
        schema: &'static Schema,
        row: &[Value],
        key: &RoutedKey,
    ) -> Result<()> {
        let new_lookups: Vec<Value> = schema
            .lookups
            .iter()
            .map(|l| row[l.index].clone())
            .collect();
        let mut guess = self.write_guess(schema, key)?;
        for _ in 0..ATTEMPTS {
            let shard = match guess.take() {
                Some(shard) => shard,
                None => match self.locate(schema, key).await? {
                    Some(found) => found.shard,
                    None => return Err(not_found(schema, key)),
                },
            };
            // Unchanged lookups: one round trip, no claims.
            let statements = [
                sql::fence(self.epoch(), schema.table, &key.value, Guards::MOVING, ""),
                sql::probe_key(schema, &key.value, self.epoch()),
                sql::update_if(schema, row, &new_lookups),
            ];
            let outcomes = match self.batch(shard, &statements).await {
                Err(err) if fenced(&err) == Some(Fence::Moving) => {
                    yield_now().await;
                    continue;
                }
                Err(err) => return Err(self.classify(schema, err, key)),
                Ok(outcomes) => outcomes,
            };
            if outcomes.get(2).is_some_and(|o| o.changed > 0) {
                self.record_shard(shard);
                return Ok(());
            }
            let probe = Probe::in_batch(schema, outcomes, 1);
            let Some(old) = probe.row else {
                continue; // not here (any more): locate it
            };
            let found = Found {
                shard,
                row: old,
                incarnation: probe.incarnation,
            };
            if self.update_lookups(schema, row, key, &found).await? {
                return Ok(());
            }
        }
        Err(Error::RowMoving {
            table: schema.table,
            key: key.text.clone(),
        })
    }

    /// An update that changes lookup values: claims for the new values, then
    /// the row if its lookups are still the ones seen, then releases of the
    /// old values. `false`: the row changed or moved meanwhile, try again.
    async fn update_lookups(
        &self,
        schema: &'static Schema,
        row: &[Value],
        key: &RoutedKey,
        found: &Found,
    ) -> Result<bool> {
        let old: Vec<Value> = schema
            .lookups
            .iter()
            .map(|l| found.row[l.index].clone())
            .collect();
        let incarnation = found.incarnation.clone().unwrap_or_default();
        let attempt = nonce();
        let changed = |l: &crate::model::Lookup| found.row[l.index] != row[l.index];
        let specs = self.lookup_claims(schema, row, changed)?;
        let target = Target::Shard(self.name(found.shard).to_owned());
        match self
            .take_claims(schema, key, &incarnation, &attempt, target, &specs)
            .await
        {
            // Another update of this row already gave it the value: look again.
            Err(Error::DuplicateKey { .. }) => return Ok(false),
            other => other?,
        };
        let statements = [
            sql::fence(
                self.epoch(),
                schema.table,
                &key.value,
                Guards::MOVING.with(Guards::REVOKED),
                &attempt,
            ),
            sql::update_if(schema, row, &old),
        ];
        let records = self.records(key, found.shard, &specs);
        let (written, ()) = futures::join!(
            self.batch(found.shard, &statements),
            self.directory.publish(&records)
        );
        match written {
            Ok(outcomes) if outcomes.get(1).is_some_and(|o| o.changed > 0) => {
                self.record_shard(found.shard);
                // The old values' claims stay: a release by owner and
                // incarnation could remove the claim a concurrent update of
                // this same row just took for one of them (an email changed
                // away and back). Left behind, a claim whose row no longer
                // holds its value is proven stale and taken over when someone
                // wants the value; only the read path forgets them now.
                let old_specs = self.lookup_claims(schema, &found.row, changed)?;
                let old_keys: Vec<String> = old_specs.into_iter().map(|s| s.key).collect();
                self.directory.forget(&old_keys).await;
                Ok(true)
            }
            // Nothing is given back when the row was not written: the claims
            // are this row's (owner and incarnation), and another update of
            // the row may hold them now and have written its row with them —
            // a release cannot tell the two apart. Left behind, they are
            // proven stale and taken over when someone needs them.
            Ok(_) => Ok(false),
            Err(err) if fenced(&err) == Some(Fence::Moving) => {
                yield_now().await;
                Ok(false)
            }
            // Another write took a claim over: look again, and the next
            // claim names the conflict exactly (or the row has the value now).
            Err(err) if fenced(&err) == Some(Fence::Revoked) => Ok(false),
            Err(err) => Err(self.classify(schema, err, key)),
        }
    }

    pub(crate) async fn delete(&self, schema: &'static Schema, key: Value) -> Result<bool> {
        let key = RoutedKey::new(key);
        let span = self.span("delete", schema.table, Some(&key));
        self.delete_row(schema, &key, None).traced(span).await
    }

    pub(crate) async fn delete_by(
        &self,
        schema: &'static Schema,
        lookup: usize,
        value: Value,
    ) -> Result<bool> {
        let lookup = lookup_of(schema, lookup)?;
        let span = self.span_by_value("delete_by", schema.table, &value);
        async {
            let Some(found) = self.locate_alias(schema, lookup, &value).await? else {
                return Ok(false);
            };
            let key = RoutedKey::new(found.row[schema.primary_key].clone());
            self.delete_row(schema, &key, Some((lookup.column, &value)))
                .await
        }
        .traced(span)
        .await
    }

    /// Deletes the row (where its lookup `only_if` still holds the value),
    /// then releases its claims. Under hash placement while the table is
    /// unsettled, every copy goes — at the home with a tombstone, so a copy
    /// in flight cannot bring the row back.
    async fn delete_row(
        &self,
        schema: &'static Schema,
        key: &RoutedKey,
        only_if: Option<(&'static str, &Value)>,
    ) -> Result<bool> {
        let mut guess = self.write_guess(schema, key)?;
        for _ in 0..ATTEMPTS {
            let (shard, located) = match guess.take() {
                Some(shard) => (shard, false),
                None => match self.locate(schema, key).await? {
                    Some(found) => (found.shard, true),
                    None => return Ok(false),
                },
            };
            let (mut deleted, unsettled) = self
                .delete_at(schema, shard, key, only_if, false, None)
                .await?;
            if unsettled && self.hash_placed() {
                // The home goes last (again, if it went first), with the
                // tombstone: a copy in flight then lands before it and is
                // deleted there, or after it and is refused — and a move that
                // finished meanwhile is deleted at the home, not lost to a
                // tombstone this delete left before it saw the row.
                let home = self.home(key);
                let others = self.previous_homes(key).into_iter().chain(Some(home));
                for other in others.filter(|&s| s != shard || s == home) {
                    // Only a delete that deleted leaves a tombstone: one left
                    // by a delete that found nothing (a row whose `only_if`
                    // value changed) would make the move drop a live row.
                    let tombstone = !deleted.is_empty();
                    // Once it deleted a row, it deletes only copies of that
                    // life: the key inserted again meanwhile (acknowledged,
                    // a new incarnation) is not this delete's to remove.
                    let life = deleted
                        .first()
                        .map(|(_, incarnation)| incarnation.clone().unwrap_or_default());
                    let pass =
                        self.delete_at(schema, other, key, only_if, tombstone, life.as_deref());
                    deleted.extend(pass.await?.0);
                }
            }
            if deleted.is_empty() {
                if located {
                    continue; // it moved or went meanwhile: look again
                }
                continue;
            }
            self.record_shard(shard);
            let mut releases = Vec::new();
            let mut forget = Vec::new();
            for (row, incarnation) in &deleted {
                let mut keys: Vec<String> = Vec::new();
                for (lookup, value) in schema.lookups.iter().zip(&row[1..]) {
                    keys.push(self.directory.key(schema.table, lookup.column, value)?);
                }
                if !self.hash_placed() || self.max_shard_bytes.is_some() {
                    keys.push(self.placement_claim(schema, key)?.key);
                }
                match incarnation {
                    Some(incarnation) => releases.extend(self::releases(key, incarnation, &keys)),
                    None => forget.extend(keys),
                }
            }
            let ((), ()) = futures::join!(
                self.directory.release(releases),
                self.directory.forget(&forget)
            );
            return Ok(true);
        }
        Ok(false)
    }

    /// One delete batch on `shard`: the deleted row (`[pk, lookups...]`) and
    /// its incarnation, and whether the table is unsettled there. With
    /// `tombstone`, a delete at the key's home while unsettled leaves one;
    /// with `life`, only that incarnation of the row is deleted.
    async fn delete_at(
        &self,
        schema: &'static Schema,
        shard: usize,
        key: &RoutedKey,
        only_if: Option<(&'static str, &Value)>,
        tombstone: bool,
        life: Option<&str>,
    ) -> Result<(Vec<(Vec<Value>, Option<String>)>, bool)> {
        let at_home = tombstone && self.hash_placed() && shard == self.home(key);
        let mut statements = vec![
            sql::fence(self.epoch(), schema.table, &key.value, Guards::NONE, ""),
            sql::delete(schema, &key.value, only_if, life),
            sql::drop_marks_if_gone(schema, &key.value),
            sql::unsettled(schema.table, self.epoch()),
        ];
        if at_home {
            statements.push(sql::tombstone_if_unsettled(
                schema.table,
                &key.value,
                self.epoch(),
                now_ms(),
            ));
        }
        let mut outcomes = self.batch(shard, &statements).await?.into_iter();
        let _fence = outcomes.next();
        let rows = outcomes.next().map(|o| o.rows).unwrap_or_default();
        let incarnation = outcomes.next().and_then(|o| {
            o.rows
                .into_iter()
                .find_map(|mark| match (mark.first(), mark.get(1)) {
                    (Some(Value::Text(kind)), Some(Value::Text(extra))) if kind == "inc" => {
                        Some(extra.clone())
                    }
                    _ => None,
                })
        });
        let unsettled = outcomes
            .next()
            .and_then(|o| o.rows.into_iter().next())
            .is_some_and(|r| matches!(r.first(), Some(Value::Integer(1))));
        Ok((
            rows.into_iter().map(|r| (r, incarnation.clone())).collect(),
            unsettled,
        ))
    }

    /// The shard a write tries first without a lookup: the hash home, or the
    /// cached shard of a claimed key.
    fn write_guess(&self, schema: &'static Schema, key: &RoutedKey) -> Result<Option<usize>> {
        if self.hash_placed() {
            return Ok(Some(self.home(key)));
        }
        let pk_key = self
            .directory
            .key(schema.table, schema.primary_key_column(), &key.value)?;
        Ok(self
            .directory
            .cached(&pk_key)
            .and_then(|name| self.shards.iter().position(|s| s.name == name)))
    }

    /// The read-path records of a row written on `shard`: each claimed key.
    fn records(
        &self,
        key: &RoutedKey,
        shard: usize,
        specs: &[ClaimSpec],
    ) -> Vec<(String, MappingRecord)> {
        let now = now_ms();
        specs
            .iter()
            .map(|spec| {
                let pk = spec.lookup.map(|_| &key.value);
                (
                    spec.key.clone(),
                    MappingRecord::new(self.name(shard), pk, now),
                )
            })
            .collect()
    }

    /// Gives back the claims this write took itself.
    async fn give_back(&self, key: &RoutedKey, incarnation: &str, fresh: &[String]) {
        self.directory
            .release(releases(key, incarnation, fresh))
            .await;
    }

    /// Turns a shard's refusal into the caller's error.
    pub(crate) fn classify(&self, schema: &'static Schema, err: Error, key: &RoutedKey) -> Error {
        if let Some(columns) = unique_columns(schema, &err) {
            if columns.iter().any(|c| c == schema.primary_key_column()) {
                return duplicate_key(schema, key);
            }
            if let Some(lookup) = schema
                .lookups
                .iter()
                .find(|l| columns.iter().any(|c| c == l.column))
            {
                return Error::DuplicateAlias {
                    table: schema.table,
                    column: lookup.column,
                };
            }
        }
        match fenced(&err) {
            // Another write proved this one's claim stale and took it over.
            Some(Fence::Revoked) => match schema.lookups.first() {
                Some(lookup) => Error::DuplicateAlias {
                    table: schema.table,
                    column: lookup.column,
                },
                None => duplicate_key(schema, key),
            },
            Some(Fence::Moving) => Error::RowMoving {
                table: schema.table,
                key: key.text.clone(),
            },
            _ => err,
        }
    }
}

/// Compare-and-delete releases of `keys` held by `key` in `incarnation`.
pub(crate) fn releases(
    key: &RoutedKey,
    incarnation: &str,
    keys: &[String],
) -> Vec<crate::backend::Release> {
    keys.iter()
        .map(|k| crate::backend::Release {
            key: k.clone(),
            owner: key.owner(),
            incarnation: incarnation.to_owned(),
        })
        .collect()
}

fn not_found(schema: &'static Schema, key: &RoutedKey) -> Error {
    Error::NotFound {
        table: schema.table,
        key: key.text.clone(),
    }
}
