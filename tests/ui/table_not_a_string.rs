use collegedb::Sharded;

#[derive(Sharded)]
#[sharded(table = people)]
struct Person {
    #[primary_key]
    id: u64,
    #[sharded(rename = 5)]
    name: String,
}

fn main() {}
