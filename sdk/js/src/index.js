// weft's JavaScript SDK: write a weft job in JavaScript.
//
// A job module registers user functions with their record types and a main:
//
//   import * as weft from "weft";
//   const { string } = weft.types;
//   const splitWords = weft.flatMap("split_words", string, string, (line) => line.toLowerCase().split(/\s+/).filter(Boolean));
//   weft.main((ctx) => {
//     const [src, out] = ctx.args;
//     ctx.textFile(src, 4).flatMap(splitWords).countByValue().saveAsTextFile(out);
//   });
//
// `node sdk/js/build.mjs job.js -o job.wasm` makes it a component. The guide
// is docs/sdk-js.md.
import * as codec from "./codec.js";
import { PARTITION, REGISTRY, Layout } from "./dispatch.js";
import { random, stepName } from "./steps.js";

export const types = codec.types;
export { codec };

let driverHost = null;
/** The host's driver imports (guest.js sets them inside a component). */
export function useDriver(h) {
  driverHost = h;
}

function host() {
  if (!driverHost) throw new JobFailed("driver calls work only in a weft component");
  return driverHost;
}

/** An action's job failed, or a driver call was refused. */
export class JobFailed extends Error {
  constructor(message) {
    super(message);
    this.name = "JobFailed";
  }
}

function call(f) {
  try {
    return f(host());
  } catch (e) {
    const p = e && e.payload;
    if (p && typeof p === "object" && "tag" in p) {
      throw new JobFailed(p.tag === "not-a-driver" ? "driver calls work only in the job's main, not inside a task" : p.val);
    }
    throw e;
  }
}

class Fn {
  constructor(kind, name, input, output, fn, param) {
    if (typeof name !== "string" || !name) throw new TypeError(`a weft ${kind} function needs a name`);
    if (REGISTRY.has(name)) throw new TypeError(`two functions are named \`${name}\``);
    Object.assign(this, { kind, name, input: new Layout(input), output: output && new Layout(output), fn, param });
    REGISTRY.set(name, this);
  }
  /** This function with `value` (or a broadcast) as its last argument in every task. */
  bind(value) {
    if (!this.param) throw new TypeError(`\`${this.name}\` takes no parameter: register it with { param: type }`);
    return { function: this, value };
  }
}

const opts = (o) => (o && o.param ? o.param : null);
/** One record in, one out. */
export const map = (name, input, output, fn, o) => new Fn("map", name, input, output, fn, opts(o));
/** Keep the records for which `fn` is true. */
export const filter = (name, input, fn, o) => new Fn("filter", name, input, input, fn, opts(o));
/** One record in, any number out (an array or any iterable). */
export const flatMap = (name, input, output, fn, o) => new Fn("flat-map", name, input, output, fn, opts(o));
/** A whole partition (an array) in, an iterable out. */
export const mapPartitions = (name, input, output, fn) => new Fn("map-batch", name, input, output, fn, null);
/** An associative fold of two values of one key. */
export const reduce = (name, value, fn) => new Fn("reduce", name, value, value, fn, null);

const add = reduce("_weft:add", types.i64, (a, b) => a + b);
const keep = reduce("_weft:keep", types.unit, () => null);

let mainFn = null;
/** The job's driver, called with a Context when the job starts. */
export function main(fn) {
  mainFn = fn;
}
export function runMain() {
  if (!mainFn) throw new Error("this job has no weft.main");
  return mainFn(new Context());
}

/** A named counter tasks add to and the driver reads. */
export function accumulator(name) {
  return {
    add(delta = 1) {
      host().accumulatorAdd(name, BigInt(delta));
    },
    get value() {
      return Number(call((h) => h.accumulatorValue(name)));
    },
  };
}

/** Lines into the task's log (`console.log` goes there too). */
export const log = Object.fromEntries(
  ["trace", "debug", "info", "warn", "error"].map((level) => [level, (msg) => host().log(level, String(msg))]),
);

function infer(v) {
  if (typeof v === "string") return types.string;
  if (typeof v === "boolean") return types.bool;
  if (typeof v === "number") return Number.isInteger(v) ? types.i64 : types.f64;
  if (typeof v === "bigint") return types.i64n;
  if (v instanceof Uint8Array) return types.bytes;
  if (v === null) return types.unit;
  throw new TypeError(`cannot tell the type of ${String(v)}: pass one`);
}

