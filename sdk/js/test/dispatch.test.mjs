// The dispatcher, natively: chains over real batches, checked against plain
// JavaScript computations of the same result.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as weft from "../src/index.js";
import { Layout, runChain, flushChain, CallFailed, HELD_KEYS } from "../src/dispatch.js";
import { stepName } from "../src/steps.js";

const { string, i64, f64, tuple } = weft.types;
const words = weft.flatMap("t.words", string, string, (l) => l.split(" ").filter(Boolean));
const long = weft.filter("t.long", string, (w) => w.length > 3);
const shout = weft.map("t.shout", string, string, (w) => {
  if (w === "boom") throw new RangeError("no booms here");
  return w.toUpperCase();
});
const pairOne = weft.map("t.pair_one", string, tuple(string, i64), (w) => [w, 1]);
const plus = weft.reduce("t.plus", i64, (a, b) => a + b);
const fplus = weft.reduce("t.fplus", f64, (a, b) => a + b);
const longerThan = weft.filter("t.longer_than", string, (w, n) => w.length > n, { param: i64 });
void [words, long, shout, pairOne, plus, fplus, longerThan];

const LINES = new Layout(string);
const STR_INT = new Layout(tuple(string, i64));
const lines = (n, seed) => {
  const vocab = ["alpha", "be", "gamma", "delta", "ox", "boomerang", "épée", "z"];
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) % 2147483648);
  return Array.from({ length: n }, () => Array.from({ length: next() % 8 }, () => vocab[next() % vocab.length]).join(" "));
};

test("narrow steps run in order", () => {
  const ls = lines(200, 1);
  const out = runChain([["flat-map", "t.words", null], ["filter", "t.long", null], ["map", "t.shout", null]], LINES.encode(ls));
  assert.deepEqual(LINES.decode(out), ls.flatMap((l) => l.split(" ").filter(Boolean)).filter((w) => w.length > 3).map((w) => w.toUpperCase()));
});

function counted(chain, batches) {
  const got = new Map();
  const add = (b) => {
    for (const [k, v] of STR_INT.decode(b)) got.set(k, (got.get(k) || 0) + v);
  };
  for (const b of batches) add(runChain(chain, b));
  add(flushChain(chain));
  return got;
}

test("a combine holds its folds until flushed, counted or folded", () => {
  const batches = [1, 2, 3].map((s) => LINES.encode(lines(300, s)));
  const want = new Map();
  for (const s of [1, 2, 3]) for (const l of lines(300, s)) for (const w of l.split(" ").filter(Boolean)) want.set(w, (want.get(w) || 0) + 1);
  const fast = [["flat-map", "t.words", null], ["map", stepName("one", string), null], ["combine", "_weft:add", null]];
  const generic = [["flat-map", "t.words", null], ["map", "t.pair_one", null], ["combine", "t.plus", null]];
  assert.equal(runChain(fast, batches[0]).length, 0, "nothing comes back before the flush");
  flushChain(fast);
  assert.deepEqual(counted(fast, batches), want);
  assert.deepEqual(counted(generic, batches), want);
  assert.equal(flushChain(generic).length, 0, "a flush forgets what it returned");
});

test("a combine hands back what it holds past its bound", () => {
  const old = HELD_KEYS.max;
  HELD_KEYS.max = 3;
  try {
    const chain = [["map", "t.pair_one", null], ["combine", "t.plus", null]];
    assert.equal(runChain(chain, LINES.encode(["a", "b", "a"])).length, 0);
    assert.deepEqual(STR_INT.decode(runChain(chain, LINES.encode(["c", "a"]))).sort(), [["a", 3], ["b", 1], ["c", 1]]);
    assert.deepEqual(STR_INT.decode(flushChain(chain)), []);
  } finally {
    HELD_KEYS.max = old;
  }
});

test("float keys fold by their bits", () => {
  const F = new Layout(tuple(f64, f64));
  const chain = [["combine", "t.fplus", null]];
  runChain(chain, F.encode([[0, 1], [-0, 2], [0, 4], [NaN, 8], [NaN, 16]]));
  const got = F.decode(flushChain(chain));
  const byKey = new Map(got.map(([k, v]) => [Object.is(k, -0) ? "-0" : String(k), v]));
  assert.deepEqual([...byKey.entries()].sort(), [["-0", 2], ["0", 5], ["NaN", 24]]);
});

test("a combine after a whole-partition step gives everything at the flush", () => {
  weft.mapPartitions("t.pairs_of", string, tuple(string, i64), (ls) => ls.map((l) => [l, 1]));
  const chain = [["map-batch", "weft:partition:t.pairs_of", null], ["combine", "t.plus", null]];
  for (const ls of [["a", "b"], ["a"], []]) assert.equal(runChain(chain, LINES.encode(ls)).length, 0);
  assert.deepEqual(STR_INT.decode(flushChain(chain)).sort(), [["a", 2], ["b", 1]]);
  assert.equal(flushChain(chain).length, 0, "nothing is left held");
});

