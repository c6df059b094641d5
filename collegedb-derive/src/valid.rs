//! Validation: checks the parsed input against the derives' rules, reporting
//! every violation, and builds the [`Model`] (or, for `#[derive(FromRow)]`,
//! the [`Selection`]) that expansion turns into code.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::Ident;

use crate::ast::{Derive, Field, Input};
use crate::ctxt::Ctxt;
use crate::ty::{self, Mapped, Scalar};

/// A struct that passed validation, resolved into a table.
pub struct Model<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
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
    /// The (non-unique) indexes, each as its columns' indices in `columns`:
    /// the `#[sharded(index)]` fields in declaration order, then each
    /// struct-level `index(...)` in source order.
    pub indexes: Vec<Vec<usize>>,
}

/// A `#[derive(FromRow)]` struct that passed validation.
pub struct Selection<'a> {
    /// The struct's name.
    pub ident: &'a Ident,
    /// Its fields, in declaration order: the `COLUMNS` order.
    pub columns: Vec<Column<'a>>,
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

/// What a stored field is to its table; keys have narrower types.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Plain,
    PrimaryKey,
    Lookup,
}

/// The columns of a struct, built field by field.
struct Columns<'a> {
    /// For the messages: a model stores its fields, a selection reads them.
    derive: Derive,
    list: Vec<Column<'a>>,
    /// Each column's position in `list`, keyed by its lowercased name:
    /// SQLite column names are case-insensitive.
    seen: HashMap<String, usize>,
}

impl<'a> Columns<'a> {
    fn new(derive: Derive) -> Self {
        Columns {
            derive,
            list: Vec::new(),
            seen: HashMap::new(),
        }
    }

    /// Adds `field`'s column and returns its position, reporting an invalid
    /// or repeated name and a type without a mapping. A field whose type is
    /// the mistake is left out (`None`), so nothing is generated from it.
    fn push(&mut self, cx: &Ctxt, field: &'a Field<'a>, role: Role) -> Option<usize> {
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
        let duplicate = self.seen.get(&name.to_ascii_lowercase()).copied();
        if let Some(other) = duplicate {
            duplicate_column(cx, self.derive, &name, name_tokens, &self.list[other]);
        }

        let storage = if field.attrs.json.is_some() {
            Storage::Json
        } else if role != Role::Plain {
            Storage::Native(key_type(cx, field, role == Role::PrimaryKey)?)
        } else {
            let Some(mapped) = ty::classify(field.ty) else {
                let (what, fix) = match self.derive {
                    Derive::Sharded => (
                        "a stored field",
                        "add #[sharded(json)] to store it as JSON text, or #[sharded(skip)] to not store it",
                    ),
                    Derive::FromRow => ("a field", "add #[sharded(json)] to read it from JSON text"),
                };
                cx.error_spanned_by(
                    field.ty,
                    format!(
                        "unsupported field type: {what} must be String, i8..i64, u8..u64, bool, f32, f64, Vec<u8> \
                         or an Option of one of them; {fix}"
                    ),
                );
                return None;
            };
            Storage::Native(mapped)
        };
        let position = self.list.len();
        if duplicate.is_none() {
            self.seen.insert(name.to_ascii_lowercase(), position);
        }
        self.list.push(Column {
            field,
            name,
            storage,
        });
        Some(position)
    }
}

/// Validates a `#[derive(Sharded)]` input, recording every error in `cx`.
/// Returns the model when the input was complete enough to build one; it is
/// only meaningful when no error was recorded, and whenever it is `None` an
/// error was.
pub fn check<'a>(cx: &Ctxt, input: &'a Input<'a>) -> Option<Model<'a>> {
    check_generics(cx, input);
    let table = table_name(cx, input);
    let fields = input.fields.as_ref()?;

    let mut columns = Columns::new(input.derive);
    let mut skipped = Vec::new();
    let mut primary_key = None;
    let mut primary_key_field: Option<&Field> = None;
    let mut lookups = Vec::new();

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
        let role = if is_primary_key {
            Role::PrimaryKey
        } else if field.attrs.lookup.is_some() {
            Role::Lookup
        } else {
            Role::Plain
        };
        match (role, columns.push(cx, field, role)) {
            (_, None) | (Role::Plain, _) => {}
            (Role::PrimaryKey, position) => primary_key = position,
            (Role::Lookup, Some(position)) => lookups.push(position),
        }
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
    check_handles(cx, input.ident, &columns.list);
    let indexes = Indexes {
        cx,
        input,
        table: &table,
        columns: &columns.list,
        primary_key,
        lookups: &lookups,
    }
    .check();
    Some(Model {
        ident: input.ident,
        table,
        columns: columns.list,
        skipped,
        primary_key: primary_key?,
        lookups,
        indexes,
    })
}

