use collegedb::FromRow;

#[derive(FromRow)]
#[sharded(table = "summaries", index(name))]
#[primary_key]
struct Summary {
    #[primary_key]
    id: String,
    #[lookup]
    email: String,
    #[sharded(skip, index, rename = "display_name")]
    name: String,
    #[sharded(jsn)]
    tags: Vec<String>,
}

fn main() {}