test("two whole-partition steps both run at the flush; counting after one gives the counts", () => {
  weft.mapPartitions("t.upper_all", string, string, (ls) => ls.map((l) => l.toUpperCase()));
  weft.mapPartitions("t.sizes", string, i64, (ls) => [ls.length]);
  const two = [["map-batch", "weft:partition:t.upper_all", null], ["map-batch", "weft:partition:t.sizes", null]];
  assert.equal(runChain(two, LINES.encode(["a", "b"])).length, 0);
  assert.equal(runChain(two, LINES.encode(["c"])).length, 0);
  assert.deepEqual(new Layout(i64).decode(flushChain(two)), [3]);
  const counting = [["map-batch", "weft:partition:t.upper_all", null], ["map", stepName("one", string), null], ["combine", "_weft:add", null]];
  assert.equal(runChain(counting, LINES.encode(["a", "b", "a"])).length, 0);
  assert.deepEqual(STR_INT.decode(flushChain(counting)).sort(), [["A", 2], ["B", 1]]);
  assert.equal(runChain(counting, LINES.encode(["c"])).length, 0, "the next task starts clean");
  assert.deepEqual(STR_INT.decode(flushChain(counting)), [["C", 1]]);
});

test("BigInt records survive the SDK's own steps", () => {
  const big = 2n ** 60n;
  const chain = [["map", stepName("one", weft.types.i64n), null]];
  const out = new Layout(tuple(weft.types.i64n, i64)).decode(runChain(chain, new Layout(weft.types.i64n).encode([big])));
  assert.deepEqual(out, [[big, 1]]);
  assert.throws(() => weft.types.f32.record(1e39), /does not fit/);
});

test("reduce folds runs of equal key bytes", () => {
  const pairs = [["a", 1], ["a", 2], ["b", 5], ["c", 1], ["c", 1], ["c", 1]];
  assert.deepEqual(STR_INT.decode(runChain([["reduce", "t.plus", null]], STR_INT.encode(pairs))), [["a", 3], ["b", 5], ["c", 3]]);
});

test("a user exception names the function, the record and the stack", () => {
  assert.throws(
    () => runChain([["flat-map", "t.words", null], ["map", "t.shout", null]], LINES.encode(["fine words", "then boom"])),
    (e) => e instanceof CallFailed && e.kind === "user" && e.message.includes("`t.shout` threw RangeError: no booms here") && e.message.includes('on record "boom"') && e.message.includes("dispatch.test.mjs"),
  );
});

test("bad input is a decode error naming the function", () => {
  for (const bad of [Uint8Array.of(5, 0, 0, 0, 97), Uint8Array.of(2, 0), Uint8Array.of(1, 0, 0, 0, 0xff)]) {
    assert.throws(() => runChain([["map", "t.shout", null]], bad), (e) => e.kind === "decode" && e.message.includes("t.shout"));
  }
});

test("unknown and mismatched functions are named", () => {
  for (const name of ["t.nothing", "t.long", "_weft.nope|string"]) {
    assert.throws(() => runChain([["map", name, null]], new Uint8Array(0)), (e) => e.kind === "unknown-function" && e.message.includes(name.split("|")[0]));
  }
});

test("counting strings keeps every string a key of its own", () => {
  const odd = ["__proto__", "constructor", "toString", "hasOwnProperty", "0", "-0", "123", "4294967295", "1e3", "", "é", "__proto__", "0", ""];
  const chain = [["map", stepName("one", string), null], ["combine", "_weft:add", null]];
  const batches = [odd, odd.slice(0, 5)];
  const want = new Map();
  for (const w of batches.flat()) want.set(w, (want.get(w) || 0) + 1);
  assert.deepEqual(counted(chain, batches.map((b) => LINES.encode(b))), want);
  weft.flatMap("t.numbers", string, string, (l) => [l, l.length]);
  assert.throws(
    () => runChain([["flat-map", "t.numbers", null], ...chain], LINES.encode(["ab"])),
    (e) => e.kind === "user" && e.message.includes("`t.numbers` returned a value that is not `string`") && e.message.includes("2 is not a string"),
  );
});

test("a result of the wrong type is an error", () => {
  weft.map("t.not_an_int", string, i64, (w) => w);
  assert.throws(() => runChain([["map", "t.not_an_int", null]], LINES.encode(["x"])), (e) => e.kind === "user" && e.message.includes("is not `i64`"));
});
