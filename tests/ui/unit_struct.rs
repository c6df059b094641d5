use collegedb::Sharded;

#[derive(Sharded)]
struct Marker;

fn main() {}
