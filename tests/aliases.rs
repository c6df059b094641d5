//! Alias keys: written before the row, removed after it, consistent through every key.

mod common;

use collegedb::{Config, MappingStore, Strategy};
use common::*;
use example_models::User;

fn plain(strategy: Strategy) -> Config {
    Config::default().strategy(strategy).plain_text_keys()
}

#[test]
fn updating_an_alias_moves_it_and_keeps_the_siblings() {
    for strategy in [Strategy::Hash, Strategy::RoundRobin] {
        let db = memory_db(3, plain(strategy));
        block_on(async {
            insert_users(&db, 5).await;
            let changed = User {
                email: "new@example.com".into(),
                ..user(2)
            };
            changed.update(&db).await.unwrap();
            assert_eq!(
                User::find_by_email(&db, "user2@example.com").await.unwrap(),
                None
            );
            assert_eq!(
                User::find_by_email(&db, "new@example.com").await.unwrap(),
                Some(changed.clone())
            );
            assert_eq!(
                User::find_by_username(&db, "user2").await.unwrap(),
                Some(changed.clone())
            );
            assert_eq!(User::get(&db, "u-2").await.unwrap(), Some(changed));
            let keys = db.mappings().list("users/email/", None).await.unwrap().keys;
            assert!(keys.contains(&"users/email/new@example.com".to_owned()));
            assert!(
                !keys.contains(&"users/email/user2@example.com".to_owned()),
                "old alias removed"
            );
            // The freed value can be taken by another row.
            User {
                id: "u-new".into(),
                email: "user2@example.com".into(),
                username: "fresh".into(),
                ..user(9)
            }
            .insert(&db)
            .await
            .unwrap();
        });
    }
}

#[test]
fn deleting_through_an_alias_removes_every_key_of_the_record() {
    for strategy in [Strategy::Hash, Strategy::Random] {
        let db = memory_db(3, plain(strategy));
        block_on(async {
            insert_users(&db, 5).await;
            assert!(User::delete_by_username(&db, "user3").await.unwrap());
            assert_eq!(User::get(&db, "u-3").await.unwrap(), None);
            assert_eq!(
                User::find_by_email(&db, "user3@example.com").await.unwrap(),
                None
            );
            let keys = db.mappings().list("users/", None).await.unwrap().keys;
            assert!(
                keys.iter().all(|k| !k.ends_with("/user3")
                    && !k.contains("user3@")
                    && !k.ends_with("/u-3")),
                "{keys:?}"
            );
            assert!(User::delete_by_email(&db, "user4@example.com")
                .await
                .unwrap());
            assert!(!User::delete_by_email(&db, "user4@example.com")
                .await
                .unwrap());
            assert_eq!(User::count(&db).await.unwrap(), 3);
        });
    }
}

#[test]
fn a_taken_alias_is_refused_and_leaves_nothing_behind() {
    let db = memory_db(4, plain(Strategy::Hash));
    block_on(async {
        insert_users(&db, 3).await;
        let thief = User {
            id: "u-thief".into(),
            email: "user1@example.com".into(),
            username: "thief".into(),
            ..user(1)
        };
        let err = thief.insert(&db).await.unwrap_err();
        assert_eq!(err.code(), "duplicate_alias");
        assert_eq!(User::get(&db, "u-thief").await.unwrap(), None);
        assert_eq!(
            User::find_by_username(&db, "thief").await.unwrap(),
            None,
            "the other alias was taken back"
        );
        assert_eq!(
            User::find_by_email(&db, "user1@example.com").await.unwrap(),
            Some(user(1))
        );

        let err = User {
            username: "user0".into(),
            ..user(2)
        }
        .update(&db)
        .await
        .unwrap_err();
        assert_eq!(err.code(), "duplicate_alias");
        assert_eq!(
            User::get(&db, "u-2").await.unwrap(),
            Some(user(2)),
            "the row is unchanged"
        );
    });
}

#[test]
fn a_duplicate_primary_key_is_refused_and_leaves_nothing_behind() {
    for strategy in [Strategy::Hash, Strategy::RoundRobin, Strategy::Random] {
        let db = memory_db(3, plain(strategy));
        block_on(async {
            user(1).insert(&db).await.unwrap();
            let again = User {
                email: "other@example.com".into(),
                username: "other".into(),
                ..user(1)
            };
            let err = again.insert(&db).await.unwrap_err();
            assert_eq!(err.code(), "duplicate_key", "{strategy:?}");
            assert_eq!(
                User::find_by_email(&db, "other@example.com").await.unwrap(),
                None
            );
            assert_eq!(User::count(&db).await.unwrap(), 1);
        });
    }
}

#[test]
fn a_dangling_alias_is_ignored_by_reads_and_does_not_block_inserts() {
    let db = memory_db(3, plain(Strategy::Hash));
    block_on(async {
        // A crash between writing the alias and writing the row leaves this behind.
        let dangling = r#"{"shard":"shard-1","pk":"u-ghost","created":0,"updated":0}"#;
        db.mappings()
            .put("users/email/ghost@example.com", dangling)
            .await
            .unwrap();
        assert_eq!(
            User::find_by_email(&db, "ghost@example.com").await.unwrap(),
            None
        );
        // KV is only a hint: the read does not delete the record either, it
        // just does not trust it.
        let left = db
            .mappings()
            .get_many(&["users/email/ghost@example.com".into()])
            .await
            .unwrap();
        assert_eq!(left, [Some(dangling.to_owned())]);
        assert_eq!(User::get(&db, "u-ghost").await.unwrap(), None);

        let real = User {
            email: "ghost@example.com".into(),
            ..user(5)
        };
        real.insert(&db).await.unwrap();
        assert_eq!(
            User::find_by_email(&db, "ghost@example.com").await.unwrap(),
            Some(real)
        );
    });
}

#[test]
fn a_stale_alias_left_by_an_interrupted_update_does_not_resolve() {
    let db = memory_db(3, plain(Strategy::Hash));
    block_on(async {
        insert_users(&db, 2).await;
        // An update crashed after the row changed but before the old alias was removed.
        let stale = r#"{"shard":"shard-0","pk":"u-1","created":0,"updated":0}"#;
        db.mappings()
            .put("users/email/old@example.com", stale)
            .await
            .unwrap();
        assert_eq!(
            User::find_by_email(&db, "old@example.com").await.unwrap(),
            None
        );
    });
}
