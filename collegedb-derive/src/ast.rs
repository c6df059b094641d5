//! A borrowed view of the derive input with its attributes parsed, keeping
//! the original tokens for error spans.

use syn::{Data, DeriveInput, Fields, Ident, Type};

use crate::attr;
use crate::ctxt::Ctxt;

pub use crate::attr::Derive;

/// The derive input.
pub struct Input<'a> {
    /// Which derive this is.
    pub derive: Derive,
    /// The whole input, for its generics.
    pub original: &'a DeriveInput,
    /// The struct's name.
    pub ident: &'a Ident,
    /// The struct's attributes.
    pub attrs: attr::Container,
    /// The named fields in declaration order; `None` when the input is not a
    /// struct with named fields (already reported).
    pub fields: Option<Vec<Field<'a>>>,
}

/// One named field.
pub struct Field<'a> {
    /// The field's name.
    pub ident: &'a Ident,
    /// The field's type as written.
    pub ty: &'a Type,
    /// The field's attributes.
    pub attrs: attr::Field<'a>,
}

impl<'a> Input<'a> {
    /// Parses the input's shape and attributes, recording errors in `cx`.
    pub fn from_syn(cx: &Ctxt, input: &'a DeriveInput, derive: Derive) -> Self {
        let needs = format!("{} needs a struct with named fields", derive.attribute());
        // Parsed first, so its errors come first, as in the source.
        let attrs = attr::Container::from_ast(cx, &input.attrs, derive);
        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(
                    named
                        .named
                        .iter()
                        .filter_map(|field| {
                            Some(Field {
                                // Always present on named fields.
                                ident: field.ident.as_ref()?,
                                ty: &field.ty,
                                attrs: attr::Field::from_ast(cx, &field.attrs, derive),
                            })
                        })
                        .collect(),
                ),
                Fields::Unnamed(_) => {
                    cx.error_spanned_by(&input.ident, format!("{needs}, not a tuple struct"));
                    None
                }
                Fields::Unit => {
                    cx.error_spanned_by(&input.ident, format!("{needs}, not a unit struct"));
                    None
                }
            },
            Data::Enum(data) => {
                cx.error_spanned_by(data.enum_token, format!("{needs}, not an enum"));
                None
            }
            Data::Union(data) => {
                cx.error_spanned_by(data.union_token, format!("{needs}, not a union"));
                None
            }
        };
        Input {
            derive,
            original: input,
            ident: &input.ident,
            attrs,
            fields,
        }
    }
}
