//! Logistic regression, as the Spark example computes it.
//!
//! `weft run logreg.wasm -- <points-uri> <dimensions> <iterations> [partitions]`
//! reads points, one per line (`label x1 … xD`, separated by spaces, the
//! label -1 or 1), keeps the parsed points cached, and runs `iterations`
//! steps of gradient descent from zero weights: each step sums, over every
//! point, `(1 / (1 + exp(-y (w·x))) - 1) · y · x` and subtracts the sum from
//! `w`. It logs each iteration's wall time (`iteration 3: 0.123456 s`) and the
//! final weights (`final w: w1 w2 … wD`, each printed so that it parses back
//! to the same `f64`).
//!
//! The weights are not captured by a closure, as in Spark: `gradient` takes
//! them as a bound parameter, and each iteration binds its own
//! (`points.map(gradient.with(&w))`), shipped once per action. The sum is a
//! `reduce_by_key` over one key, folded map-side inside each task.

use std::time::Instant;
use weft::prelude::*;

/// A labelled point: `(y, x)`.
type Point = (f64, Vec<f64>);

/// `label x1 … xD`; a line that does not parse (or is empty) is skipped.
#[weft::flat_map]
fn parse_point(line: &str) -> Option<Point> {
    let mut fields = line.split_ascii_whitespace().map(str::parse::<f64>);
    let y = fields.next()?.ok()?;
    let x = fields.collect::<Result<Vec<f64>, _>>().ok()?;
    Some((y, x))
}

/// One point's contribution to the gradient at `w`, under the one key.
#[weft::map]
fn gradient((y, x): Point, w: &Vec<f64>) -> (u32, Vec<f64>) {
    let dot: f64 = w.iter().zip(&x).map(|(w, x)| w * x).sum();
    let scale = (1.0 / (1.0 + (-y * dot).exp()) - 1.0) * y;
    (0, x.into_iter().map(|x| scale * x).collect())
}

/// Two partial gradients, added.
#[weft::reduce]
fn add(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    for (a, b) in a.iter_mut().zip(b) {
        *a += b;
    }
    a
}

fn arg<T: std::str::FromStr>(name: &str, value: &str) -> weft::Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| weft::Error::msg(format!("{name} {value:?}: {e}")))
}

#[weft::main]
fn main(ctx: &Context) -> weft::Result<()> {
    let args = ctx.args();
    let (points, dimensions, iterations, partitions) = match args.as_slice() {
        [p, d, i] => (p, arg::<usize>("dimensions", d)?, arg::<u32>("iterations", i)?, 4),
        [p, d, i, n] => (p, arg("dimensions", d)?, arg("iterations", i)?, arg("partitions", n)?),
        _ => {
            return Err(weft::Error::msg(
                "usage: logreg <points-uri> <dimensions> <iterations> [partitions]",
            ));
        }
    };
    let points = ctx.text_file(points, partitions)?.flat_map(parse_point).cache();
    let mut w = vec![0.0; dimensions];
    for i in 1..=iterations {
        let started = Instant::now();
        let sums = points.map(gradient.with(&w)).reduce_by_key(add, 1).collect()?;
        let [(_, g)] = sums.as_slice() else {
            return Err(weft::Error::msg(format!(
                "iteration {i}: {} gradient sums, not 1 (no points?)",
                sums.len()
            )));
        };
        if g.len() != dimensions {
            return Err(weft::Error::msg(format!("points have {} features, not {dimensions}", g.len())));
        }
        for (w, g) in w.iter_mut().zip(g) {
            *w -= g;
        }
        weft::info!("iteration {i}: {:.6} s", started.elapsed().as_secs_f64());
    }
    let printed: Vec<String> = w.iter().map(f64::to_string).collect();
    weft::info!("final w: {}", printed.join(" "));
    Ok(())
}
