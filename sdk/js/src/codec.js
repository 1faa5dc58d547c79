// The record contract in JavaScript: batches, keys and records
// (docs/record-format.md). A type object encodes and decodes one value as a
// record and as a key; `parse` reads a contract type name ("(string, i64)",
// "option<list<f64>>") as the golden vectors spell it. The JavaScript values
// of each type are listed in docs/sdk-js.md.

export class DecodeError extends Error {}
export class EncodeError extends Error {}

const utf8 = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true });
const EMPTY = new Uint8Array(0);

/** The entries of a batch (`u32` little-endian length, then the bytes), as views. */
export function entries(buf) {
  const out = [];
  const end = buf.length;
  let pos = 0;
  while (pos < end) {
    if (end - pos < 4) throw new DecodeError(`a batch entry's length is cut short at byte ${pos}`);
    const n = (buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16) | (buf[pos + 3] << 24)) >>> 0;
    pos += 4;
    if (pos + n > end) throw new DecodeError(`a batch entry of ${n} bytes runs past the end at byte ${pos - 4}`);
    out.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

/** Builds a batch: entries appended with their lengths, grown by doubling. */
export class Writer {
  constructor(capacity = 1024) {
    this.buf = new Uint8Array(capacity);
    this.len = 0;
  }
  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(0, this.len));
    this.buf = grown;
  }
  push(bytes) {
    const n = bytes.length;
    this.reserve(n + 4);
    const b = this.buf;
    let p = this.len;
    b[p] = n & 0xff;
    b[p + 1] = (n >>> 8) & 0xff;
    b[p + 2] = (n >>> 16) & 0xff;
    b[p + 3] = (n >>> 24) & 0xff;
    b.set(bytes, p + 4);
    this.len = p + 4 + n;
  }
  /** A value of `type` as an entry: an `i64` number written in place, others through `type.record`. */
  pushValue(type, v) {
    if (type !== types.i64 || typeof v !== "number" || !Number.isSafeInteger(v)) {
      this.push(type.record(v));
      return;
    }
    this.reserve(12);
    const b = this.buf;
    const p = this.len;
    b[p] = 8;
    b[p + 1] = 0;
    b[p + 2] = 0;
    b[p + 3] = 0;
    putI64(b, p + 4, v);
    this.len = p + 12;
  }
  /** A string entry, encoded in place. */
  pushString(s) {
    this.reserve(s.length * 3 + 4);
    const start = this.len + 4;
    const { written } = utf8.encodeInto(s, this.buf.subarray(start));
    const b = this.buf;
    b[this.len] = written & 0xff;
    b[this.len + 1] = (written >>> 8) & 0xff;
    b[this.len + 2] = (written >>> 16) & 0xff;
    b[this.len + 3] = (written >>> 24) & 0xff;
    this.len = start + written;
  }
  finish() {
    return this.buf.slice(0, this.len);
  }
}

/** One batch of `parts`. */
export function frame(parts) {
  let n = 0;
  for (let i = 0; i < parts.length; i++) n += parts[i].length + 4;
  const w = new Writer(n || 1);
  for (let i = 0; i < parts.length; i++) w.push(parts[i]);
  return w.finish();
}

function concat(parts) {
  let n = 0;
  for (let i = 0; i < parts.length; i++) n += parts[i].length;
  const out = new Uint8Array(n);
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i], at);
    at += parts[i].length;
  }
  return out;
}

function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("") || "nothing";
}

function show(v) {
  try {
    const s = typeof v === "bigint" ? `${v}n` : JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x));
    return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 60) + "…" : s;
  } catch {
    return String(v);
  }
}

