//! Alias keys: claimed before the row, consistent through every key.

mod common;

use collegedb::backend::MappingStore;
use collegedb::backend::{Claim, ClaimReply, ClaimRequest, Coordinator, Target};
use collegedb::Strategy;
use common::*;
use example_models::User;

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
            // The freed value can be taken by another row: its old claim is
            // proven stale (the row holds another email now) and taken over.
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

/// A claim held by `owner` for `key`, as a crash or a lost reply leaves one.
async fn leave_claim(
    db: &collegedb::Database<collegedb::embedded::Embedded>,
    key: &str,
    owner: &str,
) {
    let request = ClaimRequest {
        owner: format!("t:{owner}"),
        incarnation: "gone".into(),
        nonce: "gone".into(),
        target: Target::Shard("shard-1".into()),
        claims: vec![Claim {
            key: key.into(),
            placement: false,
            replace: None,
        }],
    };
    let reply = db.coordinator().unwrap().claim(&request).await.unwrap();
    assert!(matches!(reply, ClaimReply::Granted { .. }), "{reply:?}");
}

#[test]
fn a_dangling_claim_is_ignored_by_reads_and_taken_over_by_an_insert() {
    let db = memory_db(3, plain(Strategy::Hash));
    block_on(async {
        // A crash between claiming the email and writing the row leaves this behind.
        leave_claim(&db, "users/email/ghost@example.com", "u-ghost").await;
        assert_eq!(
            User::find_by_email(&db, "ghost@example.com").await.unwrap(),
            None
        );
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
        let holder = db
            .coordinator()
            .unwrap()
            .holders(&["users/email/ghost@example.com".into()])
            .await
            .unwrap();
        assert_eq!(holder[0].as_ref().unwrap().owner, "t:u-5");
    });
}

#[test]
fn a_stale_claim_left_by_an_update_does_not_resolve() {
    let db = memory_db(3, plain(Strategy::Hash));
    block_on(async {
        insert_users(&db, 2).await;
        // u-1 held this email once and has another now.
        leave_claim(&db, "users/email/old@example.com", "u-1").await;
        assert_eq!(
            User::find_by_email(&db, "old@example.com").await.unwrap(),
            None
        );
        let taker = User {
            email: "old@example.com".into(),
            ..user(7)
        };
        taker.insert(&db).await.unwrap();
        assert_eq!(
            User::find_by_email(&db, "old@example.com").await.unwrap(),
            Some(taker)
        );
    });
}
