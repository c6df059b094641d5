use collegedb::Sharded;

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
}

#[derive(Sharded)]
struct Post {
    #[primary_key]
    id: i64,
    title: String,
}

fn main() {
    let _ = User::query().filter(Post::TITLE.eq("x"));
}