/** A contract type. `record`/`fromRecord` are the record encoding; `key`/`fromKey` a whole key's. */
class Type {
  constructor(name, keyable = true) {
    this.name = name;
    this.keyable = keyable;
  }
  key(v) {
    const out = [];
    this.putKey(v, true, out);
    return out.length === 1 ? out[0] : concat(out);
  }
  fromKey(b) {
    const [v, pos] = this.takeKey(b, 0, true);
    if (pos !== b.length) throw new DecodeError(`${b.length - pos} bytes left over after a \`${this.name}\` key`);
    return v;
  }
  // Fixed-width scalars: the record is the key.
  putKey(v, _last, out) {
    out.push(this.record(v));
  }
  takeKey(b, pos, _last) {
    const end = pos + this.width;
    if (end > b.length) throw new DecodeError(`a \`${this.name}\` key is ${this.width} bytes; ${b.length - pos} left`);
    return [this.fromRecord(b.subarray(pos, end)), end];
  }
  toString() {
    return this.name;
  }
}

class Int extends Type {
  constructor(width, signed, big) {
    // The BigInt variants are spelled `i64n`/`u64n`: the same bytes as `i64`/`u64`,
    // other JavaScript values, so steps rebuilt from their names keep them.
    super(`${signed ? "i" : "u"}${width * 8}${big ? "n" : ""}`);
    this.width = width;
    this.signed = signed;
    this.big = big; // BigInt values rather than numbers
    this.bits = BigInt(width * 8);
    this.offset = signed ? 1n << (this.bits - 1n) : 0n;
    this.limit = 1n << this.bits;
  }
  record(v) {
    let n;
    if (typeof v === "bigint") n = v;
    else if (typeof v === "number" && Number.isInteger(v)) {
      if (!Number.isSafeInteger(v)) throw new EncodeError(`${v} is beyond 2^53: use BigInt values (weft.types.${this.name}n)`);
      n = BigInt(v);
    } else throw new EncodeError(`${show(v)} is not an integer (\`${this.name}\`)`);
    const u = n + this.offset;
    if (u < 0n || u >= this.limit) throw new EncodeError(`${n} is out of range of \`${this.name}\``);
    const out = new Uint8Array(this.width);
    let x = u;
    for (let i = this.width - 1; i >= 0; i--) {
      out[i] = Number(x & 0xffn);
      x >>= 8n;
    }
    return out;
  }
  fromRecord(b) {
    if (b.length !== this.width) throw new DecodeError(`a \`${this.name}\` is ${this.width} bytes, not ${b.length}`);
    let x = 0n;
    for (let i = 0; i < this.width; i++) x = (x << 8n) | BigInt(b[i]);
    const n = x - this.offset;
    if (this.big) return n;
    if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw new DecodeError(`${n} is beyond 2^53: read it with weft.types.${this.name}n (BigInt)`);
    }
    return Number(n);
  }
}

/** A safe-integer `v` as an `i64`'s 8 bytes at `b[p]`. */
function putI64(b, p, v) {
  const hi = Math.floor(v / 4294967296);
  const lo = v - hi * 4294967296;
  const h = (hi + 0x80000000) >>> 0;
  b[p] = h >>> 24;
  b[p + 1] = (h >>> 16) & 0xff;
  b[p + 2] = (h >>> 8) & 0xff;
  b[p + 3] = h & 0xff;
  b[p + 4] = lo >>> 24;
  b[p + 5] = (lo >>> 16) & 0xff;
  b[p + 6] = (lo >>> 8) & 0xff;
  b[p + 7] = lo & 0xff;
}

/** i64 as a number, the common case, without BigInt on the way. */
class I64 extends Int {
  constructor() {
    super(8, true, false);
  }
  record(v) {
    if (typeof v !== "number" || !Number.isSafeInteger(v)) return super.record(v);
    const out = new Uint8Array(8);
    putI64(out, 0, v);
    return out;
  }
  fromRecord(b) {
    if (b.length !== 8) throw new DecodeError(`an \`i64\` is 8 bytes, not ${b.length}`);
    const hi = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) ^ 0x80000000; // signed 32
    const lo = ((b[4] << 24) | (b[5] << 16) | (b[6] << 8) | b[7]) >>> 0;
    const n = hi * 4294967296 + lo;
    if (!Number.isSafeInteger(n)) throw new DecodeError(`an i64 beyond 2^53: read it with weft.types.i64n (BigInt)`);
    return n;
  }
}

