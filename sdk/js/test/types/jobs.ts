// The SDK's TypeScript declarations checked against a job (`tsc -p .`, run by
// `cargo xtask test`): what a job writes type-checks, and each
// `@ts-expect-error` line must be an error, so a declaration too loose fails.
import * as weft from "weft";

const { string, i64, f64, list, tuple } = weft.types;

const splitWords = weft.flatMap("split_words", string, string, (line) => line.split(/\s+/));
// TypeScript types an array literal as a tuple only where the expected type is
// already known, which a generic call's callback is not: say it on the arrow.
const byCount = weft.map("by_count", tuple(string, i64), tuple(i64, string), ([word, n]): [number, string] => [n, word]);
const add = weft.reduce("add", list(f64), (a, b) => a.map((v, j) => v + b[j]));
const gradient = weft.map(
  "gradient",
  tuple(f64, list(f64)),
  tuple(i64, list(f64)),
  ([y, x], w: number[]): [number, number[]] => [0, x.map((v, j) => v * w[j] * y)],
  { param: list(f64) },
);
const long = weft.filter("long", string, (w) => w.length > 3);

weft.main((ctx) => {
  const [src] = ctx.args;
  const counts = ctx.textFile(src).flatMap(splitWords).filter(long).countByValue();
  const top: [number, string][] = counts.map(byCount).sortByKey(false).take(10);
  const n: number = counts.count();
  const lookup: Map<string, number> = counts.collectAsMap();
  const points = ctx.parallelize<[number, number[]]>([[1, [0.5]]], 2, tuple(f64, list(f64)));
  const sums: [number, number[]][] = points.map(gradient.bind([0])).reduceByKey(add).collect();
  weft.log.info(`${top.length} ${n} ${lookup.size} ${sums.length}`);

  // @ts-expect-error: a string function does not apply to numbers
  ctx.parallelize([1, 2], 1, i64).map(byCount);
  // @ts-expect-error: a bound function needs its parameter's type
  points.map(gradient.bind("not a vector"));
  // @ts-expect-error: the tuple's second element is a number
  weft.map("bad", string, tuple(string, i64), (w) => [w, w]);
});
