use collegedb::FromRow;

#[derive(FromRow)]
struct Pair(String, u32);

#[derive(FromRow)]
enum Either {
    Left { name: String },
}

#[derive(FromRow)]
struct Wrapper<T> {
    value: T,
}

#[derive(FromRow)]
struct Nothing {}

fn main() {}