export class Context {
  /** What followed `--` on the command line. */
  get args() {
    return host().args();
  }
  /** The lines of the text files at `uri` (plain, .gz or .zst), as strings. */
  textFile(uri, partitions = 2) {
    return new Dataset(call((h) => h.textFile(uri, partitions, false)), new Layout(types.string));
  }
  /** As `textFile`, but each line is a Uint8Array, not checked to be UTF-8. */
  textFileBytes(uri, partitions = 2) {
    return new Dataset(call((h) => h.textFile(uri, partitions, true)), new Layout(types.bytes));
  }
  /** A dataset of `records` of `type` (inferred from the first when left out). */
  parallelize(records, partitions = 2, type = undefined) {
    const t = type || (records.length ? infer(records[0]) : null);
    if (!t) throw new TypeError("parallelize of no records needs a type");
    const layout = new Layout(t);
    return new Dataset(call((h) => h.parallelize(layout.encode(records), layout.keyed, partitions)), layout);
  }
  /** Ship `value` once to every task; bind it with `f.bind(b)`. */
  broadcast(value, type = undefined) {
    const t = type || infer(value);
    return { broadcast: call((h) => h.broadcast(t.record(value))), type: t };
  }
}

/** The function for `what`, which takes no bound parameter. */
function plain(f, want, what) {
  if (f && f.function) throw new TypeError(`${what} takes a function without a bound parameter`);
  return step(f, want)[0];
}

/** `fn`, which must take records of type `t`. */
function takes(fn, t) {
  if (fn.input.type.name !== t.name) throw new TypeError(`\`${fn.name}\` takes \`${fn.input.type.name}\` records; these are \`${t.name}\``);
  return fn;
}

function step(f, want) {
  let param = null;
  let fn = f;
  if (f && f.function) {
    fn = f.function;
    const v = f.value;
    if (v && v.broadcast !== undefined) {
      if (v.type.name !== fn.param.name) throw new TypeError(`\`${fn.name}\` takes a \`${fn.param.name}\`, the broadcast is a \`${v.type.name}\``);
      param = v.broadcast;
    } else param = call((h) => h.broadcast(fn.param.record(v)));
  }
  if (!(fn instanceof Fn)) throw new TypeError(`${String(fn)} is not a weft function: register it with weft.${want}(name, types…, fn)`);
  const kinds = { "flat-map": "flatMap", "map-batch": "mapPartitions" };
  if (fn.kind !== want) throw new TypeError(`\`${fn.name}\` is a ${kinds[fn.kind] || fn.kind} function; this needs ${kinds[want] || want}`);
  if (fn.param && param === null) throw new TypeError(`\`${fn.name}\` takes a parameter of type \`${fn.param.name}\`: pass ${fn.name}.bind(value)`);
  return [fn, param];
}

