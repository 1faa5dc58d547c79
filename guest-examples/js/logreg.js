// Logistic regression in JavaScript, as the Spark example computes it.
//
// `weft local logreg.wasm -- <points-uri> <dimensions> <iterations> [partitions]`
// reads points (`label x1 … xD`, the label -1 or 1), keeps the parsed points
// cached, and runs `iterations` steps of gradient descent from zero weights:
// each step sums `(1 / (1 + exp(-y (w·x))) - 1) · y · x` over every point and
// subtracts the sum from `w`. It logs each iteration's time and the final
// weights (`final w: w1 … wD`, each printed so that it parses back to the same
// number). The weights reach `gradient` as its bound parameter, one per
// iteration; the sum is a reduceByKey over one key, folded in each task first.
import * as weft from "weft";

const { string, f64, i64, list, tuple } = weft.types;
const point = tuple(f64, list(f64));

/** `[y, x]` of a line; a line that does not parse is skipped. */
const parsePoint = weft.flatMap("parse_point", string, point, (line) => {
  const fields = line.trim().split(/\s+/).map(Number);
  if (fields.length < 2 || fields.some(Number.isNaN)) return [];
  return [[fields[0], fields.slice(1)]];
});

/** One point's contribution to the gradient at `w`, under the one key. */
const gradient = weft.map(
  "gradient",
  point,
  tuple(i64, list(f64)),
  ([y, x], w) => {
    let dot = 0;
    for (let j = 0; j < x.length; j++) dot += w[j] * x[j];
    const scale = (1 / (1 + Math.exp(-y * dot)) - 1) * y;
    return [0, x.map((v) => scale * v)];
  },
  { param: list(f64) },
);

/** Two partial gradients, added. */
const add = weft.reduce("add", list(f64), (a, b) => a.map((v, j) => v + b[j]));

weft.main((ctx) => {
  const args = ctx.args;
  if (args.length < 3 || args.length > 4) throw new Error("usage: logreg <points-uri> <dimensions> <iterations> [partitions]");
  const [dimensions, iterations] = [Number(args[1]), Number(args[2])];
  const points = ctx.textFile(args[0], args.length === 4 ? Number(args[3]) : 4).flatMap(parsePoint).cache();
  let w = new Array(dimensions).fill(0);
  for (let i = 1; i <= iterations; i++) {
    const started = Date.now();
    const sums = points.map(gradient.bind(w)).reduceByKey(add, 1).collect();
    if (sums.length !== 1) throw new Error(`iteration ${i}: ${sums.length} gradient sums, not 1 (no points?)`);
    const g = sums[0][1];
    if (g.length !== dimensions) throw new Error(`points have ${g.length} features, not ${dimensions}`);
    w = w.map((v, j) => v - g[j]);
    weft.log.info(`iteration ${i}: ${((Date.now() - started) / 1000).toFixed(6)} s`);
  }
  weft.log.info(`final w: ${w.map(String).join(" ")}`);
});
