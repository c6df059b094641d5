use collegedb::Sharded;

#[derive(Sharded)]
enum Shape {
    Circle { radius: f64 },
    Square { side: f64 },
}

#[derive(Sharded)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}
