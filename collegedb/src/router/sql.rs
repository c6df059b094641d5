//! The router's own SQL on every shard: the topology tables, the write fence,
//! per-row marks, and the statements that read and write a model's rows
//! together with them.
//!
//! Each shard holds:
//! - `_collegedb_epoch`: the newest shard count (the topology epoch) a writer
//!   has shown it. Shard lists only grow, so the count orders them.
//! - `_collegedb_settled`: per table, the epoch at which every row was at its
//!   hash home (written by `create_schema`, advanced by a finished rebalance).
//! - `_collegedb_marks`: per row, `inc` (the row's incarnation), `moving` (a
//!   rebalance froze this copy while it copies it home), `gone` (deleted at
//!   its home while the table is unsettled: a copy in flight must not bring
//!   it back), `redirect` (placed off this full home; `extra` names the
//!   shard) and `revoked` (a write attempt, `extra`, whose claim was taken
//!   over: it must not land).
//! - `_collegedb_fence` with a trigger: inserting `(epoch, table, key, flags,
//!   nonce)` into it raises unless the write may go ahead, and records a
//!   newer epoch. Every write batch starts with it, so the check and the
//!   write are one transaction and one round trip. Nothing is ever stored in it.
//!
//! Identifiers come from the derive (validated) and are double-quoted here;
//! values are always bound. A statement's text depends only on its model and
//! shape, so it is built once per process ([`memo`]) and borrowed after.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{LazyLock, PoisonError, RwLock};

use foldhash::fast::FixedState;

use crate::backend::Statement;
use crate::model::{Lookup, Schema};
use crate::value::Value;

/// The statements whose text is built once per model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    Probe,
    Peek,
    ProbeLookup(&'static str),
    Count,
    Keys,
    InsertCopy,
    UpdateIf,
    Delete {
        only_if: Option<&'static str>,
        life: bool,
    },
    DropMarks,
    Incarnation,
    ClearMark(&'static str),
    CopyIncarnation,
}

/// The text of `shape` for the model `owner`, built by `build` on first use.
/// Texts are leaked: there is one per model and shape, for the process.
fn memo(owner: TypeId, shape: Shape, build: impl FnOnce() -> String) -> &'static str {
    // Hashed with foldhash: the keys are the models' and shapes' own.
    type Texts = HashMap<(TypeId, Shape), &'static str, FixedState>;
    static TEXTS: LazyLock<RwLock<Texts>> = LazyLock::new(Default::default);
    let id = (owner, shape);
    if let Some(text) = TEXTS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
    {
        return text;
    }
    TEXTS
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(id)
        .or_insert_with(|| Box::leak(build().into_boxed_str()))
}

