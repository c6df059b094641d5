//! Shard lists and configurations: what needs a coordinator, opening a
//! directory from many threads, databases sharing one cache, and handles
//! with an older shard list.

mod common;

use std::sync::{Arc, Barrier};

use collegedb::embedded::{Embedded, Options, SqliteMappings, SqliteShard};
use collegedb::{Config, Database, MappingCache, Region, ShardLocation, ShardSpec, Strategy};
use common::*;
use example_models::User;

const HINT: &str = "bind COORDINATOR to the ShardCoordinator Durable Object";

fn specs(names: &[&str]) -> Vec<ShardSpec<SqliteShard>> {
    names
        .iter()
        .map(|n| ShardSpec::new(*n, SqliteShard::in_memory((*n).to_owned()).unwrap()))
        .collect()
}

fn without_coordinator(config: Config) -> collegedb::Result<Database<Embedded>> {
    let mut shards = specs(&["s0", "s1"]);
    shards[0].location = Some(ShardLocation::new(Region::Weur));
    Database::<Embedded>::new(
        shards,
        SqliteMappings::in_memory().unwrap(),
        None,
        config,
        HINT,
    )
}

// defect 7
#[test]
fn placement_that_needs_a_coordinator_is_refused_at_open_without_one() {
    let needs = [
        Config::default().strategy(Strategy::RoundRobin),
        Config::default().strategy(Strategy::Random),
        Config::default().strategy(Strategy::Location {
            target: Region::Weur,
        }),
        Config::default().max_shard_bytes(1 << 20),
    ];
    for config in needs {
        let context = format!("{config:?}");
        let err = without_coordinator(config).err().expect(&context);
        assert_eq!(err.code(), "config", "{context}: {err}");
        assert!(err.to_string().contains(HINT), "{context}: {err}");
    }
    assert!(without_coordinator(Config::default()).is_ok());
}

// defect 7
#[test]
fn lookups_under_hash_without_a_coordinator_fail_at_insert_with_a_config_error() {
    let db = without_coordinator(Config::default().plain_text_keys()).unwrap();
    block_on(async {
        User::create_schema(&db).await.unwrap();
        HomeProbe::create_schema(&db).await.unwrap();
        let err = user(1).insert(&db).await.unwrap_err();
        assert_eq!(err.code(), "config", "{err}");
        assert!(err.to_string().contains(HINT), "{err}");
        assert_eq!(User::count(&db).await.unwrap(), 0, "nothing was written");
        assert_eq!(User::get(&db, "u-1").await.unwrap(), None);
        let err = User::find_by_email(&db, "user1@example.com")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "config", "{err}");
        // A model without lookups needs no coordinator under hash placement.
        HomeProbe { id: "k".into() }.insert(&db).await.unwrap();
        assert_eq!(
            HomeProbe::get(&db, "k").await.unwrap(),
            Some(HomeProbe { id: "k".into() })
        );
        assert_eq!(
            HomeProbe { id: "k".into() }
                .insert(&db)
                .await
                .unwrap_err()
                .code(),
            "duplicate_key"
        );
    });
}

// defect 12
#[test]
fn opening_a_fresh_directory_from_eight_threads_at_once_never_fails() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 10;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let barrier = Arc::new(Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let path = dir.path().to_owned();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || -> collegedb::Result<Vec<String>> {
                    barrier.wait();
                    let db = Options::dir(&path).shards(4).open()?;
                    block_on(async {
                        User::create_schema(&db).await?;
                        user(t).insert(&db).await?;
                        assert_eq!(User::get(&db, &format!("u-{t}")).await?, Some(user(t)));
                        Ok(db.shard_names().map(str::to_owned).collect())
                    })
                })
            })
            .collect();
        let mut lists = Vec::new();
        for (t, thread) in threads.into_iter().enumerate() {
            match thread.join().unwrap() {
                Ok(names) => lists.push(names),
                Err(e) => failures.push(format!("round {round}, thread {t}: {e}")),
            }
        }
        let db = Options::dir(dir.path()).open().unwrap();
        let names: Vec<String> = db.shard_names().map(str::to_owned).collect();
        assert_eq!(names, ["shard-0", "shard-1", "shard-2", "shard-3"]);
        assert!(lists.iter().all(|l| *l == names), "{lists:?}");
        if failures.is_empty() {
            assert_eq!(block_on(User::count(&db)).unwrap(), THREADS as u64);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures: {failures:#?}",
        failures.len()
    );
}

fn labelled(i: usize, label: &str) -> User {
    User {
        name: format!("{label} {i}"),
        ..user(i)
    }
}

