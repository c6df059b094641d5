//! Raw SQL where the query builder stops: on the shard of a key, on a named
//! shard, or on every shard. Values are always bound, never spliced in.
//!
//! Raw statements bypass the router: they take no claims and pass no
//! fence. Changing a `#[lookup]` column or a primary key with raw SQL
//! breaks the uniqueness the router keeps; read freely, write with care.

use std::cmp::Ordering;

use super::Database;
use crate::backend::calls::Trace;
use crate::backend::{Backend, Outcome, ShardExecutor, Statement};
use crate::error::{Error, Result};
use crate::key::RoutedKey;
use crate::model::Model;
use crate::query::{compare, Column, FromRow, Operand};
use crate::value::Value;

impl<B: Backend> Database<B> {
    /// Raw SQL on the shard that holds the row whose `column` (the primary
    /// key or a `#[lookup]`) is `value`. No such row is
    /// [`Error::NotFound`]; another column is [`Error::InvalidQuery`].
    ///
    /// ```
    /// # #[cfg(feature = "embedded")] {
    /// # use collegedb::{embedded, Sharded, Value};
    /// # #[derive(Sharded)] struct User { #[primary_key] id: String, #[lookup] email: String, visits: i64 }
    /// # futures::executor::block_on(async {
    /// # let db = embedded::Options::in_memory(4).open()?;
    /// # User::create_schema(&db).await?;
    /// # User { id: "u1".into(), email: "a@b.c".into(), visits: 0 }.insert(&db).await?;
    /// let shard = db.raw_for_key(User::EMAIL, "a@b.c").await?;
    /// let changed = shard
    ///     .run("UPDATE users SET visits = visits + 1 WHERE email = ?1", &["a@b.c".into()])
    ///     .await?;
    /// assert_eq!(changed, 1);
    /// let visits: Option<i64> = shard
    ///     .first("SELECT visits FROM users WHERE id = ?1", &["u1".into()])
    ///     .await?;
    /// assert_eq!(visits, Some(1));
    /// # Ok::<(), collegedb::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn raw_for_key<M: Model, T, V: Operand<T>>(
        &self,
        column: Column<M, T>,
        value: V,
    ) -> Result<RawShard<'_, B>> {
        let value = value.into_value()?;
        let index = column.index();
        let key = RoutedKey::new(value.clone());
        let span = self.router.span("raw_for_key", M::TABLE, Some(&key));
        let found = if index == M::PRIMARY_KEY {
            self.router.locate(M::SCHEMA, &key).traced(span).await?
        } else if let Some(lookup) = M::LOOKUPS.iter().find(|l| l.index == index) {
            self.router
                .locate_alias(M::SCHEMA, lookup, &value)
                .traced(span)
                .await?
        } else {
            return Err(Error::InvalidQuery {
                table: M::TABLE,
                message: format!(
                    "`{}` is neither the primary key nor a lookup column: it does not say which shard a row is on",
                    column.name()
                ),
            });
        };
        match found {
            Some(found) => Ok(RawShard {
                db: self,
                shard: found.shard,
            }),
            None => Err(Error::NotFound {
                table: M::TABLE,
                key: value.key_text(),
            }),
        }
    }

    /// Raw SQL on the shard called `name` ([`Error::UnknownShard`] if none is).
    pub fn raw_on_shard(&self, name: &str) -> Result<RawShard<'_, B>> {
        Ok(RawShard {
            db: self,
            shard: self.router.shard_index(name)?,
        })
    }

    /// Raw SQL on every shard, a bounded number at a time
    /// ([`Config::fanout_limit`](crate::Config::fanout_limit)).
    pub fn raw_on_every_shard(&self) -> RawShards<'_, B> {
        RawShards { db: self }
    }
}

/// A statement with its parameters, refused before sending if the backend
/// would refuse it, or if a parameter is NaN (SQLite would bind NULL, as a
/// typed field refuses to store).
fn statement<B: Backend>(sql: &str, params: &[Value]) -> Result<Statement> {
    if let Some(i) = params
        .iter()
        .position(|p| matches!(p, Value::Real(r) if r.is_nan()))
    {
        return Err(Error::Encode {
            column: "<parameter>",
            message: format!(
                "parameter {} is NaN, which SQLite would bind as NULL",
                i + 1
            ),
        });
    }
    let statement = Statement::new(sql.to_owned(), params.to_vec());
    B::Shard::check_statement(&statement)?;
    Ok(statement)
}

/// Raw SQL on one shard.
pub struct RawShard<'a, B: Backend> {
    db: &'a Database<B>,
    shard: usize,
}

impl<B: Backend> RawShard<'_, B> {
    /// The shard's name.
    pub fn name(&self) -> &str {
        self.db.router.name(self.shard)
    }

    /// Runs a statement in its own transaction; returns the rows it changed.
    pub async fn run(&self, sql: &str, params: &[Value]) -> Result<u64> {
        let statement = statement::<B>(sql, params)?;
        let outcomes = self
            .db
            .router
            .batch(self.shard, &[statement])
            .traced(self.span())
            .await?;
        Ok(outcomes.first().map_or(0, |o| o.changed))
    }

    /// The first row of a query, decoded into `R`.
    pub async fn first<R: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Option<R>> {
        let rows = self.rows(sql, params).await?;
        rows.into_iter().next().map(R::from_row).transpose()
    }

    /// Every row of a query, decoded into `R`.
    pub async fn all<R: FromRow>(&self, sql: &str, params: &[Value]) -> Result<Vec<R>> {
        let rows = self.rows(sql, params).await?;
        rows.into_iter().map(R::from_row).collect()
    }

    async fn rows(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>> {
        let statement = statement::<B>(sql, params)?;
        self.db
            .router
            .query(self.shard, &statement)
            .traced(self.span())
            .await
    }

    /// The span of one raw statement: `table` is empty, the shard is named.
    fn span(&self) -> tracing::Span {
        let span = self.db.router.span("raw", "", None);
        span.record("shard", self.name());
        span
    }
}

