// The JavaScript SDK's operators beyond the conformance job, each written to
// its own output (the same outputs as tests/guests/python/ops.py) for
// cli/tests/all/conformance.rs to check against native results.
//
//   ops <left-uri> <right-uri> <words-uri> <out-dir-uri>
import * as weft from "weft";

const { string, i64, tuple, list, option, unit } = weft.types;

const keyAndNumber = weft.map("key_and_number", string, tuple(string, i64), (line) => {
  const [k, n] = line.split(",");
  return [k, Number(n)];
});
const splitWords = weft.flatMap("split_words", string, string, (line) => line.split(" ").filter((w) => w));
const add = weft.reduce("add", i64, (a, b) => a + b);
const asList = weft.map("as_list", i64, list(i64), (n) => [n]);
const concat = weft.reduce("concat", list(i64), (a, b) => a.concat(b));
const doubled = weft.map("doubled", i64, i64, (n) => 2 * n);
const length = weft.map("length", string, i64, (w) => w.length);
const csv = (vs) => [...vs].sort((a, b) => a - b).join(",");
const dash = (v) => (v === null ? "-" : String(v));
const showCogroup = weft.map("show_cogroup", tuple(string, tuple(list(i64), list(i64))), string, ([k, [l, r]]) => `${k}\t${csv(l)}\t${csv(r)}`);
const showLeft = weft.map("show_left", tuple(string, tuple(i64, option(i64))), string, ([k, [v, w]]) => `${k}\t${v}\t${dash(w)}`);
const showRight = weft.map("show_right", tuple(string, tuple(option(i64), i64)), string, ([k, [v, w]]) => `${k}\t${dash(v)}\t${w}`);
const showFull = weft.map("show_full", tuple(string, tuple(option(i64), option(i64))), string, ([k, [v, w]]) => `${k}\t${dash(v)}\t${dash(w)}`);
const showSorted = weft.map("show_sorted", tuple(string, list(i64)), string, ([k, vs]) => `${k}\t${csv(vs)}`);
const showPair = weft.map("show_pair", tuple(string, string), string, ([a, b]) => `${a}\t${b}`);
const showIndexed = weft.map("show_indexed", tuple(i64, string), string, ([i, l]) => `${i}\t${l}`);
const never = weft.filter("never", string, () => false);
const see = weft.map("see", string, unit, () => {
  weft.accumulator("seen").add(1);
  return null;
});

weft.main((ctx) => {
  const [leftUri, rightUri, wordsUri, out] = ctx.args;
  const left = ctx.textFile(leftUri, 2).map(keyAndNumber);
  const right = ctx.textFile(rightUri, 3).map(keyAndNumber);
  const words = ctx.textFile(wordsUri, 3).flatMap(splitWords);
  const lines = ctx.textFile(wordsUri, 3);

  left.cogroup(right, 3).map(showCogroup).saveAsTextFile(`${out}/cogroup`);
  left.leftOuterJoin(right, 2).map(showLeft).saveAsTextFile(`${out}/left`);
  left.rightOuterJoin(right, 2).map(showRight).saveAsTextFile(`${out}/right`);
  left.fullOuterJoin(right, 2).map(showFull).saveAsTextFile(`${out}/full`);
  left.foldByKey(0, add, 2).saveAsTextFile(`${out}/fold_by_key`);
  left.combineByKey(asList, concat, 2).map(showSorted).saveAsTextFile(`${out}/combine_by_key`);
  left.aggregateByKey(0, doubled, add, 2).saveAsTextFile(`${out}/aggregate_by_key`);

  const other = ctx.parallelize(["the", "and", "nothing-like-it"], 2);
  words.subtract(other, 3).saveAsTextFile(`${out}/subtract`);
  words.intersection(other, 2).saveAsTextFile(`${out}/intersection`);
  ctx.parallelize(["a", "b", "c"], 2).cartesian(ctx.parallelize(["x", "y"], 1)).map(showPair).saveAsTextFile(`${out}/cartesian`);
  lines.repartition(3).saveAsTextFile(`${out}/repartition`);
  lines.zipWithIndex().map(showIndexed).saveAsTextFile(`${out}/zip_with_index`);
  lines.sample(0.5, 7).saveAsTextFile(`${out}/sample`);
  lines.sample(0.5, 7).saveAsTextFile(`${out}/sample-again`);

  const lengths = words.map(length);
  weft.log.info(`fold=${lengths.fold(0, add)}`);
  weft.log.info(`aggregate=${words.aggregate(0, length, add)}`);
  weft.log.info(`reduce=${lengths.reduce(add)}`);
  weft.log.info(`distinct=${words.distinct(2).count()}`);
  weft.log.info(`top=${words.top(3).join(",")}`);
  weft.log.info(`take_ordered=${words.takeOrdered(3).join(",")}`);
  weft.log.info(`take_sample=${lines.takeSample(5, 11).join("|")}`);
  weft.log.info(`is_empty=${words.isEmpty()},${words.filter(never).isEmpty()}`);
  weft.log.info(`collect_as_map=${left.reduceByKey(add).collectAsMap().size}`);
  words.foreach(see);
  weft.log.info(`foreach=${weft.accumulator("seen").value}`);
});
