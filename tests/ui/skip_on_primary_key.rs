use collegedb::Sharded;

#[derive(Sharded)]
struct Session {
    #[primary_key]
    #[sharded(skip)]
    id: String,
    #[lookup]
    #[sharded(json)]
    token: String,
    #[sharded(skip, json, rename = "cache")]
    cached: Vec<String>,
    #[primary_key]
    #[lookup]
    user: u64,
}

fn main() {}
