// The dispatcher: `run-chain` and `flush-chain` in plain JavaScript
// (docs/record-format.md, "The dispatcher"). A chain's input batch is decoded
// once with its first step's layout, the steps pass arrays to each other, and
// the last step's output is encoded once. Pairs after a `reduce` keep their key
// bytes until a step needs the key; a `combine` folds into a Map held until
// `flush-chain`. The SDK's own steps (`_weft.*`) are in steps.js.
//
// Per-record loops are indexed `for` loops reading pairs as `p[0]`, `p[1]`:
// inside a component SpiderMonkey interprets, and there `for…of`, array
// destructuring and the self-hosted `Array.prototype.map`/`filter` cost ten
// times an indexed loop (docs/sdk-js.md, "Speed").
import { DecodeError, EncodeError, Writer, entries, types } from "./codec.js";

export const REGISTRY = new Map();
export const PARTITION = "weft:partition:";
export const HELD_KEYS = { max: 1 << 17 };

export class CallFailed extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

function show(v) {
  try {
    const s = JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x instanceof Uint8Array ? Array.from(x) : x));
    return s === undefined ? String(v) : s.length > 200 ? s.slice(0, 200) + "…" : s;
  } catch {
    return String(v);
  }
}

function userError(name, record, e) {
  const what = e instanceof Error ? `${e.name}: ${e.message}` : `the value ${show(e)}`;
  const stack = e instanceof Error && e.stack ? `\n${e.stack.trimEnd()}` : "";
  return new CallFailed("user", `\`${name}\` threw ${what}\n  on record ${show(record)}${stack}`);
}

/** How records sit in a batch: one entry, or two for a pair (a 2-tuple type). */
export class Layout {
  constructor(type) {
    this.type = type;
    this.keyed = Boolean(type.elems && type.elems.length === 2);
    if (this.keyed) {
      [this.key, this.value] = type.elems;
      if (!this.key.keyable) throw new TypeError(`\`${this.key.name}\` cannot be a key`);
    }
  }
  decode(batch) {
    const es = entries(batch);
    const n = es.length;
    if (!this.keyed) {
      const t = this.type;
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = t.fromRecord(es[i]);
      return out;
    }
    if (n % 2) throw new DecodeError("a pair batch with an odd number of entries");
    const out = new Array(n / 2);
    const k = this.key;
    const v = this.value;
    for (let i = 0; i < n; i += 2) out[i >> 1] = [k.fromKey(es[i]), v.fromRecord(es[i + 1])];
    return out;
  }
  encode(records) {
    const n = records.length;
    const w = new Writer(n * 16 + 16);
    if (!this.keyed) {
      const t = this.type;
      if (t === types.string) {
        for (let i = 0; i < n; i++) {
          const r = records[i];
          if (typeof r !== "string") throw new EncodeError(`${show(r)} is not a string`);
          w.pushString(r);
        }
      } else for (let i = 0; i < n; i++) w.push(t.record(records[i]));
      return w.finish();
    }
    const k = this.key;
    const v = this.value;
    for (let i = 0; i < n; i++) {
      const r = records[i];
      if (!Array.isArray(r) || r.length !== 2) throw new EncodeError(`${show(r)} is not a [key, value] pair`);
      w.push(k.key(r[0]));
      w.pushValue(v, r[1]);
    }
    return w.finish();
  }
}

class Step {
  constructor(kind, name, fn, input, output) {
    Object.assign(this, { kind, name, fn, input, output });
  }
}

const params = new Map();
let host = null;
/** The host's imports (set inside a component; tests may set their own). */
export function useHost(h) {
  host = h;
}

/** The partition this task computes (0 outside a component). */
export function partition() {
  return host && host.partition ? host.partition() : 0;
}

