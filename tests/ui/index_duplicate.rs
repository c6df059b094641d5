use collegedb::Sharded;

#[derive(Sharded)]
#[sharded(index(author, likes))]
#[sharded(index(author, likes))]
#[sharded(index(likes))]
struct Post {
    #[primary_key]
    id: i64,
    author: String,
    #[sharded(index)]
    likes: i64,
}

// The names of two different indexes would be the same: `posts_a_b_c_idx`.
#[derive(Sharded)]
#[sharded(table = "posts2", index(a_b, c), index(a, b_c))]
struct Clash {
    #[primary_key]
    id: i64,
    a: i64,
    a_b: i64,
    b_c: i64,
    c: i64,
}

fn main() {}
