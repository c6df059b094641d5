//! Taking claims at the coordinator, and the proof that lets a write take
//! over a claim whose holder is gone.
//!
//! A claim names its owner row (primary key and incarnation) and the write
//! attempt that took it. It is taken over only after the router has shown
//! that the owner's row does not hold the claimed value: in one batch on the
//! holder's shard it revokes the holder's write attempt (so a write still in
//! flight can no longer land there) and reads the owner's row; a row that
//! moved is found by its primary key. The takeover is then a compare-and-swap
//! on the holder it saw.

use super::{sql, Found, Probe, Router, ATTEMPTS};
use crate::backend::{Backend, Claim, ClaimReply, ClaimRequest, Holder, Target};
use crate::error::{Error, Result};
use crate::key::{owner_value, RoutedKey};
use crate::model::{Lookup, Schema};
use crate::platform::now_ms;
use crate::value::Value;

/// One key a write must hold.
#[derive(Debug, Clone)]
pub(crate) struct ClaimSpec {
    /// The claim key (a mapping key).
    pub key: String,
    /// The lookup it is a value of, or `None` for the primary key's own placement.
    pub lookup: Option<&'static Lookup>,
    /// The claimed value.
    pub value: Value,
}

/// Claims a write holds, and which of them it took itself (to give back if
/// its row is refused).
pub(crate) struct Granted {
    pub shard: usize,
    pub fresh: Vec<String>,
}

impl<B: Backend> Router<B> {
    /// The claim of each lookup value of `row` (all of them, or those at `only`).
    pub(crate) fn lookup_claims(
        &self,
        schema: &'static Schema,
        row: &[Value],
        only: impl Fn(&Lookup) -> bool,
    ) -> Result<Vec<ClaimSpec>> {
        schema
            .lookups
            .iter()
            .filter(|l| only(l))
            .map(|lookup| {
                let value = row[lookup.index].clone();
                Ok(ClaimSpec {
                    key: self.directory.key(schema.table, lookup.column, &value)?,
                    lookup: Some(lookup),
                    value,
                })
            })
            .collect()
    }

    /// The claim of the primary key's own placement.
    pub(crate) fn placement_claim(
        &self,
        schema: &'static Schema,
        key: &RoutedKey,
    ) -> Result<ClaimSpec> {
        Ok(ClaimSpec {
            key: self
                .directory
                .key(schema.table, schema.primary_key_column(), &key.value)?,
            lookup: None,
            value: key.value.clone(),
        })
    }

    /// Takes every claim of `specs` for `key`, taking over claims proven stale.
    pub(crate) async fn take_claims(
        &self,
        schema: &'static Schema,
        key: &RoutedKey,
        incarnation: &str,
        nonce: &str,
        target: Target,
        specs: &[ClaimSpec],
    ) -> Result<Granted> {
        if let (true, Target::Shard(shard)) = (specs.is_empty(), &target) {
            return Ok(Granted {
                shard: self.shard_index(shard)?,
                fresh: Vec::new(),
            });
        }
        let mut request = ClaimRequest {
            owner: key.owner(),
            incarnation: incarnation.to_owned(),
            nonce: nonce.to_owned(),
            target,
            claims: specs
                .iter()
                .map(|spec| Claim {
                    key: spec.key.clone(),
                    placement: spec.lookup.is_none(),
                    replace: None,
                })
                .collect(),
        };
        for _ in 0..ATTEMPTS {
            let reply = self
                .directory
                .claim(&request)
                .await
                .map_err(|err| match err {
                    Error::Config(why) => Error::Config(format!(
                        "`{}` has unique lookup values, which are claimed at the coordinator: {why}",
                        schema.table
                    )),
                    other => other,
                })?;
            match reply {
                ClaimReply::Granted { shard, fresh } => {
                    let fresh = specs
                        .iter()
                        .zip(fresh)
                        .filter(|(_, fresh)| *fresh)
                        .map(|(spec, _)| spec.key.clone())
                        .collect();
                    return Ok(Granted {
                        shard: self.claimed_shard(&shard)?,
                        fresh,
                    });
                }
                ClaimReply::Conflict { index, holder } => {
                    let spec = specs.get(index).ok_or_else(|| {
                        Error::Coordinator(format!(
                            "a conflict names claim #{index}, which was not asked for"
                        ))
                    })?;
                    if self.holds(schema, spec, &holder).await? {
                        return Err(if holder.owner == request.owner {
                            duplicate_key(schema, key)
                        } else {
                            match spec.lookup {
                                Some(lookup) => Error::DuplicateAlias {
                                    table: schema.table,
                                    column: lookup.column,
                                },
                                None => duplicate_key(schema, key),
                            }
                        });
                    }
                    tracing::debug!(
                        column = spec.lookup.map(|l| l.column),
                        "taking over a stale claim"
                    );
                    request.claims[index].replace = Some(holder);
                }
            }
        }
        Err(Error::Coordinator(
            "the claims of this write kept changing hands; retry it".into(),
        ))
    }

    /// Whether `holder`'s row holds the value of `spec`. Revokes the holder's
    /// write attempt on its shard first, so that the answer stays true.
    async fn holds(
        &self,
        schema: &'static Schema,
        spec: &ClaimSpec,
        holder: &Holder,
    ) -> Result<bool> {
        let owner = RoutedKey::new(owner_value(&holder.owner)?);
        let shard = self.claimed_shard(&holder.shard)?;
        let statements = [
            sql::fence(
                self.epoch(),
                schema.table,
                &owner.value,
                sql::Guards::NONE,
                "",
            ),
            sql::add_mark(
                schema.table,
                &owner.value,
                "revoked",
                &holder.nonce,
                now_ms(),
            ),
            sql::probe_key(schema, &owner.value, self.epoch()),
        ];
        let outcomes = self.batch(shard, &statements).await?;
        let probe = Probe::in_batch(schema, outcomes, 2);
        let found = match probe.row {
            Some(row) => Some(Found {
                shard,
                row,
                incarnation: probe.incarnation,
            }),
            None => self.locate_life(schema, &owner).await?,
        };
        Ok(found.is_some_and(|found| {
            // A row without an incarnation predates incarnations: it holds what it has.
            let same_life = found
                .incarnation
                .as_deref()
                .is_none_or(|incarnation| incarnation == holder.incarnation);
            same_life
                && match spec.lookup {
                    Some(lookup) => found.row[lookup.index] == spec.value,
                    None => true,
                }
        }))
    }
}

pub(crate) fn duplicate_key(schema: &'static Schema, key: &RoutedKey) -> Error {
    Error::DuplicateKey {
        table: schema.table,
        key: key.text.clone(),
    }
}
