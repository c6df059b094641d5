#![doc = include_str!("doc.md")]
//!
//! # Implementation
//!
//! Parse (`ast`, `attr`) → validate (`valid`, with the type mapping in `ty`)
//! → expand (`expand`, with the SQL text in `sql`). Errors are collected in a
//! `ctxt::Ctxt` rather than returned at the first one. `#[derive(FromRow)]`
//! goes through the same steps (`ast::Derive` says which derive it is), with
//! its own entry points in `valid` and `expand`.

mod ast;
mod attr;
mod ctxt;
mod expand;
mod sql;
mod ty;
mod valid;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

#[doc = include_str!("doc.md")]
#[proc_macro_derive(Sharded, attributes(primary_key, lookup, sharded))]
pub fn derive_sharded(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_sharded(&input).into()
}

/// Derives `collegedb::FromRow` and `collegedb::Selection` for a plain
/// struct with named fields, so that a query can select just its columns:
/// `User::query().select::<Summary>()`.
///
/// ```rust,ignore
/// use collegedb::FromRow;
///
/// #[derive(FromRow)]
/// struct Summary {
///     #[sharded(rename = "display_name")]
///     name: String,
///     age: Option<u32>,
///     #[sharded(json)]
///     tags: Vec<String>,
/// }
/// ```
///
/// Each field is a column of the same name (or its `rename`), decoded in
/// field order, with the field types and the `json` storage of
/// `#[derive(Sharded)]`. Only `#[sharded(rename = "...")]` and
/// `#[sharded(json)]` are taken: keys, `skip`, `index` and `table` belong on
/// models. See the `#[derive(FromRow)]` section of `#[derive(Sharded)]`.
//
// `primary_key` and `lookup` are helper attributes here only so that, written
// on such a struct by mistake, they get a message of ours rather than rustc's
// "cannot find attribute".
#[proc_macro_derive(FromRow, attributes(primary_key, lookup, sharded))]
pub fn derive_from_row(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive_from_row(&input).into()
}
