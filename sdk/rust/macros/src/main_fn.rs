//! `#[weft::main]`.

use crate::signature;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{ItemFn, ReturnType, spanned::Spanned};

pub fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error(),
    };
    match expand_fn(attr, &func) {
        Ok(tokens) => tokens,
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#err #func)
        }
    }
}

fn expand_fn(attr: TokenStream, func: &ItemFn) -> syn::Result<TokenStream> {
    if !attr.is_empty() {
        return Err(syn::Error::new(attr.span(), "#[weft::main] takes no arguments"));
    }
    signature::check_plain(&func.sig, "the #[weft::main] function")?;
    let ident = &func.sig.ident;
    let call = match func.sig.inputs.len() {
        0 => quote!(#ident()),
        1 => quote!(#ident(ctx)),
        _ => {
            return Err(syn::Error::new(
                func.sig.inputs.span(),
                "the #[weft::main] function takes one parameter, `ctx: &weft::Context`",
            ));
        }
    };
    let span = match &func.sig.output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => func.sig.ident.span(),
    };
    let convert = quote_spanned!(span=> ::weft::__private::MainResult::into_main_result(#call));
    Ok(quote! {
        #func

        const _: () = {
            #[allow(unused_variables)]
            fn __weft_main(ctx: &::weft::Context) -> ::core::result::Result<(), ::std::string::String> {
                #convert
            }
            ::weft::__private::inventory::submit! {
                ::weft::__private::MainRegistration::new(::core::module_path!(), __weft_main)
            }
        };
    })
}
