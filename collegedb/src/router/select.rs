//! The statements of typed queries on one shard: a page of rows in the
//! query's order, and the partial aggregates of a group query. Each reads
//! whether a row is a frozen copy (being moved home by a rebalance) only
//! while the table is unsettled for this reader, like `list` pages.

use super::query::Table;
use super::sql::{mark, quoted, unsettled_at};
use crate::backend::Statement;
use crate::model::Schema;
use crate::query::{Aggregate, Binder, Expr, Order};
use crate::value::Value;

/// The alias of the model's table in every query statement; filters are
/// compiled against it.
const ROW: &str = "_row";

/// A binder with the reader's epoch as `?1`, which the `moving` expression reads.
fn binder(epoch: usize) -> Binder {
    let mut binder = Binder::default();
    binder.bind(Value::Integer(epoch as i64));
    binder
}

/// Where `_row` stands in a rebalance: 0 while the table is settled for
/// this reader, 1 while unsettled (rows may be moving), 2 for a frozen copy.
/// `?1` is the reader's epoch. The one part of the statements built per model.
pub(crate) fn moving(schema: &'static Schema) -> String {
    let pk = format!("{ROW}.{}", quoted(schema.primary_key_column()));
    format!(
        "CASE WHEN {} THEN 1 + EXISTS {} ELSE 0 END",
        unsettled_at(schema, 1),
        mark(schema, "1", "moving", &pk)
    )
}

fn column(name: &str) -> String {
    format!("{ROW}.{}", quoted(name))
}

/// Up to `limit` rows of `table` passing `filter` after `after` (a keyset
/// position in `terms`), in the order of `terms`: `[moving, terms' values...,
/// columns...]`. `moving` is [`moving`] of the table.
pub(crate) fn rows(
    table: &Table,
    filter: &Expr,
    terms: &[Order<()>],
    after: Option<&[Value]>,
    columns: &[usize],
    limit: u64,
    epoch: usize,
) -> Statement {
    let mut b = binder(epoch);
    let mut condition = b.condition(ROW, filter);
    if let Some(after) = after {
        condition = format!("({condition}) AND ({})", b.after(ROW, terms, after));
    }
    let keys: Vec<String> = terms.iter().map(|t| column(t.column)).collect();
    let values: Vec<String> = columns
        .iter()
        .map(|&i| column(table.schema.columns[i]))
        .collect();
    let order: Vec<String> = terms
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                column(t.column),
                if t.descending { "DESC" } else { "ASC" }
            )
        })
        .collect();
    let limit = b.bind(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
    let sql = format!(
        "SELECT {} AS _collegedb_moving, {}{}{} FROM {} AS {ROW} WHERE {condition} ORDER BY {} LIMIT {limit}",
        table.moving,
        keys.join(", "),
        if values.is_empty() { "" } else { ", " },
        values.join(", "),
        quoted(table.schema.table),
        order.join(", "),
    );
    Statement::new(sql, b.values)
}

/// The partial aggregates of the rows passing `filter`, per group, as
/// `[0, moving, groups..., partials...]` (`moving` is 1 if the table is
/// unsettled for this reader, so rows may be moving); then each frozen copy
/// passing it alone, as `[1, key, groups..., its own partials...]`, for the
/// router to count unless its live copy is home.
pub(crate) fn aggregates(
    table: &Table,
    filter: &Expr,
    groups: &[(&'static str, usize)],
    aggregates: &[Aggregate<()>],
    epoch: usize,
) -> Statement {
    let mut b = binder(epoch);
    let condition = b.condition(ROW, filter);
    let groups: Vec<String> = groups.iter().map(|(name, _)| column(name)).collect();
    let partials: Vec<String> = aggregates.iter().flat_map(|a| a.partial_sql(ROW)).collect();
    let singles: Vec<String> = aggregates.iter().flat_map(|a| a.row_sql(ROW)).collect();
    let lead = |parts: &[String]| -> String { parts.iter().map(|p| format!(", {p}")).collect() };
    let group_by = if groups.is_empty() {
        String::new()
    } else {
        format!(" GROUP BY {}", groups.join(", "))
    };
    // NOT MATERIALIZED: the filter is bound once but runs inline in both
    // parts, with its indexes, instead of copying the rows it passes.
    let sql = format!(
        "WITH _collegedb_passed AS NOT MATERIALIZED (SELECT {ROW}.*, {} AS _collegedb_moving FROM {} AS {ROW} WHERE {condition}) \
         SELECT 0, MAX(_collegedb_moving){}{} FROM _collegedb_passed AS {ROW} WHERE _collegedb_moving < 2{group_by} \
         UNION ALL SELECT 1, {}{}{} FROM _collegedb_passed AS {ROW} WHERE _collegedb_moving = 2",
        table.moving,
        quoted(table.schema.table),
        lead(&groups),
        lead(&partials),
        column(table.schema.primary_key_column()),
        lead(&groups),
        lead(&singles),
    );
    Statement::new(sql, b.values)
}

/// `EXPLAIN QUERY PLAN` of `statement`.
pub(crate) fn explain(statement: Statement) -> Statement {
    Statement::new(
        format!("EXPLAIN QUERY PLAN {}", statement.sql),
        statement.params,
    )
}
