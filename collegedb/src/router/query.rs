//! Running typed queries: routing a query that pins a key to its shard,
//! fanning any other out to every shard (a bounded number at a time),
//! merging the shards' sorted pages (a k-way merge), and merging partial
//! aggregates per group.
//!
//! A frozen copy (a rebalance is moving the row home) is returned unless
//! its live copy is home, and while the table is unsettled no key is
//! returned twice, even if its row moves between the reads of two shards.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;

use futures::StreamExt;

use super::locate::lookup_of;
use super::{select, Router, ATTEMPTS};
use crate::backend::calls::Trace;
use crate::backend::{Backend, ShardExecutor, Statement};
use crate::error::{Error, Result, ShardFailure};
use crate::key::RoutedKey;
use crate::model::{Model, Schema};
use crate::query::{
    compare, compare_rows, count, Aggregate, Cursor, Expr, Filter, FromRow, Grouped, Having,
    Merged, Order, Page, Query, ShardPlan,
};
use crate::value::Value;

/// Rows per request when a query has no limit (or a large one).
const PAGE_ROWS: u64 = 1000;

/// The shards a query reads, and whether the router chose them by a key
/// (then each holds the live copy of the only row the query can pass).
struct Targets {
    shards: Vec<usize>,
    routed: bool,
}

/// A query's table, without the model's type: the engine (statements,
/// merging, aggregating) is compiled once for every model, and only the
/// decoding of rows is built per model.
pub(super) struct Table<'q> {
    pub(super) schema: &'static Schema,
    /// [`select::moving`] of the table.
    pub(super) moving: String,
    /// The query's filter, which may pin the shards to read.
    filter: &'q Expr,
}

/// A typed query without its types: see [`Table`].
struct Plan<'q> {
    filter: &'q Expr,
    terms: Vec<Order<()>>,
    columns: Vec<usize>,
    limit: Option<u64>,
    offset: u64,
    after: Option<&'q [Value]>,
    total: bool,
    partial: bool,
}

impl<'q> Plan<'q> {
    fn of<M: Model, R>(query: &'q Query<M, R>) -> Self {
        Plan {
            filter: &query.filter.expr,
            terms: query.terms(),
            columns: query.columns(),
            limit: query.limit,
            offset: query.offset,
            after: query.after.as_ref().map(|c| c.values.as_slice()),
            total: query.total,
            partial: query.partial,
        }
    }
}

/// Where a merge hands each row as it takes it: the typed wrapper decodes
/// it there, so a long listing is never held twice, as values then as
/// models.
type Sink<'s> = &'s mut dyn FnMut(Vec<Value>) -> Result<()>;

/// A page whose rows went to a [`Sink`]: how many, and the rest of it.
struct Sunk {
    rows: u64,
    next: Option<Cursor>,
    total: Option<u64>,
    failed: Vec<ShardFailure>,
}

