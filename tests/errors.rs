//! Bad input gets a typed error and loses nothing.

mod common;

use collegedb::backend::{MappingStore, ShardExecutor, Statement};
use collegedb::embedded::Options;
use collegedb::{Config, Error, Strategy, Value};
use common::*;
use example_models::{Post, User};

#[test]
fn a_mapping_to_an_unknown_shard_is_only_a_stale_hint_and_an_unknown_name_is_a_typed_error() {
    let db = memory_db(
        2,
        Config::default()
            .strategy(Strategy::Random)
            .plain_text_keys(),
    );
    block_on(async {
        // The mapping store is a hint: a record naming a shard this database
        // does not have is ignored, and the authority decides.
        let record = r#"{"shard":"shard-9","created":0,"updated":0}"#;
        db.mappings().put("users/id/u-1", record).await.unwrap();
        assert_eq!(User::get(&db, "u-1").await.unwrap(), None);
        user(1).insert(&db).await.unwrap();
        assert_eq!(User::get(&db, "u-1").await.unwrap(), Some(user(1)));
    });
    let err = db.shard("nope").unwrap_err();
    assert!(
        matches!(&err, Error::UnknownShard { shard } if shard == "nope"),
        "{err}"
    );
    assert_eq!(err.code(), "unknown_shard");
}

#[test]
fn a_row_that_does_not_match_the_model_names_the_column() {
    let db = memory_db(1, Config::default());
    block_on(async {
        user(1).insert(&db).await.unwrap();
        let shard = db.shard("shard-0").unwrap();
        let bad = Statement::new(
            "UPDATE users SET age = 'old' WHERE id = ?1",
            vec![Value::Text("u-1".into())],
        );
        shard.batch(&[bad]).await.unwrap();
        let err = User::get(&db, "u-1").await.unwrap_err();
        assert_eq!(err.code(), "decode");
        let message = err.to_string();
        assert!(
            message.contains("users.age") && message.contains("TEXT \"old\""),
            "{message}"
        );

        let huge = Statement::new(
            "UPDATE users SET age = 5000000000 WHERE id = ?1",
            vec![Value::Text("u-1".into())],
        );
        shard.batch(&[huge]).await.unwrap();
        let err = User::get(&db, "u-1").await.unwrap_err();
        assert!(err.to_string().contains("u32"), "{err}");
    });
}

#[test]
fn malformed_json_columns_are_typed_errors_and_corrupt_mappings_are_ignored() {
    let db = memory_db(
        1,
        Config::default()
            .strategy(Strategy::Random)
            .plain_text_keys(),
    );
    block_on(async {
        post(1).insert(&db).await.unwrap();
        let shard = db.shard("shard-0").unwrap();
        shard
            .batch(&[Statement::new(
                "UPDATE posts SET tags = '{not json' WHERE id = 1",
                vec![],
            )])
            .await
            .unwrap();
        let err = Post::get(&db, 1).await.unwrap_err();
        assert!(err.to_string().contains("posts.tags"), "{err}");

        // A corrupt read-path record is only a hint that cannot be read: the
        // read ignores it and asks the authority, and the key stays usable.
        db.mappings()
            .put("users/id/u-2", "not a record")
            .await
            .unwrap();
        assert_eq!(User::get(&db, "u-2").await.unwrap(), None);
        user(2).insert(&db).await.unwrap();
        assert_eq!(User::get(&db, "u-2").await.unwrap(), Some(user(2)));
    });
}

#[test]
fn updating_a_missing_row_is_not_found() {
    let db = memory_db(2, Config::default());
    let err = block_on(user(1).update(&db)).unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert_eq!(
        block_on(User::count(&db)).unwrap(),
        0,
        "update never inserts"
    );
}

#[test]
fn configuration_mistakes_are_refused() {
    assert_eq!(
        Options::in_memory(0).open().err().unwrap().code(),
        "no_shards"
    );
    let location = Config::default().strategy(Strategy::Location {
        target: collegedb::Region::Weur,
    });
    assert_eq!(
        Options::in_memory(2)
            .config(location)
            .open()
            .err()
            .unwrap()
            .code(),
        "config"
    );
    let err = Options::in_memory(2)
        .locate(
            "shard-7",
            collegedb::ShardLocation::new(collegedb::Region::Af),
        )
        .open()
        .err()
        .unwrap();
    assert_eq!(err.code(), "unknown_shard");
}

#[test]
fn an_unreachable_shard_fails_the_fan_out_instead_of_answering_partially() {
    let dir = tempfile::tempdir().unwrap();
    let db = Options::dir(dir.path()).shards(2).open().unwrap();
    block_on(async {
        User::create_schema(&db).await.unwrap();
        insert_users(&db, 10).await;
        // Make one shard unusable behind the router's back.
        db.shard("shard-1")
            .unwrap()
            .batch(&[Statement::new("DROP TABLE users", vec![])])
            .await
            .unwrap();
        // The error names exactly the failed shard, with its own error.
        for err in [
            User::list(&db).await.unwrap_err(),
            User::count(&db).await.unwrap_err(),
        ] {
            let Error::ShardsFailed { failures } = &err else {
                panic!("{err}");
            };
            assert_eq!(failures.len(), 1, "{err}");
            assert_eq!(failures[0].shard, "shard-1");
            assert!(
                matches!(&failures[0].error, Error::Shard { shard, .. } if shard == "shard-1"),
                "{err}"
            );
        }
    });
}

#[test]
fn a_failed_insert_leaves_nothing_that_blocks_the_key() {
    let db = memory_db(
        3,
        Config::default()
            .strategy(Strategy::RoundRobin)
            .plain_text_keys(),
    );
    block_on(async {
        // The row cannot be written: its table is missing on every shard.
        for shard in ["shard-0", "shard-1", "shard-2"] {
            let drop = Statement::new("DROP TABLE users", vec![]);
            db.shard(shard).unwrap().batch(&[drop]).await.unwrap();
        }
        assert_eq!(user(1).insert(&db).await.unwrap_err().code(), "shard");
        User::create_schema(&db).await.unwrap();
        assert_eq!(User::get(&db, "u-1").await.unwrap(), None);
        // Whatever the failed attempt left at the coordinator is proven stale
        // by the next insert of the key, which goes ahead.
        user(1).insert(&db).await.unwrap();
        assert_eq!(User::get(&db, "u-1").await.unwrap(), Some(user(1)));
        assert_eq!(
            User::find_by_email(&db, "user1@example.com").await.unwrap(),
            Some(user(1))
        );
        assert_eq!(distribution(&db).await.iter().sum::<u64>(), 1);
        assert_eq!(
            user(1).insert(&db).await.unwrap_err().code(),
            "duplicate_key"
        );
    });
}
