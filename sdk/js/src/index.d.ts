// TypeScript declarations of weft's JavaScript SDK (src/index.js). The guide is
// docs/sdk-js.md. A `Type<T>` describes records whose JavaScript values are `T`;
// a dataset of `[K, V]` tuples made by a 2-tuple type is a pair dataset.

/** A contract type whose JavaScript values are `T`. */
export interface Type<T> {
  readonly name: string;
  /** The record encoding of a value. */
  record(value: T): Uint8Array;
  fromRecord(bytes: Uint8Array): T;
  /** The order-preserving key encoding of a whole key. */
  key(value: T): Uint8Array;
  fromKey(bytes: Uint8Array): T;
}

type Values<Ts extends Type<unknown>[]> = { [I in keyof Ts]: Ts[I] extends Type<infer V> ? V : never };

export declare const types: {
  i8: Type<number>;
  i16: Type<number>;
  i32: Type<number>;
  /** Integers within ±2^53; beyond that, `i64n`. */
  i64: Type<number>;
  i64n: Type<bigint>;
  u8: Type<number>;
  u16: Type<number>;
  u32: Type<number>;
  u64: Type<number>;
  u64n: Type<bigint>;
  f32: Type<number>;
  f64: Type<number>;
  bool: Type<boolean>;
  /** One code point. */
  char: Type<string>;
  unit: Type<null>;
  string: Type<string>;
  bytes: Type<Uint8Array>;
  /** `null` for none; not nested. */
  option<T>(inner: Type<T>): Type<T | null>;
  list<T>(elem: Type<T>): Type<T[]>;
  tuple<Ts extends [Type<unknown>, ...Type<unknown>[]]>(...elems: Ts): Type<Values<Ts>>;
};

/** A registered user function from records `I` to `O`, with an optional parameter `P`. */
export interface Fn<I, O, P = never> {
  /** Not a value: ties the function's record types to it for the checker. */
  readonly __records?: [I, O];
  readonly name: string;
  readonly kind: "map" | "filter" | "flat-map" | "map-batch" | "reduce";
  /** This function with `value` (or a broadcast) as its last argument in every task. */
  bind(value: P | Broadcast<P>): Bound<I, O>;
}

export interface Bound<I, O> {
  readonly __records?: [I, O];
  readonly function: Fn<I, O, unknown>;
  readonly value: unknown;
}

type Usable<I, O> = Fn<I, O, never> | Bound<I, O>;

/** The JavaScript values of a type. */
export type Of<T> = T extends Type<infer V> ? V : never;

export declare function map<I, O extends Type<unknown>>(name: string, input: Type<I>, output: O, fn: (record: I) => Of<O>): Fn<I, Of<O>>;
export declare function map<I, O extends Type<unknown>, P>(
  name: string,
  input: Type<I>,
  output: O,
  fn: (record: I, param: P) => Of<O>,
  options: { param: Type<P> },
): Fn<I, Of<O>, P>;
export declare function filter<I>(name: string, input: Type<I>, fn: (record: I) => boolean): Fn<I, I>;
export declare function filter<I, P>(name: string, input: Type<I>, fn: (record: I, param: P) => boolean, options: { param: Type<P> }): Fn<I, I, P>;
export declare function flatMap<I, O extends Type<unknown>>(name: string, input: Type<I>, output: O, fn: (record: I) => Iterable<Of<O>>): Fn<I, Of<O>>;
export declare function flatMap<I, O extends Type<unknown>, P>(
  name: string,
  input: Type<I>,
  output: O,
  fn: (record: I, param: P) => Iterable<Of<O>>,
  options: { param: Type<P> },
): Fn<I, Of<O>, P>;
export declare function mapPartitions<I, O extends Type<unknown>>(name: string, input: Type<I>, output: O, fn: (records: I[]) => Iterable<Of<O>>): Fn<I, Of<O>>;
export declare function reduce<V extends Type<unknown>>(name: string, value: V, fn: (a: Of<V>, b: Of<V>) => Of<V>): Fn<Of<V>, Of<V>>;

/** The job's driver, called with a Context when the job starts. */
export declare function main(fn: (ctx: Context) => void): void;

export interface Accumulator {
  add(delta?: number): void;
  /** The sum over every finished task (in main only). */
  readonly value: number;
}
export declare function accumulator(name: string): Accumulator;

export declare const log: Record<"trace" | "debug" | "info" | "warn" | "error", (message: unknown) => void>;

/** An action's job failed, or a driver call was refused. */
export declare class JobFailed extends Error {}

export interface Broadcast<T> {
  readonly broadcast: bigint;
  readonly type: Type<T>;
}

