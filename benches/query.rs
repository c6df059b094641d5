//! Queries across shards on the embedded backend, 8 shards × 10,000 rows:
//! `cargo bench --bench query` (plain `cargo bench` runs it too).
//!
//! - Top 20 by a column: the query builder pushes `ORDER BY likes DESC
//!   LIMIT 21` down to every shard and merges the sorted streams, against
//!   fetching every row (`Model::list`) and sorting in Rust.
//! - Walking every page of 50 over all 80,000 rows: with the cursor (each
//!   shard resumes after the last row of the previous page) against offset
//!   pages (each shard must send up to `offset + 50` rows, so deep pages
//!   cost more and more).
//!
//! Rows transferred are measured, not estimated: the shards are wrapped in
//! an executor that counts the statements each shard runs and the rows it
//! returns. Times are medians of alternating rounds; only ratios taken in
//! one run mean anything on a busy machine.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use collegedb::backend::{Outcome, ShardExecutor, Statement};
use collegedb::embedded::{SqliteMappings, SqliteShard};
use collegedb::{Backend, Config, Database, Result, ShardSpec, Sharded, Value};
use futures::executor::block_on;

/// A post with an indexed integer column to order by.
#[derive(Sharded, Debug, Clone, PartialEq)]
struct Post {
    #[primary_key]
    id: i64,
    author: String,
    title: String,
    #[sharded(index)]
    likes: i64,
}

const SHARDS: usize = 8;
const ROWS_PER_SHARD: usize = 10_000;
const ROWS: usize = SHARDS * ROWS_PER_SHARD;
const TOP: u64 = 20;
const PAGE: u64 = 50;
/// Rounds of (a), alternating the two sides; pushdown queries per round.
const TOP_ROUNDS: usize = 5;
const PUSHDOWN_PER_ROUND: usize = 50;

