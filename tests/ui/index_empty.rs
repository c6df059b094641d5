use collegedb::Sharded;

#[derive(Sharded)]
#[sharded(index())]
struct Post {
    #[primary_key]
    id: i64,
    author: String,
}

fn main() {}