class Float extends Type {
  constructor(width) {
    super(`f${width * 8}`);
    this.width = width;
  }
  record(v) {
    if (typeof v !== "number") throw new EncodeError(`${show(v)} is not a number (\`${this.name}\`)`);
    const out = new Uint8Array(this.width);
    const view = new DataView(out.buffer);
    if (this.width === 8) view.setFloat64(0, v);
    else if (Number.isFinite(v) && !Number.isFinite(Math.fround(v))) throw new EncodeError(`${v} does not fit an \`f32\``);
    else view.setFloat32(0, v);
    if (out[0] & 0x80) for (let i = 0; i < out.length; i++) out[i] ^= 0xff;
    else out[0] ^= 0x80;
    return out;
  }
  fromRecord(b) {
    if (b.length !== this.width) throw new DecodeError(`an \`${this.name}\` is ${this.width} bytes, not ${b.length}`);
    const bits = Uint8Array.from(b);
    if (bits[0] & 0x80) bits[0] ^= 0x80;
    else for (let i = 0; i < bits.length; i++) bits[i] ^= 0xff;
    const view = new DataView(bits.buffer);
    return this.width === 8 ? view.getFloat64(0) : view.getFloat32(0);
  }
}

class Bool extends Type {
  constructor() {
    super("bool");
    this.width = 1;
  }
  record(v) {
    if (typeof v !== "boolean") throw new EncodeError(`${show(v)} is not a boolean`);
    return Uint8Array.of(v ? 1 : 0);
  }
  fromRecord(b) {
    if (b.length === 1 && b[0] <= 1) return b[0] === 1;
    throw new DecodeError(`a \`bool\` is one byte 00 or 01, not ${hex(b)}`);
  }
}

class Char extends Type {
  constructor() {
    super("char");
    this.width = 4;
  }
  record(v) {
    const c = typeof v === "string" ? v.codePointAt(0) : undefined;
    if (c === undefined || String.fromCodePoint(c) !== v) throw new EncodeError(`${show(v)} is not one character (\`char\`)`);
    if (c >= 0xd800 && c <= 0xdfff) throw new EncodeError(`U+${c.toString(16)} is a surrogate, not a Unicode scalar value`);
    return Uint8Array.of(c >>> 24, (c >>> 16) & 0xff, (c >>> 8) & 0xff, c & 0xff);
  }
  fromRecord(b) {
    if (b.length !== 4) throw new DecodeError(`a \`char\` is 4 bytes, not ${b.length}`);
    const c = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
    if (c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) throw new DecodeError(`${c} is not a Unicode scalar value`);
    return String.fromCodePoint(c);
  }
}

class Unit extends Type {
  constructor() {
    super("()");
    this.width = 0;
  }
  record(v) {
    if (v !== null && v !== undefined) throw new EncodeError(`${show(v)} is not null (\`()\`)`);
    return EMPTY;
  }
  fromRecord(b) {
    if (b.length) throw new DecodeError(`a \`()\` is no bytes, not ${b.length}`);
    return null;
  }
}

function takeEscaped(b, pos, what) {
  const out = [];
  for (;;) {
    const z = b.indexOf(0, pos);
    if (z < 0 || z + 1 >= b.length) throw new DecodeError(`a \`${what}\` inside a key lacks its terminator`);
    out.push(b.subarray(pos, z));
    if (b[z + 1] === 0) return [concat(out), z + 2];
    if (b[z + 1] !== 0xff) throw new DecodeError(`a \`${what}\` inside a key has 00 followed by ${b[z + 1].toString(16)}`);
    out.push(Uint8Array.of(0));
    pos = z + 2;
  }
}

