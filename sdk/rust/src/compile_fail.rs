//! Signatures and uses that must not compile, checked by `cargo test --doc`.
//! (Only built for doctests; the macro messages are shown in each case.)
//!
//! A map takes one record, and maybe a bound parameter by reference ("takes
//! its bound parameter by reference, e.g. `w: &Weights`"):
//! ```compile_fail
//! #[weft::map]
//! fn two(a: String, b: String) -> String { a + &b }
//! ```
//!
//! A reduce takes no bound parameter ("takes no bound parameter"):
//! ```compile_fail
//! #[weft::reduce]
//! fn scaled(a: i64, b: i64, by: &i64) -> i64 { (a + b) * by }
//! ```
//!
//! A bound value has the parameter's type:
//! ```compile_fail,E0277
//! #[weft::filter]
//! fn longer(s: &str, min: &usize) -> bool { s.len() > *min }
//! let _ = longer.with(&"three".to_string());
//! ```
//!
//! A map must return something ("returns its output record"):
//! ```compile_fail
//! #[weft::map]
//! fn nothing(a: String) {}
//! ```
//!
//! A map takes its record by value ("takes its record by value (`T`, not `&T`)"):
//! ```compile_fail
//! #[weft::map]
//! fn by_ref(s: &String) -> String { s.clone() }
//! ```
//!
//! A filter takes its record by reference:
//! ```compile_fail
//! #[weft::filter]
//! fn by_value(s: String) -> bool { s.is_empty() }
//! ```
//!
//! A filter returns `bool`:
//! ```compile_fail,E0308
//! #[weft::filter]
//! fn count(s: &str) -> usize { s.len() }
//! ```
//!
//! A reduce combines two values of one type:
//! ```compile_fail
//! #[weft::reduce]
//! fn mixed(a: i64, b: i32) -> i64 { a + i64::from(b) }
//! ```
//!
//! A map_batch takes a `Vec`:
//! ```compile_fail
//! #[weft::map_batch]
//! fn not_a_batch(s: String) -> Vec<String> { vec![s] }
//! ```
//!
//! User functions are not generic, async or methods:
//! ```compile_fail
//! #[weft::map]
//! fn generic<T: weft::Record>(t: T) -> T { t }
//! ```
//! ```compile_fail
//! #[weft::map]
//! async fn later(s: String) -> String { s }
//! ```
//!
//! A flat_map's item type must be visible ("write the item type"):
//! ```compile_fail
//! #[weft::flat_map]
//! fn opaque(s: String) -> impl Iterator { s.into_bytes().into_iter() }
//! ```
//!
//! Unknown attribute arguments:
//! ```compile_fail
//! #[weft::map(nam = "x")]
//! fn typo(s: String) -> String { s }
//! ```
//!
//! Records must be `Record`s ("`File` is not a weft record type"):
//! ```compile_fail,E0277
//! #[weft::map]
//! fn open(path: String) -> std::fs::File { std::fs::File::open(path).unwrap() }
//! ```
//!
//! A pair function does not apply to a plain dataset, nor the other way round:
//! ```compile_fail,E0271
//! use weft::prelude::*;
//! #[weft::map]
//! fn format((w, n): (String, i64)) -> String { format!("{w}{n}") }
//! fn driver(ctx: &Context) -> weft::Result<()> {
//!     ctx.text_file("in", 1)?.map(format);
//!     Ok(())
//! }
//! ```
//! ```compile_fail,E0271
//! use weft::prelude::*;
//! #[weft::map]
//! fn one(w: String) -> (String, i64) { (w, 1) }
//! fn driver(ctx: &Context) -> weft::Result<()> {
//!     ctx.text_file("in", 1)?.map(one).map(one);
//!     Ok(())
//! }
//! ```
//!
//! `main` returns `()` or `Result<(), E: Display>`:
//! ```compile_fail,E0277
//! #[weft::main]
//! fn main(ctx: &weft::Context) -> i32 { 0 }
//! ```
