use collegedb::{Backend, Database, Sharded};

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
    #[lookup]
    email: String,
    name: String,
}

async fn by_name<B: Backend>(db: &Database<B>) -> collegedb::Result<Option<User>> {
    User::find_by_name(db, "Ada").await
}

fn main() {}
