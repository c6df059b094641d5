//! CollegeDB's typed operations against raw rusqlite on the same SQLite
//! files, with the same pragmas, side by side in one run: `cargo bench`.
//!
//! Each figure is a median over rounds that alternate the two sides, and is
//! reported as a ratio, since only ratios taken in one run mean anything on
//! a busy machine. The raw side does the same work as ours: prepared
//! statements, full rows decoded into the same structs.
//!
//! - Point operations use one shard, so that both sides read and write one
//!   file: the figures are the router's own overhead (routing, claims, the
//!   write fence, encoding and decoding), not the benefit of sharding.
//! - `list` and `count` read 4 shards of 100,000 rows each; the raw side
//!   reads the same four files, sorted by key into one `Vec`. Peak memory is
//!   the most heap in use at once during the call, from a counting allocator.
//! - Pages written per insert: the WAL frames each side appends to its files
//!   (ours: the shard and the mapping file). Unlike times, they do not depend
//!   on the machine, and they set how often each file pays a checkpoint (one
//!   per 1,000 frames by default), whose `fsync`s dominate an insert's time
//!   on a slow disk.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use collegedb::embedded::{Embedded, Options};
use collegedb::{Database, Sharded};
use example_models::User;
use futures::executor::block_on;
use rusqlite::{params, Connection, Row};

/// A model without lookups: its inserts take no claims.
#[derive(Sharded, Debug, Clone, PartialEq)]
struct Note {
    #[primary_key]
    id: String,
    author: String,
    body: String,
    stars: i64,
}

const POINT_ROWS: usize = 5_000;
const POINT_ROUNDS: usize = 5;
const LIST_SHARDS: usize = 4;
const LIST_ROWS_PER_SHARD: usize = 100_000;
const LIST_ROUNDS: usize = 3;
const BULK_ROWS: usize = 100_000;

fn main() {
    // `EMBEDDED_BENCH=point` (or `list`, `bulk`, `pages`, comma-separated) runs only those groups.
    let only = std::env::var("EMBEDDED_BENCH").ok();
    let wanted = |group: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|g| g == group))
    };
    let mut report = Report::default();
    if wanted("point") {
        point_operations(&mut report);
    }
    if wanted("list") {
        list_and_count(&mut report);
    }
    if wanted("bulk") {
        bulk_inserts(&mut report);
    }
    report.print();
    if wanted("pages") {
        pages_per_insert();
    }
}

// ---- point operations -------------------------------------------------------

fn user(i: usize, tag: &str) -> User {
    User {
        id: format!("{tag}-{i}"),
        email: format!("{tag}{i}@example.com"),
        username: format!("{tag}{i}"),
        name: format!("User {i}"),
        age: Some(30),
    }
}

fn note(i: usize, tag: &str) -> Note {
    Note {
        id: format!("{tag}-{i}"),
        author: format!("author {}", i % 100),
        body: format!("note number {i}"),
        stars: i as i64,
    }
}

fn user_of(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        username: r.get(2)?,
        name: r.get(3)?,
        age: r.get(4)?,
    })
}

const RAW_INSERT_USER: &str =
    "INSERT INTO users (id, email, username, name, age) VALUES (?1, ?2, ?3, ?4, ?5)";
const RAW_INSERT_NOTE: &str = "INSERT INTO notes (id, author, body, stars) VALUES (?1, ?2, ?3, ?4)";
const RAW_SELECT_USER: &str = "SELECT id, email, username, name, age FROM users WHERE id = ?1";
const RAW_FIND_USER: &str = "SELECT id, email, username, name, age FROM users WHERE email = ?1";

fn open_one_shard(dir: &Path) -> (Database<Embedded>, Connection) {
    let db = Options::dir(dir).shards(1).open().expect("open");
    block_on(User::create_schema(&db)).expect("schema");
    block_on(Note::create_schema(&db)).expect("schema");
    let raw = Connection::open(dir.join("shard-0.sqlite")).expect("open raw");
    raw.pragma_update(None, "synchronous", "NORMAL")
        .expect("pragma");
    (db, raw)
}