/// Validates a `#[derive(FromRow)]` input, recording every error in `cx`;
/// as [`check`] for a model. Parsing already refused the attributes that
/// only models take.
pub fn check_selection<'a>(cx: &Ctxt, input: &'a Input<'a>) -> Option<Selection<'a>> {
    check_generics(cx, input);
    let fields = input.fields.as_ref()?;
    if fields.is_empty() {
        cx.error_spanned_by(
            input.ident,
            "#[derive(FromRow)] needs at least one field: a query cannot select no columns",
        );
    }
    let mut columns = Columns::new(input.derive);
    for field in fields {
        columns.push(cx, field, Role::Plain);
    }
    Some(Selection {
        ident: input.ident,
        columns: columns.list,
    })
}

fn check_generics(cx: &Ctxt, input: &Input) {
    let generics = &input.original.generics;
    if !generics.params.is_empty() {
        cx.error_spanned_by(
            generics,
            format!(
                "{} does not support generic structs: remove the lifetime and type parameters",
                input.derive.attribute()
            ),
        );
    }
}

/// The column handle of a field: its name, without `r#`, in capitals
/// (`age` → `AGE`), spanned on the field; `None` if that is no identifier.
pub fn handle(field: &Ident) -> Option<Ident> {
    let name = field.unraw().to_string().to_uppercase();
    syn::parse_str::<Ident>(&name).ok()?;
    Some(Ident::new(&name, field.span()))
}

/// Reports fields whose handles would be the same constant (`aB` and `ab`
/// are both `AB`), on the second, and fields without a handle name.
fn check_handles(cx: &Ctxt, ident: &Ident, columns: &[Column]) {
    let mut seen: HashMap<String, &Ident> = HashMap::new();
    for column in columns {
        let field = column.field.ident;
        let Some(handle) = handle(field) else {
            cx.error_spanned_by(
                field,
                format!(
                    "field `{}` has no column handle: `{}` is not an identifier; rename the field",
                    field.unraw(),
                    field.unraw().to_string().to_uppercase()
                ),
            );
            continue;
        };
        if let Some(first) = seen.get(&handle.to_string()) {
            cx.error_spanned_by(
                field,
                format!(
                    "fields `{}` and `{}` would both have the column handle `{}::{handle}`: rename one of them",
                    first.unraw(),
                    field.unraw(),
                    ident.unraw(),
                ),
            );
        } else {
            seen.insert(handle.to_string(), field);
        }
    }
}

/// Where an index was declared, for messages about it.
enum Declared<'a> {
    /// `#[sharded(index)]` on this field.
    Field(&'a Ident),
    /// A struct-level `index(...)` of these fields.
    Struct(&'a [Ident]),
}

impl std::fmt::Display for Declared<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Declared::Field(field) => write!(f, "#[sharded(index)] on field `{}`", field.unraw()),
            Declared::Struct(fields) => {
                let fields: Vec<String> = fields.iter().map(|f| f.unraw().to_string()).collect();
                write!(f, "#[sharded(index({}))]", fields.join(", "))
            }
        }
    }
}

/// What the index checks need of the model being validated.
struct Indexes<'a, 'm> {
    cx: &'m Ctxt,
    input: &'a Input<'a>,
    table: &'m str,
    columns: &'m [Column<'a>],
    primary_key: Option<usize>,
    lookups: &'m [usize],
}

