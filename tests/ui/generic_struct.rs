use collegedb::Sharded;

#[derive(Sharded)]
struct Wrapper<'a, T> {
    #[primary_key]
    id: String,
    #[sharded(skip)]
    value: Option<&'a T>,
}

fn main() {}
