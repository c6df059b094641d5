//! Code generation: the `Model` impl and the typed inherent methods, or, when
//! the input has errors, those errors plus a stand-in for both.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident};

use crate::ast::Input;
use crate::ctxt::Ctxt;
use crate::sql;
use crate::ty::Scalar;
use crate::valid::{self, Column, Model, Storage};

/// Expands `#[derive(Sharded)]`.
pub fn derive(input: &DeriveInput) -> TokenStream {
    let cx = Ctxt::new();
    let parsed = Input::from_syn(&cx, input);
    let model = valid::check(&cx, &parsed);
    match cx.check() {
        Ok(()) => expand(&model.expect("validation reports an error whenever it builds no model")),
        Err(errors) => {
            let mut tokens = errors.to_compile_error();
            tokens.extend(fallback(&parsed));
            tokens
        }
    }
}

fn expand(model: &Model) -> TokenStream {
    let model_impl = model_impl(model);
    let methods = methods(model);
    quote! {
        #model_impl
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

    let key_value = encode(&model.columns[primary_key]);
    let row_values = model.columns.iter().map(encode);
    let arity = model.columns.len();
    let expected = format!("{arity} columns");
    let cells: Vec<Ident> = (0..arity).map(|i| format_ident!("column{}", i)).collect();
    let decoded = model.columns.iter().zip(&cells).map(|(column, cell)| {
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
    let defaults = model.skipped.iter().map(|field| {
        let member = field.ident;
        quote_spanned!(field.ty.span()=> #member: ::core::default::Default::default())
    });

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

/// `self.field` encoded as a `Result<Value>`.
fn encode(column: &Column) -> TokenStream {
    let member = column.field.ident;
    let ty = column.field.ty;
    match column.storage {
        Storage::Native(_) => {
            quote_spanned!(ty.span()=> <#ty as ::collegedb::SqlField>::to_value(&self.#member))
        }
        Storage::Json => {
            let name = &column.name;
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

fn methods(model: &Model) -> TokenStream {
    let ident = model.ident;
    let table = &model.table;
    let key_column = &model.columns[model.primary_key];
    let KeyParam {
        name: key,
        ty: key_ty,
        value: key_value,
    } = KeyParam::new(key_column);
    let key_name = &key_column.name;

    let lookups = model.lookups.iter().enumerate().map(|(lookup, &index)| {
        let column = &model.columns[index];
        let KeyParam { name, ty, value } = KeyParam::new(column);
        let field = column.field.ident;
        let find_by = format_ident!("find_by_{}", field);
        let delete_by = format_ident!("delete_by_{}", field);
        let find_doc = format!(
            "Fetches the `{table}` row whose `{}` is `{name}`, or `None`.",
            column.name
        );
        let delete_doc = format!(
            "Deletes the `{table}` row whose `{}` is `{name}`; `true` if there was one.",
            column.name
        );
        quote! {
            #[doc = #find_doc]
            pub async fn #find_by<B: ::collegedb::Backend>(
                db: &::collegedb::Database<B>,
                #name: #ty,
            ) -> ::collegedb::Result<::core::option::Option<Self>> {
                ::collegedb::Database::<B>::find_by::<Self>(db, #lookup, #value).await
            }

            #[doc = #delete_doc]
            pub async fn #delete_by<B: ::collegedb::Backend>(
                db: &::collegedb::Database<B>,
                #name: #ty,
            ) -> ::collegedb::Result<bool> {
                ::collegedb::Database::<B>::delete_by::<Self>(db, #lookup, #value).await
            }
        }
    });

    let create_doc = format!(
        "Creates the `{table}` table and the unique index of each `#[lookup]` column, where they do not exist yet."
    );
    let get_doc =
        format!("Fetches the `{table}` row whose primary key `{key_name}` is `{key}`, or `None`.");
    let insert_doc = format!(
        "Inserts this row into `{table}`; fails if its primary key or a lookup value is taken."
    );
    let update_doc = format!(
        "Overwrites the `{table}` row with this row's primary key; fails if there is none."
    );
    let delete_doc = format!("Deletes the `{table}` row whose primary key `{key_name}` is `{key}`; `true` if there was one.");
    let list_doc = format!("Every `{table}` row of every shard, ordered by primary key.");
    let count_doc = format!("The number of `{table}` rows on all shards together.");

    quote! {
        impl #ident {
            #[doc = #create_doc]
            pub async fn create_schema<B: ::collegedb::Backend>(
                db: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<()> {
                ::collegedb::Database::<B>::create_schema::<Self>(db).await
            }

            #[doc = #get_doc]
            pub async fn get<B: ::collegedb::Backend>(
                db: &::collegedb::Database<B>,
                #key: #key_ty,
            ) -> ::collegedb::Result<::core::option::Option<Self>> {
                ::collegedb::Database::<B>::get::<Self>(db, #key_value).await
            }

            #(#lookups)*

            #[doc = #insert_doc]
            pub async fn insert<B: ::collegedb::Backend>(
                &self,
                db: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<()> {
                ::collegedb::Database::<B>::insert::<Self>(db, self).await
            }

            #[doc = #update_doc]
            pub async fn update<B: ::collegedb::Backend>(
                &self,
                db: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<()> {
                ::collegedb::Database::<B>::update::<Self>(db, self).await
            }

            #[doc = #delete_doc]
            pub async fn delete<B: ::collegedb::Backend>(
                db: &::collegedb::Database<B>,
                #key: #key_ty,
            ) -> ::collegedb::Result<bool> {
                ::collegedb::Database::<B>::delete::<Self>(db, #key_value).await
            }

            #[doc = #list_doc]
            pub async fn list<B: ::collegedb::Backend>(
                db: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<::std::vec::Vec<Self>> {
                ::collegedb::Database::<B>::list::<Self>(db).await
            }

            #[doc = #count_doc]
            pub async fn count<B: ::collegedb::Backend>(
                db: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<u64> {
                ::collegedb::Database::<B>::count::<Self>(db).await
            }
        }
    }
}

/// What is emitted next to the errors: a `Model` impl and the inherent
/// methods that can be determined, with bodies that never run (the build
/// fails anyway), so that uses of them do not add errors of their own.
/// Keys are taken as any type, since the key's type may be the mistake.
fn fallback(input: &Input) -> TokenStream {
    let ident = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.original.generics.split_for_impl();
    let lookups = input
        .fields
        .iter()
        .flatten()
        .filter(|field| field.attrs.lookup.is_some())
        .map(|field| {
            let find_by = format_ident!("find_by_{}", field.ident);
            let delete_by = format_ident!("delete_by_{}", field.ident);
            quote! {
                pub async fn #find_by<B: ::collegedb::Backend, K>(
                    _: &::collegedb::Database<B>,
                    _: K,
                ) -> ::collegedb::Result<::core::option::Option<Self>> {
                    ::core::unreachable!()
                }
                pub async fn #delete_by<B: ::collegedb::Backend, K>(
                    _: &::collegedb::Database<B>,
                    _: K,
                ) -> ::collegedb::Result<bool> {
                    ::core::unreachable!()
                }
            }
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
            fn from_row(
                _: ::std::vec::Vec<::collegedb::Value>,
            ) -> ::collegedb::Result<Self> {
                ::core::unreachable!()
            }
        }

        impl #impl_generics #ident #ty_generics #where_clause {
            pub async fn create_schema<B: ::collegedb::Backend>(
                _: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<()> {
                ::core::unreachable!()
            }
            pub async fn get<B: ::collegedb::Backend, K>(
                _: &::collegedb::Database<B>,
                _: K,
            ) -> ::collegedb::Result<::core::option::Option<Self>> {
                ::core::unreachable!()
            }
            #(#lookups)*
            pub async fn insert<B: ::collegedb::Backend>(
                &self,
                _: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<()> {
                ::core::unreachable!()
            }
            pub async fn update<B: ::collegedb::Backend>(
                &self,
                _: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<()> {
                ::core::unreachable!()
            }
            pub async fn delete<B: ::collegedb::Backend, K>(
                _: &::collegedb::Database<B>,
                _: K,
            ) -> ::collegedb::Result<bool> {
                ::core::unreachable!()
            }
            pub async fn list<B: ::collegedb::Backend>(
                _: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<::std::vec::Vec<Self>> {
                ::core::unreachable!()
            }
            pub async fn count<B: ::collegedb::Backend>(
                _: &::collegedb::Database<B>,
            ) -> ::collegedb::Result<u64> {
                ::core::unreachable!()
            }
        }
    }
}
