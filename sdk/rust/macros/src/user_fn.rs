//! `#[weft::map]`, `#[weft::filter]`, `#[weft::flat_map]`, `#[weft::map_batch]`
//! and `#[weft::reduce]`.

use crate::signature::{self, Items};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{ItemFn, LitStr, Type, spanned::Spanned};

/// Which attribute.
#[derive(Clone, Copy)]
pub enum Kind {
    Map,
    Filter,
    FlatMap,
    MapBatch,
    Reduce,
}

impl Kind {
    fn attribute(self) -> &'static str {
        match self {
            Kind::Map => "#[weft::map]",
            Kind::Filter => "#[weft::filter]",
            Kind::FlatMap => "#[weft::flat_map]",
            Kind::MapBatch => "#[weft::map_batch]",
            Kind::Reduce => "#[weft::reduce]",
        }
    }

    /// The `weft::OpKind` variant, the trait and the `Registration` constructor.
    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::Map => ("Map", "MapFn", "map"),
            Kind::Filter => ("Filter", "FilterFn", "filter"),
            Kind::FlatMap => ("FlatMap", "FlatMapFn", "flat_map"),
            Kind::MapBatch => ("MapBatch", "MapBatchFn", "map_batch"),
            Kind::Reduce => ("Reduce", "ReduceFn", "reduce"),
        }
    }
}

/// Expand one attribute; on error, the error and the function unchanged (so
/// the rest of the crate still resolves its name).
pub fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error(),
    };
    match expand_fn(kind, attr, &func) {
        Ok(tokens) => tokens,
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #func)
        }
    }
}

/// The `name = "..."` argument, if any.
fn registered_name(attr: TokenStream, func: &ItemFn) -> syn::Result<LitStr> {
    let mut name = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            if lit.value().is_empty() {
                return Err(syn::Error::new(lit.span(), "a function name cannot be empty"));
            }
            name = Some(lit);
            Ok(())
        } else {
            Err(meta.error("unknown argument; the only one is `name = \"...\"`"))
        }
    });
    syn::parse::Parser::parse2(parser, attr)?;
    Ok(name.unwrap_or_else(|| {
        let ident = func.sig.ident.to_string();
        LitStr::new(ident.strip_prefix("r#").unwrap_or(&ident), func.sig.ident.span())
    }))
}

/// What the signature says, ready for code generation.
struct Shape {
    /// `weft::Plain<T>` or `weft::Pair<K, V>` (not for reduce).
    input: TokenStream,
    output: TokenStream,
    /// The body of the trait's `apply`.
    apply: TokenStream,
    /// The trait's `apply` signature after `fn apply`.
    apply_sig: TokenStream,
    /// Extra items in the trait impl (reduce's `type Value`).
    assoc: TokenStream,
}

