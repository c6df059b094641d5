use std::collections::HashMap;

use collegedb::{Backend, Database, Sharded};

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
    #[lookup]
    email: Option<String>,
    #[sharded(renam = "full_name")]
    name: String,
    prefs: HashMap<String, String>,
}

// None of these uses adds an error of its own: the derive's fallback
// provides every method, whatever the key type, and the handles, with the
// field types as written.
async fn uses<B: Backend>(db: &Database<B>) -> collegedb::Result<()> {
    let _: Vec<User> = User::query()
        .filter(User::NAME.eq("Ada"))
        .order_by(User::PREFS.asc())
        .all(db)
        .await?;
    User::create_schema(db).await?;
    let user = User::get(db, "u-1").await?.unwrap();
    user.insert(db).await?;
    user.update(db).await?;
    let _ = User::find_by_email(db, "ada@example.com").await?;
    let _ = User::delete_by_email(db, "ada@example.com").await?;
    let _ = User::delete(db, "u-1").await?;
    let _: Vec<User> = User::list(db).await?;
    let _: u64 = User::count(db).await?;
    Ok(())
}

fn main() {}