impl<'a> Indexes<'a, '_> {
    /// Resolves every index to its columns, reporting the mistakes of each.
    /// Conflicts of `#[sharded(index)]` with other field attributes are
    /// `check_conflicts`'s; an index naming a field whose type was refused
    /// is dropped without a word, the type's error being the one to fix.
    fn check(&self) -> Vec<Vec<usize>> {
        let mut declared: Vec<(Vec<usize>, Declared, String)> = Vec::new();
        let fields = self.input.fields.iter().flatten();
        for field in fields {
            let attrs = &field.attrs;
            let (Some(key), None, None, None) =
                (&attrs.index, attrs.primary_key, attrs.lookup, &attrs.skip)
            else {
                continue;
            };
            if let Some(position) = self.position(field) {
                let key = key.to_token_stream();
                self.add(
                    &mut declared,
                    vec![position],
                    Declared::Field(field.ident),
                    &key,
                );
            }
        }
        for index in &self.input.attrs.indexes {
            if let Some(columns) = self.resolve(index) {
                self.add(
                    &mut declared,
                    columns,
                    Declared::Struct(&index.fields),
                    &index.tokens,
                );
            }
        }
        declared.into_iter().map(|(columns, ..)| columns).collect()
    }

    /// The position in `columns` of `field`'s column, if it has one.
    fn position(&self, field: &Field) -> Option<usize> {
        self.columns
            .iter()
            .position(|column| std::ptr::eq(column.field, field))
    }

    /// The columns of a struct-level `index(...)`, or `None` if it is wrong.
    fn resolve(&self, index: &crate::attr::Index) -> Option<Vec<usize>> {
        let cx = self.cx;
        if index.fields.is_empty() {
            cx.error_spanned_by(
                &index.tokens,
                "an empty `index()` indexes nothing: list the fields to index together, as in `index(author, created_at)`",
            );
            return None;
        }
        let mut columns = Vec::new();
        let mut valid = true;
        for (n, name) in index.fields.iter().enumerate() {
            let unraw = name.unraw();
            if index.fields[..n]
                .iter()
                .any(|earlier| earlier.unraw() == unraw)
            {
                cx.error_spanned_by(
                    name,
                    format!("field `{unraw}` is listed twice in this index"),
                );
                valid = false;
                continue;
            }
            let field = self
                .input
                .fields
                .iter()
                .flatten()
                .find(|field| field.ident.unraw() == unraw);
            match field {
                None => {
                    cx.error_spanned_by(name, self.unknown_field(&unraw));
                    valid = false;
                }
                Some(field) if field.attrs.skip.is_some() => {
                    cx.error_spanned_by(
                        name,
                        format!("field `{unraw}` is #[sharded(skip)]: it has no column to index"),
                    );
                    valid = false;
                }
                Some(field) => match self.position(field) {
                    Some(position) => columns.push(position),
                    None => valid = false,
                },
            }
        }
        if let ([only], [name]) = (columns.as_slice(), index.fields.as_slice()) {
            let unraw = name.unraw();
            if Some(*only) == self.primary_key {
                cx.error_spanned_by(
                    name,
                    format!("`{unraw}` is the #[primary_key], which is already indexed: remove this index"),
                );
                valid = false;
            } else if self.lookups.contains(only) {
                cx.error_spanned_by(
                    name,
                    format!("`{unraw}` is a #[lookup] field, which already has a unique index: remove this index"),
                );
                valid = false;
            }
        }
        valid.then_some(columns)
    }

    /// The message for a name in `index(...)` that is no field's.
    fn unknown_field(&self, name: &Ident) -> String {
        let ident = self.input.ident.unraw();
        let renamed = self.columns.iter().find(|column| *name == column.name);
        match renamed {
            Some(column) => format!(
                "`{ident}` has no field `{name}`: `index(...)` lists field names, and `{name}` is the column of field `{}`",
                column.field.ident.unraw()
            ),
            None => format!("`{ident}` has no field `{name}`"),
        }
    }

    /// Adds an index unless an earlier one has the same columns or the same
    /// name, reporting that on `key`.
    fn add<'d>(
        &self,
        declared: &mut Vec<(Vec<usize>, Declared<'d>, String)>,
        columns: Vec<usize>,
        how: Declared<'d>,
        key: &TokenStream,
    ) {
        let names: Vec<&str> = columns
            .iter()
            .map(|&i| self.columns[i].name.as_str())
            .collect();
        let name = index_name(self.table, &names);
        if let Some((_, earlier, _)) = declared.iter().find(|(other, ..)| *other == columns) {
            let earlier = match earlier {
                Declared::Field(_) => earlier.to_string(),
                Declared::Struct(_) => format!("an earlier {earlier}"),
            };
            self.cx.error_spanned_by(
                key,
                format!("duplicate index: {earlier} already indexes the same columns; remove one of them"),
            );
        } else if let Some((_, earlier, _)) = declared.iter().find(|(.., other)| *other == name) {
            self.cx.error_spanned_by(
                key,
                format!(
                    "this index would have the same name, `{name}`, as the index of {earlier}; \
                     rename one of the columns with #[sharded(rename = \"...\")]"
                ),
            );
        } else {
            declared.push((columns, how, name));
        }
    }
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

