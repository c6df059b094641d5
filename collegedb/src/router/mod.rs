//! The router: a crate-private type that [`Database`](crate::Database)
//! delegates to. One file per group of operations:
//!
//! - [`locate`]: finding a key's row (by primary key or alias). Reads never
//!   place keys or take claims.
//! - [`claims`]: taking claims at the coordinator, and proving a held claim
//!   stale before taking it over.
//! - [`write`]: `insert`, `update`, `delete` — claims before the row, row
//!   before releases; each write batch starts with the shard's fence.
//! - [`fanout`]: `create_schema`, `list`, `count`: every shard at once.
//! - [`query`]: typed queries and aggregates, routed by a pinned key or
//!   fanned out and merged; [`select`]: their statements.
//! - [`rebalance`]: moving hash-placed rows home after shards are appended.
//! - [`sql`]: the router's own tables and statements on each shard.

mod claims;
mod fanout;
mod locate;
mod query;
mod rebalance;
mod select;
pub(crate) mod sql;
mod write;

pub use rebalance::Rebalanced;

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use foldhash::fast::FixedState;
use tracing::Span;

use crate::backend::calls::{self, Service};
use crate::backend::{Backend, Fence, Outcome, ShardExecutor, ShardSpec, Statement, Violation};
use crate::directory::Directory;
use crate::error::{Error, Result};
use crate::key::RoutedKey;
use crate::model::{Lookup, Schema};
use crate::strategy::{hash, Placement, Strategy};
use crate::value::Value;

/// How often a write re-locates a row that moved or changed under it before giving up.
const ATTEMPTS: usize = 8;

/// Shards, directory and placement: everything an operation routes by.
pub(crate) struct Router<B: Backend> {
    pub(crate) shards: Vec<ShardSpec<B::Shard>>,
    pub(crate) directory: Directory<B>,
    pub(crate) placement: Placement,
    pub(crate) max_shard_bytes: Option<u64>,
    /// How many shards an operation on every shard asks at once.
    pub(crate) fanout: usize,
    /// Tables seen settled on a shard at this handle's epoch.
    pub(crate) settled: SettledTables,
}

