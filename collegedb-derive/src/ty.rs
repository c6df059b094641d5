//! The mapping from field types to SQLite column types.
//!
//! It is syntactic: a macro sees tokens, not resolved types, so it looks at
//! the last path segment (`String` and `std::string::String` alike) and
//! trusts that the names mean what they usually do. The generated code still
//! goes through `SqlField`, so a type alias that lies fails to compile rather
//! than misbehaving.

use syn::{GenericArgument, PathArguments, PathSegment, Type};

/// What a stored column holds, as far as SQLite is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// `String`.
    Text,
    /// `i8`..`i64`, `u8`..`u64`.
    Integer,
    /// `bool`, stored as INTEGER 0 or 1.
    Bool,
    /// `f32`, `f64`.
    Real,
    /// `Vec<u8>`.
    Blob,
}

impl Scalar {
    /// The SQLite type name of the column.
    pub fn sql_type(self) -> &'static str {
        match self {
            Scalar::Text => "TEXT",
            Scalar::Integer | Scalar::Bool => "INTEGER",
            Scalar::Real => "REAL",
            Scalar::Blob => "BLOB",
        }
    }
}

/// A field type with a native column mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapped {
    /// The value's kind.
    pub scalar: Scalar,
    /// Whether the field is an `Option`, making the column nullable.
    pub nullable: bool,
}

/// Maps a field type, or `None` if it has no native column type.
pub fn classify(ty: &Type) -> Option<Mapped> {
    if let Some(inner) = option_inner(ty) {
        return scalar(inner).map(|scalar| Mapped {
            scalar,
            nullable: true,
        });
    }
    scalar(ty).map(|scalar| Mapped {
        scalar,
        nullable: false,
    })
}

/// `T` if `ty` is `Option<T>`.
pub fn option_inner(ty: &Type) -> Option<&Type> {
    single_argument(ty, "Option")
}

fn scalar(ty: &Type) -> Option<Scalar> {
    if let Some(element) = single_argument(ty, "Vec") {
        let is_u8 = last_segment(element)
            .is_some_and(|segment| segment.ident == "u8" && segment.arguments.is_none());
        return is_u8.then_some(Scalar::Blob);
    }
    let segment = last_segment(ty)?;
    if !segment.arguments.is_none() {
        return None;
    }
    match segment.ident.to_string().as_str() {
        "String" => Some(Scalar::Text),
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" => Some(Scalar::Integer),
        "bool" => Some(Scalar::Bool),
        "f32" | "f64" => Some(Scalar::Real),
        _ => None,
    }
}

fn last_segment(ty: &Type) -> Option<&PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        // Types passed through `macro_rules!` arrive wrapped in an invisible group.
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// `T` if `ty` is `name<T>`.
fn single_argument<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let segment = last_segment(ty)?;
    if segment.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(arguments) = &segment.arguments else {
        return None;
    };
    match arguments.args.first() {
        Some(GenericArgument::Type(inner)) if arguments.args.len() == 1 => Some(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ty: &str) -> Option<Mapped> {
        classify(&syn::parse_str(ty).unwrap())
    }

    fn plain(scalar: Scalar) -> Option<Mapped> {
        Some(Mapped {
            scalar,
            nullable: false,
        })
    }

    #[test]
    fn maps_the_supported_types() {
        assert_eq!(map("String"), plain(Scalar::Text));
        assert_eq!(map("std::string::String"), plain(Scalar::Text));
        assert_eq!(map("u64"), plain(Scalar::Integer));
        assert_eq!(map("i8"), plain(Scalar::Integer));
        assert_eq!(map("bool"), plain(Scalar::Bool));
        assert_eq!(map("f32"), plain(Scalar::Real));
        assert_eq!(map("Vec<u8>"), plain(Scalar::Blob));
        assert_eq!(
            map("Option<Vec<u8>>"),
            Some(Mapped {
                scalar: Scalar::Blob,
                nullable: true
            })
        );
    }

    #[test]
    fn rejects_everything_else() {
        for ty in [
            "usize",
            "isize",
            "i128",
            "u128",
            "char",
            "&str",
            "Vec<u16>",
            "Vec<String>",
            "Option<Option<i32>>",
            "Option<usize>",
            "HashMap<String, u32>",
            "Uuid",
            "String<T>",
            "(i32, i32)",
            "[u8; 4]",
        ] {
            assert_eq!(map(ty), None, "{ty}");
        }
    }
}
