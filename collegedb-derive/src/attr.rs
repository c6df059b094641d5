//! Parsing of the derives' attributes: `#[sharded(...)]` on the struct, and
//! `#[primary_key]`, `#[lookup]` and `#[sharded(...)]` on fields.
//!
//! Parsing only records what was written (with the tokens, for spans) and
//! reports malformed or unknown attributes, attributes in the wrong place,
//! and attributes `#[derive(FromRow)]` does not take; whether the
//! combination makes sense is for `valid`.

use proc_macro2::{Delimiter, Group};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, LitStr, Meta, Path, Token};

use crate::ctxt::Ctxt;

/// Which derive is expanding: they share the parsing and validation, and
/// differ in the attributes they take and in what they generate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Derive {
    /// `#[derive(Sharded)]`: a model with its table.
    Sharded,
    /// `#[derive(FromRow)]`: a plain struct a query selects into.
    FromRow,
}

impl Derive {
    /// The derive as written, for messages: `#[derive(Sharded)]`.
    pub fn attribute(self) -> &'static str {
        match self {
            Derive::Sharded => "#[derive(Sharded)]",
            Derive::FromRow => "#[derive(FromRow)]",
        }
    }
}

/// Where an attribute is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Struct,
    Field,
}

/// A key of `#[sharded(...)]`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Table,
    Rename,
    Skip,
    Json,
    Index,
}

impl Key {
    /// Every key, in the order messages list them.
    const ALL: [Key; 5] = [Key::Table, Key::Rename, Key::Skip, Key::Json, Key::Index];

    fn name(self) -> &'static str {
        match self {
            Key::Table => "table",
            Key::Rename => "rename",
            Key::Skip => "skip",
            Key::Json => "json",
            Key::Index => "index",
        }
    }

    /// Whether the key may be written in `place`. `index` goes in both, in
    /// different forms.
    fn goes_on(self, place: Place) -> bool {
        match self {
            Key::Table => place == Place::Struct,
            Key::Rename | Key::Skip | Key::Json => place == Place::Field,
            Key::Index => true,
        }
    }

    /// Whether `derive` takes the key: a `#[derive(FromRow)]` struct has no
    /// table, so it only names and decodes columns.
    fn taken_by(self, derive: Derive) -> bool {
        derive == Derive::Sharded || matches!(self, Key::Rename | Key::Json)
    }
}

/// The message for a `sharded(...)` key that is not one of ours.
fn unknown_key(path: &Path, derive: Derive) -> String {
    let name = path.to_token_stream().to_string().replace(' ', "");
    let groups: Vec<String> = [
        (Place::Struct, "on the struct"),
        (Place::Field, "on fields"),
    ]
    .into_iter()
    .filter_map(|(place, label)| {
        let keys: Vec<&str> = Key::ALL
            .into_iter()
            .filter(|key| key.goes_on(place) && key.taken_by(derive))
            .map(Key::name)
            .collect();
        (!keys.is_empty()).then(|| format!("{} ({label})", keys.join(", ")))
    })
    .collect();
    format!(
        "unknown sharded attribute `{name}`; expected one of: {}",
        groups.join(", ")
    )
}

/// The message for an attribute that only `#[derive(Sharded)]` takes, used
/// on a `#[derive(FromRow)]` struct; `what` is the attribute, quoted.
fn sharded_only(what: &str) -> String {
    format!(
        "{what} belongs on #[derive(Sharded)] models; #[derive(FromRow)] takes only \
         #[sharded(rename = \"...\")] and #[sharded(json)], on fields"
    )
}

/// The key `path` names, if it is one of ours that `derive` takes in
/// `place`; otherwise reports why not (the caller skips its value).
fn accept(cx: &Ctxt, derive: Derive, place: Place, path: &Path) -> Option<Key> {
    let Some(key) = Key::ALL.into_iter().find(|key| path.is_ident(key.name())) else {
        cx.error_spanned_by(path, unknown_key(path, derive));
        return None;
    };
    let name = key.name();
    if !key.taken_by(derive) {
        cx.error_spanned_by(path, sharded_only(&format!("`{name}`")));
        None
    } else if !key.goes_on(place) {
        let message = match place {
            Place::Struct => format!("`{name}` goes on a field, not on the struct"),
            Place::Field => format!("`{name}` goes on the struct, not on a field"),
        };
        cx.error_spanned_by(path, message);
        None
    } else {
        Some(key)
    }
}

/// The attributes of the struct itself.
pub struct Container {
    /// `#[sharded(table = "...")]`.
    pub table: Option<LitStr>,
    /// Each `#[sharded(index(...))]`, in source order.
    pub indexes: Vec<Index>,
}

