//! Validation: checks the parsed input against the derive's rules, reporting
//! every violation, and builds the [`Model`] that expansion turns into code.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;

use crate::ast::{Field, Input};
use crate::ctxt::Ctxt;
use crate::ty::{self, Mapped, Scalar};

/// A struct that passed validation, resolved into a table.
pub struct Model<'a> {
    /// The struct's name.
    pub ident: &'a syn::Ident,
    /// The table name.
    pub table: String,
    /// The stored fields, in declaration order: the `COLUMNS` order.
    pub columns: Vec<Column<'a>>,
    /// The `#[sharded(skip)]` fields.
    pub skipped: Vec<&'a Field<'a>>,
    /// The primary key's index in `columns`.
    pub primary_key: usize,
    /// The `#[lookup]` columns' indices in `columns`, in declaration order.
    pub lookups: Vec<usize>,
}

/// A stored field.
pub struct Column<'a> {
    /// The field.
    pub field: &'a Field<'a>,
    /// The column name: the rename, or the field's name.
    pub name: String,
    /// How the value is stored.
    pub storage: Storage,
}

/// How a column stores its field.
#[derive(Clone, Copy)]
pub enum Storage {
    /// Natively, through `SqlField`.
    Native(Mapped),
    /// As JSON text (`#[sharded(json)]`).
    Json,
}

impl Storage {
    /// The SQLite type name of the column.
    pub fn sql_type(self) -> &'static str {
        match self {
            Storage::Native(mapped) => mapped.scalar.sql_type(),
            Storage::Json => "TEXT",
        }
    }

    /// Whether the column accepts NULL.
    pub fn nullable(self) -> bool {
        matches!(self, Storage::Native(Mapped { nullable: true, .. }))
    }
}

const KEY_TYPES: &str = "a `String` or an integer type (i8, i16, i32, i64, u8, u16, u32, u64)";

/// Validates `input`, recording every error in `cx`. Returns the model when
/// the input was complete enough to build one; it is only meaningful when no
/// error was recorded, and whenever it is `None` an error was.
pub fn check<'a>(cx: &Ctxt, input: &'a Input<'a>) -> Option<Model<'a>> {
    let generics = &input.original.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            generics,
            "#[derive(Sharded)] does not support generic structs: remove the lifetime and type parameters",
        );
    }
    let table = table_name(cx, input);
    let fields = input.fields.as_ref()?;

    let mut columns = Vec::new();
    let mut skipped = Vec::new();
    let mut primary_key = None;
    let mut primary_key_field: Option<&Field> = None;
    let mut lookups = Vec::new();
    // Keyed by the lowercased name: SQLite column names are case-insensitive.
    let mut seen: HashMap<String, usize> = HashMap::new();

    for field in fields {
        check_conflicts(cx, field);
        let is_primary_key = match (field.attrs.primary_key, primary_key_field) {
            (None, _) => false,
            (Some(attr), Some(first)) => {
                cx.error_spanned_by(
                    attr,
                    format!(
                        "only one field can be the #[primary_key], and `{}` already is",
                        first.ident.unraw()
                    ),
                );
                false
            }
            (Some(_), None) => {
                primary_key_field = Some(field);
                true
            }
        };
        if field.attrs.skip.is_some() {
            skipped.push(field);
            continue;
        }

        let (name, name_tokens) = match &field.attrs.rename {
            Some(rename) => (rename.value(), rename.to_token_stream()),
            None => (
                field.ident.unraw().to_string(),
                field.ident.to_token_stream(),
            ),
        };
        if let Err(reason) = check_identifier(&name) {
            let hint = if field.attrs.rename.is_none() {
                "; choose a valid name with #[sharded(rename = \"...\")]"
            } else {
                ""
            };
            cx.error_spanned_by(
                &name_tokens,
                format!("invalid column name `{name}`: {reason}{hint}"),
            );
        }
        if let Some(&other) = seen.get(&name.to_ascii_lowercase()) {
            duplicate_column(cx, &name, name_tokens, &columns[other]);
        } else {
            seen.insert(name.to_ascii_lowercase(), columns.len());
        }

        let is_lookup = field.attrs.lookup.is_some();
        let storage = if field.attrs.json.is_some() {
            Storage::Json
        } else if is_primary_key || is_lookup {
            match key_type(cx, field, is_primary_key) {
                Some(mapped) => Storage::Native(mapped),
                None => continue,
            }
        } else {
            match ty::classify(field.ty) {
                Some(mapped) => Storage::Native(mapped),
                None => {
                    cx.error_spanned_by(
                        field.ty,
                        "unsupported field type: a stored field must be String, i8..i64, u8..u64, bool, f32, f64, Vec<u8> or an Option of one of them; \
                         add #[sharded(json)] to store it as JSON text, or #[sharded(skip)] to not store it",
                    );
                    continue;
                }
            }
        };
        if is_primary_key {
            primary_key = Some(columns.len());
        }
        if is_lookup {
            lookups.push(columns.len());
        }
        columns.push(Column {
            field,
            name,
            storage,
        });
    }

    if primary_key_field.is_none() {
        cx.error_spanned_by(
            input.ident,
            format!(
                "`{}` has no primary key: mark one field with #[primary_key]",
                input.ident.unraw()
            ),
        );
    }
    Some(Model {
        ident: input.ident,
        table,
        columns,
        skipped,
        primary_key: primary_key?,
        lookups,
    })
}

