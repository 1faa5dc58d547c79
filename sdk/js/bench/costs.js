// What JavaScript's basic operations cost inside a weft component, per word of
// a text: the floor under any JavaScript job's speed on the grid.
//
// `cargo xtask bench-sdks` builds this job and runs it with `weft local
// costs.wasm -- <input-uri>` over the first MiB of its word count's input,
// beside the Rust guest's whole word count per word; docs/sdk-js.md has the
// figures. Inside a component SpiderMonkey has no JIT: its bytecode
// interpreter runs the job, and irregexp's interpreter its regular expressions.
// Each line it logs is `cost <TAB> operation <TAB> nanoseconds per word`.
import * as weft from "weft";

weft.main((ctx) => {
  if (ctx.args.length !== 1) throw new Error("usage: costs <input-uri>");
  const lines = ctx.textFile(ctx.args[0], 1).collect();
  const words = [];
  for (let i = 0; i < lines.length; i++) {
    const ws = lines[i].match(/\S+/g);
    if (ws) for (let j = 0; j < ws.length; j++) words.push(ws[j]);
  }
  const n = words.length;
  const now = () => performance.now();
  const cost = (name, body) => {
    body(); // once untimed: the same state for every operation
    const start = now();
    const check = body();
    const ns = ((now() - start) * 1e6) / n;
    if (check === undefined) throw new Error(`${name} computed nothing`);
    weft.log.info(`cost\t${name}\t${ns.toFixed(0)}`);
  };

  cost("an indexed for loop, per element", () => {
    let s = 0;
    for (let i = 0; i < n; i++) s += words[i].length;
    return s;
  });
  cost("a for...of loop, per element", () => {
    let s = 0;
    for (const w of words) s += w.length;
    return s;
  });
  cost("a function call", () => {
    const f = (a, w) => a + w.length;
    let s = 0;
    for (let i = 0; i < n; i++) s = f(s, words[i]);
    return s;
  });
  cost("line.split(/\\s+/), per word", () => {
    let s = 0;
    for (let i = 0; i < lines.length; i++) s += lines[i].split(/\s+/).length;
    return s;
  });
  cost("line.match(/\\S+/g), per word", () => {
    let s = 0;
    for (let i = 0; i < lines.length; i++) s += (lines[i].match(/\S+/g) ?? []).length;
    return s;
  });
  cost('line.split(" "), per word', () => {
    let s = 0;
    for (let i = 0; i < lines.length; i++) s += lines[i].split(" ").length;
    return s;
  });
  cost("a Map count update", () => {
    const m = new Map();
    for (let i = 0; i < n; i++) m.set(words[i], (m.get(words[i]) || 0) + 1);
    return m.size;
  });
  cost("an object count update", () => {
    const m = Object.create(null);
    for (let i = 0; i < n; i++) m[words[i]] = (m[words[i]] || 0) + 1;
    return Object.keys(m).length;
  });
  cost("TextEncoder.encodeInto", () => {
    const enc = new TextEncoder();
    const buf = new Uint8Array(1 << 16);
    let s = 0;
    for (let i = 0; i < n; i++) s += enc.encodeInto(words[i], buf).written;
    return s;
  });
});
