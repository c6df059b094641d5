//! Queries across shards: typed column handles, filters, orderings, pages
//! and aggregates, built as plain values and run by the router.
//!
//! A query that pins the primary key or a lookup value (`User::ID.eq(..)`
//! among its top-level conditions) is routed to that row's shard. Any other
//! query runs on every shard at once (at most
//! [`Config::fanout_limit`](crate::Config::fanout_limit) at a time), with
//! the filter, the ordering and `LIMIT offset + limit` pushed down, and the
//! shards' sorted rows merged: no shard sends more than the page can use.
//!
//! Every ordering ends with the primary key, ascending, so rows that tie on
//! the requested terms come in one stable order and a cursor resumes
//! exactly where a page ended.

mod aggregate;
mod column;
mod cursor;
mod filter;
mod order;

use std::marker::PhantomData;

pub use crate::row::{FromRow, Selection};
pub(crate) use aggregate::Merged;
pub use aggregate::{avg, count, count_of, max, min, sum, Aggregate, Having, Numeric};
pub use column::{Column, Json, Operand, Textual};
pub use cursor::Cursor;
pub use filter::Filter;
pub(crate) use filter::{Binder, Expr};
pub use order::Order;
pub(crate) use order::{compare, compare_rows};

use crate::error::{Error, ShardFailure};
use crate::model::Model;

/// A query over model `M`, decoding rows into `R` (the model itself unless
/// [`Query::select`] chose a plain struct). Build it with `M::query()`,
/// which the derive generates, then run it with [`Query::all`],
/// [`Query::page`], [`Query::first`], [`Query::exists`] or [`Query::count`].
///
/// ```
/// # #[cfg(feature = "embedded")] {
/// # use collegedb::{embedded, Sharded};
/// #[derive(Sharded, Debug)]
/// struct Post {
///     #[primary_key]
///     id: i64,
///     #[sharded(index)]
///     author: String,
///     likes: i64,
/// }
///
/// # futures::executor::block_on(async {
/// # let db = embedded::Options::in_memory(4).open()?;
/// Post::create_schema(&db).await?;
/// for id in 0..30 {
///     Post { id, author: format!("a{}", id % 3), likes: id * 7 % 11 }.insert(&db).await?;
/// }
/// // The 5 most liked posts of a0, best first.
/// let top = Post::query()
///     .filter(Post::AUTHOR.eq("a0"))
///     .order_by(Post::LIKES.desc())
///     .limit(5)
///     .all(&db)
///     .await?;
/// assert_eq!(top.len(), 5);
/// assert!(top.windows(2).all(|w| w[0].likes >= w[1].likes));
/// # Ok::<(), collegedb::Error>(())
/// # }).unwrap();
/// # }
/// ```
pub struct Query<M, R = M> {
    pub(crate) filter: Filter<M>,
    pub(crate) order: Vec<Order<M>>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: u64,
    pub(crate) after: Option<Cursor>,
    /// The columns decoded into `R`, as indexes into `M::COLUMNS`.
    pub(crate) selected: Option<Vec<usize>>,
    pub(crate) total: bool,
    pub(crate) partial: bool,
    /// A mistake found while building, reported when the query runs.
    pub(crate) error: Option<Error>,
    _row: PhantomData<fn() -> R>,
}

impl<M, R> Clone for Query<M, R> {
    fn clone(&self) -> Self {
        Query {
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            after: self.after.clone(),
            selected: self.selected.clone(),
            total: self.total,
            partial: self.partial,
            error: self.error.clone(),
            _row: PhantomData,
        }
    }
}

impl<M, R> std::fmt::Debug for Query<M, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("filter", &self.filter)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl<M: Model> Default for Query<M> {
    fn default() -> Self {
        Query::new()
    }
}

impl<M: Model> Query<M> {
    /// Every row of `M`, ordered by primary key.
    pub fn new() -> Self {
        Query {
            filter: Filter::all(),
            order: Vec::new(),
            limit: None,
            offset: 0,
            after: None,
            selected: None,
            total: false,
            partial: false,
            error: None,
            _row: PhantomData,
        }
    }

    /// Selects only the columns of `S` (by name), and decodes rows into it.
    /// A column `S` names that `M` does not have is an
    /// [`Error::InvalidQuery`] when the query runs.
    pub fn select<S: Selection>(self) -> Query<M, S> {
        let mut error = self.error;
        let selected = S::COLUMNS
            .iter()
            .map(|name| {
                M::COLUMNS
                    .iter()
                    .position(|c| c == name)
                    .unwrap_or_else(|| {
                        error.get_or_insert(Error::InvalidQuery {
                            table: M::TABLE,
                            message: format!("`{name}` is not a column of `{}`", M::TABLE),
                        });
                        0
                    })
            })
            .collect();
        Query {
            filter: self.filter,
            order: self.order,
            limit: self.limit,
            offset: self.offset,
            after: self.after,
            selected: Some(selected),
            total: self.total,
            partial: self.partial,
            error,
            _row: PhantomData,
        }
    }

    /// Groups the filtered rows by `column`, for [`Grouped::aggregate`].
    pub fn group_by<T>(self, column: Column<M, T>) -> Grouped<M> {
        Grouped {
            filter: self.filter,
            groups: Vec::new(),
            having: None,
            error: self.error,
        }
        .group_by(column)
    }
}

