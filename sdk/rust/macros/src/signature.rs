//! Reading record types off a function signature.
//!
//! Everything here is syntactic, because a macro sees tokens, not types: a
//! parameter or result *written* as a 2-tuple is a pair; `Result<T, ..>` (any
//! path ending in `Result`, so `weft::Result<T>` and `anyhow::Result<T>` too) is
//! a fallible `T`; and the items of a flat-map's result are read from
//! `Vec<T>`-like types and `impl Iterator<Item = T>`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{GenericArgument, PathArguments, ReturnType, Signature, Type, TypeParamBound, spanned::Spanned};

/// Reject what a user function cannot be: async, const, unsafe, extern,
/// generic, a method.
pub fn check_plain(sig: &Signature, what: &str) -> syn::Result<()> {
    let no = |span: proc_macro2::Span, msg: String| Err(syn::Error::new(span, msg));
    if let Some(t) = &sig.asyncness {
        return no(t.span(), format!("{what} cannot be `async`: the host calls it synchronously"));
    }
    if let Some(t) = &sig.constness {
        return no(t.span(), format!("{what} cannot be `const`"));
    }
    if let Some(t) = &sig.unsafety {
        return no(t.span(), format!("{what} cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        return no(abi.span(), format!("{what} cannot have an ABI"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return no(
            sig.generics.span(),
            format!("{what} cannot be generic: the host calls it by name, with concrete record types"),
        );
    }
    if let Some(v) = &sig.variadic {
        return no(v.span(), format!("{what} cannot be variadic"));
    }
    if let Some(syn::FnArg::Receiver(r)) = sig.inputs.first() {
        return no(r.span(), format!("{what} must be a free function, not a method"));
    }
    Ok(())
}

/// The parameter types, checking there are `n` of them.
pub fn params(sig: &Signature, n: usize, expected: &str) -> syn::Result<Vec<Type>> {
    let types: Vec<Type> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            syn::FnArg::Typed(pt) => Some((*pt.ty).clone()),
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    if types.len() != n {
        let span = if sig.inputs.is_empty() { sig.paren_token.span.join() } else { sig.inputs.span() };
        return Err(syn::Error::new(span, format!("{expected} (found {} parameters)", types.len())));
    }
    Ok(types)
}

/// The result type, which must be written.
pub fn result(sig: &Signature, expected: &str) -> syn::Result<Type> {
    match &sig.output {
        ReturnType::Type(_, ty) => Ok((**ty).clone()),
        ReturnType::Default => Err(syn::Error::new(sig.paren_token.span.join(), expected.to_string())),
    }
}

/// Peel `(T)` and invisible groups.
pub fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Paren(p) => strip(&p.elem),
        Type::Group(g) => strip(&g.elem),
        other => other,
    }
}

/// `T` of a type written `...Result<T, ..>`.
pub fn fallible(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = strip(ty) else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    first_type_arg(&last.arguments)
}

/// The first generic type argument of a path segment.
fn first_type_arg(args: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = args else { return None };
    args.args.iter().find_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// The record layout of values written as `ty`: `weft::Pair<K, V>` for a
/// 2-tuple, else `weft::Plain<ty>`.
/// Spanned at `ty`, so that "not a `Record`" errors point at the written type.
pub fn layout(ty: &Type) -> TokenStream {
    match strip(ty) {
        Type::Tuple(t) if t.elems.len() == 2 => {
            let (k, v) = (&t.elems[0], &t.elems[1]);
            quote_spanned!(ty.span()=> ::weft::Pair<#k, #v>)
        }
        _ => quote_spanned!(ty.span()=> ::weft::Plain<#ty>),
    }
}

/// The item type of an iterable result, as written, when it can be read off.
pub enum Items {
    /// Written out, e.g. the `T` of `Vec<T>`.
    Written(Type),
    /// Not visible in the tokens; the compiler knows it as `<R as IntoIterator>::Item`.
    Projected(Type),
}

const COLLECTIONS: &[&str] =
    &["Vec", "VecDeque", "Option", "BTreeSet", "HashSet", "LinkedList", "BinaryHeap", "IntoIter", "Box"];
const ITERATOR_TRAITS: &[&str] = &["Iterator", "IntoIterator", "DoubleEndedIterator", "ExactSizeIterator"];

/// The items of a result written as `ty` (already without `Result`).
pub fn items(ty: &Type) -> syn::Result<Items> {
    match strip(ty) {
        Type::Path(p) => {
            if let Some(last) = p.path.segments.last()
                && COLLECTIONS.iter().any(|c| last.ident == c)
                && let Some(arg) = first_type_arg(&last.arguments)
            {
                if last.ident == "Box" {
                    // Box<dyn Iterator<Item = T>> or Box<[T]>
                    return match strip(arg) {
                        Type::TraitObject(o) => item_binding(&o.bounds, ty),
                        Type::Slice(s) => Ok(Items::Written((*s.elem).clone())),
                        _ => Ok(Items::Projected(ty.clone())),
                    };
                }
                return Ok(Items::Written(arg.clone()));
            }
            Ok(Items::Projected(ty.clone()))
        }
        Type::Array(a) => Ok(Items::Written((*a.elem).clone())),
        Type::ImplTrait(i) => item_binding(&i.bounds, ty),
        Type::TraitObject(o) => item_binding(&o.bounds, ty),
        Type::Reference(r) => Err(syn::Error::new(
            r.span(),
            "return owned records (e.g. `Vec<T>` or `impl Iterator<Item = T>`), not a reference",
        )),
        _ => Ok(Items::Projected(ty.clone())),
    }
}

fn item_binding(
    bounds: &syn::punctuated::Punctuated<TypeParamBound, syn::Token![+]>,
    whole: &Type,
) -> syn::Result<Items> {
    for bound in bounds {
        let TypeParamBound::Trait(t) = bound else { continue };
        let Some(last) = t.path.segments.last() else { continue };
        if !ITERATOR_TRAITS.iter().any(|name| last.ident == name) {
            continue;
        }
        if let PathArguments::AngleBracketed(args) = &last.arguments {
            for arg in &args.args {
                if let GenericArgument::AssocType(a) = arg
                    && a.ident == "Item"
                {
                    return Ok(Items::Written(a.ty.clone()));
                }
            }
        }
    }
    Err(syn::Error::new(
        whole.span(),
        "write the item type, e.g. `impl Iterator<Item = String>`, so weft knows the records it produces",
    ))
}

/// Token-level equality of two types (for reduce's `fn(V, V) -> V`).
pub fn same_type(a: &Type, b: &Type) -> bool {
    quote!(#a).to_string() == quote!(#b).to_string()
}
