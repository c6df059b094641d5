//! A claims authority partitioned by key hash: every write's claims, spread
//! over several authorities, are still taken all or none.

mod common;

use collegedb::backend::{Coordinator, Partitioned};
use collegedb::embedded::{SqliteMappings, SqliteShard};
use collegedb::{Backend, Database, Error, ShardSpec, Strategy};
use common::*;
use example_models::User;

/// SQLite shards, with claims spread over several in-memory authorities.
struct Spread;

impl Backend for Spread {
    type Shard = SqliteShard;
    type Mappings = SqliteMappings;
    type Coordinator = Partitioned<SqliteMappings>;
}

fn spread_db(strategy: Strategy, partitions: usize) -> Database<Spread> {
    let shards = (0..3)
        .map(|i| {
            let name = format!("shard-{i}");
            ShardSpec::new(name.clone(), SqliteShard::in_memory(name).unwrap())
        })
        .collect();
    let parts = (0..partitions)
        .map(|_| SqliteMappings::in_memory().unwrap())
        .collect();
    let db = Database::new(
        shards,
        // The read path: it sees one partition's claims, and misses fall
        // through to the whole authority.
        SqliteMappings::in_memory().unwrap(),
        Some(Partitioned::new(parts)),
        plain(strategy),
        "unused",
    )
    .unwrap();
    block_on(User::create_schema(&db)).unwrap();
    db
}

#[test]
fn claims_spread_over_partitions_resolve_and_stay_unique() {
    for strategy in [Strategy::Hash, Strategy::RoundRobin] {
        let db = spread_db(strategy, 3);
        block_on(async {
            for i in 0..60 {
                user(i).insert(&db).await.unwrap();
            }
            // Every partition holds some of the claims.
            for part in db.coordinator().unwrap().parts() {
                let held = part
                    .holders(
                        &(0..60)
                            .map(|i| format!("users/email/user{i}@example.com"))
                            .collect::<Vec<_>>(),
                    )
                    .await
                    .unwrap();
                assert!(
                    held.iter().any(Option::is_some),
                    "{strategy:?}: a partition holds nothing"
                );
            }
            for i in 0..60 {
                assert_found(&db, &user(i), &format!("{strategy:?}")).await;
            }
            let taken = User {
                id: "u-new".into(),
                ..user(7)
            };
            let err = taken.insert(&db).await.unwrap_err();
            assert_eq!(err.code(), "duplicate_alias", "{strategy:?}");
            assert_eq!(User::count(&db).await.unwrap(), 60);
        });
    }
}

#[test]
fn a_refusal_in_one_partition_gives_back_what_the_others_granted() {
    let db = spread_db(Strategy::RoundRobin, 4);
    block_on(async {
        user(1).insert(&db).await.unwrap();
        // New keys and usernames, but user 1's email: where the key's
        // placement sits in another partition than the email (most of these
        // keys), it is granted before the email's partition refuses.
        for n in 0..12 {
            let clash = User {
                id: format!("u-clash-{n}"),
                username: format!("clash{n}"),
                ..user(1)
            };
            assert!(matches!(
                clash.insert(&db).await,
                Err(Error::DuplicateAlias {
                    column: "email",
                    ..
                })
            ));
            let keys = [
                format!("users/id/u-clash-{n}"),
                format!("users/username/clash{n}"),
            ];
            let held = db.coordinator().unwrap().holders(&keys).await.unwrap();
            assert_eq!(held, [None, None], "nothing of refused insert {n} is held");
            // And the key and username are free for the next writer.
            User {
                email: format!("fresh{n}@example.com"),
                ..clash
            }
            .insert(&db)
            .await
            .unwrap();
        }
    });
}

/// A retried write whose placement is held asks the placement's partition
/// first, whatever the partition order: its held shard is the answer, and
/// the other partitions record that shard rather than allocate another.
#[test]
fn a_retry_keeps_the_held_placement_in_every_partition() {
    use collegedb::backend::{
        AllocationRequest, Claim, ClaimReply, ClaimRequest, StrategyKind, Target,
    };

    let parts = (0..4)
        .map(|_| SqliteMappings::in_memory().unwrap())
        .collect();
    let coordinator = Partitioned::new(parts);
    let claim = |key: String, placement: bool| Claim {
        key,
        placement,
        replace: None,
    };
    // Pairs of keys spread over the partitions in every order.
    for i in 0..24 {
        let request = ClaimRequest {
            owner: format!("owner-{i}"),
            incarnation: "1".into(),
            nonce: format!("attempt-{i}"),
            target: Target::Allocate(AllocationRequest {
                strategy: StrategyKind::RoundRobin,
                candidates: vec!["s0".into(), "s1".into(), "s2".into()],
                proposed: None,
            }),
            claims: vec![
                claim(format!("alias-{i}"), false),
                claim(format!("placement-{i}"), true),
            ],
        };
        let mut shards = Vec::new();
        for _attempt in 0..2 {
            let ClaimReply::Granted { shard, .. } = block_on(coordinator.claim(&request)).unwrap()
            else {
                panic!("a write's own claims are granted again")
            };
            shards.push(shard);
        }
        assert_eq!(shards[0], shards[1], "pair {i}: the retry moved the row");
        let keys: Vec<String> = request.claims.iter().map(|c| c.key.clone()).collect();
        for holder in block_on(coordinator.holders(&keys)).unwrap() {
            assert_eq!(holder.unwrap().shard, shards[0], "pair {i}");
        }
    }
}