// defect 13
#[test]
fn databases_sharing_one_cache_do_not_break_each_others_reads() {
    const KEYS: usize = 12;
    for strategy in [Strategy::RoundRobin, Strategy::Hash, Strategy::Random] {
        let cache = MappingCache::new(1_000);
        let config = Config::default().strategy(strategy).cache(cache);
        let small = Options::in_memory(2).config(config.clone()).open().unwrap();
        let big = Options::in_memory(5).config(config.clone()).open().unwrap();
        let named = Database::<Embedded>::new(
            specs(&["alpha", "beta", "gamma"]),
            SqliteMappings::in_memory().unwrap(),
            Some(SqliteMappings::in_memory().unwrap()),
            config.clone(),
            HINT,
        )
        .unwrap();
        let dbs = [(&small, "small"), (&big, "big"), (&named, "named")];
        block_on(async {
            for (n, (db, label)) in dbs.iter().enumerate() {
                User::create_schema(*db).await.unwrap();
                // Different orders, so that the same key lands on different shards.
                let mut order: Vec<usize> = (0..KEYS).collect();
                order.rotate_left(n * 5);
                if n == 1 {
                    order.reverse();
                }
                for i in order {
                    labelled(i, label).insert(*db).await.unwrap();
                }
            }
            for round in 0..3 {
                for i in 0..KEYS {
                    for (db, label) in dbs {
                        let context = format!("{strategy:?}, round {round}, {label}, u-{i}");
                        let mut expected = labelled(i, label);
                        if label == "big" && (i as u32) < round {
                            expected.age = Some(i as u32);
                        }
                        assert_found(db, &expected, &context).await;
                    }
                }
                // Writes through one database leave the others' rows alone.
                let changed = User {
                    age: Some(round),
                    ..labelled(round as usize, "big")
                };
                changed.update(&big).await.unwrap();
                assert_eq!(
                    User::get(&big, &changed.id).await.unwrap(),
                    Some(changed.clone())
                );
                assert_eq!(
                    User::get(&small, &changed.id).await.unwrap(),
                    Some(labelled(round as usize, "small"))
                );
            }
            assert!(User::delete(&named, "u-0").await.unwrap());
            assert_eq!(User::get(&named, "u-0").await.unwrap(), None);
            assert_eq!(
                User::get(&small, "u-0").await.unwrap(),
                Some(labelled(0, "small"))
            );
            for (db, _) in dbs {
                let stored = rows_stored(db).await;
                assert_eq!(stored, User::count(db).await.unwrap());
            }
        });
    }
}

/// Whether `answer` is a refusal of a stale handle.
fn stale<T: std::fmt::Debug>(answer: &collegedb::Result<T>) -> bool {
    matches!(answer, Err(e) if e.code() == "stale_topology")
}

// defect 14
#[test]
fn a_handle_with_an_older_shard_list_is_refused_where_it_could_misplace_rows() {
    let dir = tempfile::tempdir().unwrap();
    let open = |shards| {
        Options::dir(dir.path())
            .shards(shards)
            .config(Config::default().plain_text_keys())
            .open()
            .unwrap()
    };
    let old = open(3);
    block_on(async {
        User::create_schema(&old).await.unwrap();
        insert_users(&old, 30).await;
        let mut expected: Vec<User> = (0..30).map(user).collect();

        let new = open(4);
        User::create_schema(&new).await.unwrap();
        // Until the newer handle writes, the old one may (the table is
        // unsettled for the newer one, which looks at previous homes).
        user(30).insert(&old).await.unwrap();
        expected.push(user(30));
        assert_eq!(User::get(&new, "u-30").await.unwrap(), Some(user(30)));

        // The newer handle inserts keys: their previous homes are stamped.
        for i in 100..112 {
            user(i).insert(&new).await.unwrap();
            expected.push(user(i));
        }
        let mut refused = 0;
        for i in 100..112 {
            let again = User {
                email: format!("stale{i}@example.com"),
                username: format!("stale{i}"),
                ..user(i)
            };
            let answer = again.insert(&old).await;
            assert!(
                stale(&answer) || matches!(&answer, Err(e) if e.code() == "duplicate_key"),
                "u-{i} from the old handle: {answer:?}"
            );
            refused += stale(&answer) as usize;
        }
        assert!(refused > 0, "the old handle was refused somewhere");
        // New keys and updates from the old handle: refused, or visible to the new one.
        for i in 200..220 {
            match user(i).insert(&old).await {
                Ok(()) => {
                    expected.push(user(i));
                    assert_eq!(
                        User::get(&new, &format!("u-{i}")).await.unwrap(),
                        Some(user(i))
                    );
                }
                Err(e) => assert_eq!(e.code(), "stale_topology", "{e}"),
            }
        }

        // The rebalance fences the old handle out everywhere.
        new.rebalance::<User>().await.unwrap();
        for i in (0..30).chain(100..103).chain(300..310) {
            let context = format!("u-{i} after the rebalance");
            let fresh_aliases = User {
                email: format!("after{i}@example.com"),
                username: format!("after{i}"),
                ..user(i)
            };
            assert!(
                stale(&fresh_aliases.insert(&old).await),
                "{context}: insert"
            );
            if i < 30 {
                let renamed = User {
                    name: "stale write".into(),
                    ..user(i)
                };
                let answer = renamed.update(&old).await;
                assert!(
                    stale(&answer) || matches!(&answer, Err(e) if e.code() == "not_found"),
                    "{context}: update {answer:?}"
                );
                let answer = User::delete(&old, &format!("u-{i}")).await;
                assert!(
                    stale(&answer) || matches!(answer, Ok(false)),
                    "{context}: delete {answer:?}"
                );
            }
        }

        // The newer handle sees every row once, as written.
        expected.sort_by(|a, b| a.id.cmp(&b.id));
        let fresh = open(4);
        assert_eq!(User::list(&fresh).await.unwrap(), expected);
        assert_eq!(User::count(&fresh).await.unwrap(), expected.len() as u64);
        let stored = rows_stored(&fresh).await;
        assert_eq!(stored, expected.len() as u64);
        for u in &expected {
            assert_eq!(User::get(&fresh, &u.id).await.unwrap().as_ref(), Some(u));
            assert_eq!(
                User::find_by_email(&fresh, &u.email)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(u)
            );
        }
        // What the old handle was refused left no claims behind.
        User {
            id: "late".into(),
            email: "after300@example.com".into(),
            username: "after300".into(),
            ..user(1)
        }
        .insert(&fresh)
        .await
        .unwrap();
        assert_eq!(fresh.rebalance::<User>().await.unwrap().moved, 0);
    });
}
