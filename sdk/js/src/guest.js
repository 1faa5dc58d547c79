// The component's exports, as componentize-js expects them: the dispatcher
// interface and the world's `run`. Failures cross as the WIT's `call-error`
// (thrown as `{ tag, val }`) and `run`'s error string.
import * as driver from "weft:grid/driver@0.1.0";
import { get as broadcastGet } from "weft:grid/broadcast@0.1.0";
import { add as accumulatorAdd } from "weft:grid/accumulators@0.1.0";
import { log } from "weft:grid/log@0.1.0";
import { info } from "weft:grid/context@0.1.0";
import { CallFailed, REGISTRY, flushChain as flush, runChain as runOps, useHost } from "./dispatch.js";
import { JobFailed, runMain, useDriver } from "./index.js";

const host = {
  args: () => driver.args(),
  textFile: (uri, n, raw) => (raw ? driver.textFileBytes(uri, n) : driver.textFile(uri, n)),
  parallelize: (b, keyed, n) => driver.parallelize(b, keyed, n),
  narrow: (id, kind, fn, param, keyed) => driver.narrow(id, { kind, function: fn, param: param === null ? undefined : BigInt(param) }, keyed),
  shuffle: (id, op, n) => driver.shuffle(id, op, n),
  join: (a, b, n) => driver.join(a, b, n),
  union: (a, b) => driver.union(a, b),
  persist: (id, level) => (level === null ? driver.unpersist(id) : driver.persist(id, level)),
  collect: (id) => driver.collect(id),
  count: (id) => driver.count(id),
  take: (id, n) => driver.take(id, n),
  saveAsTextFile: (id, uri) => driver.saveAsTextFile(id, uri),
  broadcast: (b) => driver.broadcast(b),
  accumulatorValue: (name) => driver.accumulatorValue(name),
  accumulatorAdd: (name, delta) => accumulatorAdd(name, delta),
  broadcastValue: (id) => broadcastGet(BigInt(id)),
  log: (level, msg) => log(level, msg),
  partition: () => info().partition,
};
useHost(host);
useDriver(host);

const chainOf = (ops) => ops.map((op) => [op.kind, op.function, op.param === undefined ? null : Number(op.param)]);

function failing(e) {
  if (e instanceof CallFailed) return { tag: e.kind, val: e.message };
  return { tag: "user", val: `the SDK failed: ${e && e.stack ? e.stack : String(e)}` };
}

export const dispatcher = {
  functions() {
    return [...REGISTRY.keys()].sort();
  },
  runChain(ops, input) {
    try {
      return runOps(chainOf(ops), input);
    } catch (e) {
      throw failing(e);
    }
  },
  flushChain(ops) {
    try {
      return flush(chainOf(ops));
    } catch (e) {
      throw failing(e);
    }
  },
};

export function run() {
  try {
    runMain();
  } catch (e) {
    if (e instanceof JobFailed) throw e.message;
    throw e instanceof Error ? `${e.name}: ${e.message}\n${e.stack || ""}`.trimEnd() : String(e);
  }
}