function param(id, type, name) {
  const key = `${id}:${type.name}`;
  if (!params.has(key)) {
    const raw = host && host.broadcastValue(id);
    if (raw === undefined || raw === null) throw new CallFailed("decode", `\`${name}\`: the job has no broadcast value ${id}`);
    try {
      params.set(key, type.fromRecord(raw));
    } catch (e) {
      throw new CallFailed("decode", `\`${name}\`: its parameter is not a \`${type.name}\`: ${e.message}`);
    }
  }
  return params.get(key);
}

let ownSteps = null;
/** Where the SDK's own steps come from (steps.js registers itself). */
export function useOwnSteps(resolve) {
  ownSteps = resolve;
}

function resolve([kind, name, p]) {
  if (name.startsWith("_weft.")) return ownSteps(kind, name);
  if (name.startsWith(PARTITION)) {
    const f = REGISTRY.get(name.slice(PARTITION.length));
    if (!f || f.kind !== "map-batch") throw new CallFailed("unknown-function", `no mapPartitions function \`${name.slice(PARTITION.length)}\``);
    return new Step("partition", f.name, f.fn, f.input, f.output);
  }
  const want = kind === "combine" ? "reduce" : kind;
  const f = REGISTRY.get(name);
  if (!f || f.kind !== want) {
    throw new CallFailed("unknown-function", `\`${name}\` is needed as a ${want} function; this job has ${f ? `a ${f.kind} function` : "no function"} of that name`);
  }
  let fn = f.fn;
  if (f.param) {
    if (p === null || p === undefined) throw new CallFailed("decode", `\`${name}\` needs a bound parameter and the step has none`);
    const value = param(p, f.param, name);
    fn = want === "reduce" ? (a, b) => f.fn(a, b, value) : (r) => f.fn(r, value);
  }
  return new Step(kind, f.name, fn, f.input, f.output);
}

const plans = new Map();
function plan(chain) {
  const key = JSON.stringify(chain);
  let p = plans.get(key);
  if (!p) {
    p = chain.map(resolve);
    plans.set(key, p);
  }
  return [key, p];
}

function apply(step, recs) {
  const fn = step.fn;
  let r;
  try {
    switch (step.kind) {
      case "map": {
        const n = recs.length;
        const out = new Array(n);
        for (let i = 0; i < n; i++) out[i] = fn((r = recs[i]));
        return out;
      }
      case "filter": {
        const out = [];
        for (let i = 0; i < recs.length; i++) if (fn((r = recs[i]))) out.push(r);
        return out;
      }
      case "flat-map": {
        const out = [];
        for (let i = 0; i < recs.length; i++) {
          const ys = fn((r = recs[i]));
          if (Array.isArray(ys)) for (let j = 0; j < ys.length; j++) out.push(ys[j]);
          else for (const y of ys) out.push(y);
        }
        return out;
      }
      default:
        r = `<a batch of ${recs.length} records>`;
        return Array.from(fn(recs));
    }
  } catch (e) {
    if (e instanceof CallFailed) throw e;
    throw userError(step.name, r, e);
  }
}

/** Raw pairs: `[key bytes, value]`, keys not decoded (after a reduce). */
class Raw {
  constructor(pairs) {
    this.pairs = pairs;
  }
}

/** A string for a Map key: the key itself for strings (exact), else its bytes. */
function indexOf(keyType) {
  if (keyType === types.string) return (k) => k;
  return (k) => binary(keyType.key(k));
}
/** Bytes as a string of one char per byte (in slices: `apply` takes so many arguments). */
function binary(b) {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
  return s;
}
const rawIndex = binary;

const held = new Map();

function combine(state, recs, raw) {
  const fn = state.step.fn;
  const m = state.values;
  let k, v;
  try {
    // A held entry is `[key, value]`, its value replaced in place.
    const n = recs.length;
    const index = raw ? rawIndex : state.index;
    for (let j = 0; j < n; j++) {
      const p = recs[j];
      k = p[0];
      v = p[1];
      const i = index(k);
      const old = m.get(i);
      if (old === undefined) m.set(i, [k, v]);
      else old[1] = fn(old[1], v);
    }
  } catch (e) {
    if (e instanceof EncodeError) throw new CallFailed("user", `\`${state.step.name}\`: a key does not encode: ${e.message}`);
    throw userError(state.step.name, [k, v], e);
  }
}