impl<B: Backend> Router<B> {
    /// Runs `run` on each of `shards`, at most [`Router::fanout`] at a
    /// time, and returns each shard's result in the order given.
    pub(crate) async fn each_shard<'a, T, F, Fut>(
        &'a self,
        shards: &[usize],
        run: F,
    ) -> Vec<(usize, Result<T>)>
    where
        F: Fn(usize) -> Fut + 'a,
        Fut: Future<Output = Result<T>> + 'a,
    {
        let run = &run;
        futures::stream::iter(shards.iter().copied())
            .map(|i| async move { (i, run(i).await) })
            .buffered(self.fanout)
            .collect()
            .await
    }

    /// `statement` on each of `shards`, one at a time from the last: what a
    /// count reads while rows may be moving. Shards read at different
    /// moments could each hold a row that moved in between, counting it
    /// twice. A move takes a row from a home it had under an older shard
    /// list to its home now, and jump hash only ever moves a key to an
    /// appended shard, so the destination always comes after the source:
    /// read last-first, a row moving meanwhile is counted at most once (its
    /// destination read before it arrived, or its source, frozen, checked
    /// against the destination). Answers come back in shard order.
    pub(crate) async fn each_shard_last_first(
        &self,
        shards: &[usize],
        statement: &Statement,
    ) -> Vec<(usize, Result<Vec<Vec<Value>>>)> {
        let mut answers = Vec::with_capacity(shards.len());
        for &shard in shards.iter().rev() {
            answers.push((shard, self.query(shard, statement).await));
        }
        answers.reverse();
        answers
    }

    /// The shards `table`'s filter can reach, and each one's answer to `statement`.
    async fn on_targets(
        &self,
        table: &Table<'_>,
        statement: &Statement,
    ) -> Result<(Targets, Vec<(usize, Result<Vec<Vec<Value>>>)>)> {
        let targets = self.targets(table.schema, table.filter).await?;
        let answers = self
            .each_shard(&targets.shards, |shard| async move {
                self.query(shard, statement).await
            })
            .await;
        Ok((targets, answers))
    }

    /// Every shard's result, or [`Error::ShardsFailed`] naming each shard that failed.
    pub(crate) fn all_or_failed<T>(&self, results: Vec<(usize, Result<T>)>) -> Result<Vec<T>> {
        let (values, failures) = self.split(results);
        if failures.is_empty() {
            Ok(values.into_iter().map(|(_, v)| v).collect())
        } else {
            Err(Error::ShardsFailed { failures })
        }
    }

    fn split<T>(&self, results: Vec<(usize, Result<T>)>) -> (Vec<(usize, T)>, Vec<ShardFailure>) {
        let mut values = Vec::new();
        let mut failures = Vec::new();
        for (i, result) in results {
            match result {
                Ok(v) => values.push((i, v)),
                Err(error) => failures.push(ShardFailure {
                    shard: self.name(i).to_owned(),
                    error,
                }),
            }
        }
        (values, failures)
    }

    /// The table of `schema`, for a query whose filter is `filter`.
    fn table<'q>(&self, schema: &'static Schema, filter: &'q Expr) -> Table<'q> {
        Table {
            schema,
            moving: select::moving(schema),
            filter,
        }
    }

    /// The shards that can hold rows passing `filter`: the shard of the row
    /// whose primary key or lookup value the filter pins, else every shard.
    async fn targets(&self, schema: &'static Schema, filter: &Expr) -> Result<Targets> {
        let located = if let Some(key) = filter.pinned(schema.primary_key) {
            Some(self.locate(schema, &RoutedKey::new(key.clone())).await?)
        } else if let Some((i, value)) = schema
            .lookups
            .iter()
            .enumerate()
            .find_map(|(i, l)| filter.pinned(l.index).map(|v| (i, v)))
        {
            Some(
                self.locate_alias(schema, lookup_of(schema, i)?, value)
                    .await?,
            )
        } else {
            None
        };
        Ok(match located {
            Some(found) => Targets {
                shards: found.into_iter().map(|f| f.shard).collect(),
                routed: true,
            },
            None => Targets {
                shards: (0..self.shards.len()).collect(),
                routed: false,
            },
        })
    }

    /// Refuses a statement the backend would refuse, before anything is sent.
    fn checked(statement: Statement) -> Result<Statement> {
        B::Shard::check_statement(&statement)?;
        Ok(statement)
    }

    /// Whether the frozen copy of `key` on `shard` is shadowed by its live
    /// copy at the key's home.
    async fn shadowed(&self, schema: &'static Schema, shard: usize, key: &Value) -> Result<bool> {
        let home = self.home(&RoutedKey::new(key.clone()));
        Ok(home != shard && self.probe(schema, home, key).await?.row.is_some())
    }

    /// One page of `query`: at most its limit of rows after its offset or
    /// cursor, in its order; with the total if asked.
    pub(crate) async fn page<M: Model, R: FromRow>(&self, query: &Query<M, R>) -> Result<Page<R>> {
        if let Some(err) = query.invalid() {
            return Err(err);
        }
        let table = self.table(M::SCHEMA, &query.filter.expr);
        let mut rows = Vec::new();
        let mut decode = |row| {
            rows.push(R::from_row(row)?);
            Ok(())
        };
        let page = self.page_of(&table, &Plan::of(query), &mut decode).await?;
        Ok(Page {
            rows,
            next: page.next,
            total: page.total,
            failed: page.failed,
        })
    }

    /// [`Router::page`], each row handed undecoded to `sink`.
    async fn page_of(&self, table: &Table<'_>, plan: &Plan<'_>, sink: Sink<'_>) -> Result<Sunk> {
        let span = self.span("query", table.schema.table, None);
        async {
            // The rows, then the total: one after the other, so that no
            // more than the fan-out limit of shards are asked at once.
            let mut page = self.merge_rows(table, plan, sink).await?;
            if plan.total {
                let (total, failures) = self.counted(table, plan.filter, plan.partial).await?;
                // With failures tolerated, the total counts what answered,
                // and a shard that failed only here is listed too.
                for failure in failures {
                    if !page.failed.iter().any(|f| f.shard == failure.shard) {
                        page.failed.push(failure);
                    }
                }
                // Shards are named once each, so an unstable sort is exact.
                page.failed
                    .sort_unstable_by_key(|f| self.shard_index(&f.shard).ok());
                page.total = Some(total);
            }
            Ok(page)
        }
        .traced(span)
        .await
    }

    /// The statement of a page of `plan` after `after`, at most `limit` rows.
    fn rows_statement(
        &self,
        table: &Table<'_>,
        plan: &Plan<'_>,
        after: Option<&[Value]>,
        limit: u64,
    ) -> Result<Statement> {
        Self::checked(select::rows(
            table,
            plan.filter,
            &plan.terms,
            after,
            &plan.columns,
            limit,
            self.epoch(),
        ))
    }

    async fn merge_rows(&self, table: &Table<'_>, plan: &Plan<'_>, sink: Sink<'_>) -> Result<Sunk> {
        // Refuse an oversized statement before any shard is asked.
        self.rows_statement(table, plan, plan.after, 1)?;
        // A hash key's home copy is its live one: a query pinning the key
        // asks the home first, and locates the row only if that finds nothing.
        if let Some(key) = plan
            .filter
            .pinned(table.schema.primary_key)
            .filter(|_| self.hash_placed())
        {
            let home = Targets {
                shards: vec![self.home(&RoutedKey::new(key.clone()))],
                routed: true,
            };
            let page = self.merge_on(table, plan, home, sink).await?;
            if page.rows > 0 {
                return Ok(page);
            }
        }
        // A row located by its key can move between being located and being
        // read: a routed read that finds nothing locates it again, and reads
        // again only where the row is now (bounded, as writes are).
        let mut targets = self.targets(table.schema, table.filter).await?;
        for _ in 1..ATTEMPTS {
            let shards = targets.shards.clone();
            let routed = targets.routed;
            let page = self.merge_on(table, plan, targets, &mut *sink).await?;
            if page.rows > 0 || !routed {
                return Ok(page);
            }
            targets = self.targets(table.schema, table.filter).await?;
            if targets.shards == shards {
                return Ok(page);
            }
        }
        self.merge_on(table, plan, targets, sink).await
    }

    /// [`Router::merge_rows`] over `targets`.
    async fn merge_on(
        &self,
        table: &Table<'_>,
        plan: &Plan<'_>,
        targets: Targets,
        sink: Sink<'_>,
    ) -> Result<Sunk> {
        let terms = &plan.terms;
        let width = terms.len();
        let wanted = plan.limit.map(|l| plan.offset.saturating_add(l));
        let mut streams: Vec<Stream> = targets
            .shards
            .iter()
            .map(|&shard| Stream {
                shard,
                rows: VecDeque::new(),
                after: plan.after.map(<[Value]>::to_vec),
                more: true,
            })
            .collect();
        let mut failed = Vec::new();
        let mut skipped = 0u64;
        let mut taken = 0u64;
        let mut taken_keys: HashSet<KeyOf> = HashSet::new();
        // The ordering values of the last row taken: the next page's cursor.
        let mut last: Vec<Value> = Vec::new();
        // Some shard answered while the table was unsettled for this reader:
        // rows may be moving between the reads of two shards.
        let mut unsettled = false;
        loop {
            // Rows skipped by the offset count too: `wanted` is offset + limit.
            let read = skipped + taken;
            if wanted.is_some_and(|w| read >= w) {
                break;
            }
            // One more row than the page needs, so a full page knows whether a next exists.
            let ask = wanted
                .map(|w| (w - read).saturating_add(1).min(PAGE_ROWS))
                .unwrap_or(PAGE_ROWS);
            let requests = streams
                .iter()
                .filter(|s| s.rows.is_empty() && s.more)
                .map(|s| {
                    let statement = self.rows_statement(table, plan, s.after.as_deref(), ask)?;
                    Ok((s.shard, statement))
                })
                .collect::<Result<Vec<(usize, Statement)>>>()?;
            if !requests.is_empty() {
                let shards: Vec<usize> = requests.iter().map(|(shard, _)| *shard).collect();
                let pages = self
                    .each_shard(&shards, |shard| {
                        let asked = requests.iter().find(|(s, _)| *s == shard);
                        async move {
                            let (_, statement) = asked.expect("each shard asked once");
                            self.query(shard, statement).await
                        }
                    })
                    .await;
                let (pages, failures) = self.split(pages);
                if !failures.is_empty() && !plan.partial {
                    return Err(Error::ShardsFailed { failures });
                }
                failed.extend(failures);
                for stream in streams.iter_mut().filter(|s| shards.contains(&s.shard)) {
                    // A failed shard (tolerated) is read no further.
                    stream.more = false;
                }
                for (shard, rows) in pages {
                    let stream = streams
                        .iter_mut()
                        .find(|s| s.shard == shard)
                        .expect("a page answers a stream");
                    stream.more = rows.len() as u64 >= ask;
                    unsettled |= rows.iter().any(|row| row[0] != Value::Integer(0));
                    if let Some(row) = rows.last() {
                        stream.after = Some(row[1..=width].to_vec());
                    }
                    stream.rows = rows.into();
                }
            }
            let next = streams
                .iter()
                .enumerate()
                .filter_map(|(s, stream)| stream.rows.front().map(|row| (s, row)))
                .min_by(|(_, a), (_, b)| compare_rows(terms, &a[1..=width], &b[1..=width]))
                .map(|(s, _)| s);
            let Some(next) = next else { break };
            let shard = streams[next].shard;
            let mut row = streams[next].rows.pop_front().expect("a head was chosen");
            // While a table is unsettled, rows may move between the reads
            // of two shards: every key taken is remembered, and a frozen copy
            // is taken only if its home holds no live one. Once any shard
            // said so, rows of shards read after the table settled are
            // checked too: one of them may be the home copy of a row already
            // taken from its source.
            if !targets.routed && unsettled {
                // The primary key ends the ordering's values.
                let key = &row[width];
                if matches!(row[0], Value::Integer(2))
                    && self.shadowed(table.schema, shard, key).await?
                {
                    continue;
                }
                if !taken_keys.insert(KeyOf::from(key)) {
                    continue;
                }
            }
            if skipped < plan.offset {
                skipped += 1;
                continue;
            }
            taken += 1;
            // The flag and the ordering values leave the front; the rest,
            // in place, is the row.
            last.clear();
            last.extend(row.drain(..=width).skip(1));
            sink(row)?;
        }
        let mut more = streams.iter().any(|s| !s.rows.is_empty());
        if !more && plan.limit.is_some() && taken > 0 {
            more = self.any_after(table, plan, &streams).await?;
        }
        let next = match plan.limit {
            Some(_) if more && taken > 0 => Some(Cursor::new(table.schema.table, terms, last)),
            _ => None,
        };
        Ok(Sunk {
            rows: taken,
            next,
            total: None,
            failed,
        })
    }

    /// Whether a stream that filled its last request has a row after it.
    /// A request carries a look-ahead row only below [`PAGE_ROWS`], so a page
    /// that ends where a full request ended asks for one more row to know
    /// whether a next page exists.
    async fn any_after(
        &self,
        table: &Table<'_>,
        plan: &Plan<'_>,
        streams: &[Stream],
    ) -> Result<bool> {
        let open: Vec<&Stream> = streams.iter().filter(|s| s.more).collect();
        let shards: Vec<usize> = open.iter().map(|s| s.shard).collect();
        let open = &open;
        let answers = self
            .each_shard(&shards, |shard| async move {
                let stream = open
                    .iter()
                    .find(|s| s.shard == shard)
                    .expect("an open stream");
                let statement = self.rows_statement(table, plan, stream.after.as_deref(), 1)?;
                self.query(shard, &statement).await
            })
            .await;
        let (answers, failures) = self.split(answers);
        if !failures.is_empty() && !plan.partial {
            return Err(Error::ShardsFailed { failures });
        }
        Ok(answers.iter().any(|(_, rows)| !rows.is_empty()))
    }

    /// Rows passing `filter`, each once.
    pub(crate) async fn count_where<M: Model>(&self, filter: &Filter<M>) -> Result<u64> {
        if let Some(err) = filter.invalid() {
            return Err(err.clone());
        }
        let table = self.table(M::SCHEMA, &filter.expr);
        Ok(self.counted(&table, &filter.expr, false).await?.0)
    }

    /// Rows passing `filter`, each once; with `partial`, on the shards that
    /// answered, listing those that failed.
    async fn counted(
        &self,
        table: &Table<'_>,
        filter: &Expr,
        partial: bool,
    ) -> Result<(u64, Vec<ShardFailure>)> {
        let (rows, failures) = self
            .aggregate_on(table, filter, &[], &[count()], None, partial)
            .await?;
        let n = rows
            .into_iter()
            .next()
            .map(<(i64,)>::from_row)
            .transpose()?;
        Ok((n.map_or(0, |(n,)| n as u64), failures))
    }

    /// The aggregates of every group of `grouped`, in the order of the
    /// group values, each row `[groups..., aggregates...]` decoded into `R`.
    pub(crate) async fn aggregate<M: Model, R: FromRow>(
        &self,
        grouped: &Grouped<M>,
        aggregates: &[Aggregate<M>],
    ) -> Result<Vec<R>> {
        if let Some(err) = grouped
            .error
            .clone()
            .or_else(|| grouped.filter.invalid().cloned())
        {
            return Err(err);
        }
        let table = self.table(M::SCHEMA, &grouped.filter.expr);
        let aggregates: Vec<Aggregate<()>> = aggregates.iter().map(|a| a.erase()).collect();
        let having = grouped.having.as_ref().map(Having::erase);
        let (rows, _) = self
            .aggregate_on(
                &table,
                &grouped.filter.expr,
                &grouped.groups,
                &aggregates,
                having.as_ref(),
                false,
            )
            .await?;
        rows.into_iter().map(R::from_row).collect()
    }

    /// [`Router::aggregate`], rows undecoded; with `partial`, over the shards
    /// that answered, with the failures of the others.
    async fn aggregate_on(
        &self,
        table: &Table<'_>,
        filter: &Expr,
        groups: &[(&'static str, usize)],
        aggregates: &[Aggregate<()>],
        having: Option<&Having<()>>,
        partial: bool,
    ) -> Result<(Vec<Vec<Value>>, Vec<ShardFailure>)> {
        let span = self.span("aggregate", table.schema.table, None);
        async {
            // The requested aggregates, then those only the group filter reads.
            let mut all: Vec<Aggregate<()>> = aggregates.to_vec();
            if let Some(having) = having {
                for extra in having.aggregates() {
                    if !all.contains(&extra) {
                        all.push(extra);
                    }
                }
            }
            let statement = Self::checked(select::aggregates(
                table,
                filter,
                groups,
                &all,
                self.epoch(),
            ))?;
            let (targets, mut answers) = self.on_targets(table, &statement).await?;
            if !targets.routed && answers.iter().any(|(_, a)| may_be_moving(a)) {
                answers = self
                    .each_shard_last_first(&targets.shards, &statement)
                    .await;
            }
            let (answers, failures) = self.split(answers);
            if !failures.is_empty() && !partial {
                return Err(Error::ShardsFailed { failures });
            }
            let width = groups.len();
            let mut groups: BTreeMap<GroupKey, Vec<Merged>> = BTreeMap::new();
            if width == 0 {
                groups.insert(GroupKey(Vec::new()), all.iter().map(Merged::new).collect());
            }
            for (shard, rows) in answers {
                for mut row in rows {
                    if row.len() < 2 + width {
                        return Err(self.malformed(shard, &row));
                    }
                    let frozen = matches!(row[0], Value::Integer(1));
                    if frozen
                        && !targets.routed
                        && self.shadowed(table.schema, shard, &row[1]).await?
                    {
                        continue;
                    }
                    let partials = row.split_off(2 + width);
                    let key = GroupKey(row.split_off(2));
                    let merged = groups
                        .entry(key)
                        .or_insert_with(|| all.iter().map(Merged::new).collect());
                    let mut at = 0;
                    for (aggregate, merged) in all.iter().zip(merged.iter_mut()) {
                        let end = at + aggregate.width();
                        let Some(partial) = partials.get(at..end) else {
                            return Err(self.malformed(shard, &partials));
                        };
                        merged.add(aggregate, partial);
                        at = end;
                    }
                }
            }
            let mut out = Vec::with_capacity(groups.len());
            for (GroupKey(mut values), merged) in groups {
                let finished: Vec<Value> = all
                    .iter()
                    .zip(&merged)
                    .map(|(a, m)| m.finish(table.schema.table, a))
                    .collect::<Result<_>>()?;
                if let Some(having) = having {
                    let lookup = |id| {
                        all.iter()
                            .position(|a| a.id() == id)
                            .map_or(Value::Null, |i| finished[i].clone())
                    };
                    if !having.passes(&lookup) {
                        continue;
                    }
                }
                values.extend(finished.into_iter().take(aggregates.len()));
                out.push(values);
            }
            Ok((out, failures))
        }
        .traced(span)
        .await
    }

    /// `EXPLAIN QUERY PLAN` of the first page of `query` on each shard it reads.
    pub(crate) async fn explain<M: Model, R>(&self, query: &Query<M, R>) -> Result<Vec<ShardPlan>> {
        if let Some(err) = query.invalid() {
            return Err(err);
        }
        let table = self.table(M::SCHEMA, &query.filter.expr);
        self.explain_of(&table, &Plan::of(query)).await
    }

    /// [`Router::explain`] without the model's type.
    async fn explain_of(&self, table: &Table<'_>, plan: &Plan<'_>) -> Result<Vec<ShardPlan>> {
        let limit = plan
            .limit
            .map_or(PAGE_ROWS, |l| l.saturating_add(plan.offset));
        let statement = Self::checked(select::explain(select::rows(
            table,
            plan.filter,
            &plan.terms,
            plan.after,
            &plan.columns,
            limit,
            self.epoch(),
        )))?;
        let span = self.span("explain", table.schema.table, None);
        let (targets, answers) = self.on_targets(table, &statement).traced(span).await?;
        let plans = self.all_or_failed(answers)?;
        Ok(targets
            .shards
            .iter()
            .zip(plans)
            .map(|(&shard, rows)| ShardPlan {
                shard: self.name(shard).to_owned(),
                // Rows are (id, parent, notused, detail).
                steps: rows
                    .into_iter()
                    .filter_map(|row| match row.into_iter().nth(3) {
                        Some(Value::Text(detail)) => Some(detail),
                        _ => None,
                    })
                    .collect(),
            })
            .collect())
    }

    fn malformed(&self, shard: usize, row: &[Value]) -> Error {
        Error::Shard {
            shard: self.name(shard).to_owned(),
            message: format!("a query returned the malformed row {row:?}"),
        }
    }
}

/// One shard's side of the merge: the rest of its current page, and where
/// its next page starts.
struct Stream {
    shard: usize,
    rows: VecDeque<Vec<Value>>,
    /// The ordering values of the last row read; `None` before the first page.
    after: Option<Vec<Value>>,
    /// The last page was full: there may be more.
    more: bool,
}

/// A primary key in a set: keys are integers or text, never NULL or real.
#[derive(PartialEq, Eq, Hash)]
struct KeyOf(KeyValue);

#[derive(PartialEq, Eq, Hash)]
enum KeyValue {
    Integer(i64),
    Text(String),
    Other(String),
}

impl KeyOf {
    fn from(value: &Value) -> Self {
        KeyOf(match value {
            Value::Integer(i) => KeyValue::Integer(*i),
            Value::Text(t) => KeyValue::Text(t.clone()),
            other => KeyValue::Other(other.describe()),
        })
    }
}

/// Group values, ordered and compared as SQLite groups them.
struct GroupKey(Vec<Value>);

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for GroupKey {}

impl PartialOrd for GroupKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GroupKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| compare(a, b))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

/// Whether a shard's answer to [`select::aggregates`] says rows may be
/// moving: the table is unsettled for the reader, or a copy is frozen.
fn may_be_moving(answer: &Result<Vec<Vec<Value>>>) -> bool {
    answer.as_ref().is_ok_and(|rows| {
        rows.iter().any(|row| match row.as_slice() {
            [Value::Integer(1), ..] => true,
            [Value::Integer(0), Value::Integer(moving), ..] => *moving != 0,
            _ => false,
        })
    })
}
