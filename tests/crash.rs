//! SIGKILL during a rebalance on real files: a child process (this test
//! binary again, in child mode) appends a shard and moves rows home slowly
//! while it updates rows; the parent kills it after a random delay, then
//! checks that every row is there exactly once with every acknowledged
//! update, finishes the rebalance, and checks again.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use collegedb::backend::intercept::{Call, Interceptor};
use collegedb::embedded::{Embedded, Options};
use collegedb::{Config, Database, Result};
use common::*;
use example_models::User;

const CHILD: &str = "COLLEGEDB_CRASH_CHILD";
const DIR: &str = "COLLEGEDB_CRASH_DIR";
const SHARDS: &str = "COLLEGEDB_CRASH_SHARDS";
const ROUND: &str = "COLLEGEDB_CRASH_ROUND";
const USERS: usize = 200;

fn open(dir: &Path, shards: usize) -> Database<Embedded> {
    Options::dir(dir)
        .shards(shards)
        .config(Config::default().plain_text_keys())
        .open()
        .unwrap()
}

/// Slows every shard write down and lets the other task run before each call.
#[derive(Clone)]
struct Slow;

impl Interceptor for Slow {
    async fn before(&self, call: Call) -> Result<()> {
        if call == Call::Batch {
            std::thread::sleep(Duration::from_millis(1));
        }
        yield_once().await;
        Ok(())
    }
}

fn renamed(i: usize, round: usize) -> String {
    format!("User {i} after round {round}")
}

/// The child: not a test of its own (it returns at once unless the parent
/// started it). Appends shards, then rebalances while updating every row in
/// turn, reporting each update's answer on stdout; then idles until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(DIR) else {
        return;
    };
    if std::env::var(CHILD).is_err() {
        return;
    }
    let shards: usize = std::env::var(SHARDS).unwrap().parse().unwrap();
    let round: usize = std::env::var(ROUND).unwrap().parse().unwrap();
    let db = open(Path::new(&dir), shards);
    block_on(User::create_schema(&db)).unwrap();
    let db = db.intercepted(Slow);
    println!("READY");
    block_on(async {
        let rebalance = async {
            db.rebalance::<User>().await.unwrap();
            println!("DONE");
        };
        let updates = async {
            for i in 0..USERS {
                let current = User::get(&db, &format!("u-{i}")).await.unwrap().unwrap();
                let changed = User {
                    name: renamed(i, round),
                    ..current
                };
                match changed.update(&db).await {
                    Ok(()) => println!("ACK {i}"),
                    Err(e) if e.code() == "row_moving" => println!("FAIL {i}"),
                    Err(e) => panic!("update of u-{i}: {e}"),
                }
            }
        };
        futures::join!(rebalance, updates);
    });
    std::thread::sleep(Duration::from_secs(60));
}

/// Checks every row against the names it may have, and returns the names it has.
async fn verify(
    db: &Database<Embedded>,
    allowed: &[Vec<String>],
    settled: bool,
    context: &str,
) -> Vec<String> {
    let list = User::list(db).await.unwrap();
    let count = User::count(db).await.unwrap();
    assert_eq!(list.len(), USERS, "{context}: list");
    assert_eq!(count, USERS as u64, "{context}: count");
    let stored = rows_stored(db).await;
    if settled {
        assert_eq!(stored, USERS as u64, "{context}: copies stored");
    } else {
        // Moves go one row at a time: at most one row is on two shards.
        assert!(
            stored == USERS as u64 || stored == USERS as u64 + 1,
            "{context}: {stored} copies stored"
        );
    }
    let mut by_id: BTreeMap<String, User> = BTreeMap::new();
    for u in list {
        assert!(
            by_id.insert(u.id.clone(), u).is_none(),
            "{context}: listed twice"
        );
    }
    let mut names = Vec::with_capacity(USERS);
    for (i, allowed) in allowed.iter().enumerate().take(USERS) {
        let id = format!("u-{i}");
        let row = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("{context}: {id} is missing"));
        assert!(
            allowed.contains(&row.name),
            "{context}: {id} is named {:?}, but only {:?} are allowed",
            row.name,
            allowed
        );
        assert_found(db, row, context).await;
        names.push(row.name.clone());
    }
    names
}