/// Reports attribute combinations that contradict each other, each on the
/// attribute named first in its row of the table below.
fn check_conflicts(cx: &Ctxt, field: &Field) {
    let attrs = &field.attrs;
    let primary_key = attrs.primary_key.map(ToTokens::to_token_stream);
    let lookup = attrs.lookup.map(ToTokens::to_token_stream);
    let skip = attrs.skip.as_ref().map(ToTokens::to_token_stream);
    let json = attrs.json.as_ref().map(ToTokens::to_token_stream);
    let rename = attrs.rename.as_ref().map(ToTokens::to_token_stream);
    let index = attrs.index.as_ref().map(ToTokens::to_token_stream);
    // (reported on, together with, message), in the order they are reported.
    let conflicts = [
        (&lookup, &primary_key, "a field cannot be both #[primary_key] and #[lookup]: the primary key is already unique".to_owned()),
        (&skip, &primary_key, "#[sharded(skip)] cannot be used on the #[primary_key]: the primary key is always stored".to_owned()),
        (&skip, &lookup, "#[sharded(skip)] cannot be used on a #[lookup] field: lookups are stored columns".to_owned()),
        (&json, &skip, "`skip` and `json` cannot be combined: a skipped field is not stored at all".to_owned()),
        (&rename, &skip, "`rename` has no effect on a skipped field, which has no column".to_owned()),
        (&index, &skip, "`skip` and `index` cannot be combined: a skipped field has no column to index".to_owned()),
        (&index, &primary_key, "#[sharded(index)] is not needed on the #[primary_key]: the primary key is already indexed".to_owned()),
        (&index, &lookup, "#[sharded(index)] is not needed on a #[lookup] field: it already has a unique index".to_owned()),
        (&json, &primary_key, format!("#[sharded(json)] cannot be used on the #[primary_key]: it must be {KEY_TYPES}")),
        (&json, &lookup, format!("#[sharded(json)] cannot be used on a #[lookup] field: it must be {KEY_TYPES}")),
    ];
    for (on, with, message) in conflicts {
        if let (Some(on), Some(_)) = (on, with) {
            cx.error_spanned_by(on, message);
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

fn duplicate_column(cx: &Ctxt, derive: Derive, name: &str, tokens: TokenStream, other: &Column) {
    let done = match derive {
        Derive::Sharded => "stored as",
        Derive::FromRow => "read from",
    };
    let case = if other.name == name {
        ""
    } else {
        " (SQLite column names are case-insensitive)"
    };
    cx.error_spanned_by(
        tokens,
        format!(
            "duplicate column `{name}`: field `{}` is already {done} `{}`{case}; \
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

/// The name of the (non-unique) index of `table` on `columns`:
/// `<table>_<column>_.._idx`. A lookup's unique index ends in `_key`
/// instead, so the two never clash.
pub fn index_name(table: &str, columns: &[&str]) -> String {
    format!("{table}_{}_idx", columns.join("_"))
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