function escape(raw) {
  let zeros = 0;
  for (let z = raw.indexOf(0); z >= 0; z = raw.indexOf(0, z + 1)) zeros++;
  const out = new Uint8Array(raw.length + zeros + 2);
  if (zeros === 0) {
    out.set(raw);
    return out; // ends with the 00 00 terminator (zero-filled)
  }
  let at = 0;
  for (let i = 0; i < raw.length; i++) {
    const x = raw[i];
    out[at++] = x;
    if (x === 0) out[at++] = 0xff;
  }
  return out;
}

class Bytes extends Type {
  constructor(name = "bytes") {
    super(name);
  }
  record(v) {
    if (!(v instanceof Uint8Array)) throw new EncodeError(`${show(v)} is not a Uint8Array (\`bytes\`)`);
    return v;
  }
  fromRecord(b) {
    return Uint8Array.from(b);
  }
  putKey(v, last, out) {
    const raw = this.record(v);
    out.push(last ? raw : escape(raw));
  }
  takeKey(b, pos, last) {
    if (last) return [this.fromRecord(b.subarray(pos)), b.length];
    const [raw, end] = takeEscaped(b, pos, this.name);
    return [this.fromRecord(raw), end];
  }
}

class Str extends Bytes {
  constructor() {
    super("string");
  }
  record(v) {
    if (typeof v !== "string") throw new EncodeError(`${show(v)} is not a string`);
    return utf8.encode(v);
  }
  fromRecord(b) {
    try {
      return strict.decode(b);
    } catch (e) {
      throw new DecodeError(`a \`string\` that is not UTF-8: ${e.message}`);
    }
  }
}

class Option extends Type {
  constructor(inner) {
    if (inner instanceof Option || inner instanceof Unit) {
      throw new TypeError(`option<${inner.name}> cannot be told apart from null in JavaScript`);
    }
    super(`option<${inner.name}>`, inner.keyable);
    this.inner = inner;
  }
  record(v) {
    return v === null || v === undefined ? EMPTY : frame([this.inner.record(v)]);
  }
  fromRecord(b) {
    const es = entries(b);
    if (es.length === 0) return null;
    if (es.length > 1) throw new DecodeError(`an \`${this.name}\` holds ${es.length} entries, not 0 or 1`);
    return this.inner.fromRecord(es[0]);
  }
  putKey(v, last, out) {
    if (v === null || v === undefined) out.push(Uint8Array.of(0));
    else {
      out.push(Uint8Array.of(1));
      this.inner.putKey(v, last, out);
    }
  }
  takeKey(b, pos, last) {
    if (pos >= b.length) throw new DecodeError(`an \`${this.name}\` key is cut short`);
    if (b[pos] === 0) return [null, pos + 1];
    if (b[pos] !== 1) throw new DecodeError(`an option's tag is 00 or 01, not ${b[pos].toString(16)}`);
    return this.inner.takeKey(b, pos + 1, last);
  }
}

class Tuple extends Type {
  constructor(elems) {
    if (elems.length < 1 || elems.length > 6) throw new TypeError(`tuples have 1 to 6 elements, not ${elems.length}`);
    const names = elems.map((e) => e.name).join(", ");
    super(elems.length === 1 ? `(${names},)` : `(${names})`, elems.length >= 2 && elems.every((e) => e.keyable));
    this.elems = elems;
  }
  check(v) {
    if (!Array.isArray(v) || v.length !== this.elems.length) {
      throw new EncodeError(`${show(v)} is not a ${this.elems.length}-element array (\`${this.name}\`)`);
    }
  }
  record(v) {
    this.check(v);
    const ts = this.elems;
    const w = new Writer(ts.length * 12);
    for (let i = 0; i < ts.length; i++) w.pushValue(ts[i], v[i]);
    return w.finish();
  }
  fromRecord(b) {
    const es = entries(b);
    const ts = this.elems;
    if (es.length !== ts.length) throw new DecodeError(`a \`${this.name}\` holds ${ts.length} entries, not ${es.length}`);
    const out = new Array(ts.length);
    for (let i = 0; i < ts.length; i++) out[i] = ts[i].fromRecord(es[i]);
    return out;
  }
  putKey(v, last, out) {
    this.check(v);
    const n = this.elems.length - 1;
    this.elems.forEach((t, i) => t.putKey(v[i], last && i === n, out));
  }
  takeKey(b, pos, last) {
    const n = this.elems.length - 1;
    const vs = [];
    for (let i = 0; i <= n; i++) {
      const [v, next] = this.elems[i].takeKey(b, pos, last && i === n);
      vs.push(v);
      pos = next;
    }
    return [vs, pos];
  }
}