impl<M: Model, R> Query<M, R> {
    /// Keeps only rows that pass `filter` (and every filter given before).
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.filter = self.filter.and(filter);
        self
    }

    /// Orders by `order` after the terms given before. The primary key,
    /// ascending, always ends the ordering.
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.order.push(order);
        self
    }

    /// At most `limit` rows (the page size of [`Query::page`]).
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Skips the first `offset` rows. Each shard then sends up to
    /// `offset + limit` rows: for deep pages, prefer a cursor ([`Query::after`]).
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Starts after the row where a previous page of this same query ended.
    /// Not together with an offset.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// [`Query::page`] also counts every row the filter passes.
    pub fn with_total(mut self) -> Self {
        self.total = true;
        self
    }

    /// [`Query::page`] returns the rows of the shards that answered, and
    /// lists the shards that failed in [`Page::failed`], instead of failing
    /// with [`Error::ShardsFailed`].
    pub fn partial(mut self) -> Self {
        self.partial = true;
        self
    }

    /// The ordering as run: the requested terms, up to the primary key if
    /// one of them is it, else followed by the primary key ascending.
    pub(crate) fn terms(&self) -> Vec<Order<()>> {
        let mut terms = Vec::new();
        for term in &self.order {
            terms.push(term.erase());
            if term.index == M::PRIMARY_KEY {
                return terms;
            }
        }
        terms.push(Order::new(M::primary_key_column(), M::PRIMARY_KEY, false));
        terms
    }

    /// The columns rows decode from: the selection, or every column.
    pub(crate) fn columns(&self) -> Vec<usize> {
        self.selected
            .clone()
            .unwrap_or_else(|| (0..M::COLUMNS.len()).collect())
    }

    /// The first mistake in building this query, if any.
    pub(crate) fn invalid(&self) -> Option<Error> {
        if let Some(err) = self
            .error
            .clone()
            .or_else(|| self.filter.invalid().cloned())
        {
            return Some(err);
        }
        if self.after.is_some() && self.offset > 0 {
            return Some(Error::InvalidQuery {
                table: M::TABLE,
                message:
                    "a cursor and an offset together: a cursor already says where the page starts"
                        .into(),
            });
        }
        let terms = self.terms();
        self.after
            .as_ref()
            .and_then(|cursor| cursor.check(M::TABLE, &terms).err())
    }
}

/// Rows of `M` grouped by one or more columns, for aggregates: built with
/// [`Query::group_by`], run with [`Grouped::aggregate`].
///
/// ```
/// # #[cfg(feature = "embedded")] {
/// # use collegedb::{embedded, Sharded};
/// use collegedb::query::{avg, count};
///
/// #[derive(Sharded)]
/// struct User { #[primary_key] id: i64, country: String, age: i64 }
///
/// # futures::executor::block_on(async {
/// # let db = embedded::Options::in_memory(3).open()?;
/// User::create_schema(&db).await?;
/// for id in 0..12 {
///     let country = if id % 3 == 0 { "fr" } else { "de" }.to_owned();
///     User { id, country, age: 20 + id }.insert(&db).await?;
/// }
/// // Countries with more than 5 users, with their count and average age.
/// let rows: Vec<(String, i64, f64)> = User::query()
///     .group_by(User::COUNTRY)
///     .having(count().gt(5))
///     .aggregate(&db, &[count(), avg(User::AGE)])
///     .await?;
/// assert_eq!(rows, [("de".to_owned(), 8, 26.0)]);
/// # Ok::<(), collegedb::Error>(())
/// # }).unwrap();
/// # }
/// ```
pub struct Grouped<M> {
    pub(crate) filter: Filter<M>,
    /// Group columns: name and index into `M::COLUMNS`.
    pub(crate) groups: Vec<(&'static str, usize)>,
    pub(crate) having: Option<Having<M>>,
    pub(crate) error: Option<Error>,
}

impl<M: Model> Grouped<M> {
    /// Groups by `column` too, after the columns given before.
    pub fn group_by<T>(mut self, column: Column<M, T>) -> Self {
        self.groups.push((column.name(), column.index()));
        self
    }

    /// Keeps only groups that pass `having`, judged on the merged aggregates.
    pub fn having(mut self, having: Having<M>) -> Self {
        self.having = Some(match self.having {
            Some(before) => before.and(having),
            None => having,
        });
        self
    }
}

/// One page of a query's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<R> {
    /// The rows, in the query's order.
    pub rows: Vec<R>,
    /// Where the next page starts, or `None` if this page ends the query.
    pub next: Option<Cursor>,
    /// Every row the filter passes, without limit or offset: only with
    /// [`Query::with_total`].
    pub total: Option<u64>,
    /// Shards that could not be read: only with [`Query::partial`]; their
    /// rows are missing from this page and from `total`.
    pub failed: Vec<ShardFailure>,
}

/// `EXPLAIN QUERY PLAN` of a query on one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    /// The shard's name.
    pub shard: String,
    /// The plan's steps, as SQLite words them (`SEARCH users USING INDEX ...`).
    pub steps: Vec<String>,
}
