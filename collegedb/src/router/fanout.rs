//! Operations on every shard at once: schema, list and count.

use std::cmp::Ordering;

use futures::future::try_join_all;
use tracing::Instrument;

use super::{sql, Router};
use crate::backend::{Backend, Statement};
use crate::error::{Error, Result};
use crate::key::RoutedKey;
use crate::model::Model;
use crate::value::Value;

impl<B: Backend> Router<B> {
    /// Creates the router's tables, `M`'s table and its unique lookup
    /// indexes on every shard, each shard in one transaction. Safe to call
    /// again, and after appending shards: a new shard takes the table's
    /// settled epoch from the others, so the table stays unsettled until a
    /// rebalance has moved its rows.
    pub(crate) async fn create_schema<M: Model>(&self) -> Result<()> {
        let span = self.span("create_schema", M::TABLE, None);
        async {
            let meta: Vec<Statement> = sql::META
                .iter()
                .map(|s| Statement::new(*s, Vec::new()))
                .collect();
            try_join_all((0..self.shards.len()).map(|i| self.batch(i, &meta))).await?;
            let settled_epoch = sql::settled_epoch(M::TABLE);
            let settled =
                try_join_all((0..self.shards.len()).map(|i| self.query(i, &settled_epoch))).await?;
            let epoch = settled
                .iter()
                .filter_map(|rows| match rows.first().and_then(|r| r.first()) {
                    Some(Value::Integer(e)) => Some(*e),
                    _ => None,
                })
                .min()
                .unwrap_or(self.epoch() as i64);
            let mut statements: Vec<Statement> = M::SQL
                .create
                .iter()
                .map(|s| Statement::new(*s, Vec::new()))
                .collect();
            statements.push(sql::settle_if_new(M::TABLE, epoch));
            try_join_all((0..self.shards.len()).map(|i| self.batch(i, &statements))).await?;
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Every row of `M`, ordered by primary key, each once: a row caught
    /// mid-move is read from its live copy, not the frozen one.
    ///
    /// Each shard is read in pages of [`sql::PAGE_ROWS`] rows in key order,
    /// and the pages are merged as they come (a k-way merge): memory holds
    /// the result and one page per shard, and rows are decoded straight
    /// into `M`.
    pub(crate) async fn list<M: Model>(&self) -> Result<Vec<M>> {
        let span = self.span("list", M::TABLE, None);
        async {
            let mut cursors: Vec<Cursor> = (0..self.shards.len()).map(|_| Cursor::new()).collect();
            let mut out = Vec::new();
            // The row chosen last, held back until the next one shows it was
            // not the first of several copies of one key.
            let mut pending: Option<Vec<Value>> = None;
            loop {
                let empty: Vec<usize> = (0..cursors.len())
                    .filter(|&i| cursors[i].needs_page())
                    .collect();
                let pages = try_join_all(empty.iter().map(|&i| {
                    let page = sql::page::<M>(cursors[i].after.as_ref(), self.epoch());
                    async move { self.query(i, &page).await }
                }))
                .await?;
                for (i, rows) in empty.into_iter().zip(pages) {
                    cursors[i].fill::<M>(rows);
                }
                let next = (0..cursors.len())
                    .filter_map(|i| cursors[i].head().map(|row| (i, row)))
                    .min_by(|(_, a), (_, b)| copy_order::<M>(a, b))
                    .map(|(i, _)| i);
                let Some(next) = next else { break };
                let row = cursors[next].pop();
                match &pending {
                    Some(held) if key_of::<M>(held) == key_of::<M>(&row) => {} // a later copy
                    _ => {
                        if let Some(mut held) = pending.replace(row) {
                            held.remove(0);
                            out.push(M::from_row(held)?);
                        }
                    }
                }
            }
            if let Some(mut held) = pending {
                held.remove(0);
                out.push(M::from_row(held)?);
            }
            Ok(out)
        }
        .instrument(span)
        .await
    }

    /// The number of `M` rows, each counted once: a frozen copy whose live
    /// copy is already home is not counted.
    pub(crate) async fn count<M: Model>(&self) -> Result<u64> {
        let span = self.span("count", M::TABLE, None);
        async {
            let counts = self.counts::<M>().await?;
            let mut total: u64 = counts.iter().map(|(rows, _)| rows).sum();
            for (shard, (_, frozen)) in counts.iter().enumerate() {
                if *frozen == 0 {
                    continue;
                }
                for key in self.query(shard, &sql::frozen_keys::<M>()).await? {
                    let key = RoutedKey::new(key.into_iter().next().unwrap_or(Value::Null));
                    let home = self.home(&key);
                    if home != shard && self.probe::<M>(home, &key.value).await?.row.is_some() {
                        total -= 1;
                    }
                }
            }
            Ok(total)
        }
        .instrument(span)
        .await
    }

    /// The rows stored on each shard, in shard order (a row mid-move is on two).
    pub(crate) async fn count_per_shard<M: Model>(&self) -> Result<Vec<(String, u64)>> {
        let counts = self.counts::<M>().await?;
        Ok(self
            .shards
            .iter()
            .zip(counts)
            .map(|(shard, (rows, _))| (shard.name.clone(), rows))
            .collect())
    }

    /// `(rows, frozen rows)` of every shard.
    async fn counts<M: Model>(&self) -> Result<Vec<(u64, u64)>> {
        let statement = sql::count::<M>();
        let answers =
            try_join_all((0..self.shards.len()).map(|i| self.query(i, &statement))).await?;
        self.shards
            .iter()
            .zip(answers)
            .map(|(shard, rows)| match rows.first().map(Vec::as_slice) {
                Some([Value::Integer(rows), Value::Integer(frozen)])
                    if *rows >= 0 && *frozen >= 0 =>
                {
                    Ok((*rows as u64, *frozen as u64))
                }
                other => Err(Error::Shard {
                    shard: shard.name.clone(),
                    message: format!("a row count came back as {other:?}"),
                }),
            })
            .collect()
    }
}

/// One shard's side of the merge in [`Router::list`]: the rest of its current
/// page (reversed, so the head is the last element) and where the next starts.
struct Cursor {
    page: Vec<Vec<Value>>,
    /// The last key read; `None` before the first page.
    after: Option<Value>,
    /// The last page was full: there may be more.
    more: bool,
}

impl Cursor {
    fn new() -> Self {
        Cursor {
            page: Vec::new(),
            after: None,
            more: true,
        }
    }

    fn needs_page(&self) -> bool {
        self.page.is_empty() && self.more
    }

    fn fill<M: Model>(&mut self, mut rows: Vec<Vec<Value>>) {
        self.more = rows.len() as i64 >= sql::PAGE_ROWS;
        if let Some(last) = rows.last() {
            self.after = Some(key_of::<M>(last).clone());
        }
        rows.reverse();
        self.page = rows;
    }

    fn head(&self) -> Option<&Vec<Value>> {
        self.page.last()
    }

    fn pop(&mut self) -> Vec<Value> {
        self.page.pop().expect("pop follows a head")
    }
}

/// The primary key of a page row (`[moving, columns...]`).
fn key_of<M: Model>(row: &[Value]) -> &Value {
    &row[1 + M::PRIMARY_KEY]
}

/// Page rows by key, and at equal keys the live copy before a frozen one.
fn copy_order<M: Model>(a: &[Value], b: &[Value]) -> Ordering {
    compare(key_of::<M>(a), key_of::<M>(b)).then_with(|| frozen(a).cmp(&frozen(b)))
}

fn frozen(row: &[Value]) -> bool {
    matches!(row.first(), Some(Value::Integer(1)))
}

/// Orders primary keys: integers numerically, text bytewise, integers before text.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
        (Value::Text(x), Value::Text(y)) => x.cmp(y),
        (Value::Integer(_), _) => Ordering::Less,
        (_, Value::Integer(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}
