use collegedb::Sharded;

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
    #[lookup]
    email: Option<String>,
}

fn main() {}
