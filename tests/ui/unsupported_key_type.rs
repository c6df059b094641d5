use collegedb::Sharded;

#[derive(Sharded)]
struct Reading {
    #[primary_key]
    at: f64,
    #[lookup]
    sensor: bool,
    #[lookup]
    serial: usize,
}

fn main() {}