/// A struct-level `#[sharded(index(field_a, field_b))]`.
pub struct Index {
    /// `index(...)` with the span of its parentheses, for errors about the
    /// whole index: its tokens span from `index` to `)`.
    pub tokens: proc_macro2::TokenStream,
    /// The fields, as written (not yet checked).
    pub fields: Vec<Ident>,
}

impl Container {
    /// Parses the struct's attributes, recording errors in `cx`.
    pub fn from_ast(cx: &Ctxt, attrs: &[Attribute], derive: Derive) -> Self {
        let mut table = None;
        let mut indexes = Vec::new();
        for attr in attrs {
            if attr.path().is_ident("sharded") {
                let parsed = attr.parse_nested_meta(|meta| {
                    match accept(cx, derive, Place::Struct, &meta.path) {
                        Some(Key::Table) => {
                            let value = string_value(cx, &meta, "table = \"users\"")?;
                            set_once(cx, &mut table, &meta.path, value);
                        }
                        Some(Key::Index) => indexes.extend(index_list(cx, &meta)?),
                        _ => skip_value(&meta)?,
                    }
                    Ok(())
                });
                if let Err(error) = parsed {
                    cx.syn_error(error);
                }
            } else if attr.path().is_ident("primary_key") || attr.path().is_ident("lookup") {
                let name = attr.path().to_token_stream();
                let message = match derive {
                    Derive::Sharded => format!("`#[{name}]` goes on a field, not on the struct"),
                    Derive::FromRow => sharded_only(&format!("`#[{name}]`")),
                };
                cx.error_spanned_by(attr, message);
            }
        }
        Container {
            table: table.flatten(),
            indexes,
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
    /// `#[sharded(index)]`: the key's path, for spans.
    pub index: Option<Path>,
}

impl<'a> Field<'a> {
    /// Parses a field's attributes, recording errors in `cx`.
    pub fn from_ast(cx: &Ctxt, attrs: &'a [Attribute], derive: Derive) -> Self {
        let mut primary_key = None;
        let mut lookup = None;
        let mut rename = None;
        let mut skip = None;
        let mut json = None;
        let mut index = None;
        for attr in attrs {
            let slot = if attr.path().is_ident("primary_key") {
                Some(&mut primary_key)
            } else if attr.path().is_ident("lookup") {
                Some(&mut lookup)
            } else {
                None
            };
            if let Some(slot) = slot {
                match derive {
                    Derive::Sharded => marker(cx, slot, attr),
                    Derive::FromRow => {
                        let name = attr.path().to_token_stream();
                        cx.error_spanned_by(attr, sharded_only(&format!("`#[{name}]`")));
                    }
                }
            } else if attr.path().is_ident("sharded") {
                let parsed = attr.parse_nested_meta(|meta| {
                    match accept(cx, derive, Place::Field, &meta.path) {
                        Some(Key::Rename) => {
                            let value = string_value(cx, &meta, "rename = \"column\"")?;
                            set_once(cx, &mut rename, &meta.path, value);
                        }
                        Some(Key::Skip) => {
                            flag(cx, &meta)?;
                            set_once(cx, &mut skip, &meta.path, meta.path.clone());
                        }
                        Some(Key::Json) => {
                            flag(cx, &meta)?;
                            set_once(cx, &mut json, &meta.path, meta.path.clone());
                        }
                        Some(Key::Index) if meta.input.peek(syn::token::Paren) => {
                            cx.error_spanned_by(
                                &meta.path,
                                "`index(...)` lists fields and goes on the struct; \
                                 to index this field alone, write `#[sharded(index)]`",
                            );
                            skip_value(&meta)?;
                        }
                        Some(Key::Index) => {
                            flag(cx, &meta)?;
                            set_once(cx, &mut index, &meta.path, meta.path.clone());
                        }
                        Some(Key::Table) | None => skip_value(&meta)?,
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
            index,
        }
    }
}

/// Parses the struct-level `index(field_a, ..)`, or reports another form.
/// The list is only parsed here: `valid` checks the fields.
fn index_list(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<Option<Index>> {
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &meta.path,
            "on the struct, `index` lists the fields to index together, as in \
             `#[sharded(index(field_a, field_b))]`; to index one field, put `#[sharded(index)]` on it",
        );
        skip_value(meta)?;
        return Ok(None);
    }
    let mut parens = Group::new(Delimiter::Parenthesis, proc_macro2::TokenStream::new());
    if let Some((_, span, _)) = meta.input.cursor().group(Delimiter::Parenthesis) {
        parens.set_span(span.join());
    }
    let content;
    syn::parenthesized!(content in meta.input);
    // `parse_any`: a field named `r#type` may be listed as `type`.
    let fields = Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
    let key = &meta.path;
    Ok(Some(Index {
        tokens: quote::quote!(#key #parens),
        fields: fields.into_iter().collect(),
    }))
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

/// Checks that a flag key (`skip`, `json`, `index` on a field) has no value.
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
