// The golden vectors of the record contract (codec/golden/records.json),
// decoded and re-encoded byte for byte by the JavaScript SDK's codec.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse, types, DecodeError, EncodeError } from "../src/codec.js";

const text = readFileSync(new URL("../../../codec/golden/records.json", import.meta.url), "utf8");
// Integers beyond 2^53 are exact in the file: read them as BigInt (marked strings).
const vectors = JSON.parse(text.replace(/(?<=[[:,\s])(-?\d{16,})(?=[\s,\]}])/g, '"$1n"'), (_k, v) =>
  typeof v === "string" && /^-?\d+n$/.test(v) ? BigInt(v.slice(0, -1)) : v,
).vectors;

const toHex = (b) => Buffer.from(b).toString("hex");
const fromHex = (h) => new Uint8Array(Buffer.from(h, "hex"));

function valueOf(t, v) {
  if (v === null) return null;
  if (t.inner) return valueOf(t.inner, v);
  if (t.elems) return t.elems.map((e, i) => valueOf(e, v[i]));
  if (t.elem) return v.map((x) => valueOf(t.elem, x));
  if (t === types.bytes) return fromHex(v);
  if (t.bits !== undefined) return BigInt(v);
  return v;
}

function vector(v) {
  const t = parse(v.type, true);
  if (v.type === "f64 bits") {
    return [t, new DataView(fromHex(v.value).buffer).getFloat64(0)];
  }
  return [t, valueOf(t, v.value)];
}

test("the file holds every vector", () => assert.equal(vectors.length, 74));

test("records encode and decode byte for byte", () => {
  for (const v of vectors) {
    const [t, value] = vector(v);
    assert.equal(toHex(t.record(value)), v.record, `${v.type} ${v.value}`);
    assert.equal(toHex(t.record(t.fromRecord(fromHex(v.record)))), v.record, `${v.type} again`);
  }
});

test("keys encode and decode byte for byte", () => {
  let n = 0;
  for (const v of vectors.filter((v) => v.key !== null)) {
    const [t, value] = vector(v);
    assert.equal(toHex(t.key(value)), v.key, `${v.type} ${v.value}`);
    assert.equal(toHex(t.key(t.fromKey(fromHex(v.key)))), v.key, `${v.type} again`);
    n++;
  }
  assert.ok(n > 40);
});

test("i64 as a number agrees with i64 as BigInt where it is safe", () => {
  for (const v of vectors.filter((v) => v.type === "i64")) {
    const n = Number(v.value);
    if (Number.isSafeInteger(n)) {
      assert.equal(toHex(types.i64.record(n)), v.record);
      assert.equal(types.i64.fromRecord(fromHex(v.record)), n);
    } else {
      assert.throws(() => types.i64.fromRecord(fromHex(v.record)), DecodeError);
    }
  }
});

test("key bytes sort as the values rank", () => {
  const families = new Map();
  for (const v of vectors.filter((v) => v.order !== undefined)) {
    const f = v.type === "f64 bits" ? "f64" : v.type;
    if (!families.has(f)) families.set(f, []);
    families.get(f).push(v);
  }
  for (const [f, vs] of families) {
    const byBytes = [...vs].sort((a, b) => Buffer.compare(fromHex(a.key), fromHex(b.key)));
    const byRank = [...vs].sort((a, b) => a.order - b.order);
    assert.deepEqual(byBytes.map((v) => v.order), byRank.map((v) => v.order), f);
  }
  assert.ok(families.size > 10);
});

test("malformed bytes are decode errors", () => {
  const cases = [
    ["bool", "record", "02"],
    ["option<i64>", "key", "02"],
    ["(string, i64)", "key", "6100018000000000000001"],
    ["(string, i64)", "key", "6100"],
    ["char", "key", "0000d800"],
    ["i64", "key", "80"],
    ["i64", "key", "800000000000000000"],
    ["string", "record", "ff"],
    ["(string, i64)", "record", "0100000061"],
  ];
  for (const [name, kind, h] of cases) {
    const t = parse(name);
    assert.throws(() => (kind === "key" ? t.fromKey(fromHex(h)) : t.fromRecord(fromHex(h))), DecodeError, `${name} ${h}`);
  }
});

test("values out of range are encode errors", () => {
  for (const [name, value] of [["i64", 2n ** 63n], ["u8", -1], ["u8", 256], ["i64", "1"], ["string", 1], ["i64", 2 ** 60]]) {
    assert.throws(() => parse(name).record(value), EncodeError, `${name} ${value}`);
  }
});
