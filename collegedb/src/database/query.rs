//! Running typed queries: the terminal methods of [`Query`] and [`Grouped`].

use std::borrow::Cow;

use super::Database;
use crate::backend::Backend;
use crate::error::Result;
use crate::model::Model;
use crate::query::{Aggregate, FromRow, Grouped, Page, Query, ShardPlan};

impl<M: Model, R: FromRow> Query<M, R> {
    /// This query failing on any failed shard, whatever [`Query::partial`] said.
    fn strict(&self) -> Cow<'_, Self> {
        if self.partial {
            let mut strict = self.clone();
            strict.partial = false;
            Cow::Owned(strict)
        } else {
            Cow::Borrowed(self)
        }
    }

    /// Every row the query passes, after its offset or cursor and up to its
    /// limit, in its order. A shard that fails fails the query with
    /// [`Error::ShardsFailed`](crate::Error::ShardsFailed).
    pub async fn all<B: Backend>(&self, db: &Database<B>) -> Result<Vec<R>> {
        Ok(db.router.page(&*self.strict()).await?.rows)
    }

    /// One page: the rows of [`Query::all`], where the next page starts,
    /// and, if asked, the total and the failed shards.
    ///
    /// ```
    /// # #[cfg(feature = "embedded")] {
    /// # use collegedb::{embedded, Sharded};
    /// # #[derive(Sharded)] struct Post { #[primary_key] id: i64, likes: i64 }
    /// # futures::executor::block_on(async {
    /// # let db = embedded::Options::in_memory(4).open()?;
    /// # Post::create_schema(&db).await?;
    /// # for id in 0..45 { Post { id, likes: id % 7 }.insert(&db).await?; }
    /// let query = Post::query().order_by(Post::LIKES.desc()).limit(20);
    /// let first = query.clone().with_total().page(&db).await?;
    /// assert_eq!((first.rows.len(), first.total), (20, Some(45)));
    ///
    /// // Walk the rest with the cursor: every row once, none skipped.
    /// let mut seen = first.rows.len();
    /// let mut next = first.next;
    /// while let Some(cursor) = next {
    ///     let page = query.clone().after(cursor).page(&db).await?;
    ///     seen += page.rows.len();
    ///     next = page.next;
    /// }
    /// assert_eq!(seen, 45);
    /// # Ok::<(), collegedb::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn page<B: Backend>(&self, db: &Database<B>) -> Result<Page<R>> {
        db.router.page(self).await
    }

    /// The first row the query passes, if any.
    pub async fn first<B: Backend>(&self, db: &Database<B>) -> Result<Option<R>> {
        let mut first = self.strict().into_owned();
        first.limit = Some(1);
        Ok(db.router.page(&first).await?.rows.into_iter().next())
    }

    /// Whether any row passes the query.
    pub async fn exists<B: Backend>(&self, db: &Database<B>) -> Result<bool> {
        Ok(self.first(db).await?.is_some())
    }

    /// How many rows pass the filter (the ordering, limit, offset and cursor
    /// do not count), each row once.
    pub async fn count<B: Backend>(&self, db: &Database<B>) -> Result<u64> {
        if let Some(err) = self.invalid() {
            return Err(err);
        }
        db.router.count_where(&self.filter).await
    }

    /// The aggregates of every row passing the filter, as one row decoded
    /// into `T` (a tuple, or a `#[derive(FromRow)]` struct), in the order given.
    ///
    /// ```
    /// # #[cfg(feature = "embedded")] {
    /// # use collegedb::{embedded, Sharded};
    /// use collegedb::query::{avg, count, max, sum};
    /// # #[derive(Sharded)] struct Order { #[primary_key] id: i64, cents: i64 }
    /// # futures::executor::block_on(async {
    /// # let db = embedded::Options::in_memory(4).open()?;
    /// # Order::create_schema(&db).await?;
    /// # for id in 1..=10 { Order { id, cents: id * 100 }.insert(&db).await?; }
    /// let (n, total, mean, top): (i64, i64, f64, i64) = Order::query()
    ///     .filter(Order::CENTS.ge(500))
    ///     .aggregate(&db, &[count(), sum(Order::CENTS), avg(Order::CENTS), max(Order::CENTS)])
    ///     .await?;
    /// assert_eq!((n, total, mean, top), (6, 4500, 750.0, 1000));
    /// # Ok::<(), collegedb::Error>(())
    /// # }).unwrap();
    /// # }
    /// ```
    pub async fn aggregate<B: Backend, T: FromRow>(
        &self,
        db: &Database<B>,
        aggregates: &[Aggregate<M>],
    ) -> Result<T> {
        if let Some(err) = self.invalid() {
            return Err(err);
        }
        let grouped = Grouped {
            filter: self.filter.clone(),
            groups: Vec::new(),
            having: None,
            error: None,
        };
        let mut rows = db.router.aggregate::<M, T>(&grouped, aggregates).await?;
        Ok(rows.remove(0))
    }

    /// `EXPLAIN QUERY PLAN` of the query's first page on each shard it
    /// reads, to check that a filter or ordering uses an index.
    pub async fn explain<B: Backend>(&self, db: &Database<B>) -> Result<Vec<ShardPlan>> {
        db.router.explain(self).await
    }
}

impl<M: Model> Grouped<M> {
    /// The groups (ordered by their values, as `ORDER BY` would) that pass
    /// [`Grouped::having`], each as one row `[group values..., aggregates...]`
    /// decoded into `T`. Every aggregate is merged from the shards' partial
    /// results, so each group is exact however its rows are spread.
    pub async fn aggregate<B: Backend, T: FromRow>(
        &self,
        db: &Database<B>,
        aggregates: &[Aggregate<M>],
    ) -> Result<Vec<T>> {
        db.router.aggregate(self, aggregates).await
    }
}