fn main() {
    let started = Instant::now();
    let (db, counter) = open();
    fill(&db);
    let fill_time = started.elapsed();

    let mut table = Table::default();
    top_twenty(&db, &counter, &mut table);
    walk_pages(&db, &counter, &mut table);

    println!(
        "Queries across {SHARDS} embedded shards × {ROWS_PER_SHARD} rows ({ROWS} in all); medians of alternating rounds\n"
    );
    table.print();
    println!(
        "\n(filled in {:.1} s; whole bench {:.1} s)",
        fill_time.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

// ---- a backend that counts what the shards send back ---------------------------

/// Statements run and rows returned by every shard, since the last reset.
#[derive(Clone, Default)]
struct Counter {
    statements: Rc<Cell<u64>>,
    rows: Rc<Cell<u64>>,
}

impl Counter {
    fn reset(&self) {
        self.statements.set(0);
        self.rows.set(0);
    }

    /// (statements, rows) since the last reset.
    fn read(&self) -> (u64, u64) {
        (self.statements.get(), self.rows.get())
    }

    fn add(&self, statements: usize, rows: usize) {
        self.statements
            .set(self.statements.get() + statements as u64);
        self.rows.set(self.rows.get() + rows as u64);
    }
}

/// The embedded backend, with each shard's answers counted.
struct Counted;

impl Backend for Counted {
    type Shard = CountedShard;
    type Mappings = SqliteMappings;
    type Coordinator = SqliteMappings;
}

struct CountedShard {
    inner: SqliteShard,
    counter: Counter,
}

impl ShardExecutor for CountedShard {
    fn check(params: &[Value]) -> Result<()> {
        SqliteShard::check(params)
    }

    fn check_statement(statement: &Statement) -> Result<()> {
        SqliteShard::check_statement(statement)
    }

    async fn query(&self, statement: &Statement) -> Result<Vec<Vec<Value>>> {
        let rows = self.inner.query(statement).await?;
        self.counter.add(1, rows.len());
        Ok(rows)
    }

    async fn batch(&self, statements: &[Statement]) -> Result<Vec<Outcome>> {
        let outcomes = self.inner.batch(statements).await?;
        let rows = outcomes.iter().map(|o| o.rows.len()).sum();
        self.counter.add(statements.len(), rows);
        Ok(outcomes)
    }

    async fn size_bytes(&self) -> Result<u64> {
        self.inner.size_bytes().await
    }
}

fn open() -> (Database<Counted>, Counter) {
    let counter = Counter::default();
    let shards = (0..SHARDS)
        .map(|i| {
            let name = format!("shard-{i}");
            let inner = SqliteShard::in_memory(name.clone()).expect("an in-memory shard");
            let shard = CountedShard {
                inner,
                counter: counter.clone(),
            };
            ShardSpec::new(name, shard)
        })
        .collect();
    let mappings = SqliteMappings::in_memory().expect("in-memory mappings");
    let coordinator = SqliteMappings::in_memory().expect("in-memory coordinator");
    let db = Database::new(
        shards,
        mappings,
        Some(coordinator),
        Config::default(),
        "the bench opens its own coordinator",
    )
    .expect("open the database");
    (db, counter)
}

fn post(i: usize) -> Post {
    let i = i as i64;
    Post {
        id: i,
        author: format!("author-{}", i % 97),
        title: format!("Post number {i}"),
        // Spread, with ties (each value about twice): the tie-breaker matters.
        likes: (i * 7919) % 40_009,
    }
}

/// 80,000 posts through the router (hash placement spreads them evenly).
fn fill(db: &Database<Counted>) {
    block_on(async {
        Post::create_schema(db).await.expect("schema");
        for i in 0..ROWS {
            post(i).insert(db).await.expect("insert");
        }
    });
    let per_shard = block_on(db.count_per_shard::<Post>()).expect("count per shard");
    assert!(
        per_shard
            .iter()
            .all(|(_, n)| (*n as usize).abs_diff(ROWS_PER_SHARD) < ROWS_PER_SHARD / 10),
        "uneven shards: {per_shard:?}"
    );
}

/// By likes descending, then id: the ordering both sides use.
fn best_first(a: &Post, b: &Post) -> std::cmp::Ordering {
    b.likes.cmp(&a.likes).then(a.id.cmp(&b.id))
}

// ---- (a) top 20 by a column ----------------------------------------------------------

fn top_twenty(db: &Database<Counted>, counter: &Counter, table: &mut Table) {
    let query = Post::query().order_by(Post::LIKES.desc()).limit(TOP);
    let (mut pushdown, mut fetch_all) = (Vec::new(), Vec::new());
    let (mut pushdown_rows, mut fetch_all_rows) = ((0, 0), (0, 0));
    let mut answers = Vec::new();
    for _ in 0..TOP_ROUNDS {
        counter.reset();
        let start = Instant::now();
        let mut top = Vec::new();
        for _ in 0..PUSHDOWN_PER_ROUND {
            top = block_on(query.all(db)).expect("top 20");
        }
        pushdown.push(start.elapsed().as_secs_f64() * 1e9 / PUSHDOWN_PER_ROUND as f64);
        let (statements, rows) = counter.read();
        pushdown_rows = (
            statements / PUSHDOWN_PER_ROUND as u64,
            rows / PUSHDOWN_PER_ROUND as u64,
        );
        answers.push(top);

        counter.reset();
        let start = Instant::now();
        let mut all = block_on(Post::list(db)).expect("list");
        all.sort_unstable_by(best_first);
        all.truncate(TOP as usize);
        fetch_all.push(start.elapsed().as_secs_f64() * 1e9);
        fetch_all_rows = counter.read();
        answers.push(all);
    }
    assert!(
        answers.windows(2).all(|w| w[0] == w[1]) && answers[0].len() == TOP as usize,
        "pushdown and fetch-all disagree on the top {TOP}"
    );
    let name = "top 20 by likes (time per query)";
    table.time(name, median(&pushdown), median(&fetch_all));
    table.count(
        "top 20: rows from shards per query",
        pushdown_rows.1,
        fetch_all_rows.1,
    );
    table.count(
        "top 20: shard statements per query",
        pushdown_rows.0,
        fetch_all_rows.0,
    );
}

// ---- (b) every page of 50 ------------------------------------------------------------

/// One walk over the pages: per page, its time, shard statements and rows.
#[derive(Default)]
struct Walk {
    pages: Vec<PageCost>,
    /// Pages that came back with more rows than their limit (the first 50 are kept).
    oversized: u64,
}

struct PageCost {
    index: usize,
    nanos: f64,
    statements: u64,
    rows: u64,
}

impl Walk {
    /// Runs one page, measuring it; returns its rows (at most `PAGE`).
    fn page<T>(
        &mut self,
        index: usize,
        counter: &Counter,
        run: impl FnOnce() -> (Vec<Post>, T),
    ) -> (Vec<Post>, T) {
        counter.reset();
        let start = Instant::now();
        let (mut rows, other) = run();
        let nanos = start.elapsed().as_secs_f64() * 1e9;
        let (statements, transferred) = counter.read();
        self.pages.push(PageCost {
            index,
            nanos,
            statements,
            rows: transferred,
        });
        if rows.len() as u64 > PAGE {
            self.oversized += 1;
            rows.truncate(PAGE as usize);
        }
        (rows, other)
    }

    /// Totals (time, statements, rows), each page standing for `stride` pages.
    fn totals(&self, stride: usize) -> (f64, u64, u64) {
        let k = stride as u64;
        (
            self.pages.iter().map(|p| p.nanos).sum::<f64>() * stride as f64,
            self.pages.iter().map(|p| p.statements).sum::<u64>() * k,
            self.pages.iter().map(|p| p.rows).sum::<u64>() * k,
        )
    }

    /// Mean time of the pages whose index is in `range`.
    fn mean_time(&self, range: std::ops::Range<usize>) -> f64 {
        let times: Vec<f64> = self
            .pages
            .iter()
            .filter(|p| range.contains(&p.index))
            .map(|p| p.nanos)
            .collect();
        times.iter().sum::<f64>() / times.len().max(1) as f64
    }

    /// Mean rows transferred by the pages whose index is in `range`.
    fn mean_rows(&self, range: std::ops::Range<usize>) -> u64 {
        let rows: Vec<u64> = self
            .pages
            .iter()
            .filter(|p| range.contains(&p.index))
            .map(|p| p.rows)
            .collect();
        rows.iter().sum::<u64>() / rows.len().max(1) as u64
    }
}

/// Offset pages measured: every one with `QUERY_BENCH_FULL=1`, else one in
/// `OFFSET_STRIDE` (the middle page of each block), standing for its block.
/// Walking every offset page reads about `pages² × 50 / 2` rows: minutes.
const OFFSET_STRIDE: usize = 16;

fn walk_pages(db: &Database<Counted>, counter: &Counter, table: &mut Table) {
    let query = Post::query().order_by(Post::LIKES.desc()).limit(PAGE);

    // Every page with the cursor.
    let mut cursor_walk = Walk::default();
    let mut cursor_ids: Vec<i64> = Vec::with_capacity(ROWS);
    let mut next = None;
    let mut middle = None;
    for index in 0.. {
        let page_query = match next.take() {
            Some(cursor) => query.clone().after(cursor),
            None => query.clone(),
        };
        let (rows, following) = cursor_walk.page(index, counter, || {
            let page = block_on(page_query.page(db)).expect("a cursor page");
            (page.rows, page.next)
        });
        cursor_ids.extend(rows.iter().map(|p| p.id));
        match following {
            Some(cursor) => {
                if index == ROWS / PAGE as usize / 2 {
                    middle = Some(cursor.clone());
                }
                next = Some(cursor)
            }
            None => break,
        }
    }
    let mut want: Vec<Post> = (0..ROWS).map(post).collect();
    want.sort_unstable_by(best_first);
    let want: Vec<i64> = want.iter().map(|p| p.id).collect();
    assert_eq!(
        cursor_ids, want,
        "the cursor walk is not every row once, in order"
    );
    assert_eq!(cursor_walk.oversized, 0, "a cursor page exceeded its limit");
    let pages = cursor_walk.pages.len();

    // Offset pages: the same pages, found by skipping rows.
    let full = std::env::var("QUERY_BENCH_FULL").as_deref() == Ok("1");
    let stride = if full { 1 } else { OFFSET_STRIDE };
    let mut offset_walk = Walk::default();
    for index in (0..pages).filter(|i| full || i % stride == stride / 2) {
        let offset = index as u64 * PAGE;
        let (rows, ()) = offset_walk.page(index, counter, || {
            let rows = block_on(query.clone().offset(offset).all(db)).expect("an offset page");
            (rows, ())
        });
        let ids: Vec<i64> = rows.iter().map(|p| p.id).collect();
        let at = index * PAGE as usize;
        assert_eq!(
            ids,
            want[at..(at + PAGE as usize).min(ROWS)],
            "offset page {index} differs from the cursor's"
        );
    }
    if offset_walk.oversized > 0 {
        println!(
            "NOTE: {} of {} offset pages measured returned more than {PAGE} rows (an offset page should hold \
             at most its limit: offset + limit rows came back); the figures include the extra rows.\n",
            offset_walk.oversized,
            offset_walk.pages.len()
        );
    }

    let (cursor_time, cursor_statements, cursor_rows) = cursor_walk.totals(1);
    let (offset_time, offset_statements, offset_rows) = offset_walk.totals(stride);
    let how = if full {
        String::new()
    } else {
        format!(" (offset: 1 page in {stride} measured, ×{stride})")
    };
    table.time(
        &format!("walk {pages} pages of 50: total time{how}"),
        cursor_time,
        offset_time,
    );
    table.count(
        &format!("walk: rows from shards{how}"),
        cursor_rows,
        offset_rows,
    );
    table.count(
        &format!("walk: shard statements{how}"),
        cursor_statements,
        offset_statements,
    );
    if let Some(cursor) = middle {
        let plans = block_on(query.clone().after(cursor).explain(db)).expect("explain");
        if let Some(plan) = plans.first() {
            table.note(format!(
                "plan of a cursor page on {}: {}",
                plan.shard,
                plan.steps.join("; ")
            ));
        }
        let plans = block_on(query.clone().offset(ROWS as u64 / 2).explain(db)).expect("explain");
        if let Some(plan) = plans.first() {
            table.note(format!(
                "plan of an offset page on {}: {}",
                plan.shard,
                plan.steps.join("; ")
            ));
        }
    }
    let tenth = pages / 10;
    for (name, range) in [
        ("first tenth", 0..tenth),
        ("last tenth", pages - tenth..pages),
    ] {
        table.time(
            &format!("walk: mean time per page, {name} of the pages"),
            cursor_walk.mean_time(range.clone()),
            offset_walk.mean_time(range.clone()),
        );
        table.count(
            &format!("walk: mean rows from shards per page, {name}"),
            cursor_walk.mean_rows(range.clone()),
            offset_walk.mean_rows(range),
        );
    }
}

// ---- reporting ---------------------------------------------------------------------

#[derive(Default)]
struct Table {
    /// (what, pushdown or cursor, fetch-all or offset (formatted), ratio).
    rows: Vec<(String, String, String, f64)>,
    /// Lines printed after the table.
    notes: Vec<String>,
}

impl Table {
    fn note(&mut self, line: String) {
        self.notes.push(line);
    }

    fn time(&mut self, name: &str, ours: f64, theirs: f64) {
        self.rows.push((
            name.to_owned(),
            duration(ours),
            duration(theirs),
            theirs / ours,
        ));
    }

    fn count(&mut self, name: &str, ours: u64, theirs: u64) {
        self.rows.push((
            name.to_owned(),
            thousands(ours),
            thousands(theirs),
            theirs as f64 / ours.max(1) as f64,
        ));
    }

    fn print(&self) {
        println!("| measure | pushdown / cursor | fetch all + sort / offset pages | ratio |");
        println!("|---|---:|---:|---:|");
        for (name, ours, theirs, ratio) in &self.rows {
            println!("| {name} | {ours} | {theirs} | {ratio:.1}× |");
        }
        if !self.notes.is_empty() {
            println!();
        }
        for note in &self.notes {
            println!("{note}");
        }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn duration(nanos: f64) -> String {
    match nanos {
        n if n >= 1e9 => format!("{:.2} s", n / 1e9),
        n if n >= 1e6 => format!("{:.1} ms", n / 1e6),
        n => format!("{:.1} µs", n / 1e3),
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