fn point_operations(report: &mut Report) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (db, raw) = open_one_shard(dir.path());
    for round in 0..POINT_ROUNDS {
        let (ours, theirs) = (format!("d{round}"), format!("r{round}"));

        report.time("insert, no lookups", Side::Ours, POINT_ROWS, || {
            for i in 0..POINT_ROWS {
                block_on(note(i, &ours).insert(&db)).expect("insert");
            }
        });
        report.time("insert, no lookups", Side::Raw, POINT_ROWS, || {
            let mut insert = raw.prepare_cached(RAW_INSERT_NOTE).expect("prepare");
            for i in 0..POINT_ROWS {
                let n = note(i, &theirs);
                insert
                    .execute(params![n.id, n.author, n.body, n.stars])
                    .expect("raw insert");
            }
        });

        report.time("insert, two lookups", Side::Ours, POINT_ROWS, || {
            for i in 0..POINT_ROWS {
                block_on(user(i, &ours).insert(&db)).expect("insert");
            }
        });
        report.time("insert, two lookups", Side::Raw, POINT_ROWS, || {
            let mut insert = raw.prepare_cached(RAW_INSERT_USER).expect("prepare");
            for i in 0..POINT_ROWS {
                let u = user(i, &theirs);
                insert
                    .execute(params![u.id, u.email, u.username, u.name, u.age])
                    .expect("raw insert");
            }
        });

        report.time("get by primary key", Side::Ours, POINT_ROWS, || {
            for i in 0..POINT_ROWS {
                let found = block_on(User::get(&db, &format!("{ours}-{i}"))).expect("get");
                assert_eq!(found.expect("found").age, Some(30));
            }
        });
        report.time("get by primary key", Side::Raw, POINT_ROWS, || {
            let mut select = raw.prepare_cached(RAW_SELECT_USER).expect("prepare");
            for i in 0..POINT_ROWS {
                let found = select
                    .query_row([format!("{theirs}-{i}")], user_of)
                    .expect("raw get");
                assert_eq!(found.age, Some(30));
            }
        });

        // A fresh handle has an empty process cache: its first find of each
        // email is cold (mapping store, then the shard), the second warm.
        let fresh = Options::dir(dir.path()).shards(1).open().expect("open");
        for (name, db) in [
            ("find by alias, cold", &fresh),
            ("find by alias, warm", &fresh),
        ] {
            report.time(name, Side::Ours, POINT_ROWS, || {
                for i in 0..POINT_ROWS {
                    let email = format!("{ours}{i}@example.com");
                    let found = block_on(User::find_by_email(db, &email)).expect("find");
                    assert_eq!(found.expect("found").age, Some(30));
                }
            });
            report.time(name, Side::Raw, POINT_ROWS, || {
                let mut select = raw.prepare_cached(RAW_FIND_USER).expect("prepare");
                for i in 0..POINT_ROWS {
                    let found = select
                        .query_row([format!("{theirs}{i}@example.com")], user_of)
                        .expect("raw find");
                    assert_eq!(found.age, Some(30));
                }
            });
        }
    }
}

// ---- list and count over four shards -----------------------------------------

