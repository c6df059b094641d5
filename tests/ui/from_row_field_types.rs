use std::collections::HashMap;

use collegedb::{FromRow, Sharded};

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
    name: String,
}

#[derive(FromRow)]
struct Summary {
    name: String,
    prefs: HashMap<String, String>,
    #[sharded(rename = "full name")]
    full_name: String,
    #[sharded(rename = "NAME")]
    other: String,
}

fn main() {
    // The fallback implements the traits: selecting into it adds no error.
    let _ = User::query().select::<Summary>();
}