export declare class Context {
  /** What followed `--` on the command line. */
  readonly args: string[];
  textFile(uri: string, partitions?: number): Dataset<string>;
  textFileBytes(uri: string, partitions?: number): Dataset<Uint8Array>;
  parallelize<T>(records: T[], partitions?: number, type?: Type<T>): Dataset<T>;
  broadcast<T>(value: T, type?: Type<T>): Broadcast<T>;
}

type Key<T> = T extends [infer K, unknown] ? K : never;
type Value<T> = T extends [unknown, infer V] ? V : never;
export type StorageLevel = "memory-only" | "memory-and-disk" | "disk-only";

/** A distributed collection of records `T`; pair methods need `T = [K, V]`. */
export declare class Dataset<T> {
  readonly type: string;
  map<O>(f: Usable<T, O>): Dataset<O>;
  filter(f: Usable<T, T>): Dataset<T>;
  flatMap<O>(f: Usable<T, O>): Dataset<O>;
  mapBatch<O>(f: Fn<T, O>): Dataset<O>;
  mapPartitions<O>(f: Fn<T, O>): Dataset<O>;
  keyBy<K>(f: Fn<T, K>): Dataset<[K, T]>;
  union(other: Dataset<T>): Dataset<T>;
  distinct(partitions?: number): Dataset<T>;
  subtract(other: Dataset<T>, partitions?: number): Dataset<T>;
  intersection(other: Dataset<T>, partitions?: number): Dataset<T>;
  cartesian<U>(other: Dataset<U>): Dataset<[T, U]>;
  countByValue(partitions?: number): Dataset<[T, number]>;
  sortBy<K>(f: Fn<T, K>, ascending?: boolean, partitions?: number): Dataset<T>;
  sample(fraction: number, seed?: number): Dataset<T>;
  repartition(partitions: number): Dataset<T>;
  coalesce(partitions: number): Dataset<T>;
  zipWithIndex(): Dataset<[number, T]>;

  keys(): Dataset<Key<T>>;
  values(): Dataset<Value<T>>;
  mapValues<O>(f: Fn<Value<T>, O>): Dataset<[Key<T>, O]>;
  flatMapValues<O>(f: Fn<Value<T>, O>): Dataset<[Key<T>, O]>;
  reduceByKey(f: Fn<Value<T>, Value<T>>, partitions?: number): Dataset<T>;
  foldByKey(zero: Value<T>, f: Fn<Value<T>, Value<T>>, partitions?: number): Dataset<T>;
  combineByKey<C>(create: Fn<Value<T>, C>, merge: Fn<C, C>, partitions?: number): Dataset<[Key<T>, C]>;
  aggregateByKey<U>(zero: U, to: Fn<Value<T>, U>, comb: Fn<U, U>, partitions?: number): Dataset<[Key<T>, U]>;
  sumByKey(partitions?: number): Dataset<T>;
  minByKey(partitions?: number): Dataset<T>;
  maxByKey(partitions?: number): Dataset<T>;
  countByKey(partitions?: number): Dataset<[Key<T>, number]>;
  groupByKey(partitions?: number): Dataset<[Key<T>, Value<T>[]]>;
  sortByKey(ascending?: boolean, partitions?: number): Dataset<T>;
  partitionBy(partitions: number): Dataset<T>;
  join<W>(other: Dataset<[Key<T>, W]>, partitions?: number): Dataset<[Key<T>, [Value<T>, W]]>;
  cogroup<W>(other: Dataset<[Key<T>, W]>, partitions?: number): Dataset<[Key<T>, [Value<T>[], W[]]]>;
  leftOuterJoin<W>(other: Dataset<[Key<T>, W]>, partitions?: number): Dataset<[Key<T>, [Value<T>, W | null]]>;
  rightOuterJoin<W>(other: Dataset<[Key<T>, W]>, partitions?: number): Dataset<[Key<T>, [Value<T> | null, W]]>;
  fullOuterJoin<W>(other: Dataset<[Key<T>, W]>, partitions?: number): Dataset<[Key<T>, [Value<T> | null, W | null]]>;

  cache(): this;
  persist(level?: StorageLevel): this;
  unpersist(): this;

  collect(): T[];
  collectAsMap(): Map<Key<T>, Value<T>>;
  count(): number;
  isEmpty(): boolean;
  take(n: number): T[];
  first(): T;
  top(n: number): T[];
  takeOrdered(n: number): T[];
  takeSample(n: number, seed?: number): T[];
  reduce(f: Fn<T, T>): T;
  fold(zero: T, f: Fn<T, T>): T;
  aggregate<U>(zero: U, to: Fn<T, U>, comb: Fn<U, U>): U;
  foreach(f: Fn<T, unknown>): void;
  foreachPartition(f: Fn<T, unknown>): void;
  saveAsTextFile(uri: string): void;
}