class List extends Type {
  constructor(elem) {
    super(`list<${elem.name}>`, false);
    this.elem = elem;
  }
  record(v) {
    if (!Array.isArray(v)) throw new EncodeError(`${show(v)} is not an array (\`${this.name}\`)`);
    const t = this.elem;
    const w = new Writer(v.length * 12 + 1);
    for (let i = 0; i < v.length; i++) w.pushValue(t, v[i]);
    return w.finish();
  }
  fromRecord(b) {
    const es = entries(b);
    const t = this.elem;
    const out = new Array(es.length);
    for (let i = 0; i < es.length; i++) out[i] = t.fromRecord(es[i]);
    return out;
  }
}

export const types = {
  i8: new Int(1, true, false),
  i16: new Int(2, true, false),
  i32: new Int(4, true, false),
  i64: new I64(),
  i64n: new Int(8, true, true),
  u8: new Int(1, false, false),
  u16: new Int(2, false, false),
  u32: new Int(4, false, false),
  u64: new Int(8, false, false),
  u64n: new Int(8, false, true),
  f32: new Float(4),
  f64: new Float(8),
  bool: new Bool(),
  char: new Char(),
  unit: new Unit(),
  string: new Str(),
  bytes: new Bytes(),
  option: (t) => new Option(t),
  list: (t) => new List(t),
  tuple: (...ts) => new Tuple(ts),
};

const SCALARS = {
  i8: types.i8, i16: types.i16, i32: types.i32, i64: types.i64, u8: types.u8, u16: types.u16,
  u32: types.u32, u64: types.u64, f32: types.f32, f64: types.f64, bool: types.bool,
  char: types.char, "()": types.unit, string: types.string, bytes: types.bytes, "f64 bits": types.f64,
  i64n: types.i64n, u64n: types.u64n,
};

/** The type a contract type name spells; `big` reads 64-bit integers as BigInt. */
export function parse(name, big = false) {
  const [t, rest] = parseAt(name.trim(), big);
  if (rest.trim()) throw new TypeError(`type name ${name} has ${rest} left over`);
  return t;
}

function parseAt(s, big) {
  s = s.trimStart();
  if (s.startsWith("(")) {
    s = s.slice(1).trimStart();
    if (s.startsWith(")")) return [types.unit, s.slice(1)];
    const elems = [];
    for (;;) {
      const [t, rest] = parseAt(s, big);
      elems.push(t);
      s = rest.trimStart();
      if (s.startsWith(",")) {
        s = s.slice(1).trimStart();
        if (s.startsWith(")")) return [new Tuple(elems), s.slice(1)];
        continue;
      }
      if (s.startsWith(")")) return [new Tuple(elems), s.slice(1)];
      throw new TypeError(`expected , or ) at ${s}`);
    }
  }
  for (const [prefix, make] of [["option<", types.option], ["list<", types.list]]) {
    if (s.startsWith(prefix)) {
      const [inner, rest] = parseAt(s.slice(prefix.length), big);
      if (!rest.trimStart().startsWith(">")) throw new TypeError(`expected > at ${rest}`);
      return [make(inner), rest.trimStart().slice(1)];
    }
  }
  const word = s.split(/[,)>]/)[0].trim();
  const t = big && (word === "i64" || word === "u64") ? types[`${word}n`] : SCALARS[word];
  if (!t) throw new TypeError(`unknown type name ${word}`);
  return [t, s.slice(s.indexOf(word) + word.length)];
}