/// The `(table, shard)` pairs a handle has seen settled at its epoch. A
/// table's settled epoch only rises, so what was seen stays true for the
/// handle's life: its lookups then skip the check and the `moving` marks.
/// Hashed with foldhash: the keys are the schema's own names, not input.
#[derive(Debug, Default)]
pub(crate) struct SettledTables(Mutex<HashSet<(&'static str, usize), FixedState>>);

impl SettledTables {
    fn contains(&self, table: &'static str, shard: usize) -> bool {
        self.lock().contains(&(table, shard))
    }

    fn insert(&self, table: &'static str, shard: usize) {
        self.lock().insert((table, shard));
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<(&'static str, usize), FixedState>> {
        // A set of facts that only accrue stays valid after a panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a probe of one shard learnt about a key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Probe {
    /// The table may have rows off their hash homes.
    pub unsettled: bool,
    /// The key was placed on this other shard, off its full home.
    pub redirect: Option<String>,
    /// This copy is frozen: a rebalance is moving it home.
    pub moving: bool,
    /// The row's incarnation.
    pub incarnation: Option<String>,
    /// The row, if it is here.
    pub row: Option<Vec<Value>>,
}

impl Probe {
    /// The probe in the first of `rows` (none: an empty probe).
    pub(crate) fn first(schema: &'static Schema, rows: Vec<Vec<Value>>) -> Probe {
        rows.into_iter()
            .next()
            .map(|values| Probe::parse(schema, values))
            .unwrap_or_default()
    }

    /// The probe that statement `index` of a batch returned.
    pub(crate) fn in_batch(schema: &'static Schema, outcomes: Vec<Outcome>, index: usize) -> Probe {
        let rows = outcomes.into_iter().nth(index).map(|o| o.rows);
        Probe::first(schema, rows.unwrap_or_default())
    }

    /// Reads a probe row (`[unsettled, redirect, moving, incarnation, columns...]`).
    fn parse(schema: &'static Schema, mut values: Vec<Value>) -> Probe {
        let flag = |v: Option<Value>| matches!(v, Some(Value::Integer(n)) if n != 0);
        let text = |v: Option<Value>| match v {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        };
        // The flags leave the front in place: the rest is the row, no copy.
        let mut flags = values.drain(..sql::PROBE_FLAGS.min(values.len()));
        let (unsettled, redirect, moving, incarnation) = (
            flag(flags.next()),
            text(flags.next()),
            flag(flags.next()),
            text(flags.next()),
        );
        drop(flags);
        let present = values
            .get(schema.primary_key)
            .is_some_and(|v| *v != Value::Null);
        Probe {
            unsettled,
            redirect,
            moving,
            incarnation,
            row: present.then_some(values),
        }
    }
}

/// A row found on a shard.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub shard: usize,
    pub row: Vec<Value>,
    pub incarnation: Option<String>,
}

/// A tiny future that lets other tasks run once: writes waiting for a move
/// to finish, and the deterministic interleaving tests, rely on it.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

impl<B: Backend> Router<B> {
    /// The topology epoch of this handle: its shard count (lists only grow).
    pub(crate) fn epoch(&self) -> usize {
        self.shards.len()
    }

    /// The span of one operation; `shard` is recorded once known.
    pub(crate) fn span(
        &self,
        op: &'static str,
        table: &'static str,
        key: Option<&RoutedKey>,
    ) -> Span {
        tracing::debug_span!(
            "collegedb",
            op,
            table,
            key = key.map(RoutedKey::tag),
            strategy = self.placement.write.kind().name(),
            shard = tracing::field::Empty,
            shard_calls = tracing::field::Empty,
            mapping_calls = tracing::field::Empty,
            coordinator_calls = tracing::field::Empty,
        )
    }

    /// [`Router::span`] of an operation by a lookup value. The value's tag
    /// hashes it, so it is computed only if the span is recorded.
    pub(crate) fn span_by_value(
        &self,
        op: &'static str,
        table: &'static str,
        value: &Value,
    ) -> Span {
        let span = self.span(op, table, None);
        if !span.is_disabled() {
            span.record("key", RoutedKey::new(value.clone()).tag());
        }
        span
    }

    pub(crate) fn record_shard(&self, index: usize) {
        Span::current().record("shard", self.shards[index].name.as_str());
    }

    pub(crate) fn name(&self, index: usize) -> &str {
        &self.shards[index].name
    }

    pub(crate) fn shard_index(&self, name: &str) -> Result<usize> {
        self.shards
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| Error::UnknownShard {
                shard: name.to_owned(),
            })
    }

    /// The index of a shard the coordinator named (a claim's holder, or a
    /// placement). Shard lists only grow, so a name this handle does not
    /// know comes from a newer list: this handle is stale.
    pub(crate) fn claimed_shard(&self, name: &str) -> Result<usize> {
        self.shard_index(name).map_err(|_| Error::StaleTopology {
            shard: name.to_owned(),
            shards: self.epoch(),
        })
    }

    /// Whether new keys go to their hash home (no claim for primary keys).
    pub(crate) fn hash_placed(&self) -> bool {
        self.placement.write == Strategy::Hash
    }

    /// The key's hash home among all shards.
    pub(crate) fn home(&self, key: &RoutedKey) -> usize {
        hash::jump(key.hash, self.shards.len())
    }

    /// The key's homes had there been fewer shards, newest first, without
    /// repeats or the current home: where an unsettled table may still hold it.
    pub(crate) fn previous_homes(&self, key: &RoutedKey) -> Vec<usize> {
        let home = self.home(key);
        let mut homes: Vec<usize> = Vec::new();
        for count in (1..self.shards.len()).rev() {
            let previous = hash::jump(key.hash, count);
            if previous != home && !homes.contains(&previous) {
                homes.push(previous);
            }
        }
        homes
    }

    /// Runs a batch on shard `index`; a fence refusal of a stale handle becomes
    /// [`Error::StaleTopology`] here, once.
    pub(crate) async fn batch(
        &self,
        index: usize,
        statements: &[Statement],
    ) -> Result<Vec<Outcome>> {
        calls::count(Service::Shard);
        match self.shards[index].executor.batch(statements).await {
            Err(Error::Constraint {
                shard,
                violation: Violation::Fence(Fence::StaleTopology),
            }) => Err(Error::StaleTopology {
                shard,
                shards: self.epoch(),
            }),
            other => other,
        }
    }

    pub(crate) async fn query(
        &self,
        index: usize,
        statement: &Statement,
    ) -> Result<Vec<Vec<Value>>> {
        calls::count(Service::Shard);
        self.shards[index].executor.query(statement).await
    }

    /// What shard `index` knows about `key`.
    pub(crate) async fn probe(
        &self,
        schema: &'static Schema,
        index: usize,
        key: &Value,
    ) -> Result<Probe> {
        let rows = self
            .query(index, &sql::probe_key(schema, key, self.epoch()))
            .await?;
        Ok(Probe::first(schema, rows))
    }

    /// [`Router::probe`] for a read at the key's home: no `moving`, no incarnation.
    pub(crate) async fn peek(
        &self,
        schema: &'static Schema,
        index: usize,
        key: &Value,
    ) -> Result<Probe> {
        let rows = self
            .query(index, &sql::peek_key(schema, key, self.epoch()))
            .await?;
        Ok(Probe::first(schema, rows))
    }

    /// The row on shard `index` whose `lookup` column is `value`.
    pub(crate) async fn probe_lookup(
        &self,
        schema: &'static Schema,
        index: usize,
        lookup: &Lookup,
        value: &Value,
    ) -> Result<Probe> {
        if self.settled.contains(schema.table, index) {
            // Neither the settled check nor the `moving` mark is needed: the
            // row alone, by the derive's own statement.
            let statement = Statement::new(lookup.select, vec![value.clone()]);
            let row = self.query(index, &statement).await?.into_iter().next();
            return Ok(Probe {
                row,
                ..Probe::default()
            });
        }
        let statement = sql::probe_lookup(schema, lookup, value, self.epoch());
        let probe = Probe::first(schema, self.query(index, &statement).await?);
        if probe.row.is_some() && !probe.unsettled {
            self.settled.insert(schema.table, index);
        }
        Ok(probe)
    }
}

/// The fence a statement batch hit, if that is why it failed.
pub(crate) fn fenced(err: &Error) -> Option<Fence> {
    match err {
        Error::Constraint {
            violation: Violation::Fence(fence),
            ..
        } => Some(*fence),
        _ => None,
    }
}

/// The columns a unique violation names, if it is one on the schema's table.
pub(crate) fn unique_columns<'e>(schema: &Schema, err: &'e Error) -> Option<&'e [String]> {
    match err {
        Error::Constraint {
            violation: Violation::Unique { table, columns },
            ..
        } if table == schema.table => Some(columns),
        _ => None,
    }
}

/// Whether a failed write is known not to have committed: the shard refused
/// it by a constraint. Any other failure (a lost reply) may have committed,
/// so its clean-up must not remove what the row would need.
pub(crate) fn refused(err: &Error) -> bool {
    matches!(
        err,
        Error::Constraint { .. } | Error::StaleTopology { .. } | Error::TooManyParameters { .. }
    )
}
