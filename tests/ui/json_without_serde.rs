use collegedb::Sharded;

// Not `Serialize`/`Deserialize`: the error points at the field's type.
struct Settings {
    theme: String,
}

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
    #[sharded(json)]
    settings: Settings,
}

fn main() {}