fn list_and_count(report: &mut Report) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Options::dir(dir.path())
        .shards(LIST_SHARDS)
        .open()
        .expect("open");
    block_on(User::create_schema(&db)).expect("schema");
    // Filled directly: the figures are about reading. Keys interleave across
    // shards, so the merge has real work to do.
    let shards: Vec<Connection> = (0..LIST_SHARDS)
        .map(|s| {
            let mut conn =
                Connection::open(dir.path().join(format!("shard-{s}.sqlite"))).expect("open");
            conn.pragma_update(None, "synchronous", "NORMAL")
                .expect("pragma");
            let tx = conn.transaction().expect("transaction");
            {
                let mut insert = tx.prepare(RAW_INSERT_USER).expect("prepare");
                for i in 0..LIST_ROWS_PER_SHARD {
                    let u = user(i * LIST_SHARDS + s, "l");
                    insert
                        .execute(params![u.id, u.email, u.username, u.name, u.age])
                        .expect("fill");
                }
            }
            tx.commit().expect("commit");
            conn
        })
        .collect();
    let rows = LIST_SHARDS * LIST_ROWS_PER_SHARD;

    for _ in 0..LIST_ROUNDS {
        let listed = report.time_and_peak("list, 4 × 100k rows", Side::Ours, || {
            block_on(User::list(&db)).expect("list").len()
        });
        assert_eq!(listed, rows);
        let listed = report.time_and_peak("list, 4 × 100k rows", Side::Raw, || {
            let mut all: Vec<User> = Vec::new();
            for conn in &shards {
                let mut select = conn
                    .prepare_cached("SELECT id, email, username, name, age FROM users ORDER BY id")
                    .expect("prepare");
                let users = select.query_map([], user_of).expect("query");
                for user in users {
                    all.push(user.expect("row"));
                }
            }
            all.sort_unstable_by(|a, b| a.id.cmp(&b.id));
            all.len()
        });
        assert_eq!(listed, rows);

        report.time("count, 4 × 100k rows", Side::Ours, 1, || {
            assert_eq!(block_on(User::count(&db)).expect("count"), rows as u64);
        });
        report.time("count, 4 × 100k rows", Side::Raw, 1, || {
            let total: i64 = shards
                .iter()
                .map(|conn| {
                    conn.prepare_cached("SELECT COUNT(*) FROM users")
                        .expect("prepare")
                        .query_row([], |r| r.get::<_, i64>(0))
                        .expect("count")
                })
                .sum();
            assert_eq!(total, rows as i64);
        });
    }
}

// ---- many inserts one at a time ------------------------------------------------

fn bulk_inserts(report: &mut Report) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (db, raw) = open_one_shard(dir.path());
    let name = "100k inserts one at a time (two lookups)";
    report.time(name, Side::Ours, BULK_ROWS, || {
        for i in 0..BULK_ROWS {
            block_on(user(i, "bulk-d").insert(&db)).expect("insert");
        }
    });
    report.time(name, Side::Raw, BULK_ROWS, || {
        let mut insert = raw.prepare_cached(RAW_INSERT_USER).expect("prepare");
        for i in 0..BULK_ROWS {
            let u = user(i, "bulk-r");
            insert
                .execute(params![u.id, u.email, u.username, u.name, u.age])
                .expect("raw insert");
        }
    });
}

// ---- pages written per insert ---------------------------------------------------

/// Inserts per count: few enough that no file reaches the automatic
/// checkpoint (1,000 frames), which would restart its WAL mid-count.
const PAGE_ROWS: usize = 100;

fn pages_per_insert() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (db, raw) = open_one_shard(dir.path());
    let shard = Wal::open(&dir.path().join("shard-0.sqlite"));
    let mappings = Wal::open(&dir.path().join("mappings.sqlite"));
    let ours_note = |i: usize| block_on(note(i, "p").insert(&db)).expect("insert");
    let ours_user = |i: usize| block_on(user(i, "p").insert(&db)).expect("insert");
    let raw_note = |i: usize| {
        let n = note(i, "rp");
        raw.execute(RAW_INSERT_NOTE, params![n.id, n.author, n.body, n.stars])
            .expect("raw insert");
    };
    let raw_user = |i: usize| {
        let u = user(i, "rp");
        raw.execute(
            RAW_INSERT_USER,
            params![u.id, u.email, u.username, u.name, u.age],
        )
        .expect("raw insert");
    };
    // One row each first (an index the counts do not use), so that no count
    // includes a table's first write.
    for insert in [&ours_note, &ours_user, &raw_note, &raw_user] as [&dyn Fn(usize); 4] {
        insert(PAGE_ROWS);
    }

    println!("\nWAL frames (pages) written per insert, {PAGE_ROWS} inserts on one shard\n");
    println!("| insert | collegedb: shard + mapping file | rusqlite | ratio |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, ours: &dyn Fn(usize), theirs: &dyn Fn(usize)| {
        shard.restart();
        mappings.restart();
        (0..PAGE_ROWS).for_each(ours);
        let (s, m) = (shard.frames(), mappings.frames());
        shard.restart();
        (0..PAGE_ROWS).for_each(theirs);
        let r = shard.frames();
        let per = |frames: u64| frames as f64 / PAGE_ROWS as f64;
        println!(
            "| {name} | {:.2} + {:.2} | {:.2} | {:.2}× |",
            per(s),
            per(m),
            per(r),
            (s + m) as f64 / r as f64
        );
    };
    row("no lookups", &ours_note, &raw_note);
    row("two lookups", &ours_user, &raw_user);
}

