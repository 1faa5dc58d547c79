//! PageRank, as the Spark example computes it.
//!
//! `weft run pagerank.wasm -- <edges-uri> <iterations> <output-uri>` reads an
//! edge list (`source<TAB>destination` lines), gives every page with links a
//! rank of 1, and then, `iterations` times, sends each page's rank in equal
//! shares along its links and sets each page that received some to
//! `0.15 + 0.85 × received`. It writes `page<TAB>rank` lines under the output
//! URI and logs the five highest ranks.
//!
//! Every iteration is a join of the links with the current ranks and a
//! reduce of the contributions: the whole lineage runs as one job of
//! stages, the links computed once and kept in their map outputs.

use weft::prelude::*;

/// `source<TAB>destination`, as a pair (a line without a tab links nowhere).
#[weft::flat_map]
fn edge(line: &str) -> Option<(String, String)> {
    let (from, to) = line.split_once('\t')?;
    Some((from.trim().to_string(), to.trim().to_string()))
}

/// The starting rank of a page with links.
#[weft::map]
fn start((page, _links): (String, Vec<String>)) -> (String, f64) {
    (page, 1.0)
}

/// A page's rank, in equal shares to each page it links to.
#[weft::flat_map]
fn contributions((_page, (links, rank)): (String, (Vec<String>, f64))) -> Vec<(String, f64)> {
    let share = rank / links.len() as f64;
    links.into_iter().map(|to| (to, share)).collect()
}

#[weft::reduce]
fn add(a: f64, b: f64) -> f64 {
    a + b
}

/// The damped rank of what a page received.
#[weft::map]
fn damp((page, received): (String, f64)) -> (String, f64) {
    (page, 0.15 + 0.85 * received)
}

/// One output line.
#[weft::map]
fn format((page, rank): (String, f64)) -> String {
    format!("{page}\t{rank}")
}

/// Key by rank, to sort by it.
#[weft::map]
fn by_rank((page, rank): (String, f64)) -> (f64, String) {
    (rank, page)
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let [edges, iterations, output] = args.as_slice() else {
        return Err(weft::Error::msg("usage: pagerank <edges-uri> <iterations> <output-uri>"));
    };
    let iterations: u32 =
        iterations.parse().map_err(|e| weft::Error::msg(format!("iterations {iterations:?}: {e}")))?;
    let links = ctx.text_file(edges, 4)?.flat_map(edge).group_by_key(4).cache();
    let mut ranks = links.map(start);
    for _ in 0..iterations {
        ranks = links.join(&ranks, 4).flat_map(contributions).reduce_by_key(add, 4).map(damp);
    }
    ranks.map(format).save_as_text_file(output)?;
    for (rank, page) in ranks.map(by_rank).sort_by_key(false, 2).take(5)? {
        weft::info!("{page}: {rank:.6}");
    }
    Ok(())
}
