//! The SQL text of a model, generated at macro time.
//!
//! Identifiers are always double-quoted (they were validated, so they need no
//! escaping) and values are only ever bound as numbered parameters: `?N` is
//! the column at position `N - 1` of `COLUMNS`, so one encoded row serves
//! both `insert` and `update`.

use crate::valid::{index_name, Model};

/// The statements of `collegedb::__private::TableSql`, plus each lookup's select.
pub struct Statements {
    /// `CREATE TABLE`, then one `CREATE UNIQUE INDEX` per lookup, then one
    /// `CREATE INDEX` per index, in `Model::indexes` order.
    pub create: Vec<String>,
    /// `INSERT INTO t (..) VALUES (?1, ..)`.
    pub insert: String,
    /// `UPDATE t SET c = ?n, .. WHERE pk = ?k`.
    pub update: String,
    /// `SELECT .. FROM t WHERE pk = ?1`.
    pub select_by_key: String,
    /// `DELETE FROM t WHERE pk = ?1`.
    pub delete_by_key: String,
    /// `SELECT .. FROM t ORDER BY pk`.
    pub select_all: String,
    /// `SELECT COUNT(*) FROM t`.
    pub count: String,
    /// `SELECT .. FROM t WHERE lookup = ?1`, in `Model::lookups` order.
    pub lookups: Vec<String>,
}

fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// Generates every statement of `model`.
pub fn statements(model: &Model) -> Statements {
    let table = quoted(&model.table);
    let names: Vec<String> = model.columns.iter().map(|c| quoted(&c.name)).collect();
    let list = names.join(", ");
    let key = &names[model.primary_key];
    let key_param = model.primary_key + 1;

    let definitions: Vec<String> = model
        .columns
        .iter()
        .zip(&names)
        .enumerate()
        .map(|(i, (column, name))| {
            let mut definition = format!("{name} {}", column.storage.sql_type());
            if !column.storage.nullable() {
                definition.push_str(" NOT NULL");
            }
            if i == model.primary_key {
                definition.push_str(" PRIMARY KEY");
            }
            definition
        })
        .collect();
    let mut create = vec![format!(
        "CREATE TABLE IF NOT EXISTS {table} ({})",
        definitions.join(", ")
    )];
    create.extend(model.lookups.iter().map(|&i| {
        let index = quoted(&format!("{}_{}_key", model.table, model.columns[i].name));
        format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {table} ({})",
            names[i]
        )
    }));
    create.extend(model.indexes.iter().map(|columns| {
        let plain: Vec<&str> = columns
            .iter()
            .map(|&i| model.columns[i].name.as_str())
            .collect();
        let quoted_columns: Vec<&str> = columns.iter().map(|&i| names[i].as_str()).collect();
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} ({})",
            quoted(&index_name(&model.table, &plain)),
            quoted_columns.join(", ")
        )
    }));

    let params: Vec<String> = (1..=names.len()).map(|n| format!("?{n}")).collect();
    let mut assignments: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != model.primary_key)
        .map(|(i, name)| format!("{name} = ?{}", i + 1))
        .collect();
    if assignments.is_empty() {
        // A key-only table: a no-op assignment keeps the statement valid and
        // still matches (and so counts) the row.
        assignments.push(format!("{key} = ?{key_param}"));
    }

    Statements {
        create,
        insert: format!(
            "INSERT INTO {table} ({list}) VALUES ({})",
            params.join(", ")
        ),
        update: format!(
            "UPDATE {table} SET {} WHERE {key} = ?{key_param}",
            assignments.join(", ")
        ),
        select_by_key: format!("SELECT {list} FROM {table} WHERE {key} = ?1"),
        delete_by_key: format!("DELETE FROM {table} WHERE {key} = ?1"),
        select_all: format!("SELECT {list} FROM {table} ORDER BY {key}"),
        count: format!("SELECT COUNT(*) FROM {table}"),
        lookups: model
            .lookups
            .iter()
            .map(|&i| format!("SELECT {list} FROM {table} WHERE {} = ?1", names[i]))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{Derive, Input};
    use crate::ctxt::Ctxt;
    use crate::valid;

    fn statements_of(source: &str) -> Statements {
        let input: syn::DeriveInput = syn::parse_str(source).unwrap();
        let cx = Ctxt::new();
        let parsed = Input::from_syn(&cx, &input, Derive::Sharded);
        let model = valid::check(&cx, &parsed);
        if let Err(error) = cx.check() {
            panic!("{error}");
        }
        statements(&model.unwrap())
    }

    #[test]
    fn text_key_with_lookups() {
        let sql = statements_of(
            "struct User {
                #[primary_key] id: String,
                #[lookup] email: String,
                #[lookup] #[sharded(rename = \"years\")] age: u32,
                nickname: Option<String>,
                #[sharded(skip)] cache: Vec<u64>,
                #[sharded(json)] tags: Vec<String>,
                score: f64,
                avatar: Option<Vec<u8>>,
                admin: bool,
            }",
        );
        assert_eq!(
            sql.create,
            [
                "CREATE TABLE IF NOT EXISTS \"users\" (\"id\" TEXT NOT NULL PRIMARY KEY, \"email\" TEXT NOT NULL, \
                 \"years\" INTEGER NOT NULL, \"nickname\" TEXT, \"tags\" TEXT NOT NULL, \"score\" REAL NOT NULL, \
                 \"avatar\" BLOB, \"admin\" INTEGER NOT NULL)",
                "CREATE UNIQUE INDEX IF NOT EXISTS \"users_email_key\" ON \"users\" (\"email\")",
                "CREATE UNIQUE INDEX IF NOT EXISTS \"users_years_key\" ON \"users\" (\"years\")",
            ]
        );
        let list = "\"id\", \"email\", \"years\", \"nickname\", \"tags\", \"score\", \"avatar\", \"admin\"";
        assert_eq!(
            sql.insert,
            format!("INSERT INTO \"users\" ({list}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
        );
        assert_eq!(
            sql.update,
            "UPDATE \"users\" SET \"email\" = ?2, \"years\" = ?3, \"nickname\" = ?4, \"tags\" = ?5, \
             \"score\" = ?6, \"avatar\" = ?7, \"admin\" = ?8 WHERE \"id\" = ?1"
        );
        assert_eq!(
            sql.select_by_key,
            format!("SELECT {list} FROM \"users\" WHERE \"id\" = ?1")
        );
        assert_eq!(sql.delete_by_key, "DELETE FROM \"users\" WHERE \"id\" = ?1");
        assert_eq!(
            sql.select_all,
            format!("SELECT {list} FROM \"users\" ORDER BY \"id\"")
        );
        assert_eq!(sql.count, "SELECT COUNT(*) FROM \"users\"");
        assert_eq!(
            sql.lookups,
            [
                format!("SELECT {list} FROM \"users\" WHERE \"email\" = ?1"),
                format!("SELECT {list} FROM \"users\" WHERE \"years\" = ?1"),
            ]
        );
    }

    #[test]
    fn key_in_the_middle_and_table_override() {
        let sql = statements_of(
            "#[sharded(table = \"people\")]
            struct Person { name: String, #[primary_key] r#ref: u64, age: Option<i16> }",
        );
        assert_eq!(
            sql.create,
            ["CREATE TABLE IF NOT EXISTS \"people\" (\"name\" TEXT NOT NULL, \"ref\" INTEGER NOT NULL PRIMARY KEY, \"age\" INTEGER)"]
        );
        assert_eq!(
            sql.update,
            "UPDATE \"people\" SET \"name\" = ?1, \"age\" = ?3 WHERE \"ref\" = ?2"
        );
        assert_eq!(
            sql.select_all,
            "SELECT \"name\", \"ref\", \"age\" FROM \"people\" ORDER BY \"ref\""
        );
    }

    #[test]
    fn indexes_follow_the_lookups() {
        let sql = statements_of(
            "#[sharded(index(author, created))]
            #[sharded(index(r#type))]
            struct Post {
                #[primary_key] id: i64,
                #[lookup] slug: String,
                #[sharded(index, rename = \"writer\")] author: String,
                #[sharded(index, json)] tags: Vec<String>,
                created: u64,
                r#type: String,
            }",
        );
        assert_eq!(
            sql.create[1..],
            [
                "CREATE UNIQUE INDEX IF NOT EXISTS \"posts_slug_key\" ON \"posts\" (\"slug\")",
                "CREATE INDEX IF NOT EXISTS \"posts_writer_idx\" ON \"posts\" (\"writer\")",
                "CREATE INDEX IF NOT EXISTS \"posts_tags_idx\" ON \"posts\" (\"tags\")",
                "CREATE INDEX IF NOT EXISTS \"posts_writer_created_idx\" ON \"posts\" (\"writer\", \"created\")",
                "CREATE INDEX IF NOT EXISTS \"posts_type_idx\" ON \"posts\" (\"type\")",
            ]
        );
    }

    #[test]
    fn key_only_table() {
        let sql =
            statements_of("struct Tag { #[primary_key] name: String, #[sharded(skip)] hits: u8 }");
        assert_eq!(sql.insert, "INSERT INTO \"tags\" (\"name\") VALUES (?1)");
        assert_eq!(
            sql.update,
            "UPDATE \"tags\" SET \"name\" = ?1 WHERE \"name\" = ?1"
        );
    }
}