/// A connection of its own to one file, for reading and restarting its WAL.
struct Wal(Connection);

impl Wal {
    fn open(path: &Path) -> Wal {
        Wal(Connection::open(path).expect("open"))
    }

    /// Copies the WAL into the file and truncates it: the next write starts
    /// at frame 1. Every other connection is idle between operations.
    fn restart(&self) {
        let busy: i64 = self
            .0
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .expect("checkpoint");
        assert_eq!(
            busy, 0,
            "another connection held the file during the checkpoint"
        );
    }

    /// The frames in the WAL now (a passive checkpoint reports them and
    /// leaves them in place).
    fn frames(&self) -> u64 {
        let frames: i64 = self
            .0
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
            .expect("checkpoint");
        assert!(
            (0..1_000).contains(&frames),
            "{frames} frames: an automatic checkpoint restarted the WAL mid-count"
        );
        frames as u64
    }
}

// ---- measuring and reporting --------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Ours,
    Raw,
}

#[derive(Default)]
struct Figures {
    /// Nanoseconds per operation, one entry per round.
    time: Vec<f64>,
    /// Peak heap bytes during the call, one entry per round.
    peak: Vec<f64>,
}

#[derive(Default)]
struct Report {
    /// (operation, ours, raw), in first-seen order.
    rows: Vec<(&'static str, Figures, Figures)>,
}

impl Report {
    fn figures(&mut self, name: &'static str, side: Side) -> &mut Figures {
        let index = match self.rows.iter().position(|(n, ..)| *n == name) {
            Some(index) => index,
            None => {
                self.rows
                    .push((name, Figures::default(), Figures::default()));
                self.rows.len() - 1
            }
        };
        let (_, ours, raw) = &mut self.rows[index];
        match side {
            Side::Ours => ours,
            Side::Raw => raw,
        }
    }

    fn time(&mut self, name: &'static str, side: Side, ops: usize, run: impl FnOnce()) {
        let start = Instant::now();
        run();
        let per_op = start.elapsed().as_secs_f64() * 1e9 / ops as f64;
        self.figures(name, side).time.push(per_op);
    }

    fn time_and_peak<T>(&mut self, name: &'static str, side: Side, run: impl FnOnce() -> T) -> T {
        let base = HEAP.reset_peak();
        let start = Instant::now();
        let out = run();
        let elapsed = start.elapsed().as_secs_f64() * 1e9;
        let peak = HEAP.peak().saturating_sub(base) as f64;
        let figures = self.figures(name, side);
        figures.time.push(elapsed);
        figures.peak.push(peak);
        out
    }

    fn print(&self) {
        if self.rows.is_empty() {
            return;
        }
        println!("CollegeDB (embedded) against raw rusqlite on the same files; medians of alternating rounds\n");
        println!("| operation | collegedb | rusqlite | ratio |");
        println!("|---|---:|---:|---:|");
        for (name, ours, raw) in &self.rows {
            let (o, r) = (median(&ours.time), median(&raw.time));
            println!(
                "| {name} | {} | {} | {:.2}× |",
                duration(o),
                duration(r),
                o / r
            );
            if !ours.peak.is_empty() {
                let (o, r) = (median(&ours.peak), median(&raw.peak));
                println!(
                    "| {name}: peak memory | {:.1} MB | {:.1} MB | {:.2}× |",
                    o / 1e6,
                    r / 1e6,
                    o / r
                );
            }
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
        n if n >= 1e6 => format!("{:.1} ms", n / 1e6),
        n => format!("{:.1} µs", n / 1e3),
    }
}

/// The system allocator, counting the bytes in use and their peak.
struct Counting {
    current: AtomicUsize,
    peak: AtomicUsize,
}

#[global_allocator]
static HEAP: Counting = Counting {
    current: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

impl Counting {
    /// Starts a new peak from the bytes in use now, and returns them.
    fn reset_peak(&self) -> usize {
        let now = self.current.load(Ordering::Relaxed);
        self.peak.store(now, Ordering::Relaxed);
        now
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = self.current.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        self.current.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}
