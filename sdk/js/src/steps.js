// The SDK's own steps: the type-generic operations (`keys()`, `mapValues`,
// `countByValue`, ...) that no user function expresses. A step's name spells
// it, `_weft.<op>|<arg>|...` (each argument a contract type name or a user
// function's name), so every task instance rebuilds it from the name alone.
// The table is in docs/sdk-js.md.
import { parse, types } from "./codec.js";
import { CallFailed, Layout, REGISTRY, Step, partition, useOwnSteps } from "./dispatch.js";

const PREFIX = "_weft.";

/** The name of step `op` with `args` (types or function names). */
export function stepName(op, ...args) {
  return [PREFIX + op, ...args.map((a) => (typeof a === "object" ? a.name : String(a)))].join("|");
}

const pair = (k, v) => new Layout(types.tuple(k, v));

function user(name) {
  const f = REGISTRY.get(name);
  if (!f) throw new CallFailed("unknown-function", `no function \`${name}\` in this job`);
  return f;
}

function build(full) {
  const [op, ...args] = full.slice(PREFIX.length).split("|");
  const t = (i) => parse(args[i]);
  switch (op) {
    case "keys":
      return new Step("map", full, (kv) => kv[0], pair(t(0), t(1)), new Layout(t(0)));
    case "values":
      return new Step("map", full, (kv) => kv[1], pair(t(0), t(1)), new Layout(t(1)));
    case "one":
      return new Step("map", full, (r) => [r, 1], new Layout(t(0)), pair(t(0), types.i64));
    case "ones":
      return new Step("map", full, (kv) => [kv[0], 1], pair(t(0), t(1)), pair(t(0), types.i64));
    case "unit-key":
      return new Step("map", full, (r) => [null, r], new Layout(t(0)), pair(types.unit, t(0)));
    case "self-key":
      return new Step("map", full, (r) => [r, null], new Layout(t(0)), pair(t(0), types.unit));
    case "display": {
      const layout = new Layout(t(0));
      const text = (v) => (typeof v === "string" ? v : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v));
      const show = layout.keyed ? (kv) => `${text(kv[0])}\t${text(kv[1])}` : text;
      return new Step("map", full, show, layout, new Layout(types.string));
    }
    case "map-values":
    case "flat-map-values": {
      const k = t(0);
      const f = user(args[1]);
      const fn = f.fn;
      const out = pair(k, f.output.type);
      if (op === "map-values") return new Step("map", f.name, (kv) => [kv[0], fn(kv[1])], pair(k, f.input.type), out);
      return new Step("flat-map", f.name, (kv) => Array.from(fn(kv[1]), (w) => [kv[0], w]), pair(k, f.input.type), out);
    }
    case "key-by": {
      const f = user(args[0]);
      const fn = f.fn;
      return new Step("map", f.name, (r) => [fn(r), r], f.input, pair(f.output.type, f.input.type));
    }
    case "with-zero": {
      const k = t(0);
      const f = user(args[1]);
      const zero = f.input.type.fromRecord(Uint8Array.from(args[2].match(/../g) || [], (h) => parseInt(h, 16)));
      const fn = f.fn;
      return new Step("map", f.name, (kv) => [kv[0], fn(zero, kv[1])], pair(k, f.input.type), pair(k, f.output.type));
    }
    case "tag": {
      const v = t(1);
      const side = Number(args[2]);
      return new Step("map", full, (kv) => {
        const rec = v.record(kv[1]);
        const out = new Uint8Array(rec.length + 1);
        out[0] = side;
        out.set(rec, 1);
        return [kv[0], out];
      }, pair(t(0), v), pair(t(0), types.bytes));
    }
    case "cogroup":
    case "left-outer":
    case "right-outer":
    case "full-outer":
    case "subtract":
    case "intersection":
      return sides(op, full, t(0), t(1), t(2));
    case "sample": {
      const fraction = Number(args[1]);
      const draw = random(`${args[2]}:${partition()}`);
      return new Step("filter", full, () => draw() < fraction, new Layout(t(0)), new Layout(t(0)));
    }
    case "spread": {
      let n = partition() * 4294967296;
      return new Step("map", full, (r) => [n++, r], new Layout(t(0)), pair(types.i64, t(0)));
    }
    case "sizes": {
      const p = partition();
      return new Step("map-batch", full, (rs) => [[p, rs.length]], new Layout(t(0)), pair(types.u32, types.i64));
    }
    case "index": {
      const offsets = args[1] ? args[1].split(",").map(Number) : [];
      const p = partition();
      let n = p < offsets.length ? offsets[p] : 0;
      return new Step("map", full, (r) => [n++, r], new Layout(t(0)), pair(types.i64, t(0)));
    }
    default:
      throw new TypeError(`no step \`${op}\``);
  }
}

/** A deterministic stream of numbers in [0, 1) from a text seed (FNV-1a, then mulberry32). */
export function random(seed) {
  let h = 2166136261;
  for (let i = 0; i < seed.length; i++) h = Math.imul(h ^ seed.charCodeAt(i), 16777619);
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** A cogroup's tagged values (side byte, then the record) split by side. */
function split(values, v, w) {
  const left = [];
  const right = [];
  for (const b of values) {
    if (b[0] === 0) left.push(v.fromRecord(b.subarray(1)));
    else right.push(w.fromRecord(b.subarray(1)));
  }
  return [left, right];
}

/** The steps after a cogroup's groupByKey: `[k, [tagged values]]` in. */
function sides(op, full, k, v, w) {
  const grouped = pair(k, types.list(types.bytes));
  if (op === "cogroup") {
    return new Step("map", full, ([key, vs]) => [key, split(vs, v, w)], grouped, pair(k, types.tuple(types.list(v), types.list(w))));
  }
  if (op === "subtract" || op === "intersection") {
    const keep = ([key, vs]) => {
      const [left, right] = split(vs, types.unit, types.unit);
      if (op === "subtract") return right.length ? [] : left.map(() => key);
      return left.length && right.length ? [key] : [];
    };
    return new Step("flat-map", full, keep, grouped, new Layout(k));
  }
  const none = [null];
  const joined = ([key, vs]) => {
    const [left, right] = split(vs, v, w);
    const ls = op === "left-outer" ? left : left.length ? left : none;
    const rs = op === "right-outer" ? right : right.length ? right : none;
    const out = [];
    for (const a of ls) for (const b of rs) out.push([key, [a, b]]);
    return out;
  };
  const vt = op === "left-outer" ? v : types.option(v);
  const wt = op === "right-outer" ? w : types.option(w);
  return new Step("flat-map", full, joined, grouped, pair(k, types.tuple(vt, wt)));
}

useOwnSteps((_kind, full) => {
  try {
    return build(full);
  } catch (e) {
    if (e instanceof CallFailed) throw e;
    throw new CallFailed("unknown-function", `\`${full}\` is not a step of this SDK: ${e.message}`);
  }
});