/** Whether `step` then `last` count string records (`_weft.one`, then a combine with add). */
function counts(step, last) {
  return last.kind === "combine" && last.name === "_weft:add" && step.name === "_weft.one|string";
}

function drain(state) {
  const vr = state.step.output.type;
  if (state.counts) {
    const w = new Writer(state.size * 24 + 16);
    const m = state.values;
    const ks = Object.keys(m);
    for (let i = 0; i < ks.length; i++) {
      w.pushString(ks[i]);
      w.pushValue(vr, m[ks[i]]);
    }
    state.values = Object.create(null);
    state.size = 0;
    return w.finish();
  }
  const w = new Writer(state.values.size * 24 + 16);
  try {
    const key = state.raw ? null : state.key;
    state.values.forEach((p) => {
      w.push(key ? key.key(p[0]) : p[0]);
      w.pushValue(vr, p[1]);
    });
  } catch (e) {
    throw new CallFailed("user", `\`${state.step.name}\` returned a value that does not encode: ${e.message}`);
  }
  state.values = new Map();
  return w.finish();
}

function decodeKeys(raw, layout, name) {
  if (!layout.keyed) throw new CallFailed("decode", `\`${name}\` takes records, but its input is pairs`);
  try {
    const pairs = raw.pairs;
    const out = new Array(pairs.length);
    for (let i = 0; i < pairs.length; i++) out[i] = [layout.key.fromKey(pairs[i][0]), pairs[i][1]];
    return out;
  } catch (e) {
    throw new CallFailed("decode", `the input of \`${name}\`: ${e.message}`);
  }
}

function rawPairs(step, batch) {
  try {
    const es = entries(batch);
    if (es.length % 2) throw new DecodeError("a pair batch with an odd number of entries");
    const out = new Array(es.length / 2);
    const t = step.input.type;
    for (let i = 0; i < es.length; i += 2) out[i >> 1] = [es[i], t.fromRecord(es[i + 1])];
    return out;
  } catch (e) {
    throw new CallFailed("decode", `the input of \`${step.name}\`: ${e.message}`);
  }
}

