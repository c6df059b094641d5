use collegedb::Sharded;

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
    #[primary_key]
    email: String,
    #[primary_key]
    handle: String,
}

fn main() {}
