//! Parsing of the derive's attributes: `#[sharded(...)]` on the struct, and
//! `#[primary_key]`, `#[lookup]` and `#[sharded(...)]` on fields.
//!
//! Parsing only records what was written (with the tokens, for spans) and
//! reports malformed or unknown attributes; whether the combination makes
//! sense is for `valid`.

use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Meta, Path, Token};

use crate::ctxt::Ctxt;

/// The message for a `sharded(...)` key that is not one of ours.
fn unknown_key(path: &Path) -> String {
    let name = path.to_token_stream().to_string().replace(' ', "");
    format!(
        "unknown sharded attribute `{name}`; expected one of: table (on the struct), rename, skip, json (on fields)"
    )
}

/// The attributes of the struct itself.
pub struct Container {
    /// `#[sharded(table = "...")]`.
    pub table: Option<LitStr>,
}

impl Container {
    /// Parses the struct's attributes, recording errors in `cx`.
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute]) -> Self {
        let mut table = None;
        for attr in attrs {
            if attr.path().is_ident("sharded") {
                let parsed = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("table") {
                        let value = string_value(cx, &meta, "table = \"users\"")?;
                        set_once(cx, &mut table, &meta.path, value);
                    } else if ["rename", "skip", "json"]
                        .iter()
                        .any(|key| meta.path.is_ident(key))
                    {
                        let key = meta.path.to_token_stream();
                        cx.error_spanned_by(
                            &meta.path,
                            format!("`{key}` goes on a field, not on the struct"),
                        );
                        skip_value(&meta)?;
                    } else {
                        cx.error_spanned_by(&meta.path, unknown_key(&meta.path));
                        skip_value(&meta)?;
                    }
                    Ok(())
                });
                if let Err(error) = parsed {
                    cx.syn_error(error);
                }
            } else if attr.path().is_ident("primary_key") || attr.path().is_ident("lookup") {
                let name = attr.path().to_token_stream();
                cx.error_spanned_by(
                    attr,
                    format!("`#[{name}]` goes on a field, not on the struct"),
                );
            }
        }
        Container {
            table: table.flatten(),
        }
    }
}

/// The attributes of one field.
pub struct Field<'a> {
    /// `#[primary_key]`.
    pub primary_key: Option<&'a Attribute>,
    /// `#[lookup]`.
    pub lookup: Option<&'a Attribute>,
    /// `#[sharded(rename = "...")]`.
    pub rename: Option<LitStr>,
    /// `#[sharded(skip)]`: the key's path, for spans.
    pub skip: Option<Path>,
    /// `#[sharded(json)]`: the key's path, for spans.
    pub json: Option<Path>,
}

impl<'a> Field<'a> {
    /// Parses a field's attributes, recording errors in `cx`.
    pub fn from_ast(cx: &Ctxt, attrs: &'a [Attribute]) -> Self {
        let mut primary_key = None;
        let mut lookup = None;
        let mut rename = None;
        let mut skip = None;
        let mut json = None;
        for attr in attrs {
            if attr.path().is_ident("primary_key") {
                marker(cx, &mut primary_key, attr);
            } else if attr.path().is_ident("lookup") {
                marker(cx, &mut lookup, attr);
            } else if attr.path().is_ident("sharded") {
                let parsed = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("rename") {
                        let value = string_value(cx, &meta, "rename = \"column\"")?;
                        set_once(cx, &mut rename, &meta.path, value);
                    } else if meta.path.is_ident("skip") {
                        flag(cx, &meta)?;
                        set_once(cx, &mut skip, &meta.path, meta.path.clone());
                    } else if meta.path.is_ident("json") {
                        flag(cx, &meta)?;
                        set_once(cx, &mut json, &meta.path, meta.path.clone());
                    } else if meta.path.is_ident("table") {
                        cx.error_spanned_by(
                            &meta.path,
                            "`table` goes on the struct, not on a field",
                        );
                        skip_value(&meta)?;
                    } else {
                        cx.error_spanned_by(&meta.path, unknown_key(&meta.path));
                        skip_value(&meta)?;
                    }
                    Ok(())
                });
                if let Err(error) = parsed {
                    cx.syn_error(error);
                }
            }
        }
        Field {
            primary_key,
            lookup,
            rename: rename.flatten(),
            skip,
            json,
        }
    }
}

/// Records a bare marker attribute (`#[primary_key]`, `#[lookup]`), rejecting
/// arguments and repeats.
fn marker<'a>(cx: &Ctxt, slot: &mut Option<&'a Attribute>, attr: &'a Attribute) {
    let name = attr.path().to_token_stream();
    if !matches!(attr.meta, Meta::Path(_)) {
        cx.error_spanned_by(
            &attr.meta,
            format!("`#[{name}]` takes no arguments: write `#[{name}]`"),
        );
    }
    if slot.is_some() {
        cx.error_spanned_by(attr, format!("duplicate `#[{name}]` on this field"));
    } else {
        *slot = Some(attr);
    }
}

/// Stores the first value of a key and reports any repeat.
fn set_once<T>(cx: &Ctxt, slot: &mut Option<T>, path: &Path, value: T) {
    if slot.is_some() {
        let key = path.to_token_stream();
        cx.error_spanned_by(path, format!("duplicate `{key}` in #[sharded(...)]"));
    } else {
        *slot = Some(value);
    }
}

/// Parses `key = "literal"`. A value that is not a string literal is reported
/// (and `None` returned) without aborting the rest of the attribute.
fn string_value(cx: &Ctxt, meta: &ParseNestedMeta, example: &str) -> syn::Result<Option<LitStr>> {
    let expr: Expr = meta.value()?.parse()?;
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => Ok(Some(lit)),
        other => {
            cx.error_spanned_by(
                other,
                format!("expected a string literal, as in `{example}`"),
            );
            Ok(None)
        }
    }
}

/// Checks that a flag key (`skip`, `json`) has no value.
fn flag(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.is_empty() || meta.input.peek(Token![,]) {
        return Ok(());
    }
    let key = meta.path.to_token_stream();
    cx.error_spanned_by(
        &meta.path,
        format!("`{key}` takes no value: write `#[sharded({key})]`"),
    );
    skip_value(meta)
}

/// Consumes the value of a key that was already reported, so parsing can go
/// on to the next key and report its errors too.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}
