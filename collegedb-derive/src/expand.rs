//! Code generation: for `#[derive(Sharded)]`, the `Model` and `FromRow`
//! impls, the column handles and the typed inherent methods; for
//! `#[derive(FromRow)]`, the `FromRow` and `Selection` impls. When the input
//! has errors: those errors plus a stand-in for all of it.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident};

use crate::ast::{Derive, Field, Input};
use crate::ctxt::Ctxt;
use crate::sql;
use crate::ty::Scalar;
use crate::valid::{self, Column, Model, Selection, Storage};

/// Expands `#[derive(Sharded)]`.
pub fn derive_sharded(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let parsed = Input::from_syn(&cx, input, Derive::Sharded);
    let model = valid::check(&cx, &parsed);
    finish(
        cx,
        || expand(&model.expect("validation reports an error whenever it builds no model")),
        || fallback(&parsed),
    )
}

/// Expands `#[derive(FromRow)]`.
pub fn derive_from_row(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let parsed = Input::from_syn(&cx, input, Derive::FromRow);
    let selection = valid::check_selection(&cx, &parsed);
    finish(
        cx,
        || {
            expand_selection(
                &selection.expect("validation reports an error whenever it builds no selection"),
            )
        },
        || fallback_selection(&parsed),
    )
}

/// The expansion if `cx` holds no error, else the errors and the fallback.
fn finish(
    cx: Ctxt,
    expand: impl FnOnce() -> TokenStream,
    fallback: impl FnOnce() -> TokenStream,
) -> TokenStream {
    match cx.check() {
        Ok(()) => expand(),
        Err(errors) => {
            let mut tokens = errors.to_compile_error();
            tokens.extend(fallback());
            tokens
        }
    }
}

fn expand(model: &Model) -> TokenStream {
    let model_impl = model_impl(model);
    let from_row = from_row_impl(model.ident, &model.table, &model.columns, &model.skipped);
    let methods = methods(model);
    quote! {
        #model_impl
        #from_row
        #methods
    }
}

