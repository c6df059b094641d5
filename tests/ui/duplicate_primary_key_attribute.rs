use collegedb::Sharded;

#[derive(Sharded)]
struct User {
    #[primary_key]
    #[primary_key]
    id: String,
    #[lookup(unique)]
    email: String,
}

fn main() {}
