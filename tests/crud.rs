//! Every generated method on the embedded backend.

mod common;

use collegedb::Config;
use common::*;
use example_models::{Post, User};

#[test]
fn insert_get_find_update_delete_list_count() {
    let db = memory_db(4, Config::default());
    block_on(async {
        insert_users(&db, 50).await;
        assert_eq!(User::count(&db).await.unwrap(), 50);

        let u = User::get(&db, "u-7").await.unwrap().unwrap();
        assert_eq!(u, user(7));
        assert_eq!(
            User::find_by_email(&db, "user7@example.com").await.unwrap(),
            Some(user(7))
        );
        assert_eq!(
            User::find_by_username(&db, "user7").await.unwrap(),
            Some(user(7))
        );
        assert_eq!(User::get(&db, "nobody").await.unwrap(), None);
        assert_eq!(
            User::find_by_email(&db, "nobody@example.com")
                .await
                .unwrap(),
            None
        );

        let renamed = User {
            name: "Seven".into(),
            age: None,
            ..user(7)
        };
        renamed.update(&db).await.unwrap();
        assert_eq!(User::get(&db, "u-7").await.unwrap(), Some(renamed.clone()));

        assert!(User::delete(&db, "u-7").await.unwrap());
        assert!(!User::delete(&db, "u-7").await.unwrap());
        assert_eq!(User::get(&db, "u-7").await.unwrap(), None);

        let all = User::list(&db).await.unwrap();
        assert_eq!(all.len(), 49);
        let mut ids: Vec<_> = all.iter().map(|u| u.id.clone()).collect();
        let sorted = {
            let mut s = ids.clone();
            s.sort();
            s
        };
        assert_eq!(ids, sorted, "list is ordered by primary key");
        ids.dedup();
        assert_eq!(ids.len(), 49);
        assert_eq!(User::count(&db).await.unwrap(), 49);
    });
}

#[test]
fn integer_keys_and_json_columns() {
    let db = memory_db(3, Config::default());
    block_on(async {
        for i in [-5, 0, 3, 1 << 40] {
            post(i).insert(&db).await.unwrap();
        }
        assert_eq!(Post::get(&db, 1 << 40).await.unwrap(), Some(post(1 << 40)));
        assert_eq!(
            Post::get(&db, -5).await.unwrap().unwrap().tags,
            vec!["rust", "tag-5"]
        );
        let ids: Vec<i64> = Post::list(&db)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(
            ids,
            [-5, 0, 3, 1 << 40],
            "integer keys sort numerically across shards"
        );
        assert!(Post::delete(&db, 0).await.unwrap());
        assert_eq!(Post::count(&db).await.unwrap(), 3);
    });
}

#[test]
fn rows_spread_over_every_shard() {
    let db = memory_db(4, Config::default());
    let counts = block_on(async {
        insert_users(&db, 400).await;
        distribution(&db).await
    });
    assert_eq!(counts.iter().sum::<u64>(), 400);
    assert!(counts.iter().all(|&n| n > 60), "{counts:?}");
}

#[test]
fn create_schema_is_idempotent_and_tables_are_per_model() {
    let db = memory_db(2, Config::default());
    block_on(async {
        User::create_schema(&db).await.unwrap();
        user(1).insert(&db).await.unwrap();
        post(1).insert(&db).await.unwrap();
        assert_eq!(User::count(&db).await.unwrap(), 1);
        assert_eq!(Post::count(&db).await.unwrap(), 1);
    });
}

/// `list` reads each shard in pages of 1,000 rows and merges them: with more
/// than a page on every shard, the result is still every row once, in key
/// order (negative, zero and positive integer keys included).
#[test]
fn list_merges_pages_of_every_shard_in_key_order() {
    let db = memory_db(2, Config::default());
    block_on(async {
        let ids: Vec<i64> = (-1_300..1_300).map(|i| i * 7).collect();
        for &id in &ids {
            post(id).insert(&db).await.unwrap();
        }
        let per_shard = db.count_per_shard::<Post>().await.unwrap();
        assert!(
            per_shard.iter().all(|(_, rows)| *rows > 1_000),
            "every shard must hold more than one page: {per_shard:?}"
        );
        let listed: Vec<i64> = Post::list(&db)
            .await
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(listed, ids);
        assert_eq!(Post::count(&db).await.unwrap(), ids.len() as u64);
    });
}