/// The table name, validated: the `table` override or the default rule.
fn table_name(cx: &Ctxt, input: &Input) -> String {
    match &input.attrs.table {
        Some(lit) => {
            let name = lit.value();
            if let Err(reason) = check_identifier(&name) {
                cx.error_spanned_by(lit, format!("invalid table name `{name}`: {reason}"));
            }
            name
        }
        None => {
            let name = default_table_name(&input.ident.unraw().to_string());
            if let Err(reason) = check_identifier(&name) {
                cx.error_spanned_by(
                    input.ident,
                    format!(
                        "invalid table name `{name}` (derived from the struct name): {reason}; \
                         choose one with #[sharded(table = \"...\")]"
                    ),
                );
            }
            name
        }
    }
}

/// Reports attribute combinations that contradict each other, on the
/// attribute that comes second in the table below.
fn check_conflicts(cx: &Ctxt, field: &Field) {
    let attrs = &field.attrs;
    if let (Some(_), Some(lookup)) = (attrs.primary_key, attrs.lookup) {
        cx.error_spanned_by(
            lookup,
            "a field cannot be both #[primary_key] and #[lookup]: the primary key is already unique",
        );
    }
    if let Some(skip) = &attrs.skip {
        if attrs.primary_key.is_some() {
            cx.error_spanned_by(
                skip,
                "#[sharded(skip)] cannot be used on the #[primary_key]: the primary key is always stored",
            );
        }
        if attrs.lookup.is_some() {
            cx.error_spanned_by(
                skip,
                "#[sharded(skip)] cannot be used on a #[lookup] field: lookups are stored columns",
            );
        }
        if let Some(json) = &attrs.json {
            cx.error_spanned_by(
                json,
                "`skip` and `json` cannot be combined: a skipped field is not stored at all",
            );
        }
        if let Some(rename) = &attrs.rename {
            cx.error_spanned_by(
                rename,
                "`rename` has no effect on a skipped field, which has no column",
            );
        }
    }
    if let Some(json) = &attrs.json {
        if attrs.primary_key.is_some() {
            cx.error_spanned_by(
                json,
                format!(
                    "#[sharded(json)] cannot be used on the #[primary_key]: it must be {KEY_TYPES}"
                ),
            );
        }
        if attrs.lookup.is_some() {
            cx.error_spanned_by(
                json,
                format!(
                    "#[sharded(json)] cannot be used on a #[lookup] field: it must be {KEY_TYPES}"
                ),
            );
        }
    }
}

