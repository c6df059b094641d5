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
//! values are always bound.

use crate::backend::Statement;
use crate::model::Model;
use crate::value::Value;

/// Creates the router's tables on a shard; safe to run again.
pub(crate) const META: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS _collegedb_epoch (id INTEGER PRIMARY KEY CHECK (id = 0), epoch INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO _collegedb_epoch (id, epoch) VALUES (0, 0)",
    "CREATE TABLE IF NOT EXISTS _collegedb_settled (tbl TEXT PRIMARY KEY, epoch INTEGER NOT NULL)",
    // `pk` has no type, so SQLite keeps 42 and '42' apart, as the tables do.
    "CREATE TABLE IF NOT EXISTS _collegedb_marks (tbl TEXT NOT NULL, pk NOT NULL, kind TEXT NOT NULL, extra TEXT NOT NULL, created INTEGER NOT NULL, PRIMARY KEY (tbl, pk, kind, extra))",
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

/// Sets one mark, replacing a mark of the same kind for the row.
pub(crate) fn set_mark(
    table: &str,
    key: &Value,
    kind: &str,
    extra: &str,
    now: u64,
) -> [Statement; 2] {
    [
        clear_marks(table, key, &[kind]),
        add_mark(table, key, kind, extra, now),
    ]
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

/// Removes a row's marks of the given kinds.
pub(crate) fn clear_marks(table: &str, key: &Value, kinds: &[&str]) -> Statement {
    let list = kinds
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Statement::new(
        format!("DELETE FROM _collegedb_marks WHERE tbl = ?1 AND pk = ?2 AND kind IN ({list})"),
        vec![Value::Text(table.to_owned()), key.clone()],
    )
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// The model's columns, qualified by the `_row` alias.
fn row_columns<M: Model>() -> String {
    M::COLUMNS
        .iter()
        .map(|c| format!("_row.{}", quoted(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The leading columns of every probe, before the model's columns.
pub(crate) const PROBE_FLAGS: usize = 4;

/// One row with what routing needs to know about the key on this shard:
/// `[unsettled, redirect, moving, incarnation, columns...]`. There is always
/// exactly one result row; the columns are NULL when the row is absent.
/// Parameters: `?1` key, `?2` table, `?3` epoch. The key reaches the join
/// through the one-row subquery: compared to `?1` directly in the `ON`
/// clause, SQLite (with STAT4) re-prepared the statement on every call.
pub(crate) fn probe_key<M: Model>(key: &Value, epoch: usize) -> Statement {
    let table = quoted(M::TABLE);
    let pk = quoted(M::primary_key_column());
    Statement::new(
        format!(
            "SELECT COALESCE((SELECT epoch FROM _collegedb_settled WHERE tbl = ?2), 0) < ?3, \
             (SELECT extra FROM _collegedb_marks WHERE tbl = ?2 AND pk = ?1 AND kind = 'redirect'), \
             EXISTS (SELECT 1 FROM _collegedb_marks WHERE tbl = ?2 AND pk = ?1 AND kind = 'moving'), \
             (SELECT extra FROM _collegedb_marks WHERE tbl = ?2 AND pk = ?1 AND kind = 'inc'), \
             {} FROM (SELECT ?1 AS _key) AS _one LEFT JOIN {table} AS _row ON _row.{pk} = _one._key",
            row_columns::<M>()
        ),
        vec![
            key.clone(),
            Value::Text(M::TABLE.to_owned()),
            Value::Integer(epoch as i64),
        ],
    )
}

/// The row whose lookup column equals `?1`, as `[0, NULL, moving,
/// incarnation, columns...]` (the probe's shape); no row if there is none.
pub(crate) fn probe_lookup<M: Model>(column: &str, value: &Value) -> Statement {
    let table = quoted(M::TABLE);
    let pk = quoted(M::primary_key_column());
    Statement::new(
        format!(
            "SELECT 0, NULL, \
             EXISTS (SELECT 1 FROM _collegedb_marks WHERE tbl = ?2 AND pk = _row.{pk} AND kind = 'moving'), \
             (SELECT extra FROM _collegedb_marks WHERE tbl = ?2 AND pk = _row.{pk} AND kind = 'inc'), \
             {} FROM {table} AS _row WHERE _row.{} = ?1",
            row_columns::<M>(),
            quoted(column)
        ),
        vec![value.clone(), Value::Text(M::TABLE.to_owned())],
    )
}

/// A statement over `M`'s table, given its quoted name and primary key,
/// with the table's name bound as `?1` for the marks.
fn over_table<M: Model>(sql: impl FnOnce(&str, &str) -> String) -> Statement {
    let table = quoted(M::TABLE);
    let pk = quoted(M::primary_key_column());
    Statement::new(sql(&table, &pk), vec![Value::Text(M::TABLE.to_owned())])
}

/// Every row of a shard in primary-key order, as `[moving, columns...]`.
pub(crate) fn scan<M: Model>() -> Statement {
    over_table::<M>(|table, pk| {
        format!(
            "SELECT EXISTS (SELECT 1 FROM _collegedb_marks WHERE tbl = ?1 AND pk = _row.{pk} AND kind = 'moving'), \
             {} FROM {table} AS _row ORDER BY _row.{pk}",
            row_columns::<M>()
        )
    })
}

/// `[rows, frozen rows]` of a shard: frozen rows are being moved away.
pub(crate) fn count<M: Model>() -> Statement {
    over_table::<M>(|table, pk| {
        format!(
            "SELECT (SELECT COUNT(*) FROM {table}), \
             (SELECT COUNT(*) FROM _collegedb_marks WHERE tbl = ?1 AND kind = 'moving' AND pk IN (SELECT {pk} FROM {table}))"
        )
    })
}

/// The primary keys of a shard's frozen rows.
pub(crate) fn frozen_keys<M: Model>() -> Statement {
    over_table::<M>(|table, pk| {
        format!(
            "SELECT pk FROM _collegedb_marks WHERE tbl = ?1 AND kind = 'moving' AND pk IN (SELECT {pk} FROM {table})"
        )
    })
}

/// Every primary key of a shard.
pub(crate) fn keys<M: Model>() -> Statement {
    let table = quoted(M::TABLE);
    let pk = quoted(M::primary_key_column());
    Statement::new(
        format!("SELECT {pk} FROM {table} ORDER BY {pk}"),
        Vec::new(),
    )
}

/// The row's insert, as the derive wrote it.
pub(crate) fn insert<M: Model>(row: &[Value]) -> Statement {
    Statement::new(M::SQL.insert, row.to_vec())
}

/// A copy's insert: only if no row and no tombstone is there.
/// Parameters: the row, then the table.
pub(crate) fn insert_copy<M: Model>(row: &[Value]) -> Statement {
    let table = quoted(M::TABLE);
    let names = M::COLUMNS
        .iter()
        .map(|c| quoted(c))
        .collect::<Vec<_>>()
        .join(", ");
    let params = (1..=row.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let table_param = row.len() + 1;
    let key_param = M::PRIMARY_KEY + 1;
    let mut values = row.to_vec();
    values.push(Value::Text(M::TABLE.to_owned()));
    Statement::new(
        format!(
            "INSERT INTO {table} ({names}) SELECT {params} WHERE NOT EXISTS \
             (SELECT 1 FROM _collegedb_marks WHERE tbl = ?{table_param} AND pk = ?{key_param} AND kind = 'gone') \
             ON CONFLICT DO NOTHING"
        ),
        values,
    )
}

/// The update, applied only if each lookup column still holds `expected`
/// (in `M::LOOKUPS` order), so a concurrent alias change is never overwritten.
pub(crate) fn update_if<M: Model>(row: &[Value], expected: &[Value]) -> Statement {
    let mut sql = M::SQL.update.to_owned();
    let mut params = row.to_vec();
    for (lookup, value) in M::LOOKUPS.iter().zip(expected) {
        params.push(value.clone());
        sql.push_str(&format!(
            " AND {} IS ?{}",
            quoted(lookup.column),
            params.len()
        ));
    }
    Statement::new(sql, params)
}

/// Deletes the row (if its lookup `only_if` still holds the value, and, with
/// `life`, if it is that incarnation — `""` for a row without one),
/// returning its lookup values.
pub(crate) fn delete<M: Model>(
    key: &Value,
    only_if: Option<(&str, &Value)>,
    life: Option<&str>,
) -> Statement {
    let table = quoted(M::TABLE);
    let pk = quoted(M::primary_key_column());
    let returning = std::iter::once(pk.clone())
        .chain(M::LOOKUPS.iter().map(|l| quoted(l.column)))
        .collect::<Vec<_>>()
        .join(", ");
    let mut params = vec![key.clone()];
    let mut condition = match only_if {
        Some((column, value)) => {
            params.push(value.clone());
            format!(" AND {} = ?2", quoted(column))
        }
        None => String::new(),
    };
    if let Some(life) = life {
        params.push(Value::Text(M::TABLE.to_owned()));
        params.push(Value::Text(life.to_owned()));
        condition.push_str(&format!(
            " AND COALESCE((SELECT extra FROM _collegedb_marks WHERE tbl = ?{} AND pk = ?1 AND kind = 'inc'), '') = ?{}",
            params.len() - 1,
            params.len()
        ));
    }
    Statement::new(
        format!("DELETE FROM {table} WHERE {pk} = ?1{condition} RETURNING {returning}"),
        params,
    )
}

/// After a delete: drops the row's marks if the row is gone, returning its incarnation.
pub(crate) fn drop_marks_if_gone<M: Model>(key: &Value) -> Statement {
    let table = quoted(M::TABLE);
    let pk = quoted(M::primary_key_column());
    Statement::new(
        format!(
            "DELETE FROM _collegedb_marks WHERE tbl = ?1 AND pk = ?2 AND kind IN ('inc', 'moving') \
             AND NOT EXISTS (SELECT 1 FROM {table} WHERE {pk} = ?2) RETURNING kind, extra"
        ),
        vec![Value::Text(M::TABLE.to_owned()), key.clone()],
    )
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