function foldRuns(step, pairs) {
  const out = [];
  let k = null;
  let v;
  let b;
  try {
    for (let i = 0; i < pairs.length; i++) {
      const kb = pairs[i][0];
      const x = (b = pairs[i][1]);
      if (k !== null && equal(kb, k)) v = step.fn(v, x);
      else {
        if (k !== null) out.push([k, v]);
        k = kb;
        v = x;
      }
    }
  } catch (e) {
    throw userError(step.name, [v, b], e);
  }
  if (k !== null) out.push([k, v]);
  return new Raw(out);
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function decode(step, batch) {
  try {
    return step.input.decode(batch);
  } catch (e) {
    throw new CallFailed("decode", `the input of \`${step.name}\` is not \`${step.input.type.name}\`: ${e.message}`);
  }
}

function encode(step, recs) {
  try {
    if (recs instanceof Raw) {
      const w = new Writer();
      const pairs = recs.pairs;
      const t = step.output.type;
      for (let i = 0; i < pairs.length; i++) {
        w.push(pairs[i][0]);
        w.pushValue(t, pairs[i][1]);
      }
      return w.finish();
    }
    return step.output.encode(recs);
  } catch (e) {
    throw new CallFailed("user", `\`${step.name}\` returned a value that is not \`${step.output.type.name}\`: ${e.message}`);
  }
}

/** Run `chain` (an array of `[kind, function, param]`) over one input batch. */
export function runChain(chain, batch) {
  if (chain.length === 0) return batch;
  const [key, steps] = plan(chain);
  return run(key, steps, batch, false);
}

/** What a chain holds (a combine's folds, a whole partition), at the task's end. */
export function flushChain(chain) {
  const [key, steps] = plan(chain);
  return run(key, steps, null, true);
}

function run(key, steps, batch, flushing) {
  let start = 0;
  let recs;
  if (flushing) {
    start = steps.findIndex((s) => s.kind === "partition");
    if (start < 0) {
      const last = steps[steps.length - 1];
      const state = held.get(key);
      held.delete(key);
      return last && last.kind === "combine" && state ? drain(state) : new Uint8Array(0);
    }
    const batches = held.get(key) || [];
    held.delete(key);
    const all = batches.flat();
    try {
      recs = Array.from(steps[start].fn(all));
    } catch (e) {
      throw userError(steps[start].name, `<a partition of ${all.length} records>`, e);
    }
    start += 1;
  } else {
    const first = steps[0];
    if (first.kind === "partition") {
      if (!held.has(key)) held.set(key, []);
      held.get(key).push(decode(first, batch));
      return new Uint8Array(0);
    }
    if (first.kind === "reduce") {
      recs = foldRuns(first, rawPairs(first, batch));
      start = 1;
    } else if (first.kind === "combine") recs = new Raw(rawPairs(first, batch));
    else recs = decode(first, batch);
  }
  let last = start > 0 ? steps[start - 1].output : null;
  for (let i = start; i < steps.length; i++) {
    const step = steps[i];
    if (step.kind === "partition") {
      const whole = recs instanceof Raw ? decodeKeys(recs, step.input, step.name) : recs;
      if (flushing) {
        // A later whole-partition step: the earlier one's output is this
        // partition's whole input already.
        try {
          recs = Array.from(step.fn(whole));
        } catch (e) {
          throw userError(step.name, `<a partition of ${whole.length} records>`, e);
        }
        last = step.output;
        continue;
      }
      if (!held.has(key)) held.set(key, []);
      held.get(key).push(whole);
      return new Uint8Array(0);
    }
    if (step.kind === "combine") {
      const raw = recs instanceof Raw;
      if (!raw && !(last && last.keyed)) throw new CallFailed("decode", `\`${step.name}\` combines pairs, but its input is not pairs`);
      let state = held.get(key);
      if (!state) {
        state = { step, raw, key: raw ? null : last.key, index: raw ? null : indexOf(last.key), values: new Map() };
        held.set(key, state);
      }
      combine(state, raw ? recs.pairs : recs, raw);
      // At the flush a whole partition's output ends here: all of it.
      if (flushing) held.delete(key);
      return flushing || state.values.size >= HELD_KEYS.max ? drain(state) : new Uint8Array(0);
    }
    if (step.kind === "reduce") throw new CallFailed("decode", `\`${step.name}\` reduces a shuffle's output: it must start its chain`);
    if (i === steps.length - 2 && counts(step, steps[i + 1]) && !(recs instanceof Raw)) {
      // countByValue of strings: count with no [record, 1] pairs, in an object
      // without a prototype (any string is a key of its own, and property
      // updates cost half a Map's, which atomizes every key it looks up).
      let state = held.get(key);
      if (!state) {
        state = { step: steps[i + 1], raw: false, key: types.string, counts: true, values: Object.create(null), size: 0 };
        held.set(key, state);
      }
      const m = state.values;
      for (let j = 0; j < recs.length; j++) {
        const w = recs[j];
        if (typeof w !== "string") {
          const from = i > 0 ? steps[i - 1].name : step.name;
          throw new CallFailed("user", `\`${from}\` returned a value that is not \`string\`: ${show(w)} is not a string`);
        }
        const n = m[w];
        if (n === undefined) {
          m[w] = 1;
          state.size++;
        } else m[w] = n + 1;
      }
      if (flushing) held.delete(key);
      return flushing || state.size >= HELD_KEYS.max ? drain(state) : new Uint8Array(0);
    }
    if (recs instanceof Raw) recs = decodeKeys(recs, step.input, step.name);
    recs = apply(step, recs);
    last = step.output;
  }
  return encode(steps[steps.length - 1], recs);
}

export { Step };
