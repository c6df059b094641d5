//! A model using every attribute, round-tripped through the embedded backend.

use std::collections::BTreeMap;

use collegedb::{embedded, FromRow, Model, Sharded};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Settings {
    theme: String,
    limits: BTreeMap<String, u32>,
}

#[derive(Sharded, Debug, Clone, PartialEq)]
#[sharded(table = "members")]
#[sharded(index(name, score), index(active, r#nickname))]
pub struct Member {
    #[primary_key]
    #[sharded(rename = "member_id")]
    id: u64,
    #[lookup]
    handle: String,
    #[lookup]
    badge: i32,
    #[sharded(rename = "display_name")]
    name: String,
    nickname: Option<String>,
    #[sharded(index)]
    score: f64,
    ratio: Option<f32>,
    active: bool,
    avatar: Option<Vec<u8>>,
    #[sharded(json, index)]
    settings: Settings,
    #[sharded(json, rename = "tag_list")]
    tags: Vec<String>,
    #[sharded(json)]
    extra: Option<BTreeMap<String, i64>>,
    #[sharded(skip)]
    session: Option<String>,
}

// Default table name, raw identifiers, and a key field named like the
// generated methods' database parameter.
#[derive(Sharded, Debug, PartialEq)]
struct BlogPost {
    #[primary_key]
    db: String,
    #[lookup]
    r#type: String,
    #[sharded(skip)]
    cache: std::cell::Cell<u8>,
}

// Floats, which are refused where they would not be stored faithfully.
#[derive(Sharded, Debug, PartialEq)]
struct Sample {
    #[primary_key]
    id: i64,
    value: Option<f64>,
    #[sharded(json)]
    points: Vec<f32>,
}

fn member(id: u64) -> Member {
    Member {
        id,
        handle: format!("member-{id}"),
        badge: -(id as i32),
        name: "Ada".into(),
        nickname: None,
        score: 1.5,
        ratio: Some(0.25),
        active: true,
        avatar: Some(vec![0, 159, 255]),
        settings: Settings {
            theme: "dark".into(),
            limits: BTreeMap::from([("posts".into(), 10)]),
        },
        tags: vec!["a".into(), "b".into()],
        extra: None,
        session: None,
    }
}

fn main() {
    assert_eq!(Member::TABLE, "members");
    assert_eq!(
        Member::COLUMNS,
        [
            "member_id",
            "handle",
            "badge",
            "display_name",
            "nickname",
            "score",
            "ratio",
            "active",
            "avatar",
            "settings",
            "tag_list",
            "extra",
        ]
    );
    assert_eq!(Member::primary_key_column(), "member_id");
    assert_eq!(Member::LOOKUPS.len(), 2);
    assert_eq!(
        (Member::LOOKUPS[1].column, Member::LOOKUPS[1].index),
        ("badge", 2)
    );
    assert_eq!(
        Member::SQL.create[3..],
        [
            r#"CREATE INDEX IF NOT EXISTS "members_score_idx" ON "members" ("score")"#,
            r#"CREATE INDEX IF NOT EXISTS "members_settings_idx" ON "members" ("settings")"#,
            r#"CREATE INDEX IF NOT EXISTS "members_display_name_score_idx" ON "members" ("display_name", "score")"#,
            r#"CREATE INDEX IF NOT EXISTS "members_active_nickname_idx" ON "members" ("active", "nickname")"#,
        ]
    );
    // Handles name the column (renames included) and its position.
    assert_eq!(
        (Member::NAME.name(), Member::TAGS.name(), Member::ID.name()),
        ("display_name", "tag_list", "member_id")
    );
    assert_eq!((BlogPost::DB.name(), BlogPost::TYPE.name()), ("db", "type"));
    assert_eq!(BlogPost::TABLE, "blog_posts");
    assert_eq!(BlogPost::COLUMNS, ["db", "type"]);

    // A row of the wrong length is a decode error, not a panic.
    let err = Member::from_row(vec![collegedb::Value::Integer(1)]).unwrap_err();
    assert_eq!(err.code(), "decode");
    assert!(err.to_string().contains("12 columns"), "{err}");

    futures::executor::block_on(async {
        let db = embedded::Options::in_memory(3).open()?;
        Member::create_schema(&db).await?;
        BlogPost::create_schema(&db).await?;

        let mut ada = member(7);
        ada.session = Some("not stored".into());
        ada.insert(&db).await?;
        ada.session = None;
        member(8).insert(&db).await?;

        assert_eq!(Member::get(&db, 7).await?, Some(ada.clone()));
        assert_eq!(
            Member::find_by_handle(&db, "member-7").await?,
            Some(ada.clone())
        );
        assert_eq!(Member::find_by_badge(&db, -8).await?, Some(member(8)));
        assert_eq!(Member::count(&db).await?, 2);

        ada.nickname = Some("countess".into());
        ada.extra = Some(BTreeMap::from([("x".into(), -1)]));
        ada.update(&db).await?;
        let listed = Member::list(&db).await?;
        assert_eq!(listed, vec![ada.clone(), member(8)]);

        assert!(Member::delete_by_handle(&db, "member-8").await?);
        assert!(Member::delete(&db, 7).await?);
        assert!(!Member::delete(&db, 7).await?);
        assert_eq!(Member::count(&db).await?, 0);

        let post = BlogPost {
            db: "p-1".into(),
            r#type: "essay".into(),
            cache: Default::default(),
        };
        post.insert(&db).await?;
        assert_eq!(BlogPost::get(&db, "p-1").await?, Some(post));
        assert!(BlogPost::find_by_type(&db, "essay").await?.is_some());
        assert!(db.shard_of::<BlogPost>("p-1".into()).await?.is_some());
        assert!(BlogPost::delete_by_type(&db, "essay").await?);

        // NaN would be stored as NULL, and a non-finite float in JSON as
        // `null`: both are refused, naming the column, before any write.
        Sample::create_schema(&db).await?;
        let mut sample = Sample {
            id: 1,
            value: Some(f64::NAN),
            points: vec![0.5],
        };
        for (refused, column) in [
            (sample.insert(&db).await, "samples.value"),
            (
                Sample {
                    id: 2,
                    value: None,
                    points: vec![f32::INFINITY],
                }
                .insert(&db)
                .await,
                "samples.points",
            ),
        ] {
            match refused {
                Err(collegedb::Error::Encode { column: named, .. }) => assert_eq!(named, column),
                other => panic!("{column}: expected an encode error, got {other:?}"),
            }
        }
        assert_eq!(Sample::count(&db).await?, 0);
        assert_eq!(db.shard_of::<Sample>(1.into()).await?, None);
        // Infinity is a float SQLite stores.
        sample.value = Some(f64::NEG_INFINITY);
        sample.insert(&db).await?;
        assert_eq!(Sample::get(&db, 1).await?, Some(sample));
        Ok::<(), collegedb::Error>(())
    })
    .unwrap();
}
