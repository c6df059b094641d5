use collegedb::Sharded;

#[derive(Sharded)]
#[sharded(index(author, likes, author))]
struct Post {
    #[primary_key]
    id: i64,
    author: String,
    likes: i64,
}

fn main() {}