/// The mapping of a primary key or lookup field, which must be a
/// non-optional `String` or integer.
fn key_type(cx: &Ctxt, field: &Field, is_primary_key: bool) -> Option<Mapped> {
    let what = if is_primary_key {
        "the #[primary_key]"
    } else {
        "a #[lookup] field"
    };
    if ty::option_inner(field.ty).is_some() {
        let why = if is_primary_key {
            "every row needs a key"
        } else {
            "lookups must be non-optional"
        };
        cx.error_spanned_by(
            field.ty,
            format!("{what} cannot be an `Option`: {why}; make it {KEY_TYPES}"),
        );
        return None;
    }
    match ty::classify(field.ty) {
        Some(
            mapped @ Mapped {
                scalar: Scalar::Text | Scalar::Integer,
                nullable: false,
            },
        ) => Some(mapped),
        _ => {
            cx.error_spanned_by(field.ty, format!("{what} must be {KEY_TYPES}"));
            None
        }
    }
}

fn duplicate_column(cx: &Ctxt, name: &str, tokens: TokenStream, other: &Column) {
    let case = if other.name == name {
        ""
    } else {
        " (SQLite column names are case-insensitive)"
    };
    cx.error_spanned_by(
        tokens,
        format!(
            "duplicate column `{name}`: field `{}` is already stored as `{}`{case}; \
             give one of them another name with #[sharded(rename = \"...\")]",
            other.field.ident.unraw(),
            other.name,
        ),
    );
}

/// Checks a table or column name: `^[A-Za-z_][A-Za-z0-9_]*$`, at most 64
/// bytes, and not in SQLite's reserved `sqlite_` namespace. Names are always
/// double-quoted in the generated SQL, so SQL keywords are fine.
fn check_identifier(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let valid_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !valid_start || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Err("a name must start with an ASCII letter or `_` and hold only ASCII letters, digits and `_`")
    } else if name.len() > 64 {
        Err("a name must be at most 64 bytes long")
    } else if name
        .get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("sqlite_"))
    {
        Err("names starting with `sqlite_` are reserved by SQLite")
    } else {
        Ok(())
    }
}

/// The default table name of a struct: its name in snake_case, pluralized
/// by adding `es` after a final `s`, `x`, `ch` or `sh`, and `s` otherwise.
fn default_table_name(struct_name: &str) -> String {
    let mut snake = String::with_capacity(struct_name.len() + 4);
    let chars: Vec<char> = struct_name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() && i > 0 {
            let previous = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // A word starts after a lowercase letter or digit (`blogPost`, `v2Post`),
            // and at the last capital of an acronym (`HTTPRequest`).
            if previous.is_lowercase()
                || previous.is_ascii_digit()
                || (previous.is_uppercase() && next_is_lower)
            {
                snake.push('_');
            }
        }
        snake.extend(c.to_lowercase());
    }
    let plural = if ["s", "x", "ch", "sh"]
        .iter()
        .any(|end| snake.ends_with(end))
    {
        "es"
    } else {
        "s"
    };
    snake + plural
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_names() {
        for (name, table) in [
            ("User", "users"),
            ("BlogPost", "blog_posts"),
            ("Address", "addresses"),
            ("Box", "boxes"),
            ("Match", "matches"),
            ("Wish", "wishes"),
            ("Day", "days"),
            ("HTTPRequest", "http_requests"),
            ("OAuthToken", "o_auth_tokens"),
            ("Post2Tag", "post2_tags"),
            ("user", "users"),
            ("Blog_Post", "blog_posts"),
        ] {
            assert_eq!(default_table_name(name), table, "{name}");
        }
    }

    #[test]
    fn identifiers() {
        for ok in ["users", "_x", "A1_b", &"a".repeat(64), "sqlite", "select"] {
            assert_eq!(check_identifier(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1users",
            "my-table",
            "my table",
            "naïve",
            "a\"b",
            &"a".repeat(65),
            "sqlite_master",
            "SQLite_stat1",
        ] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }
}
