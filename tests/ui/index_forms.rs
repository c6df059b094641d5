use collegedb::Sharded;

// `index` on the struct lists fields; on a field it is a bare flag.
#[derive(Sharded)]
#[sharded(index)]
struct Post {
    #[primary_key]
    id: i64,
    #[sharded(index = true)]
    author: String,
    #[sharded(index(author, likes))]
    likes: i64,
}

fn main() {}
