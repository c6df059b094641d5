use collegedb::Sharded;

#[derive(Sharded)]
struct User {
    #[primary_key]
    id: String,
    age: u32,
}

fn main() {
    // A misspelled column.
    let _ = User::query().filter(User::AGEE.ge(18));
    // A value of the wrong type for the column.
    let _ = User::query().filter(User::AGE.eq("x"));
    // `like` on a column that is not text.
    let _ = User::query().filter(User::AGE.like("1%"));
}
