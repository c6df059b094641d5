use collegedb::Sharded;

#[derive(Sharded)]
#[sharded(index(author, cache))]
struct Post {
    #[primary_key]
    id: i64,
    author: String,
    #[sharded(skip)]
    cache: Option<String>,
    #[sharded(skip, index)]
    scratch: u8,
}

fn main() {}
