//! Column handles, `query()`, indexes and `#[derive(FromRow)]`, run through
//! the embedded backend.

use collegedb::{embedded, FromRow, Model, Selection, Sharded};

#[derive(Sharded, Debug, Clone, PartialEq)]
#[sharded(index(city, age))]
struct User {
    #[primary_key]
    id: String,
    #[lookup]
    email: String,
    #[sharded(rename = "display_name")]
    name: String,
    #[sharded(index)]
    age: u32,
    city: Option<String>,
    #[sharded(json, index)]
    tags: Vec<String>,
}

/// Some of `User`'s columns, in another order.
#[derive(FromRow, Debug, PartialEq)]
struct Contact {
    #[sharded(rename = "display_name")]
    name: String,
    email: String,
    #[sharded(json)]
    tags: Vec<String>,
}

fn user(n: u32) -> User {
    User {
        id: format!("u-{n}"),
        email: format!("u{n}@example.com"),
        name: format!("user {n:02}"),
        age: 10 + n,
        city: (n % 2 == 0).then(|| "Paris".to_owned()),
        tags: vec![format!("t{n}")],
    }
}

fn main() {
    assert_eq!(
        User::SQL.create[2..],
        [
            r#"CREATE INDEX IF NOT EXISTS "users_age_idx" ON "users" ("age")"#,
            r#"CREATE INDEX IF NOT EXISTS "users_tags_idx" ON "users" ("tags")"#,
            r#"CREATE INDEX IF NOT EXISTS "users_city_age_idx" ON "users" ("city", "age")"#,
        ]
    );
    assert_eq!(Contact::COLUMNS, ["display_name", "email", "tags"]);
    assert_eq!(User::NAME.name(), "display_name");

    // A row of the wrong width names the struct.
    let err = Contact::from_row(vec![collegedb::Value::Integer(1)]).unwrap_err();
    assert!(err.to_string().contains("Contact"), "{err}");

    futures::executor::block_on(async {
        let db = embedded::Options::in_memory(3).open()?;
        User::create_schema(&db).await?;
        for n in 0..12 {
            user(n).insert(&db).await?;
        }

        let adults = User::query()
            .filter(User::AGE.ge(18))
            .order_by(User::NAME.desc())
            .all(&db)
            .await?;
        let names: Vec<&str> = adults.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["user 11", "user 10", "user 09", "user 08"]);

        let parisians = User::query()
            .filter(User::CITY.eq("Paris").and(User::AGE.lt(16)))
            .order_by(User::AGE.asc())
            .all(&db)
            .await?;
        assert_eq!(parisians, [user(0), user(2), user(4)]);

        let no_city = User::query()
            .filter(User::CITY.is_null())
            .filter(User::NAME.like("user 0%"))
            .order_by(User::TAGS.desc())
            .limit(2)
            .all(&db)
            .await?;
        assert_eq!(no_city, [user(9), user(7)]);

        let contacts = User::query()
            .filter(User::EMAIL.eq("u3@example.com"))
            .select::<Contact>()
            .all(&db)
            .await?;
        assert_eq!(
            contacts,
            [Contact {
                name: "user 03".into(),
                email: "u3@example.com".into(),
                tags: vec!["t3".into()],
            }]
        );
        assert_eq!(User::query().filter(User::AGE.gt(15)).count(&db).await?, 6);
        Ok::<(), collegedb::Error>(())
    })
    .unwrap();
}
