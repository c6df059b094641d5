#![doc = include_str!("doc.md")]
//!
//! # Implementation
//!
//! Parse (`ast`, `attr`) → validate (`valid`, with the type mapping in `ty`)
//! → expand (`expand`, with the SQL text in `sql`). Errors are collected in a
//! `ctxt::Ctxt` rather than returned at the first one.

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
    expand::derive(&input).into()
}
