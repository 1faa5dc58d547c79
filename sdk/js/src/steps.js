// The SDK's own steps: the type-generic operations (`keys()`, `mapValues`,
// `countByValue`, ...) that no user function expresses. A step's name spells
// it, `_weft.<op>|<arg>|...` (each argument a contract type name or a user
// function's name), so every task instance rebuilds it from the name alone.
// The table is in docs/sdk-js.md.
import { parse, types } from "./codec.js";
import { CallFailed, Layout, REGISTRY, Step, useOwnSteps } from "./dispatch.js";

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
    default:
      throw new TypeError(`no step \`${op}\``);
  }
}

useOwnSteps((_kind, full) => {
  try {
    return build(full);
  } catch (e) {
    if (e instanceof CallFailed) throw e;
    throw new CallFailed("unknown-function", `\`${full}\` is not a step of this SDK: ${e.message}`);
  }
});