fn expand_fn(kind: Kind, attr: TokenStream, func: &ItemFn) -> syn::Result<TokenStream> {
    let what = format!("a {} function", kind.attribute());
    signature::check_plain(&func.sig, &what)?;
    let name = registered_name(attr, func)?;
    // The shapes read the record parameters only; a bound parameter is the last.
    let (records, param) = split_param(kind, func, &what)?;
    let bound = Bound(param.is_some());
    let shape = match kind {
        Kind::Map => map_shape(&records, &what, bound)?,
        Kind::Filter => filter_shape(&records, &what, bound)?,
        Kind::FlatMap | Kind::MapBatch => iter_shape(kind, &records, &what, bound)?,
        Kind::Reduce => reduce_shape(&records, &what)?,
    };

    let ItemFn { attrs, vis, sig, block } = func;
    let ident = &sig.ident;
    let inputs = &sig.inputs;
    let output = &sig.output;
    let docs: Vec<_> = attrs.iter().filter(|a| a.path().is_ident("doc")).collect();
    let (variant, trait_name, ctor) = kind.names();
    let variant = format_ident!("{variant}");
    let trait_name = format_ident!("{trait_name}");
    let ctor = format_ident!("{ctor}");
    let Shape { input, output: out_layout, apply, apply_sig, assoc } = shape;
    let transform = match kind {
        Kind::Reduce => quote!(),
        _ => quote! {
            impl ::weft::Transform for #ident {
                type Input = #input;
                type Output = #out_layout;
            }
        },
    };

    let apply = match param {
        Some(_) => quote!(let __param = self.__param()?; #apply),
        None => apply,
    };
    let (item, param_const) = match &param {
        None => (
            quote! {
                #(#docs)*
                #[allow(non_camel_case_types)]
                #[derive(Clone, Copy, Debug, Default)]
                #vis struct #ident;
            },
            quote!(),
        ),
        Some(p) => (
            bound_item(func, p, &docs)?,
            quote! {
                const PARAM: ::core::option::Option<::weft::__private::ParamSpec> =
                    ::core::option::Option::Some(::weft::__private::ParamSpec::of::<#p>());
            },
        ),
    };

    Ok(quote! {
        #item

        impl #ident {
            #(#attrs)*
            #[allow(clippy::ptr_arg)]
            #vis fn call(self, #inputs) #output #block
        }

        impl ::weft::Function for #ident {
            const NAME: &'static str = #name;
            const KIND: ::weft::OpKind = ::weft::OpKind::#variant;
            #param_const
            fn registration() -> &'static ::weft::__private::Registration {
                static REGISTRATION: ::weft::__private::Registration =
                    ::weft::__private::Registration::#ctor::<#ident>(::core::module_path!());
                &REGISTRATION
            }
        }

        #transform

        impl ::weft::#trait_name for #ident {
            #assoc
            #[inline]
            fn apply #apply_sig {
                #apply
            }
        }

        ::weft::__private::inventory::submit! {
            ::weft::__private::Registered(<#ident as ::weft::Function>::registration)
        }
    })
}

/// The record parameters of `func` (itself without its bound parameter) and
/// the type `P` of its bound parameter `&P`, if it has one: a map, filter,
/// flat-map or map-batch with one parameter more than its records.
fn split_param(kind: Kind, func: &ItemFn, what: &str) -> syn::Result<(ItemFn, Option<Type>)> {
    let records = match kind {
        Kind::Reduce => 2,
        _ => 1,
    };
    if func.sig.inputs.len() != records + 1 {
        return Ok((func.clone(), None));
    }
    if let Kind::Reduce = kind {
        return Err(syn::Error::new(
            func.sig.inputs.span(),
            format!("{what} takes no bound parameter: it folds values in the shuffle, `fn(a: V, b: V) -> V`"),
        ));
    }
    let mut records = func.clone();
    let last = records.sig.inputs.pop().map(syn::punctuated::Pair::into_value);
    let Some(syn::FnArg::Typed(last)) = last else {
        return Ok((func.clone(), None));
    };
    match signature::strip(&last.ty) {
        Type::Reference(r) if r.mutability.is_none() && r.lifetime.is_none() => {
            Ok((records, Some((*r.elem).clone())))
        }
        _ => Err(syn::Error::new(
            last.ty.span(),
            format!(
                "{what} takes its bound parameter by reference, e.g. `w: &Weights`, \
                 and the driver binds it with `f.with(&value)`"
            ),
        )),
    }
}

/// The struct of a function with a bound parameter of type `p`: a `Copy`
/// value holding the parameter the dispatcher bound (its `Default`), a
/// constant of the same name (so the function is still a value), `with` to
/// bind a parameter in the driver, and `__param` for `apply`.
fn bound_item(func: &ItemFn, p: &Type, docs: &[&syn::Attribute]) -> syn::Result<TokenStream> {
    let (vis, ident) = (&func.vis, &func.sig.ident);
    Ok(quote! {
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy)]
        #vis struct #ident {
            param: ::core::option::Option<&'static #p>,
        }

        #[allow(non_upper_case_globals)]
        #(#docs)*
        #vis const #ident: #ident = #ident { param: ::core::option::Option::None };

        impl ::core::default::Default for #ident {
            fn default() -> Self {
                #ident { param: ::weft::__private::binding::<#p>() }
            }
        }

        impl ::core::fmt::Debug for #ident {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#ident))
            }
        }

        impl #ident {
            /// This function with `param` bound as its parameter, for a dataset
            /// method: a value (`&value`, shipped with the dataset) or a
            /// `Broadcast` of one.
            #vis fn with(self, param: impl ::weft::IntoParam<#p>) -> ::weft::Bound<Self> {
                ::weft::Bound::new(param)
            }

            #[inline]
            fn __param(self) -> ::core::result::Result<&'static #p, ::weft::UserError> {
                self.param.ok_or_else(::weft::__private::unbound::<Self>)
            }
        }
    })
}

