//! CollegeDB's typed operations against raw rusqlite prepared statements on
//! the same SQLite files, side by side in one run. Run with `cargo bench`.
//!
//! The database has one shard so that both sides read and write the same
//! file; the figures are the router's own overhead (key resolution, alias
//! mappings, encoding and decoding), not the benefit of sharding.

use std::time::{Duration, Instant};

use collegedb::embedded::Options;
use example_models::User;
use futures::executor::block_on;
use rusqlite::{params, Connection};

const ROWS: usize = 5_000;
const ROUNDS: usize = 5;

fn user(i: usize, tag: &str) -> User {
    User {
        id: format!("{tag}-{i}"),
        email: format!("{tag}{i}@example.com"),
        username: format!("{tag}{i}"),
        name: format!("User {i}"),
        age: Some(30),
    }
}

fn per_op(total: Duration, ops: usize) -> f64 {
    total.as_secs_f64() * 1e9 / ops as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = Options::dir(dir.path()).shards(1).open().expect("open");
    block_on(User::create_schema(&db)).expect("schema");
    let raw = Connection::open(dir.path().join("shard-0.sqlite")).expect("open raw");
    raw.pragma_update(None, "synchronous", "NORMAL")
        .expect("pragma");

    let (mut ins_db, mut ins_raw, mut get_db, mut get_raw, mut find_db, mut find_raw) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        let tag_db = format!("d{round}");
        let tag_raw = format!("r{round}");

        let t = Instant::now();
        for i in 0..ROWS {
            block_on(user(i, &tag_db).insert(&db)).expect("insert");
        }
        ins_db.push(per_op(t.elapsed(), ROWS));

        let t = Instant::now();
        {
            let mut insert = raw
                .prepare_cached("INSERT INTO users (id, email, username, name, age) VALUES (?1, ?2, ?3, ?4, ?5)")
                .expect("prepare");
            for i in 0..ROWS {
                let u = user(i, &tag_raw);
                insert
                    .execute(params![u.id, u.email, u.username, u.name, u.age])
                    .expect("raw insert");
            }
        }
        ins_raw.push(per_op(t.elapsed(), ROWS));

        let t = Instant::now();
        for i in 0..ROWS {
            let found = block_on(User::get(&db, &format!("{tag_db}-{i}"))).expect("get");
            assert!(found.is_some());
        }
        get_db.push(per_op(t.elapsed(), ROWS));

        let t = Instant::now();
        {
            let mut select = raw
                .prepare_cached("SELECT id, email, username, name, age FROM users WHERE id = ?1")
                .expect("prepare");
            for i in 0..ROWS {
                let found = select
                    .query_row([format!("{tag_raw}-{i}")], |r| {
                        Ok(User {
                            id: r.get(0)?,
                            email: r.get(1)?,
                            username: r.get(2)?,
                            name: r.get(3)?,
                            age: r.get(4)?,
                        })
                    })
                    .expect("raw get");
                assert_eq!(found.age, Some(30));
            }
        }
        get_raw.push(per_op(t.elapsed(), ROWS));

        let t = Instant::now();
        for i in 0..ROWS {
            let found = block_on(User::find_by_email(
                &db,
                &format!("{tag_db}{i}@example.com"),
            ))
            .expect("find");
            assert!(found.is_some());
        }
        find_db.push(per_op(t.elapsed(), ROWS));

        let t = Instant::now();
        {
            let mut select = raw
                .prepare_cached("SELECT id, email, username, name, age FROM users WHERE email = ?1")
                .expect("prepare");
            for i in 0..ROWS {
                let id: String = select
                    .query_row([format!("{tag_raw}{i}@example.com")], |r| r.get(0))
                    .expect("raw find");
                assert!(!id.is_empty());
            }
        }
        find_raw.push(per_op(t.elapsed(), ROWS));
    }

    println!("CollegeDB (embedded, 1 shard) vs raw rusqlite on the same file; {ROUNDS} rounds of {ROWS}, medians");
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "operation", "collegedb", "rusqlite", "ratio"
    );
    for (name, ours, theirs) in [
        ("insert (2 aliases)", ins_db, ins_raw),
        ("get by primary key", get_db, get_raw),
        ("find by email (alias)", find_db, find_raw),
    ] {
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "{name:<28} {:>9.1} µs {:>9.1} µs {:>7.2}x",
            ours / 1e3,
            theirs / 1e3,
            ours / theirs
        );
    }
}
