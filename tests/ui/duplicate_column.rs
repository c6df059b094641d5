use collegedb::Sharded;

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
    #[sharded(rename = "name")]
    display_name: String,
    name: String,
    #[sharded(rename = "ID")]
    legacy_id: i64,
}

fn main() {}
