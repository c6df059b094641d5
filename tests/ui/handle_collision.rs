use collegedb::Sharded;

// `ab` and `aB` are distinct fields (and columns, with the rename), but both
// handles would be `Item::AB`.
#[derive(Sharded)]
#[allow(non_snake_case)]
struct Item {
    #[primary_key]
    id: u64,
    ab: String,
    #[sharded(rename = "a_b")]
    aB: String,
}

fn main() {
    // The fallback declares the first handle, so this adds no error.
    let _ = Item::AB;
}
