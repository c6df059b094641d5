//! Real threads, each with its own handle on one directory, racing to
//! insert the same primary keys and the same emails: every key and every
//! email ends up held exactly once, by a row every handle finds.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use collegedb::embedded::Options;
use collegedb::{Config, Strategy};
use common::*;
use example_models::User;

const THREADS: usize = 4;

/// What a race is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// The same primary key, different emails.
    Key,
    /// Different primary keys, the same email.
    Email,
    /// The same primary key and the same email.
    Both,
}

const KINDS: [Kind; 3] = [Kind::Key, Kind::Email, Kind::Both];

/// Thread `t`'s row in race `r` of `kind`.
fn contender(kind: Kind, r: usize, t: usize) -> User {
    let (id, email) = match kind {
        Kind::Key => (format!("k-{r}"), format!("k{r}-t{t}@example.com")),
        Kind::Email => (format!("e-{r}-t{t}"), format!("e{r}@example.com")),
        Kind::Both => (format!("b-{r}"), format!("b{r}@example.com")),
    };
    User {
        id,
        email,
        username: format!("{kind:?}{r}-t{t}"),
        name: format!("thread {t}"),
        age: Some(t as u32),
    }
}

fn config(strategy: Strategy) -> Config {
    Config::default().strategy(strategy).plain_text_keys()
}

/// Runs `races` races of each kind between `THREADS` threads; returns the
/// winners per race, after checking every invariant.
fn race(dir: &Path, strategy: Strategy, shards: usize, races: usize) -> usize {
    let setup = Options::dir(dir)
        .shards(shards)
        .config(config(strategy))
        .open()
        .unwrap();
    block_on(User::create_schema(&setup)).unwrap();
    drop(setup);

    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let dir = dir.to_owned();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let db = Options::dir(&dir).config(config(strategy)).open().unwrap();
                let mut won = Vec::new();
                let mut lost = BTreeMap::<&'static str, usize>::new();
                let mut unexpected = Vec::new();
                for r in 0..races {
                    for kind in KINDS {
                        barrier.wait();
                        let row = contender(kind, r, t);
                        match block_on(row.insert(&db)) {
                            Ok(()) => won.push((kind, r, t)),
                            Err(e) if matches!(e.code(), "duplicate_key" | "duplicate_alias") => {
                                *lost.entry(e.code()).or_default() += 1;
                            }
                            Err(e) => unexpected.push(format!("{kind:?} {r} thread {t}: {e}")),
                        }
                    }
                }
                (won, lost, unexpected)
            })
        })
        .collect();
    let mut winners: BTreeMap<(Kind, usize), Vec<usize>> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut losses = BTreeMap::<&'static str, usize>::new();
    for thread in threads {
        let (won, lost, errors) = thread.join().unwrap();
        for (code, n) in lost {
            *losses.entry(code).or_default() += n;
        }
        for (kind, r, t) in won {
            winners.entry((kind, r)).or_default().push(t);
        }
        unexpected.extend(errors);
    }
    assert!(unexpected.is_empty(), "{strategy:?}: {unexpected:#?}");
    println!("{strategy:?}: losers answered {losses:?}");

    let db = Options::dir(dir).config(config(strategy)).open().unwrap();
    block_on(async {
        let list = User::list(&db).await.unwrap();
        let count = User::count(&db).await.unwrap();
        assert_eq!(count as usize, list.len(), "{strategy:?}");
        let stored = rows_stored(&db).await;
        assert_eq!(stored, count, "{strategy:?}: a row stored twice");
        let ids: BTreeSet<&str> = list.iter().map(|u| u.id.as_str()).collect();
        let emails: BTreeSet<&str> = list.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(ids.len(), list.len(), "{strategy:?}: a duplicate key");
        assert_eq!(emails.len(), list.len(), "{strategy:?}: a duplicate email");
        assert_eq!(
            list.len(),
            races * KINDS.len(),
            "{strategy:?}: one row per race"
        );

        for r in 0..races {
            for kind in KINDS {
                let context = format!("{strategy:?}: {kind:?} race {r}");
                let won = winners.get(&(kind, r)).cloned().unwrap_or_default();
                assert_eq!(won.len(), 1, "{context}: winners {won:?}");
                let winner = contender(kind, r, won[0]);
                assert_eq!(
                    User::get(&db, &winner.id).await.unwrap().as_ref(),
                    Some(&winner),
                    "{context}"
                );
                assert_eq!(
                    User::find_by_email(&db, &winner.email)
                        .await
                        .unwrap()
                        .as_ref(),
                    Some(&winner),
                    "{context}: the winner by email"
                );
                for t in (0..THREADS).filter(|&t| t != won[0]) {
                    let loser = contender(kind, r, t);
                    if loser.email != winner.email {
                        assert_eq!(
                            User::find_by_email(&db, &loser.email).await.unwrap(),
                            None,
                            "{context}"
                        );
                    }
                    assert_eq!(
                        User::find_by_username(&db, &loser.username).await.unwrap(),
                        None,
                        "{context}"
                    );
                }
            }
        }
    });
    races * KINDS.len()
}

#[test]
fn threads_racing_for_the_same_keys_and_emails_never_duplicate_them() {
    let started = Instant::now();
    let mut total = 0;
    for (strategy, shards, races) in [(Strategy::Hash, 4, 400), (Strategy::RoundRobin, 3, 250)] {
        let dir = scratch_dir();
        let t = Instant::now();
        total += race(dir.path(), strategy, shards, races);
        println!(
            "{strategy:?}: {} races between {THREADS} threads in {:?}",
            races * KINDS.len(),
            t.elapsed()
        );
    }
    println!("{total} races in {:?}, 0 duplicates", started.elapsed());
    assert!(total >= 1_000, "{total}");
}
