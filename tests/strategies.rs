//! Every placement strategy on the embedded backend.

mod common;

use collegedb::backend::{MappingStore, ShardExecutor, Statement};
use collegedb::embedded::Options;
use collegedb::{Config, Placement, Region, ShardLocation, Strategy, Value};
use common::*;
use example_models::User;

#[test]
fn hash_writes_no_primary_key_mappings() {
    let db = memory_db(
        4,
        Config::default().strategy(Strategy::Hash).plain_text_keys(),
    );
    block_on(async {
        insert_users(&db, 20).await;
        let page = db.mappings().list("users/id/", None).await.unwrap();
        assert!(
            page.keys.is_empty(),
            "hash placement is recomputed, not stored: {:?}",
            page.keys
        );
        let aliases = db.mappings().list("users/email/", None).await.unwrap();
        assert_eq!(aliases.keys.len(), 20);
    });
}

#[test]
fn round_robin_cycles_through_the_shards() {
    let db = memory_db(3, Config::default().strategy(Strategy::RoundRobin));
    block_on(async {
        insert_users(&db, 9).await;
        let mut shards = Vec::new();
        for i in 0..9 {
            shards.push(
                db.shard_of::<User>(text(format!("u-{i}")))
                    .await
                    .unwrap()
                    .unwrap()
                    .to_owned(),
            );
        }
        assert_eq!(
            shards,
            [
                "shard-0", "shard-1", "shard-2", "shard-0", "shard-1", "shard-2", "shard-0",
                "shard-1", "shard-2"
            ]
        );
        assert_eq!(distribution(&db).await, [3, 3, 3]);
    });
}

#[test]
fn round_robin_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || Config::default().strategy(Strategy::RoundRobin);
    block_on(async {
        let db = Options::dir(dir.path())
            .shards(3)
            .config(config())
            .open()
            .unwrap();
        User::create_schema(&db).await.unwrap();
        insert_users(&db, 2).await;
        drop(db);
        let db = Options::dir(dir.path()).config(config()).open().unwrap();
        user(2).insert(&db).await.unwrap();
        assert_eq!(
            db.shard_of::<User>(text("u-2".into())).await.unwrap(),
            Some("shard-2")
        );
    });
}

#[test]
fn random_placement_spreads_and_every_key_resolves() {
    let db = memory_db(4, Config::default().strategy(Strategy::Random));
    block_on(async {
        insert_users(&db, 200).await;
        let counts = distribution(&db).await;
        assert!(counts.iter().all(|&n| n > 20), "{counts:?}");
        for i in (0..200).step_by(7) {
            assert_resolves(&db, i).await;
        }
    });
}

#[test]
fn location_places_new_keys_near_the_target() {
    let located = |target| {
        Options::in_memory(3)
            .locate("shard-0", ShardLocation::new(Region::Weur))
            .locate("shard-1", ShardLocation::new(Region::Wnam).priority(1))
            .locate("shard-2", ShardLocation::new(Region::Wnam).priority(5))
            .config(Config::default().strategy(Strategy::Location { target }))
            .open()
            .unwrap()
    };
    block_on(async {
        let europe = located(Region::Eeur);
        User::create_schema(&europe).await.unwrap();
        insert_users(&europe, 10).await;
        assert_eq!(distribution(&europe).await, [10, 0, 0]);

        let america = located(Region::Enam);
        User::create_schema(&america).await.unwrap();
        insert_users(&america, 10).await;
        assert_eq!(
            distribution(&america).await,
            [0, 0, 10],
            "higher priority wins within a band"
        );
    });
}

#[test]
fn mixed_strategy_reads_look_at_the_hash_home_first_and_never_place() {
    let placement = Placement::mixed(Strategy::Hash, Strategy::Random);
    let db = memory_db(4, Config::default().placement(placement).plain_text_keys());
    block_on(async {
        insert_users(&db, 40).await;
        for i in 0..40 {
            assert_eq!(
                User::get(&db, &format!("u-{i}")).await.unwrap(),
                Some(user(i))
            );
        }
        let before = db.mappings().list("users/", None).await.unwrap().keys.len();
        assert_eq!(User::get(&db, "never-inserted").await.unwrap(), None);
        let after = db.mappings().list("users/", None).await.unwrap().keys.len();
        assert_eq!(before, after, "a read must not create a mapping");
    });
}

#[test]
fn full_shards_get_no_new_keys_and_all_full_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let fill = |db: &collegedb::Database<collegedb::embedded::Embedded>, shard: &str| {
        let shard = db.shard(shard).unwrap();
        block_on(shard.batch(&[
            Statement::new("CREATE TABLE IF NOT EXISTS filler (b BLOB)", vec![]),
            Statement::new("INSERT INTO filler VALUES (zeroblob(200000))", vec![]),
        ]))
        .unwrap();
    };
    let open = || {
        Options::dir(dir.path())
            .shards(2)
            .config(Config::default().max_shard_bytes(150_000))
            .open()
            .unwrap()
    };
    let db = open();
    block_on(User::create_schema(&db)).unwrap();
    fill(&db, "shard-0");
    block_on(async {
        insert_users(&db, 20).await;
        assert_eq!(
            distribution(&db).await,
            [0, 20],
            "the full shard got no new keys"
        );
        for i in 0..20 {
            assert_eq!(
                User::get(&db, &format!("u-{i}")).await.unwrap(),
                Some(user(i))
            );
        }
    });
    drop(db);

    let db = open();
    fill(&db, "shard-1");
    let err = block_on(user(99).insert(&db)).unwrap_err();
    assert_eq!(err.code(), "shards_full");
    block_on(async {
        assert_eq!(User::get(&db, "u-99").await.unwrap(), None);
        assert_eq!(
            User::find_by_email(&db, "user99@example.com")
                .await
                .unwrap(),
            None,
            "no alias left behind"
        );
    });
}

fn text(s: String) -> Value {
    Value::Text(s)
}
