use collegedb::Sharded;

// The primary key and lookups are indexed already.
#[derive(Sharded)]
#[sharded(index(id))]
#[sharded(index(email))]
#[sharded(index(email, name))]
struct User {
    #[primary_key]
    #[sharded(index)]
    id: String,
    #[lookup]
    #[sharded(index)]
    email: String,
    name: String,
}

fn main() {}
