//! Retries after lost replies, re-inserts from lagging handles, and the
//! row counts after faults.

mod common;

use std::rc::Rc;

use collegedb::backend::intercept::Call;
use collegedb::backend::Coordinator;
use collegedb::embedded::Options;
use collegedb::{Result, Strategy};
use common::script::{lost, Phase, Script};
use common::*;
use example_models::User;
use futures::future::LocalBoxFuture;

/// Fails `call`'s `nth` call after it acted: its reply is lost.
fn lose_reply(script: &Script, call: Call, nth: usize) {
    script.reset();
    script.at_nth(
        call,
        nth,
        Phase::After,
        move || async move { Err(lost(call)) },
    );
}

// defect 6
#[test]
fn a_retried_insert_whose_reply_was_lost_does_not_land_on_a_second_shard() {
    for strategy in [Strategy::RoundRobin, Strategy::Random, Strategy::Hash] {
        let script = Script::new();
        let db = memory_db(3, plain(strategy)).intercepted(script.clone());
        block_on(async {
            user(0).insert(&db).await.unwrap();
            // The row is written; its reply is lost; the client retries.
            lose_reply(&script, Call::Batch, 0);
            let err = user(1).insert(&db).await.unwrap_err();
            assert_eq!(err.code(), "shard", "{strategy:?}: {err}");
            script.clear();
            for _ in 0..3 {
                let err = user(1).insert(&db).await.unwrap_err();
                assert_eq!(err.code(), "duplicate_key", "{strategy:?}: {err}");
            }
            assert_eq!(
                User::get(&db, "u-1").await.unwrap(),
                Some(user(1)),
                "{strategy:?}"
            );
            assert_eq!(
                User::find_by_email(&db, "user1@example.com").await.unwrap(),
                Some(user(1))
            );
            assert_eq!(
                User::count(&db).await.unwrap(),
                2,
                "{strategy:?}: one row each"
            );
            assert_eq!(rows_stored(&db).await, 2, "{strategy:?}: stored once");
            // The next key still goes where the strategy says, and only there.
            user(2).insert(&db).await.unwrap();
            assert_eq!(rows_stored(&db).await, 3, "{strategy:?}");
        });
    }
}

// defect 6
#[test]
fn a_committed_insert_retried_answers_duplicate_key_not_duplicate_alias() {
    for strategy in [Strategy::Hash, Strategy::RoundRobin, Strategy::Random] {
        let script = Script::new();
        let db = memory_db(3, plain(strategy)).intercepted(script.clone());
        block_on(async {
            // Acknowledged, then retried anyway.
            user(1).insert(&db).await.unwrap();
            let err = user(1).insert(&db).await.unwrap_err();
            assert_eq!(err.code(), "duplicate_key", "{strategy:?}: {err}");

            // Lost at each reply of the insert (its claims, its row, its read-path records).
            let calls = {
                script.reset();
                user(2).insert(&db).await.unwrap();
                script.log()
            };
            for (n, &call) in calls.iter().enumerate() {
                let i = 10 + n;
                script.reset();
                script.at(n, Phase::After, move || async move { Err(lost(call)) });
                let first = user(i).insert(&db).await;
                script.clear();
                let retried = user(i).insert(&db).await;
                let context = format!("{strategy:?}: reply of {call:?} (call {n}) lost: {first:?}");
                match &first {
                    // The lost reply was only a read-path record's: the insert succeeded.
                    Ok(()) => assert_eq!(retried.unwrap_err().code(), "duplicate_key", "{context}"),
                    Err(_) => match retried {
                        Ok(()) => {}
                        Err(e) => assert_eq!(e.code(), "duplicate_key", "{context}"),
                    },
                }
                assert_eq!(
                    User::get(&db, &format!("u-{i}")).await.unwrap(),
                    Some(user(i)),
                    "{context}"
                );
                assert_eq!(
                    user(i).insert(&db).await.unwrap_err().code(),
                    "duplicate_key",
                    "{context}"
                );
            }
            let n = User::count(&db).await.unwrap();
            assert_eq!(n, 2 + calls.len() as u64, "{strategy:?}");
            assert_eq!(rows_stored(&db).await, n, "{strategy:?}");
        });
    }
}

