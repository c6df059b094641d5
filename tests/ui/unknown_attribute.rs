use collegedb::Sharded;

#[derive(Sharded)]
#[sharded(tabel = "people", rename = "persons")]
struct Person {
    #[primary_key]
    id: u64,
    #[sharded(rename = "full_name", skipp, table = "x")]
    name: String,
    #[sharded(json = true)]
    tags: Vec<String>,
}

fn main() {}