/** A distributed collection of records; pair datasets hold `[key, value]` arrays. */
export class Dataset {
  constructor(id, layout) {
    this.id = id;
    this.layout = layout;
  }
  get type() {
    return this.layout.type.name;
  }
  narrow(kind, name, param, out) {
    return new Dataset(call((h) => h.narrow(this.id, kind, name, param, out.keyed)), out);
  }
  user(f, kind) {
    const [fn, param] = step(f, kind);
    if (fn.input.type.name !== this.type) throw new TypeError(`\`${fn.name}\` takes \`${fn.input.type.name}\` records; this dataset holds \`${this.type}\``);
    return this.narrow(kind, fn.name, param, fn.output);
  }
  own(op, args, out, kind = "map") {
    return this.narrow(kind, stepName(op, ...args), null, out);
  }
  map(f) {
    return this.user(f, "map");
  }
  filter(f) {
    return this.user(f, "filter");
  }
  flatMap(f) {
    return this.user(f, "flat-map");
  }
  mapPartitions(f) {
    const fn = takes(plain(f, "map-batch", "mapPartitions"), this.layout.type);
    return this.narrow("map-batch", PARTITION + fn.name, null, fn.output);
  }
  keyBy(f) {
    const fn = takes(plain(f, "map", "keyBy"), this.layout.type);
    return this.own("key-by", [fn.name], new Layout(types.tuple(fn.output.type, fn.input.type)));
  }
  union(other) {
    if (other.type !== this.type) throw new TypeError(`union of \`${this.type}\` and \`${other.type}\``);
    return new Dataset(call((h) => h.union(this.id, other.id)), this.layout);
  }
  distinct(partitions = 0) {
    const t = this.layout.type;
    return this.own("self-key", [t], new Layout(types.tuple(t, types.unit))).reduceByKey(keep, partitions).keys();
  }
  countByValue(partitions = 0) {
    const t = this.layout.type;
    return this.own("one", [t], new Layout(types.tuple(t, types.i64))).reduceByKey(add, partitions);
  }
  mapBatch(f) {
    return this.user(f, "map-batch");
  }
  /** Each record kept with probability `fraction`, the same records on every run. */
  sample(fraction, seed = 0) {
    if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`sample's fraction is between 0 and 1, not ${fraction}`);
    return this.own("sample", [this.layout.type, fraction, seed], this.layout, "filter");
  }
  /** The records spread evenly over `partitions` partitions (a shuffle). */
  repartition(partitions) {
    const t = this.layout.type;
    return this.own("spread", [t], new Layout(types.tuple(types.i64, t))).partitionBy(partitions).values();
  }
  /** As repartition: always a shuffle. */
  coalesce(partitions) {
    return this.repartition(partitions);
  }
  /** `[index, record]`, counting from 0 in partition order (a job counts the partitions first). */
  zipWithIndex() {
    const t = this.layout.type;
    const sizes = this.own("sizes", [t], new Layout(types.tuple(types.u32, types.i64)), "map-batch");
    const counts = new Map(sizes.sumByKey(1).collect());
    const offsets = [];
    let total = 0;
    for (let p = 0; p <= Math.max(-1, ...counts.keys()); p++) {
      offsets.push(total);
      total += counts.get(p) || 0;
    }
    return this.own("index", [t, offsets.join(",")], new Layout(types.tuple(types.i64, t)));
  }
  /** Every `[a, b]` of a record here and one there, made in one task: keep one side small. */
  cartesian(other) {
    const [a, b] = [this.layout.type, other.layout.type];
    const left = this.own("unit-key", [a], new Layout(types.tuple(types.unit, a)));
    const right = other.own("unit-key", [b], new Layout(types.tuple(types.unit, b)));
    return left.join(right, 1).values();
  }
  /** The records the other dataset lacks (duplicates kept). */
  subtract(other, partitions = 0) {
    return this.byValue(other, "subtract", partitions);
  }
  /** The records in both datasets, each once. */
  intersection(other, partitions = 0) {
    return this.byValue(other, "intersection", partitions);
  }
  byValue(other, op, partitions) {
    const t = this.layout.type;
    if (other.type !== this.type) throw new TypeError(`${op} of \`${this.type}\` and \`${other.type}\``);
    const keyed = new Layout(types.tuple(t, types.unit));
    const [a, b] = [this.own("self-key", [t], keyed), other.own("self-key", [t], keyed)];
    return a.groupedSides(b, partitions).own(op, [t, types.unit, types.unit], new Layout(t), "flat-map");
  }
  /** Action: a map function run on every record for its effects. */
  foreach(f) {
    this.map(f).count();
  }
  /** Action: a mapPartitions function run once per whole partition for its effects. */
  foreachPartition(f) {
    this.mapPartitions(f).count();
  }
  isEmpty() {
    return this.take(1).length === 0;
  }
  /** Action: the records folded by a reduce function, then into `zero` once. */
  fold(zero, f) {
    const [fn] = step(f, "reduce");
    return this.isEmpty() ? zero : fn.fn(zero, this.reduce(f));
  }
  /** Action: the records turned by a map function and folded with `zero` by a reduce one. */
  aggregate(zero, to, comb) {
    return this.map(to).fold(zero, comb);
  }
  /** Action: `n` records drawn without replacement, in an order drawn from `seed`. */
  takeSample(n, seed = 0) {
    const total = this.count();
    if (n <= 0 || total === 0) return [];
    const fraction = Math.min(1, (n + 3 * Math.sqrt(n) + 10) / total);
    let got = fraction < 1 ? this.sample(fraction, seed).collect() : this.collect();
    if (got.length < Math.min(n, total)) got = this.collect();
    const draw = random(`take:${seed}`);
    for (let i = got.length - 1; i > 0; i--) {
      const j = Math.floor(draw() * (i + 1));
      [got[i], got[j]] = [got[j], got[i]];
    }
    return got.slice(0, n);
  }
  /** Action: the `n` greatest records, greatest first. */
  top(n) {
    return this.ordered(n, false);
  }
  /** Action: the `n` least records, least first. */
  takeOrdered(n) {
    return this.ordered(n, true);
  }
  ordered(n, ascending) {
    const t = this.layout.type;
    return this.own("self-key", [t], new Layout(types.tuple(t, types.unit))).sortByKey(ascending, 1).take(n).map(([k]) => k);
  }
  sortBy(f, ascending = true, partitions = 0) {
    return this.keyBy(f).sortByKey(ascending, partitions).values();
  }
  pairs(what) {
    if (!this.layout.keyed) throw new TypeError(`${what} needs a pair dataset; this one holds \`${this.type}\``);
    return [this.layout.key, this.layout.value];
  }
  keys() {
    const [k, v] = this.pairs("keys()");
    return this.own("keys", [k, v], new Layout(k));
  }
  values() {
    const [k, v] = this.pairs("values()");
    return this.own("values", [k, v], new Layout(v));
  }
  mapValues(f) {
    const [k, v] = this.pairs("mapValues");
    const fn = takes(plain(f, "map", "mapValues"), v);
    return this.own("map-values", [k, fn.name], new Layout(types.tuple(k, fn.output.type)));
  }
  flatMapValues(f) {
    const [k, v] = this.pairs("flatMapValues");
    const fn = takes(plain(f, "flat-map", "flatMapValues"), v);
    return this.own("flat-map-values", [k, fn.name], new Layout(types.tuple(k, fn.output.type)), "flat-map");
  }
  shuffle(op, partitions, out) {
    return new Dataset(call((h) => h.shuffle(this.id, op, partitions)), out);
  }
  reduceByKey(f, partitions = 0) {
    const [, v] = this.pairs("reduceByKey");
    const fn = plain(f, "reduce", "reduceByKey");
    if (fn.input.type.name !== v.name) throw new TypeError(`\`${fn.name}\` folds \`${fn.input.type.name}\` values; these are \`${v.name}\``);
    return this.shuffle({ tag: "reduce-by-key", val: fn.name }, partitions, this.layout);
  }
  sumByKey(partitions = 0) {
    const [, v] = this.pairs("sumByKey");
    if (v === types.i64 || v === types.i64n) return this.shuffle({ tag: "sum-by-key" }, partitions, this.layout);
    if (v === types.f64) return this.shuffle({ tag: "fold-by-key", val: "sum-f64" }, partitions, this.layout);
    throw new TypeError(`sumByKey sums i64 or f64 values, not \`${v.name}\``);
  }
  minByKey(partitions = 0) {
    return this.nativeFold("min", partitions);
  }
  maxByKey(partitions = 0) {
    return this.nativeFold("max", partitions);
  }
  nativeFold(fold, partitions) {
    const [, v] = this.pairs(`${fold}ByKey`);
    if (v !== types.i64 && v !== types.i64n && v !== types.f64) throw new TypeError(`${fold}ByKey folds i64 or f64 values, not \`${v.name}\``);
    return this.shuffle({ tag: "fold-by-key", val: fold }, partitions, this.layout);
  }
  /** The values of each key folded by a reduce function, then into `zero` once per key. */
  foldByKey(zero, f, partitions = 0) {
    const [k] = this.pairs("foldByKey");
    const [fn] = step(f, "reduce");
    const hex = Array.from(fn.input.type.record(zero), (x) => x.toString(16).padStart(2, "0")).join("");
    return this.reduceByKey(f, partitions).own("with-zero", [k, fn.name, hex], this.layout);
  }
  /** Each key's values turned into combiners by `create` (map) and merged by `merge` (reduce). */
  combineByKey(create, merge, partitions = 0) {
    return this.mapValues(create).reduceByKey(merge, partitions);
  }
  /** Each key's values turned by `to` (map) and folded with `zero` by `comb` (reduce). */
  aggregateByKey(zero, to, comb, partitions = 0) {
    return this.mapValues(to).foldByKey(zero, comb, partitions);
  }
  groupedSides(other, partitions) {
    const [k, v] = this.pairs("cogroup");
    const [k2, w] = other.pairs("cogroup");
    if (k.name !== k2.name) throw new TypeError(`cogroup of \`${k.name}\` keys with \`${k2.name}\` keys`);
    const tagged = new Layout(types.tuple(k, types.bytes));
    return this.own("tag", [k, v, 0], tagged).union(other.own("tag", [k, w, 1], tagged)).groupByKey(partitions);
  }
  sides(other, op, partitions) {
    const [k, v] = this.pairs(op);
    const [, w] = other.pairs(op);
    const values = {
      cogroup: () => types.tuple(types.list(v), types.list(w)),
      "left-outer": () => types.tuple(v, types.option(w)),
      "right-outer": () => types.tuple(types.option(v), w),
      "full-outer": () => types.tuple(types.option(v), types.option(w)),
    }[op]();
    return this.groupedSides(other, partitions).own(op, [k, v, w], new Layout(types.tuple(k, values)), op === "cogroup" ? "map" : "flat-map");
  }
  /** For each key of either dataset, `[key, [its values here, its values there]]`. */
  cogroup(other, partitions = 0) {
    return this.sides(other, "cogroup", partitions);
  }
  leftOuterJoin(other, partitions = 0) {
    return this.sides(other, "left-outer", partitions);
  }
  rightOuterJoin(other, partitions = 0) {
    return this.sides(other, "right-outer", partitions);
  }
  fullOuterJoin(other, partitions = 0) {
    return this.sides(other, "full-outer", partitions);
  }
  /** The pairs as a Map (a later pair of a key wins). */
  collectAsMap() {
    this.pairs("collectAsMap");
    return new Map(this.collect());
  }
  countByKey(partitions = 0) {
    const [k, v] = this.pairs("countByKey");
    return this.own("ones", [k, v], new Layout(types.tuple(k, types.i64))).reduceByKey(add, partitions);
  }
  groupByKey(partitions = 0) {
    const [k, v] = this.pairs("groupByKey");
    return this.shuffle({ tag: "group-by-key" }, partitions, new Layout(types.tuple(k, types.list(v))));
  }
  sortByKey(ascending = true, partitions = 0) {
    this.pairs("sortByKey");
    return this.shuffle({ tag: "sort-by-key", val: Boolean(ascending) }, partitions, this.layout);
  }
  partitionBy(partitions) {
    this.pairs("partitionBy");
    return this.shuffle({ tag: "partition-by" }, partitions, this.layout);
  }
  join(other, partitions = 0) {
    const [k, v] = this.pairs("join");
    const [k2, w] = other.pairs("join");
    if (k.name !== k2.name) throw new TypeError(`join of \`${k.name}\` keys with \`${k2.name}\` keys`);
    const out = new Layout(types.tuple(k, types.tuple(v, w)));
    return new Dataset(call((h) => h.join(this.id, other.id, partitions)), out);
  }
  cache() {
    return this.persist("memory-only");
  }
  persist(level = "memory-only") {
    call((h) => h.persist(this.id, level));
    return this;
  }
  unpersist() {
    call((h) => h.persist(this.id, null));
    return this;
  }
  collect() {
    return this.layout.decode(call((h) => h.collect(this.id)));
  }
  count() {
    return Number(call((h) => h.count(this.id)));
  }
  take(n) {
    return this.layout.decode(call((h) => h.take(this.id, BigInt(n))));
  }
  first() {
    const got = this.take(1);
    if (!got.length) throw new JobFailed("first() of an empty dataset");
    return got[0];
  }
  reduce(f) {
    const t = this.layout.type;
    const got = this.own("unit-key", [t], new Layout(types.tuple(types.unit, t))).reduceByKey(f, 1).collect();
    if (!got.length) throw new JobFailed("reduce() of an empty dataset");
    return got[0][1];
  }
  /** One line per record (strings as they are, others as JSON; pairs as `key<TAB>value`). */
  saveAsTextFile(uri) {
    const ds = this.layout.type === types.string ? this : this.own("display", [this.layout.type], new Layout(types.string));
    call((h) => h.saveAsTextFile(ds.id, uri));
  }
}