/// A small xorshift RNG for the delays.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_during_a_rebalance_loses_nothing() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let seed = std::env::var("COLLEGEDB_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("COLLEGEDB_CRASH_SEED={seed}");
    let mut rng = seed;
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let db = open(dir.path(), 2);
        User::create_schema(&db).await.unwrap();
        insert_users(&db, USERS).await;
    });
    let mut names: Vec<String> = (0..USERS).map(|i| user(i).name).collect();
    let started = Instant::now();
    let mut interrupted = 0;
    // Two kills per shard count: the second child resumes the rebalance the
    // first one left, and only then does the parent finish it.
    let rounds = 12;
    for round in 0..rounds {
        let shards = 3 + round / 2;
        let finish = round % 2 == 1;
        let delay = Duration::from_millis(10 + next(&mut rng) % 200);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env(DIR, dir.path())
            .env(SHARDS, shards.to_string())
            .env(ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (lines, received) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let ready = Instant::now();
        loop {
            let line = received
                .recv_timeout(Duration::from_secs(30).saturating_sub(ready.elapsed()))
                .expect("the child got ready");
            // libtest prints `test crash_child ... ` before it, on the same line.
            if line.ends_with("READY") {
                break;
            }
        }
        std::thread::sleep(delay);
        // SAFETY: kill(2) on our own child's pid.
        let killed = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        assert_eq!(killed, 0);
        child.wait().unwrap();
        reader.join().unwrap();
        let mut acked = [None; USERS];
        let mut last = None;
        let mut done = false;
        for line in received.try_iter() {
            if line == "DONE" {
                done = true;
            } else if let Some((answer, i)) = line.split_once(' ') {
                if let Ok(i) = i.parse::<usize>() {
                    acked[i] = Some(answer == "ACK");
                    last = Some(i);
                }
            }
        }
        interrupted += usize::from(!done);

        // Acknowledged updates are there; failed ones are not; the one in
        // flight may be either.
        let in_flight = last.map_or(0, |i| i + 1);
        let allowed: Vec<Vec<String>> = (0..USERS)
            .map(|i| match acked[i] {
                Some(true) => vec![renamed(i, round)],
                Some(false) => vec![names[i].clone()],
                None if i == in_flight => vec![names[i].clone(), renamed(i, round)],
                None => vec![names[i].clone()],
            })
            .collect();
        let context = format!(
            "round {round} ({shards} shards, killed after {delay:?}, rebalance {}, {} updates acknowledged, {} refused)",
            if done { "finished" } else { "interrupted" },
            acked.iter().filter(|a| **a == Some(true)).count(),
            acked.iter().filter(|a| **a == Some(false)).count()
        );
        block_on(async {
            let db = open(dir.path(), shards);
            names = verify(&db, &allowed, false, &context).await;
            if !finish {
                return;
            }
            db.rebalance::<User>().await.unwrap();
            let exact: Vec<Vec<String>> = names.iter().map(|n| vec![n.clone()]).collect();
            verify(&db, &exact, true, &format!("{context}, rebalanced")).await;
            let again = db.rebalance::<User>().await.unwrap();
            assert_eq!(again.moved, 0, "{context}");
            // Writes work as usual afterwards.
            let extra = user(USERS + round);
            extra.insert(&db).await.unwrap();
            assert!(User::delete(&db, &extra.id).await.unwrap());
        });
        println!("{context}");
    }
    println!(
        "{rounds} kills, {interrupted} during a rebalance, in {:?}",
        started.elapsed()
    );
    assert!(
        interrupted > 0,
        "no kill landed during a rebalance (seed {seed})"
    );
}