// defect 8
#[test]
fn a_key_deleted_and_reinserted_from_a_lagging_handle_keeps_one_placement() {
    let dir = scratch_dir();
    let open = || {
        Options::dir(dir.path())
            .shards(3)
            .config(plain(Strategy::RoundRobin))
            .open()
            .unwrap()
    };
    let a = open();
    let b = open();
    block_on(async {
        User::create_schema(&a).await.unwrap();
        for round in 0..3 {
            // Handles take turns: one inserts, the other reads (and caches),
            // the first deletes, the lagging one inserts the key again.
            let (first, lagging) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let context = format!("round {round}");
            let row = User {
                name: format!("round {round}"),
                ..user(1)
            };
            if round == 0 {
                row.insert(first).await.unwrap();
            }
            assert!(
                User::get(lagging, "u-1").await.unwrap().is_some(),
                "{context}"
            );
            assert!(User::delete(first, "u-1").await.unwrap(), "{context}");
            row.insert(lagging).await.unwrap();

            let fresh = open();
            let at = fresh
                .shard_of::<User>("u-1".into())
                .await
                .unwrap()
                .map(str::to_owned);
            assert!(at.is_some(), "{context}");
            for db in [&a, &b, &fresh] {
                assert_eq!(
                    User::get(db, "u-1").await.unwrap(),
                    Some(row.clone()),
                    "{context}"
                );
                assert_eq!(
                    db.shard_of::<User>("u-1".into())
                        .await
                        .unwrap()
                        .map(str::to_owned),
                    at,
                    "{context}"
                );
                assert_eq!(
                    User::find_by_email(db, "user1@example.com").await.unwrap(),
                    Some(row.clone()),
                    "{context}"
                );
            }
            for db in [&a, &b] {
                let err = user(1).insert(db).await.unwrap_err();
                assert_eq!(err.code(), "duplicate_key", "{context}: {err}");
            }
            assert_eq!(User::count(&fresh).await.unwrap(), 1, "{context}");
            assert_eq!(rows_stored(&fresh).await, 1, "{context}: one placement");
            // The placement claim names the shard the row is on.
            let holder = fresh
                .coordinator()
                .unwrap()
                .holders(&["users/id/u-1".into()])
                .await
                .unwrap()
                .pop()
                .flatten()
                .expect("a placement claim");
            assert_eq!(Some(holder.shard), at, "{context}");
            // The next round starts from this row.
            if round + 1 < 3 {
                let next = User {
                    name: format!("round {}", round + 1),
                    ..user(1)
                };
                next.update(&fresh).await.unwrap();
            }
        }
    });
}

/// Fails every `every`-th call of the handle, alternately before it acts and
/// after (a lost reply), starting at call `offset`.
fn faulty(script: &Script, every: usize, offset: usize) {
    script.reset();
    script.on(move |event| {
        if event.index < offset || !(event.index - offset).is_multiple_of(every) {
            return None;
        }
        let phase = if (event.index / every).is_multiple_of(2) {
            Phase::Before
        } else {
            Phase::After
        };
        (event.phase == phase).then(|| {
            let call = event.call;
            Box::pin(async move { Err(lost(call)) }) as LocalBoxFuture<'static, Result<()>>
        })
    });
}

// defect 16
#[test]
fn per_shard_counts_add_up_to_count_after_faults() {
    for strategy in [Strategy::Hash, Strategy::RoundRobin] {
        for (every, offset) in [(3, 0), (4, 1), (5, 2), (7, 3)] {
            let dir = scratch_dir();
            let open = |shards: usize| {
                Options::dir(dir.path())
                    .shards(shards)
                    .config(plain(strategy))
                    .open()
                    .unwrap()
            };
            let context = format!("{strategy:?}, a fault every {every} calls from {offset}");
            block_on(async {
                let setup = open(2);
                User::create_schema(&setup).await.unwrap();
                let script = Script::new();
                let db = Rc::new(open(2).intercepted(script.clone()));
                faulty(&script, every, offset);
                for i in 0..12 {
                    let _ = user(i).insert(&*db).await;
                    let _ = user(i).insert(&*db).await; // a client's retry
                }
                for i in 0..12 {
                    match i % 3 {
                        0 => drop(User::delete(&*db, &format!("u-{i}")).await),
                        1 => {
                            let changed = User {
                                email: format!("changed{i}@example.com"),
                                ..user(i)
                            };
                            let _ = changed.update(&*db).await;
                        }
                        _ => {
                            let _ = User::delete(&*db, &format!("u-{i}")).await;
                            let _ = user(i).insert(&*db).await;
                        }
                    }
                }
                if strategy == Strategy::Hash {
                    // Grow, and rebalance through faults.
                    let grown = open(3);
                    User::create_schema(&grown).await.unwrap();
                    let script = Script::new();
                    let mover = grown.intercepted(script.clone());
                    faulty(&script, every, offset);
                    for _ in 0..3 {
                        let _ = mover.rebalance::<User>().await;
                    }
                    script.clear();
                    mover.rebalance::<User>().await.unwrap();
                }
                script.clear();

                let fresh = open(if strategy == Strategy::Hash { 3 } else { 2 });
                let list = User::list(&fresh).await.unwrap();
                let count = User::count(&fresh).await.unwrap();
                assert_eq!(count, list.len() as u64, "{context}");
                assert_eq!(
                    rows_stored(&fresh).await,
                    count,
                    "{context}: per-shard counts"
                );
                let mut ids: Vec<&str> = list.iter().map(|u| u.id.as_str()).collect();
                ids.dedup();
                assert_eq!(ids.len(), list.len(), "{context}: a key listed twice");
                for u in &list {
                    assert_eq!(
                        User::get(&fresh, &u.id).await.unwrap().as_ref(),
                        Some(u),
                        "{context}"
                    );
                    assert_eq!(
                        User::find_by_email(&fresh, &u.email)
                            .await
                            .unwrap()
                            .as_ref(),
                        Some(u),
                        "{context}"
                    );
                    let err = u.insert(&fresh).await.unwrap_err();
                    assert_eq!(err.code(), "duplicate_key", "{context}: {err}");
                }
                assert_eq!(
                    rows_stored(&fresh).await,
                    count,
                    "{context}: after the retries"
                );
            });
        }
    }
}