/// Raw SQL on every shard. A shard that fails fails the call with
/// [`Error::ShardsFailed`] naming every failed shard; shards are separate
/// databases, so a `run` that failed on some may have changed others.
pub struct RawShards<'a, B: Backend> {
    db: &'a Database<B>,
}

/// How [`RawShards::merged`] orders the shards' rows together, and how
/// many it keeps: by columns of the result (0 is the first), then in
/// shard order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merge {
    order: Vec<(usize, bool)>,
    limit: Option<usize>,
}

impl Merge {
    /// No ordering (shard order) and no limit.
    pub fn new() -> Self {
        Merge::default()
    }

    /// Then ascending by result column `column`.
    pub fn asc(mut self, column: usize) -> Self {
        self.order.push((column, false));
        self
    }

    /// Then descending by result column `column`.
    pub fn desc(mut self, column: usize) -> Self {
        self.order.push((column, true));
        self
    }

    /// At most `limit` rows, after ordering.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl<B: Backend> RawShards<'_, B> {
    /// Runs a statement on every shard, each in its own transaction; returns
    /// each shard's name with the rows it changed, in shard order.
    pub async fn run(&self, sql: &str, params: &[Value]) -> Result<Vec<(String, u64)>> {
        let router = &self.db.router;
        Ok(self
            .outcomes(sql, params, true)
            .await?
            .into_iter()
            .enumerate()
            .map(|(i, o)| (router.name(i).to_owned(), o.changed))
            .collect())
    }

    /// Every shard's rows of a query, decoded into `R`, per shard in shard order.
    pub async fn all<R: FromRow>(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<(String, Vec<R>)>> {
        let router = &self.db.router;
        self.rows(sql, params)
            .await?
            .into_iter()
            .enumerate()
            .map(|(i, rows)| {
                let rows = rows.into_iter().map(R::from_row).collect::<Result<_>>()?;
                Ok((router.name(i).to_owned(), rows))
            })
            .collect()
    }

    /// Every shard's rows of a query as one list, ordered and limited by
    /// `merge` once, after merging, and decoded into `R`.
    ///
    /// ```
    /// # #[cfg(feature = "embedded")] {
    /// # use collegedb::{embedded, Merge, Sharded};
    /// # #[derive(Sharded)] struct Post { #[primary_key] id: i64, likes: i64 }
    /// # futures::executor::block_on(async {
    /// # let db = embedded::Options::in_memory(4).open()?;
    /// # Post::create_schema(&db).await?;
    /// # for id in 0..40 { Post { id, likes: id % 9 }.insert(&db).await?; }
    /// // Each shard sends its top 3; the 3 best overall are kept.
    /// let top: Vec<(i64, i64)> = db
    ///     .raw_on_every_shard()
    ///     .merged(
    ///         "SELECT likes, id FROM posts ORDER BY likes DESC, id LIMIT 3",
    ///         &[],
    ///         &Merge::new().desc(0).asc(1).limit(3),
    ///     )
    ///     .await?;
    /// assert_eq!(top, [(8, 8), (8, 17), (8, 26)]);
    /// # Ok::<(), collegedb::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn merged<R: FromRow>(
        &self,
        sql: &str,
        params: &[Value],
        merge: &Merge,
    ) -> Result<Vec<R>> {
        let mut rows: Vec<Vec<Value>> = self
            .rows(sql, params)
            .await?
            .into_iter()
            .flatten()
            .collect();
        if let Some(short) = rows
            .iter()
            .find(|row| merge.order.iter().any(|(c, _)| *c >= row.len()))
        {
            return Err(Error::InvalidQuery {
                table: "<raw>",
                message: format!(
                    "the merge orders by column {:?}, but a row has {} columns",
                    merge.order.iter().map(|(c, _)| c).max(),
                    short.len()
                ),
            });
        }
        // Stable: ties keep shard order.
        rows.sort_by(|a, b| {
            merge
                .order
                .iter()
                .map(|&(c, descending)| {
                    let order = compare(&a[c], &b[c]);
                    if descending {
                        order.reverse()
                    } else {
                        order
                    }
                })
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        rows.truncate(merge.limit.unwrap_or(usize::MAX));
        rows.into_iter().map(R::from_row).collect()
    }

    async fn rows(&self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Vec<Value>>>> {
        let outcomes = self.outcomes(sql, params, false).await?;
        Ok(outcomes.into_iter().map(|o| o.rows).collect())
    }

    /// What the statement did on each shard, in shard order: as a write
    /// (its own transaction) or as a read-only query.
    async fn outcomes(&self, sql: &str, params: &[Value], write: bool) -> Result<Vec<Outcome>> {
        let statement = statement::<B>(sql, params)?;
        let router = &self.db.router;
        let all: Vec<usize> = (0..router.shards.len()).collect();
        let span = router.span("raw", "", None);
        let answers = router
            .each_shard(&all, |i| {
                let statement = &statement;
                async move {
                    if write {
                        let outcomes = router.batch(i, std::slice::from_ref(statement)).await?;
                        Ok(outcomes.into_iter().next().unwrap_or_default())
                    } else {
                        let rows = router.query(i, statement).await?;
                        Ok(Outcome { changed: 0, rows })
                    }
                }
            })
            .traced(span)
            .await;
        router.all_or_failed(answers)
    }
}
