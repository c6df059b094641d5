use std::collections::HashMap;

use collegedb::Sharded;

struct Money(i64);

#[derive(Sharded)]
struct Account {
    #[primary_key]
    id: u64,
    balance: Money,
    visits: usize,
    labels: HashMap<String, u32>,
    flags: Option<Option<bool>>,
}

fn main() {}
