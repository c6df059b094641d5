use collegedb::Sharded;

#[derive(Sharded)]
#[sharded(table = "user-accounts")]
struct User {
    #[primary_key]
    id: String,
}

#[derive(Sharded)]
#[sharded(table = "sqlite_things")]
struct Thing {
    #[primary_key]
    id: String,
    #[sharded(rename = "2fa")]
    two_factor: bool,
}

#[derive(Sharded)]
struct Ünicode {
    #[primary_key]
    id: String,
}

fn main() {}