fn model_impl(model: &Model) -> TokenStream {
    let ident = model.ident;
    let table = &model.table;
    let sql = sql::statements(model);
    let column_names = model.columns.iter().map(|column| &column.name);
    let primary_key = model.primary_key;
    let lookups = model
        .lookups
        .iter()
        .zip(&sql.lookups)
        .map(|(&index, select)| {
            let column = &model.columns[index].name;
            quote! {
                ::collegedb::__private::Lookup { column: #column, index: #index, select: #select }
            }
        });
    let sql::Statements {
        create,
        insert,
        update,
        select_by_key,
        delete_by_key,
        select_all,
        count,
        lookups: _,
    } = &sql;

    let key_value = encode(table, &model.columns[primary_key]);
    let row_values = model.columns.iter().map(|column| encode(table, column));

    quote! {
        #[automatically_derived]
        impl ::collegedb::Model for #ident {
            const TABLE: &'static str = #table;
            const COLUMNS: &'static [&'static str] = &[#(#column_names),*];
            const PRIMARY_KEY: usize = #primary_key;
            const LOOKUPS: &'static [::collegedb::__private::Lookup] = &[#(#lookups),*];
            const SQL: ::collegedb::__private::TableSql = ::collegedb::__private::TableSql {
                create: &[#(#create),*],
                insert: #insert,
                update: #update,
                select_by_key: #select_by_key,
                delete_by_key: #delete_by_key,
                select_all: #select_all,
                count: #count,
            };

            fn primary_key(&self) -> ::collegedb::Result<::collegedb::Value> {
                #key_value
            }

            fn to_row(&self) -> ::collegedb::Result<::std::vec::Vec<::collegedb::Value>> {
                ::core::result::Result::Ok(::std::vec![#(#row_values?),*])
            }
        }
    }
}

/// `impl FromRow`, decoding `columns` in order and filling the `skipped`
/// fields with their defaults. `table` names the source in a decode error:
/// the table of a model, the struct of a `#[derive(FromRow)]`.
fn from_row_impl(
    ident: &Ident,
    table: &str,
    columns: &[Column],
    skipped: &[&Field],
) -> TokenStream {
    let arity = columns.len();
    let expected = format!("{arity} columns");
    let cells: Vec<Ident> = (0..arity).map(|i| format_ident!("column{}", i)).collect();
    let decoded = columns.iter().zip(&cells).map(|(column, cell)| {
        let member = column.field.ident;
        let name = &column.name;
        let ty = column.field.ty;
        let decode = match column.storage {
            Storage::Native(_) => quote!(<#ty as ::collegedb::SqlField>::from_value),
            Storage::Json => quote!(::collegedb::__private::decode_json::<#ty>),
        };
        // Spanned on the field's type, so a type that does not implement the
        // trait is reported there rather than on the derive.
        let decoded = quote_spanned! {ty.span()=>
            ::collegedb::__private::decode_column(#table, #name, #cell, #decode)?
        };
        quote!(#member: #decoded)
    });
    let defaults = skipped.iter().map(|field| {
        let member = field.ident;
        quote_spanned!(field.ty.span()=> #member: ::core::default::Default::default())
    });
    quote! {
        #[automatically_derived]
        impl ::collegedb::FromRow for #ident {
            fn from_row(
                row: ::std::vec::Vec<::collegedb::Value>,
            ) -> ::collegedb::Result<Self> {
                let [#(#cells),*] = match <[::collegedb::Value; #arity] as ::core::convert::TryFrom<
                    ::std::vec::Vec<::collegedb::Value>,
                >>::try_from(row) {
                    ::core::result::Result::Ok(cells) => cells,
                    ::core::result::Result::Err(row) => {
                        return ::core::result::Result::Err(::collegedb::Error::Decode {
                            table: #table,
                            column: "<row>",
                            expected: #expected,
                            found: ::std::format!("{} columns", row.len()),
                        });
                    }
                };
                ::core::result::Result::Ok(Self {
                    #(#decoded,)*
                    #(#defaults,)*
                })
            }
        }
    }
}

/// The `#[derive(FromRow)]` impls.
fn expand_selection(selection: &Selection) -> TokenStream {
    let ident = selection.ident;
    let from_row = from_row_impl(ident, &ident.unraw().to_string(), &selection.columns, &[]);
    let column_names = selection.columns.iter().map(|column| &column.name);
    quote! {
        #from_row

        #[automatically_derived]
        impl ::collegedb::Selection for #ident {
            const COLUMNS: &'static [&'static str] = &[#(#column_names),*];
        }
    }
}

/// The type of a field's column handle: `Column<Self, T>` for a field of
/// type `T`, and `Column<Self, Json<T>>` for a JSON one, which cannot be
/// compared with values.
fn handle_type(field: &Field) -> TokenStream {
    let ty = field.ty;
    if field.attrs.json.is_some() {
        quote!(::collegedb::Column<Self, ::collegedb::query::Json<#ty>>)
    } else {
        quote!(::collegedb::Column<Self, #ty>)
    }
}

/// The signature of the generated `query()`.
fn query_signature() -> TokenStream {
    quote!(pub fn query() -> ::collegedb::Query<Self>)
}

/// `self.field` encoded as a `Result<Value>`. An `Error::Encode` names the
/// column as `table.column`: `SqlField::to_value` does not know it.
fn encode(table: &str, column: &Column) -> TokenStream {
    let member = column.field.ident;
    let ty = column.field.ty;
    let name = format!("{table}.{}", column.name);
    match column.storage {
        Storage::Native(_) => quote_spanned! {ty.span()=>
            ::collegedb::__private::encode_column(
                #name,
                <#ty as ::collegedb::SqlField>::to_value(&self.#member),
            )
        },
        Storage::Json => {
            quote_spanned!(ty.span()=> ::collegedb::__private::encode_json::<#ty>(&self.#member, #name))
        }
    }
}

/// A key parameter of a typed method: its name, its type and the expression
/// that encodes it into a `Value`. `String` keys are taken as `&str`, integer
/// keys by value.
struct KeyParam {
    name: Ident,
    ty: TokenStream,
    value: TokenStream,
}

impl KeyParam {
    fn new(column: &Column) -> Self {
        let field = column.field.ident;
        // The database parameter is `db`; a key field of that name gets another.
        let name = if field.unraw() == "db" {
            Ident::new("key", Span::call_site())
        } else {
            field.clone()
        };
        match column.storage {
            Storage::Native(mapped) if mapped.scalar == Scalar::Text => KeyParam {
                ty: quote!(&str),
                value: quote!(::collegedb::Value::Text(::std::borrow::ToOwned::to_owned(#name))),
                name,
            },
            _ => {
                let ty = column.field.ty;
                KeyParam {
                    ty: quote!(#ty),
                    value: quote!(<#ty as ::collegedb::SqlField>::to_value(&#name)?),
                    name,
                }
            }
        }
    }
}

/// Who a typed method is called on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Receiver {
    /// The type, as in `User::get(&db, ..)`.
    Type,
    /// A row, as in `user.insert(&db)`.
    Row,
}

/// The key a typed method takes after the database.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    None,
    /// The primary key.
    Primary,
    /// A lookup value: the method is generated once per `#[lookup]` field.
    Lookup,
}

/// One typed inherent method, delegating to the `Database` method of the
/// same purpose.
struct Method {
    /// Its name; for a lookup method, the prefix of `<name><field>`.
    name: &'static str,
    receiver: Receiver,
    key: Key,
    /// The type inside `collegedb::Result`.
    returns: fn() -> TokenStream,
    /// The `Database` method it calls with `db`, then `self` for a row
    /// method, the lookup's position for a lookup method, and the key.
    delegate: &'static str,
    /// Its documentation, where `{table}` is the table and, for a method
    /// with a key, `{column}` and `{param}` are the key's column and parameter.
    doc: &'static str,
}

/// The typed inherent methods, in the order they are generated. Both the
/// real methods and the fallback's stubs are generated from this table.
const METHODS: &[Method] = &[
    Method {
        name: "create_schema",
        receiver: Receiver::Type,
        key: Key::None,
        returns: || quote!(()),
        delegate: "create_schema",
        doc: "Creates the `{table}` table and its indexes (the unique index of each `#[lookup]` column, and each `index`), where they do not exist yet.",
    },
    Method {
        name: "get",
        receiver: Receiver::Type,
        key: Key::Primary,
        returns: || quote!(::core::option::Option<Self>),
        delegate: "get",
        doc: "Fetches the `{table}` row whose primary key `{column}` is `{param}`, or `None`.",
    },
    Method {
        name: "find_by_",
        receiver: Receiver::Type,
        key: Key::Lookup,
        returns: || quote!(::core::option::Option<Self>),
        delegate: "find_by",
        doc: "Fetches the `{table}` row whose `{column}` is `{param}`, or `None`.",
    },
    Method {
        name: "delete_by_",
        receiver: Receiver::Type,
        key: Key::Lookup,
        returns: || quote!(bool),
        delegate: "delete_by",
        doc: "Deletes the `{table}` row whose `{column}` is `{param}`; `true` if there was one.",
    },
    Method {
        name: "insert",
        receiver: Receiver::Row,
        key: Key::None,
        returns: || quote!(()),
        delegate: "insert",
        doc: "Inserts this row into `{table}`; fails if its primary key or a lookup value is taken.",
    },
    Method {
        name: "update",
        receiver: Receiver::Row,
        key: Key::None,
        returns: || quote!(()),
        delegate: "update",
        doc: "Overwrites the `{table}` row with this row's primary key; fails if there is none.",
    },
    Method {
        name: "delete",
        receiver: Receiver::Type,
        key: Key::Primary,
        returns: || quote!(bool),
        delegate: "delete",
        doc: "Deletes the `{table}` row whose primary key `{column}` is `{param}`; `true` if there was one.",
    },
    Method {
        name: "list",
        receiver: Receiver::Type,
        key: Key::None,
        returns: || quote!(::std::vec::Vec<Self>),
        delegate: "list",
        doc: "Every `{table}` row of every shard, ordered by primary key.",
    },
    Method {
        name: "count",
        receiver: Receiver::Type,
        key: Key::None,
        returns: || quote!(u64),
        delegate: "count",
        doc: "The number of `{table}` rows on all shards together.",
    },
];

/// `METHODS` for one struct: each method with its name and its key, `None`
/// for a method without one; `K` is what the caller knows of a key. A lookup
/// method is generated once per lookup field, and a run of them field by
/// field (`find_by_a`, `delete_by_a`, `find_by_b`, ...), so that each
/// field's methods sit together in the docs.
fn each_method<'k, K>(
    primary: &'k K,
    lookups: &'k [(&Ident, K)],
) -> Vec<(&'static Method, Ident, Option<&'k K>)> {
    let mut expanded = Vec::new();
    // A run of lookup methods is one group; every other method is alone in its own.
    for group in METHODS.chunk_by(|a, b| a.key == Key::Lookup && b.key == Key::Lookup) {
        let keys: Vec<_> = match group[0].key {
            Key::None => vec![(None, None)],
            Key::Primary => vec![(None, Some(primary))],
            Key::Lookup => lookups
                .iter()
                .map(|(field, key)| (Some(*field), Some(key)))
                .collect(),
        };
        for (field, key) in keys {
            for method in group {
                let name = match field {
                    Some(field) => format_ident!("{}{}", method.name, field),
                    None => format_ident!("{}", method.name),
                };
                expanded.push((method, name, key));
            }
        }
    }
    expanded
}

/// A method's documentation with its placeholders filled in. The names are
/// validated identifiers, so none holds a placeholder of its own.
fn fill_doc(template: &str, table: &str, key: Option<(&str, String)>) -> String {
    let doc = template.replace("{table}", table);
    match key {
        Some((column, param)) => doc.replace("{column}", column).replace("{param}", &param),
        None => doc,
    }
}

/// The parts of a method that differ between the real method and the
/// fallback's stub of it.
struct Item {
    /// Before the method: the real method's documentation.
    attrs: TokenStream,
    /// After `B: Backend`: the stub's `, K` for its key type.
    generics: Option<TokenStream>,
    /// The database parameter's pattern: `db`, or the stub's `_`.
    db: TokenStream,
    /// The key parameter, `pattern: Type`, for a method with a key.
    key: Option<TokenStream>,
    body: TokenStream,
}

/// The method `method` called `name`, with its signature from the table.
fn method_item(method: &Method, name: &Ident, item: Item) -> TokenStream {
    let Item {
        attrs,
        generics,
        db,
        key,
        body,
    } = item;
    let receiver = (method.receiver == Receiver::Row).then(|| quote!(&self,));
    let key = key.map(|key| quote!(#key,));
    let returns = (method.returns)();
    quote! {
        #attrs
        pub async fn #name<B: ::collegedb::Backend #generics>(
            #receiver
            #db: &::collegedb::Database<B>,
            #key
        ) -> ::collegedb::Result<#returns> {
            #body
        }
    }
}

/// A key of a real method: its parameter, its column's name and, for a
/// lookup, the lookup's position in `LOOKUPS`.
struct KeyArg<'a> {
    param: KeyParam,
    column: &'a str,
    lookup: Option<usize>,
}

impl<'a> KeyArg<'a> {
    fn new(column: &'a Column, lookup: Option<usize>) -> Self {
        KeyArg {
            param: KeyParam::new(column),
            column: &column.name,
            lookup,
        }
    }
}

fn methods(model: &Model) -> TokenStream {
    let ident = model.ident;
    let table = &model.table;
    let primary = KeyArg::new(&model.columns[model.primary_key], None);
    let lookups: Vec<_> = model
        .lookups
        .iter()
        .enumerate()
        .map(|(lookup, &index)| {
            let column = &model.columns[index];
            (column.field.ident, KeyArg::new(column, Some(lookup)))
        })
        .collect();
    let items = each_method(&primary, &lookups)
        .into_iter()
        .map(|(method, name, key)| {
            let doc = fill_doc(
                method.doc,
                table,
                key.map(|key| (key.column, key.param.name.to_string())),
            );
            let delegate = format_ident!("{}", method.delegate);
            let args = [
                Some(quote!(db)),
                (method.receiver == Receiver::Row).then(|| quote!(self)),
                key.and_then(|key| key.lookup).map(|lookup| quote!(#lookup)),
                key.map(|key| key.param.value.clone()),
            ]
            .into_iter()
            .flatten();
            let item = Item {
                attrs: quote!(#[doc = #doc]),
                generics: None,
                db: quote!(db),
                key: key.map(|key| {
                    let KeyParam { name, ty, .. } = &key.param;
                    quote!(#name: #ty)
                }),
                body: quote!(::collegedb::Database::<B>::#delegate::<Self>(#(#args),*).await),
            };
            method_item(method, &name, item)
        });
    let handles = model
        .columns
        .iter()
        .enumerate()
        .filter_map(|(index, column)| {
            // Validation refused the fields without a handle name.
            let handle = valid::handle(column.field.ident)?;
            let ty = handle_type(column.field);
            let name = &column.name;
            let doc = format!("The `{table}.{name}` column, for queries.");
            // Orderings over a column that may hold NULL cannot bound a
            // cursor page by an index range alone; the handle says which.
            let constructor = if column.storage.nullable() {
                quote!(nullable)
            } else {
                quote!(new)
            };
            Some(quote! {
                #[doc = #doc]
                pub const #handle: #ty = ::collegedb::Column::#constructor(#name, #index);
            })
        });
    let query = query_signature();
    let query_doc = format!(
        "A query over every `{table}` row; add filters, orderings and limits, then run it."
    );
    quote! {
        impl #ident {
            #(#handles)*

            #(#items)*

            #[doc = #query_doc]
            #query {
                ::collegedb::Query::new()
            }
        }
    }
}

/// What is emitted next to the errors: the `Model` and `FromRow` impls, and
/// the handles and inherent methods that can be determined, with bodies that
/// never run (the build fails anyway), so that uses of them do not add
/// errors of their own. Keys are taken as any type, since the key's type may
/// be the mistake; handles have the field's type as written.
fn fallback(input: &Input) -> TokenStream {
    let ident = input.ident;
    // `Model: 'static`: bound it here, so that a struct with a lifetime (a
    // mistake reported already) does not add an error of its own.
    let mut generics = input.original.generics.clone();
    generics
        .make_where_clause()
        .predicates
        .push(syn::parse_quote!(Self: 'static));
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let from_row = from_row_stub(input, &generics);
    // One handle per name: two of the same name (a reported mistake) would
    // be an error of their own.
    let mut names = std::collections::HashSet::new();
    let handles = input
        .fields
        .iter()
        .flatten()
        .filter(|field| field.attrs.skip.is_none())
        .filter_map(|field| Some((valid::handle(field.ident)?, field)))
        .filter(|(handle, _)| names.insert(handle.to_string()))
        .map(|(handle, field)| {
            let ty = handle_type(field);
            quote!(pub const #handle: #ty = ::collegedb::Column::new("", 0);)
        });
    let query = query_signature();
    let lookups: Vec<_> = input
        .fields
        .iter()
        .flatten()
        .filter(|field| field.attrs.lookup.is_some())
        .map(|field| (field.ident, ()))
        .collect();
    let stubs = each_method(&(), &lookups)
        .into_iter()
        .map(|(method, name, key)| {
            let item = Item {
                attrs: TokenStream::new(),
                generics: key.map(|()| quote!(, K)),
                db: quote!(_),
                key: key.map(|()| quote!(_: K)),
                body: quote!(::core::unreachable!()),
            };
            method_item(method, &name, item)
        });
    quote! {
        #[automatically_derived]
        impl #impl_generics ::collegedb::Model for #ident #ty_generics #where_clause {
            // Values rather than `unreachable!()`, which would be a const-evaluation error.
            const TABLE: &'static str = "";
            const COLUMNS: &'static [&'static str] = &[];
            const PRIMARY_KEY: usize = 0;
            const LOOKUPS: &'static [::collegedb::__private::Lookup] = &[];
            const SQL: ::collegedb::__private::TableSql = ::collegedb::__private::TableSql {
                create: &[],
                insert: "",
                update: "",
                select_by_key: "",
                delete_by_key: "",
                select_all: "",
                count: "",
            };
            fn primary_key(&self) -> ::collegedb::Result<::collegedb::Value> {
                ::core::unreachable!()
            }
            fn to_row(&self) -> ::collegedb::Result<::std::vec::Vec<::collegedb::Value>> {
                ::core::unreachable!()
            }
        }

        #from_row

        impl #impl_generics #ident #ty_generics #where_clause {
            #(#handles)*
            #(#stubs)*
            #query {
                ::core::unreachable!()
            }
        }
    }
}

/// A `FromRow` impl that never runs, for a fallback, under `generics`.
fn from_row_stub(input: &Input, generics: &syn::Generics) -> TokenStream {
    let ident = input.ident;
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    quote! {
        #[automatically_derived]
        impl #impl_generics ::collegedb::FromRow for #ident #ty_generics #where_clause {
            fn from_row(
                _: ::std::vec::Vec<::collegedb::Value>,
            ) -> ::collegedb::Result<Self> {
                ::core::unreachable!()
            }
        }
    }
}

/// What `#[derive(FromRow)]` emits next to its errors: its impls, with no
/// columns and a body that never runs.
fn fallback_selection(input: &Input) -> TokenStream {
    let ident = input.ident;
    let generics = &input.original.generics;
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    let from_row = from_row_stub(input, generics);
    quote! {
        #from_row

        #[automatically_derived]
        impl #impl_generics ::collegedb::Selection for #ident #ty_generics #where_clause {
            const COLUMNS: &'static [&'static str] = &[];
        }
    }
}

#[cfg(test)]
mod tests {
    use quote::ToTokens;
    use syn::parse_quote;

    use super::*;

    /// The items of the inherent impls of an expansion.
    fn inherent_items(expansion: TokenStream) -> Vec<syn::ImplItem> {
        let file: syn::File = syn::parse2(expansion).unwrap();
        file.items
            .into_iter()
            .filter_map(|item| match item {
                syn::Item::Impl(block) if block.trait_.is_none() => Some(block.items),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Each inherent method's name, whether it takes `&self`, its number of
    /// parameters and its return type.
    fn methods_of(expansion: TokenStream) -> Vec<(String, bool, usize, String)> {
        inherent_items(expansion)
            .into_iter()
            .filter_map(|item| match item {
                syn::ImplItem::Fn(method) => Some(method.sig),
                _ => None,
            })
            .map(|sig| {
                (
                    sig.ident.to_string(),
                    sig.receiver().is_some(),
                    sig.inputs.len(),
                    sig.output.to_token_stream().to_string(),
                )
            })
            .collect()
    }

    /// Each inherent associated constant's name and type.
    fn consts_of(expansion: TokenStream) -> Vec<(String, String)> {
        inherent_items(expansion)
            .into_iter()
            .filter_map(|item| match item {
                syn::ImplItem::Const(constant) => Some((
                    constant.ident.to_string(),
                    constant.ty.to_token_stream().to_string(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_doc_placeholder_is_filled() {
        for method in METHODS {
            let key = (method.key != Key::None).then(|| ("email", "email".to_owned()));
            let doc = fill_doc(method.doc, "users", key);
            assert!(
                !doc.contains('{') && !doc.contains('}'),
                "{}: {doc}",
                method.name
            );
        }
    }

    #[test]
    fn the_fallback_stubs_the_real_methods() {
        let valid: DeriveInput = parse_quote! {
            struct User {
                #[primary_key]
                id: String,
                #[lookup]
                email: String,
                #[lookup]
                badge: u32,
                name: String,
            }
        };
        // The same struct with an unsupported field: the derive falls back.
        let invalid: DeriveInput = parse_quote! {
            struct User {
                #[primary_key]
                id: String,
                #[lookup]
                email: String,
                #[lookup]
                badge: u32,
                name: HashMap<String, String>,
            }
        };
        let real = methods_of(derive_sharded(&valid));
        let names: Vec<&str> = real.iter().map(|(name, ..)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "create_schema",
                "get",
                "find_by_email",
                "delete_by_email",
                "find_by_badge",
                "delete_by_badge",
                "insert",
                "update",
                "delete",
                "list",
                "count",
                "query",
            ]
        );
        let fallback = derive_sharded(&invalid);
        assert!(fallback.to_string().contains("compile_error"), "{fallback}");
        assert_eq!(methods_of(fallback.clone()), real);
        // The handles too, with the type of the field as written.
        let handles = |expansion| -> Vec<(String, String)> {
            consts_of(expansion)
                .into_iter()
                .map(|(name, ty)| (name, ty.replace(' ', "")))
                .collect()
        };
        let column = |ty: &str| format!("::collegedb::Column<Self,{ty}>");
        assert_eq!(
            handles(derive_sharded(&valid)),
            [
                ("ID".to_owned(), column("String")),
                ("EMAIL".to_owned(), column("String")),
                ("BADGE".to_owned(), column("u32")),
                ("NAME".to_owned(), column("String")),
            ]
        );
        assert_eq!(
            handles(fallback)[3],
            ("NAME".to_owned(), column("HashMap<String,String>"))
        );
    }

    #[test]
    fn handles_are_named_after_fields_and_point_at_columns() {
        let input: DeriveInput = parse_quote! {
            struct Post {
                #[primary_key]
                id: i64,
                #[sharded(skip)]
                cache: u8,
                #[sharded(rename = "kind")]
                r#type: String,
                #[sharded(json)]
                tags: Vec<String>,
            }
        };
        let expansion = derive_sharded(&input).to_string().replace(' ', "");
        for handle in [
            "pubconstID:::collegedb::Column<Self,i64>=::collegedb::Column::new(\"id\",0usize);",
            "pubconstTYPE:::collegedb::Column<Self,String>=::collegedb::Column::new(\"kind\",1usize);",
            "pubconstTAGS:::collegedb::Column<Self,::collegedb::query::Json<Vec<String>>>=::collegedb::Column::new(\"tags\",2usize);",
        ] {
            assert!(expansion.contains(handle), "{handle} in {expansion}");
        }
        assert!(!expansion.contains("CACHE"), "{expansion}");
        assert!(
            expansion.contains("The`posts.kind`column,forqueries."),
            "{expansion}"
        );
    }

    #[test]
    fn from_row_decodes_the_fields_in_order() {
        let input: DeriveInput = parse_quote! {
            struct Summary {
                #[sharded(rename = "display_name")]
                name: String,
                #[sharded(json)]
                tags: Vec<String>,
            }
        };
        let expansion = derive_from_row(&input);
        let text = expansion.to_string().replace(' ', "");
        assert!(!text.contains("compile_error"), "{text}");
        assert!(
            text.contains("constCOLUMNS:&'static[&'staticstr]=&[\"display_name\",\"tags\"];"),
            "{text}"
        );
        assert!(
            text.contains("decode_column(\"Summary\",\"display_name\",column0,"),
            "{text}"
        );
        assert!(text.contains("decode_json::<Vec<String>>"), "{text}");
        let file: syn::File = syn::parse2(expansion).unwrap();
        let traits: Vec<String> = file
            .items
            .iter()
            .filter_map(|item| match item {
                syn::Item::Impl(block) => block.trait_.as_ref(),
                _ => None,
            })
            .map(|(_, path, _)| path.to_token_stream().to_string().replace(' ', ""))
            .collect();
        assert_eq!(traits, ["::collegedb::FromRow", "::collegedb::Selection"]);
    }
}
