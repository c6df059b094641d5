use collegedb::Sharded;

#[derive(Sharded)]
struct UserId(#[primary_key] String);

fn main() {}
