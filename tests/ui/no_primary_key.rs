use collegedb::Sharded;

#[derive(Sharded)]
struct User {
    id: String,
    name: String,
}

fn main() {}