/// Whether the function has a bound parameter: its calls pass `__param`
/// after the record, bound at the top of `apply` (and `apply_raw`).
#[derive(Clone, Copy)]
struct Bound(bool);

impl Bound {
    /// The call's arguments: `record`, and `__param` if bound.
    fn args(self, record: TokenStream) -> TokenStream {
        if self.0 { quote!(#record, __param) } else { record }
    }

    /// The statement binding `__param` inside `apply_raw`.
    fn raw(self) -> TokenStream {
        if self.0 {
            quote!(let __param = self.__param().map_err(::weft::ApplyError::User)?;)
        } else {
            quote!()
        }
    }
}

/// `self.call(args)` as a `Result<_, UserError>`, spanned at the written result
/// type so that type errors point there.
fn call_result(ret: &Type, args: TokenStream) -> TokenStream {
    if signature::fallible(ret).is_some() {
        quote_spanned!(ret.span()=> self.call(#args).map_err(::weft::UserError::new))
    } else {
        quote_spanned!(ret.span()=> ::core::result::Result::Ok(self.call(#args)))
    }
}

/// A parameter that borrows its record straight from the input batch: `&str`
/// for `String` records, `&[u8]` for `weft::Bytes`. The dispatcher then skips
/// the copy that decoding an owned record makes (`apply_raw`).
#[derive(Clone, Copy)]
enum Borrow {
    Str,
    Bytes,
}

impl Borrow {
    fn of(param: &Type) -> Option<Borrow> {
        let Type::Reference(r) = signature::strip(param) else { return None };
        if r.mutability.is_some() {
            return None;
        }
        match signature::strip(&r.elem) {
            t if is_str(t) => Some(Borrow::Str),
            Type::Slice(s) if matches!(signature::strip(&s.elem), Type::Path(p) if p.path.is_ident("u8")) => {
                Some(Borrow::Bytes)
            }
            _ => None,
        }
    }

    /// The record type the dataset holds.
    fn record(self) -> Type {
        match self {
            Borrow::Str => syn::parse_quote!(::std::string::String),
            Borrow::Bytes => syn::parse_quote!(::weft::Bytes),
        }
    }

    /// The call argument made from an owned record (or a reference to one).
    fn arg_from_owned(self) -> TokenStream {
        match self {
            Borrow::Str => quote!(::core::convert::AsRef::<str>::as_ref(&record)),
            Borrow::Bytes => quote!(::core::convert::AsRef::<[u8]>::as_ref(&record)),
        }
    }

    /// The statement binding `record` to the borrowed value of `raw`.
    fn bind_from_raw(self) -> TokenStream {
        match self {
            Borrow::Str => quote! {
                let record = ::weft::__private::borrow_str(raw).map_err(::weft::ApplyError::Decode)?;
            },
            Borrow::Bytes => quote!(let record = raw;),
        }
    }
}

/// `self.call(record)` inside `apply_raw`, as a `Result<_, ApplyError>`.
fn raw_call_result(ret: &Type, bound: Bound) -> TokenStream {
    let call = call_result(ret, bound.args(quote!(record)));
    let param = bound.raw();
    quote!(#param #call.map_err(::weft::ApplyError::User))
}

fn map_shape(func: &ItemFn, what: &str, bound: Bound) -> syn::Result<Shape> {
    let [param] = one_param(func, what)?;
    let ret =
        signature::result(&func.sig, &format!("{what} returns its output record: `fn(record: T) -> U`"))?;
    let out_ty = signature::fallible(&ret).unwrap_or(&ret).clone();
    let output = signature::layout(&out_ty);
    let Some(borrow) = Borrow::of(&param) else {
        return Ok(Shape {
            apply: call_result(&ret, bound.args(quote!(record))),
            apply_sig: quote! {
                (&self, record: #param) -> ::core::result::Result<#out_ty, ::weft::UserError>
            },
            input: signature::layout(&param),
            output,
            assoc: quote!(),
        });
    };
    let record = borrow.record();
    let (arg, bind, raw_call) =
        (borrow.arg_from_owned(), borrow.bind_from_raw(), raw_call_result(&ret, bound));
    Ok(Shape {
        apply: call_result(&ret, bound.args(arg)),
        apply_sig: quote! {
            (&self, record: #record) -> ::core::result::Result<#out_ty, ::weft::UserError>
        },
        input: signature::layout(&record),
        output,
        assoc: quote! {
            #[inline]
            fn apply_raw(&self, raw: &[u8]) -> ::core::result::Result<#out_ty, ::weft::ApplyError> {
                #bind
                #raw_call
            }
        },
    })
}

fn filter_shape(func: &ItemFn, what: &str, bound: Bound) -> syn::Result<Shape> {
    let expected = format!("{what} takes its record by reference: `fn(record: &T) -> bool`");
    let [param] = <[Type; 1]>::try_from(signature::params(&func.sig, 1, &expected)?)
        .map_err(|_| syn::Error::new(func.sig.span(), &expected))?;
    let ret = signature::result(&func.sig, &format!("{what} returns `bool` (or `Result<bool, E>`)"))?;
    let borrow = Borrow::of(&param);
    let record = match (borrow, signature::strip(&param)) {
        (Some(b), _) => b.record(),
        (None, Type::Reference(r)) if r.mutability.is_none() => (*r.elem).clone(),
        _ => return Err(syn::Error::new(param.span(), expected)),
    };
    let layout = signature::layout(&record);
    let apply_sig = quote! {
        (&self, record: &#record) -> ::core::result::Result<bool, ::weft::UserError>
    };
    let Some(borrow) = borrow else {
        return Ok(Shape {
            apply: call_result(&ret, bound.args(quote!(record))),
            apply_sig,
            input: layout.clone(),
            output: layout,
            assoc: quote!(),
        });
    };
    let (arg, bind, raw_call) =
        (borrow.arg_from_owned(), borrow.bind_from_raw(), raw_call_result(&ret, bound));
    Ok(Shape {
        apply: call_result(&ret, bound.args(arg)),
        apply_sig,
        input: layout.clone(),
        output: layout,
        assoc: quote! {
            #[inline]
            fn apply_raw(&self, raw: &[u8]) -> ::core::result::Result<bool, ::weft::ApplyError> {
                #bind
                #raw_call
            }
        },
    })
}

fn iter_shape(kind: Kind, func: &ItemFn, what: &str, bound: Bound) -> syn::Result<Shape> {
    let (record, arg_ty, borrow) = match kind {
        Kind::MapBatch => {
            let expected = format!("{what} takes the batch's records as one `Vec<T>`");
            let [param] = <[Type; 1]>::try_from(signature::params(&func.sig, 1, &expected)?)
                .map_err(|_| syn::Error::new(func.sig.span(), &expected))?;
            let record = match signature::items(&param) {
                Ok(Items::Written(t)) if is_vec(&param) => t,
                _ => return Err(syn::Error::new(param.span(), expected)),
            };
            (record, param, None)
        }
        _ => {
            let [param] = one_param(func, what)?;
            match Borrow::of(&param) {
                Some(b) => (b.record(), b.record(), Some(b)),
                None => (param.clone(), param, None),
            }
        }
    };
    let ret = signature::result(
        &func.sig,
        &format!("{what} returns its output records, e.g. `Vec<T>` or `impl Iterator<Item = T>`"),
    )?;
    let iterable = signature::fallible(&ret).unwrap_or(&ret).clone();
    let item = match signature::items(&iterable)? {
        Items::Written(t) => t,
        Items::Projected(t) => syn::parse_quote!(<#t as ::core::iter::IntoIterator>::Item),
    };
    let fallible = signature::fallible(&ret).is_some();
    // `wrap`: how a `UserError` becomes the method's error (`None`: it is one).
    let call = |arg: TokenStream, wrap: Option<TokenStream>| match (fallible, wrap, bound.args(arg)) {
        (false, _, args) => quote_spanned!(ret.span()=> self.call(#args)),
        (true, None, args) => quote_spanned!(ret.span()=> self.call(#args).map_err(::weft::UserError::new)?),
        (true, Some(wrap), args) => {
            quote_spanned!(ret.span()=> self.call(#args).map_err(|e| #wrap(::weft::UserError::new(e)))?)
        }
    };
    let emit_all = |call: TokenStream| {
        quote! {
            for item in ::core::iter::IntoIterator::into_iter(#call) {
                emit(item);
            }
            ::core::result::Result::Ok(())
        }
    };
    let arg = borrow.map_or(quote!(record), Borrow::arg_from_owned);
    let assoc = match borrow {
        None => quote!(),
        Some(b) => {
            let bind = b.bind_from_raw();
            let param = bound.raw();
            let body = emit_all(call(quote!(record), Some(quote!(::weft::ApplyError::User))));
            quote! {
                #[inline]
                fn apply_raw<E: ::core::ops::FnMut(#item)>(&self, raw: &[u8], emit: &mut E)
                    -> ::core::result::Result<(), ::weft::ApplyError>
                {
                    #param
                    #bind
                    #body
                }
            }
        }
    };
    Ok(Shape {
        input: signature::layout(&record),
        output: signature::layout(&item),
        apply: emit_all(call(arg, None)),
        apply_sig: quote! {
            <E: ::core::ops::FnMut(#item)>(&self, record: #arg_ty, emit: &mut E)
                -> ::core::result::Result<(), ::weft::UserError>
        },
        assoc,
    })
}

fn is_str(ty: &Type) -> bool {
    matches!(signature::strip(ty), Type::Path(p) if p.qself.is_none() && p.path.is_ident("str"))
}

fn is_vec(ty: &Type) -> bool {
    matches!(signature::strip(ty), Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Vec"))
}

fn reduce_shape(func: &ItemFn, what: &str) -> syn::Result<Shape> {
    let expected = format!("{what} combines two values of one type: `fn(a: V, b: V) -> V`");
    let types = signature::params(&func.sig, 2, &expected)?;
    let (a, b) = (&types[0], &types[1]);
    if !signature::same_type(a, b) {
        return Err(syn::Error::new(
            b.span(),
            format!("{expected}; this parameter's type differs from the first"),
        ));
    }
    if let Type::Reference(r) = signature::strip(a) {
        return Err(syn::Error::new(r.span(), "a #[weft::reduce] function takes its values by value"));
    }
    let ret = signature::result(&func.sig, &expected)?;
    Ok(Shape {
        input: quote!(),
        output: quote!(),
        apply: call_result(&ret, quote!(a, b)),
        apply_sig: quote! {
            (&self, a: #a, b: #a) -> ::core::result::Result<#a, ::weft::UserError>
        },
        assoc: quote!(type Value = #a;),
    })
}

/// The one parameter of a map or flat-map: a record by value, or a borrowed
/// `&str` / `&[u8]`.
fn one_param(func: &ItemFn, what: &str) -> syn::Result<[Type; 1]> {
    let expected = format!("{what} takes one record: `fn(record: T) -> U`");
    let types = signature::params(&func.sig, 1, &expected)?;
    if let Type::Reference(r) = signature::strip(&types[0])
        && Borrow::of(&types[0]).is_none()
    {
        return Err(syn::Error::new(
            r.span(),
            format!(
                "{what} takes its record by value (`T`, not `&T`): each record is handed over \
                 (only `&str` and `&[u8]` borrow, from `String` and `weft::Bytes` records)"
            ),
        ));
    }
    <[Type; 1]>::try_from(types).map_err(|_| syn::Error::new(Span::call_site(), expected))
}
