use collegedb::Sharded;

#[derive(Sharded)]
#[sharded(index(author, created))]
#[sharded(index(writer))]
struct Post {
    #[primary_key]
    id: i64,
    #[sharded(rename = "writer")]
    author: String,
    created_at: u64,
}

fn main() {}