/// [`memo`] for a statement over the schema's table.
fn memo_for(schema: &'static Schema, shape: Shape, build: impl FnOnce() -> String) -> &'static str {
    memo(schema.model(), shape, build)
}

/// A SQL string literal (table names go into memoised text this way, not as
/// parameters, so hot statements bind only values).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `COALESCE(settled epoch of the table, 0) < ?{epoch}`: whether rows may be
/// off their homes for a reader at that epoch. Rows move only onto shards a
/// reader that sees the table settled does not know, so such a reader never
/// needs the `moving` marks.
pub(crate) fn unsettled_at(schema: &'static Schema, epoch: usize) -> String {
    format!(
        "COALESCE((SELECT epoch FROM _collegedb_settled WHERE tbl = {}), 0) < ?{epoch}",
        literal(schema.table)
    )
}

/// A mark of the row whose key is `key_sql` (an expression).
pub(crate) fn mark(schema: &'static Schema, select: &str, kind: &str, key_sql: &str) -> String {
    format!(
        "(SELECT {select} FROM _collegedb_marks WHERE tbl = {} AND kind = '{kind}' AND pk = {key_sql})",
        literal(schema.table)
    )
}

/// Creates the router's tables on a shard; safe to run again.
pub(crate) const META: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS _collegedb_epoch (id INTEGER PRIMARY KEY CHECK (id = 0), epoch INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO _collegedb_epoch (id, epoch) VALUES (0, 0)",
    "CREATE TABLE IF NOT EXISTS _collegedb_settled (tbl TEXT PRIMARY KEY, epoch INTEGER NOT NULL)",
    // `pk` has no type, so SQLite keeps 42 and '42' apart, as the tables do.
    "CREATE TABLE IF NOT EXISTS _collegedb_marks (tbl TEXT NOT NULL, pk NOT NULL, kind TEXT NOT NULL, extra TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (tbl, kind, pk, extra)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS _collegedb_fence (epoch INTEGER NOT NULL, tbl TEXT NOT NULL, pk, flags INTEGER NOT NULL, nonce TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS _collegedb_fence_check BEFORE INSERT ON _collegedb_fence BEGIN
        SELECT RAISE(ABORT, 'collegedb:stale_topology') WHERE NEW.epoch < (SELECT epoch FROM _collegedb_epoch WHERE id = 0);
        UPDATE _collegedb_epoch SET epoch = NEW.epoch WHERE id = 0 AND epoch < NEW.epoch;
        SELECT RAISE(ABORT, 'collegedb:moving') WHERE NEW.flags & 1 AND EXISTS (SELECT 1 FROM _collegedb_marks WHERE tbl = NEW.tbl AND pk = NEW.pk AND kind = 'moving');
        SELECT RAISE(ABORT, 'collegedb:unsettled') WHERE NEW.flags & 2 AND COALESCE((SELECT epoch FROM _collegedb_settled WHERE tbl = NEW.tbl), 0) < NEW.epoch;
        SELECT RAISE(ABORT, 'collegedb:redirected') WHERE NEW.flags & 4 AND EXISTS (SELECT 1 FROM _collegedb_marks WHERE tbl = NEW.tbl AND pk = NEW.pk AND kind = 'redirect');
        SELECT RAISE(ABORT, 'collegedb:revoked') WHERE NEW.flags & 8 AND EXISTS (SELECT 1 FROM _collegedb_marks WHERE tbl = NEW.tbl AND pk = NEW.pk AND kind = 'revoked' AND extra = NEW.nonce);
        SELECT RAISE(IGNORE);
    END",
];

/// What a fence checks besides the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Guards(i64);

impl Guards {
    pub(crate) const NONE: Guards = Guards(0);
    pub(crate) const MOVING: Guards = Guards(1);
    pub(crate) const UNSETTLED: Guards = Guards(2);
    pub(crate) const REDIRECT: Guards = Guards(4);
    pub(crate) const REVOKED: Guards = Guards(8);

    pub(crate) fn with(self, other: Guards) -> Guards {
        Guards(self.0 | other.0)
    }

    pub(crate) fn without(self, other: Guards) -> Guards {
        Guards(self.0 & !other.0)
    }
}

/// The fence statement that opens every write batch.
pub(crate) fn fence(
    epoch: usize,
    table: &str,
    key: &Value,
    guards: Guards,
    nonce: &str,
) -> Statement {
    Statement::new(
        "INSERT INTO _collegedb_fence (epoch, tbl, pk, flags, nonce) VALUES (?1, ?2, ?3, ?4, ?5)",
        vec![
            Value::Integer(epoch as i64),
            Value::Text(table.to_owned()),
            key.clone(),
            Value::Integer(guards.0),
            Value::Text(nonce.to_owned()),
        ],
    )
}

/// Records `settled` for `table` unless the shard has a record already.
pub(crate) fn settle_if_new(table: &str, epoch: i64) -> Statement {
    Statement::new(
        "INSERT OR IGNORE INTO _collegedb_settled (tbl, epoch) VALUES (?1, ?2)",
        vec![Value::Text(table.to_owned()), Value::Integer(epoch)],
    )
}

/// Records that every `table` row is home at `epoch`, and drops the tombstones
/// that only mattered while it was not.
pub(crate) fn settle(table: &str, epoch: usize) -> [Statement; 2] {
    let table = Value::Text(table.to_owned());
    [
        Statement::new(
            "INSERT INTO _collegedb_settled (tbl, epoch) VALUES (?1, ?2) ON CONFLICT (tbl) DO UPDATE SET epoch = MAX(epoch, excluded.epoch)",
            vec![table.clone(), Value::Integer(epoch as i64)],
        ),
        Statement::new(
            "DELETE FROM _collegedb_marks WHERE tbl = ?1 AND kind = 'gone'",
            vec![table],
        ),
    ]
}

/// `SELECT epoch FROM _collegedb_settled WHERE tbl = ?1`.
pub(crate) fn settled_epoch(table: &str) -> Statement {
    Statement::new(
        "SELECT epoch FROM _collegedb_settled WHERE tbl = ?1",
        vec![Value::Text(table.to_owned())],
    )
}

/// Adds one mark unless the same mark exists.
pub(crate) fn add_mark(table: &str, key: &Value, kind: &str, extra: &str, now: u64) -> Statement {
    Statement::new(
        "INSERT OR IGNORE INTO _collegedb_marks (tbl, pk, kind, extra, created) VALUES (?1, ?2, ?3, ?4, ?5)",
        vec![
            Value::Text(table.to_owned()),
            key.clone(),
            Value::Text(kind.to_owned()),
            Value::Text(extra.to_owned()),
            Value::Integer(now as i64),
        ],
    )
}

/// Removes a row's marks of one kind. One kind per statement: with an `IN`
/// list of kinds, SQLite builds a temporary b-tree on every run, which
/// costs more than three of these (measured: a third of a plain insert's
/// instructions).
pub(crate) fn clear_mark(table: &str, key: &Value, kind: &'static str) -> Statement {
    let sql = memo(TypeId::of::<()>(), Shape::ClearMark(kind), || {
        format!("DELETE FROM _collegedb_marks WHERE tbl = ?1 AND kind = '{kind}' AND pk = ?2")
    });
    Statement::new(sql, vec![Value::Text(table.to_owned()), key.clone()])
}

pub(crate) fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// The model's columns, qualified by the `_row` alias.
fn row_columns(schema: &'static Schema) -> String {
    schema
        .columns
        .iter()
        .map(|c| format!("_row.{}", quoted(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The leading columns of every probe, before the model's columns. They are
/// named (`_collegedb_unsettled` and so on): a D1 batch returns
/// rows keyed by column name, where two columns named `NULL` would be one.
pub(crate) const PROBE_FLAGS: usize = 4;

/// One row with what routing needs to know about the key on this shard:
/// `[unsettled, redirect, moving, incarnation, columns...]`. There is always
/// exactly one result row. When the row is here: `moving` and its
/// incarnation, and the flags NULL; when it is not, `unsettled` and
/// `redirect`, and the columns NULL. `LIMIT 1` ends the compound at the
/// first part that answers, so a hit costs one index lookup and the marks
/// it needs, nothing else. Parameters: `?1` key, `?2` epoch.
pub(crate) fn probe_key(schema: &'static Schema, key: &Value, epoch: usize) -> Statement {
    key_statement(schema, Shape::Probe, key, epoch)
}

/// [`probe_key`] without `moving` and the incarnation, for a read at the
/// key's home: a home copy is the live one, and a read needs no incarnation.
pub(crate) fn peek_key(schema: &'static Schema, key: &Value, epoch: usize) -> Statement {
    key_statement(schema, Shape::Peek, key, epoch)
}

fn key_statement(schema: &'static Schema, shape: Shape, key: &Value, epoch: usize) -> Statement {
    let sql = memo_for(schema, shape, || {
        let (moving, life) = match shape {
            Shape::Peek => ("0".to_owned(), "NULL".to_owned()),
            _ => (
                format!("EXISTS {}", mark(schema, "1", "moving", "?1")),
                mark(schema, "extra", "inc", "?1"),
            ),
        };
        let absent = vec!["NULL"; schema.columns.len()].join(", ");
        format!(
            "SELECT NULL AS _collegedb_unsettled, NULL AS _collegedb_redirect, {moving} AS _collegedb_moving, {life} AS _collegedb_life, \
             {} FROM {} AS _row WHERE _row.{} = ?1 \
             UNION ALL SELECT {}, {}, 0, NULL, {absent} LIMIT 1",
            row_columns(schema),
            quoted(schema.table),
            quoted(schema.primary_key_column()),
            unsettled_at(schema, 2),
            mark(schema, "extra", "redirect", "?1"),
        )
    });
    Statement::new(sql, vec![key.clone(), Value::Integer(epoch as i64)])
}

/// The row whose lookup column equals `?1`, as `[unsettled, NULL, moving,
/// NULL, columns...]` (the probe's shape, without an incarnation: only reads
/// use it); no row if there is none. `?2` is the reader's epoch. (A reader
/// that has seen the table settled on this shard reads the row alone, by
/// the derive's `Lookup::select`.)
pub(crate) fn probe_lookup(
    schema: &'static Schema,
    lookup: &Lookup,
    value: &Value,
    epoch: usize,
) -> Statement {
    let shape = Shape::ProbeLookup(lookup.column);
    let sql = memo_for(schema, shape, || {
        let pk = format!("_row.{}", quoted(schema.primary_key_column()));
        let unsettled = unsettled_at(schema, 2);
        let moving = format!(
            "CASE WHEN {unsettled} THEN EXISTS {} ELSE 0 END",
            mark(schema, "1", "moving", &pk)
        );
        format!(
            "SELECT {unsettled} AS _collegedb_unsettled, NULL AS _collegedb_redirect, \
             {moving} AS _collegedb_moving, NULL AS _collegedb_life, \
             {} FROM {} AS _row WHERE _row.{} = ?1",
            row_columns(schema),
            quoted(schema.table),
            quoted(lookup.column)
        )
    });
    Statement::new(sql, vec![value.clone(), Value::Integer(epoch as i64)])
}

/// A shard's rows, as `[0, rows, unsettled]` (whether the table is unsettled
/// for a reader at epoch `?1`), then `[1, key, NULL]` for each frozen row
/// (being moved away): one statement, so one snapshot of the shard.
pub(crate) fn count(schema: &'static Schema, epoch: usize) -> Statement {
    let sql = memo_for(schema, Shape::Count, || {
        let table = quoted(schema.table);
        let pk = quoted(schema.primary_key_column());
        format!(
            "SELECT 0, (SELECT COUNT(*) FROM {table}), {} \
             UNION ALL SELECT 1, pk, NULL FROM _collegedb_marks WHERE tbl = {} AND kind = 'moving' AND pk IN (SELECT {pk} FROM {table})",
            unsettled_at(schema, 1),
            literal(schema.table),
        )
    });
    Statement::new(sql, vec![Value::Integer(epoch as i64)])
}

/// Every primary key of a shard.
pub(crate) fn keys(schema: &'static Schema) -> Statement {
    let sql = memo_for(schema, Shape::Keys, || {
        let pk = quoted(schema.primary_key_column());
        format!("SELECT {pk} FROM {} ORDER BY {pk}", quoted(schema.table))
    });
    Statement::new(sql, Vec::new())
}

/// The row's insert, as the derive wrote it.
pub(crate) fn insert(schema: &'static Schema, row: &[Value]) -> Statement {
    Statement::new(schema.sql.insert, row.to_vec())
}

/// A new row's incarnation mark. A row with claims always gets one (its
/// claims name it); a row without gets one only while the table is unsettled
/// for the writer — the only time copies of two lives of a key can meet, and
/// a delete must remove only its own life's. Parameters: `?1` key, `?2`
/// incarnation, `?3` time, `?4` always, `?5` epoch.
pub(crate) fn incarnation(
    schema: &'static Schema,
    key: &Value,
    incarnation: &str,
    always: bool,
    epoch: usize,
    now: u64,
) -> Statement {
    let sql = memo_for(schema, Shape::Incarnation, || {
        insert_inc_mark(schema, &format!("?4 OR {}", unsettled_at(schema, 5)))
    });
    let mut params = inc_mark_params(key, incarnation, now);
    params.extend([Value::Integer(always.into()), Value::Integer(epoch as i64)]);
    Statement::new(sql, params)
}

/// Inserts the `inc` mark `?2` of the row keyed `?1`, at time `?3`, if
/// `condition` holds.
fn insert_inc_mark(schema: &'static Schema, condition: &str) -> String {
    format!(
        "INSERT OR IGNORE INTO _collegedb_marks (tbl, pk, kind, extra, created) \
         SELECT {}, ?1, 'inc', ?2, ?3 WHERE {condition}",
        literal(schema.table)
    )
}

/// The first parameters of [`insert_inc_mark`].
fn inc_mark_params(key: &Value, incarnation: &str, now: u64) -> Vec<Value> {
    vec![
        key.clone(),
        Value::Text(incarnation.to_owned()),
        Value::Integer(now as i64),
    ]
}

/// A copy's insert: only if no row and no tombstone is there.
/// Parameters: the row.
pub(crate) fn insert_copy(schema: &'static Schema, row: &[Value]) -> Statement {
    let sql = memo_for(schema, Shape::InsertCopy, || {
        let names = schema
            .columns
            .iter()
            .map(|c| quoted(c))
            .collect::<Vec<_>>()
            .join(", ");
        let params = (1..=schema.columns.len())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {} ({names}) SELECT {params} WHERE NOT EXISTS {} ON CONFLICT DO NOTHING",
            quoted(schema.table),
            mark(schema, "1", "gone", &format!("?{}", schema.primary_key + 1)),
        )
    });
    Statement::new(sql, row.to_vec())
}

/// The update, applied only if each lookup column still holds `expected`
/// (in `schema.lookups` order), so a concurrent alias change is never overwritten.
pub(crate) fn update_if(schema: &'static Schema, row: &[Value], expected: &[Value]) -> Statement {
    let sql = memo_for(schema, Shape::UpdateIf, || {
        let mut sql = schema.sql.update.to_owned();
        for (i, lookup) in schema.lookups.iter().enumerate() {
            let param = schema.columns.len() + i + 1;
            sql.push_str(&format!(" AND {} IS ?{param}", quoted(lookup.column)));
        }
        sql
    });
    let mut params = row.to_vec();
    params.extend(expected.iter().take(schema.lookups.len()).cloned());
    Statement::new(sql, params)
}

/// Deletes the row (if its lookup `only_if` still holds the value, and, with
/// `life`, if it is that incarnation — `""` for a row without one),
/// returning its lookup values.
pub(crate) fn delete(
    schema: &'static Schema,
    key: &Value,
    only_if: Option<(&'static str, &Value)>,
    life: Option<&str>,
) -> Statement {
    let shape = Shape::Delete {
        only_if: only_if.map(|(column, _)| column),
        life: life.is_some(),
    };
    let sql = memo_for(schema, shape, || {
        let pk = quoted(schema.primary_key_column());
        let returning = std::iter::once(pk.clone())
            .chain(schema.lookups.iter().map(|l| quoted(l.column)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut condition = String::new();
        let mut next = 2;
        if let Some((column, _)) = only_if {
            condition.push_str(&format!(" AND {} = ?{next}", quoted(column)));
            next += 1;
        }
        if life.is_some() {
            condition.push_str(&format!(
                " AND COALESCE({}, '') = ?{next}",
                mark(schema, "extra", "inc", "?1")
            ));
        }
        format!(
            "DELETE FROM {} WHERE {pk} = ?1{condition} RETURNING {returning}",
            quoted(schema.table)
        )
    });
    let mut params = vec![key.clone()];
    params.extend(only_if.map(|(_, value)| value.clone()));
    params.extend(life.map(|life| Value::Text(life.to_owned())));
    Statement::new(sql, params)
}

/// After a delete: drops the row's marks if the row is gone, returning its incarnation.
pub(crate) fn drop_marks_if_gone(schema: &'static Schema, key: &Value) -> Statement {
    let sql = memo_for(schema, Shape::DropMarks, || {
        format!(
            "DELETE FROM _collegedb_marks WHERE tbl = {} AND kind IN ('inc', 'moving') AND pk = ?1 \
             AND NOT EXISTS (SELECT 1 FROM {} WHERE {} = ?1) RETURNING kind, extra",
            literal(schema.table),
            quoted(schema.table),
            quoted(schema.primary_key_column()),
        )
    });
    Statement::new(sql, vec![key.clone()])
}

/// After a delete at a home while the table is unsettled: a tombstone, so a
/// copy still in flight cannot bring the row back. Returns whether it was set.
pub(crate) fn tombstone_if_unsettled(
    table: &str,
    key: &Value,
    epoch: usize,
    now: u64,
) -> Statement {
    Statement::new(
        "INSERT OR IGNORE INTO _collegedb_marks (tbl, pk, kind, extra, created) \
         SELECT ?1, ?2, 'gone', '', ?4 WHERE COALESCE((SELECT epoch FROM _collegedb_settled WHERE tbl = ?1), 0) < ?3 \
         RETURNING 1",
        vec![
            Value::Text(table.to_owned()),
            key.clone(),
            Value::Integer(epoch as i64),
            Value::Integer(now as i64),
        ],
    )
}

/// Whether the table is unsettled here at `epoch`: `[0 or 1]`.
pub(crate) fn unsettled(table: &str, epoch: usize) -> Statement {
    Statement::new(
        "SELECT COALESCE((SELECT epoch FROM _collegedb_settled WHERE tbl = ?1), 0) < ?2",
        vec![Value::Text(table.to_owned()), Value::Integer(epoch as i64)],
    )
}

/// The incarnation mark of a row copied home by a rebalance, if the copy is
/// there and has none. Parameters: `?1` key, `?2` incarnation, `?3` time.
pub(crate) fn copy_incarnation(
    schema: &'static Schema,
    key: &Value,
    incarnation: &str,
    now: u64,
) -> Statement {
    let sql = memo_for(schema, Shape::CopyIncarnation, || {
        let condition = format!(
            "EXISTS (SELECT 1 FROM {} WHERE {} = ?1) AND NOT EXISTS {}",
            quoted(schema.table),
            quoted(schema.primary_key_column()),
            mark(schema, "1", "inc", "?1"),
        );
        insert_inc_mark(schema, &condition)
    });
    Statement::new(sql, inc_mark_params(key, incarnation, now))
}
