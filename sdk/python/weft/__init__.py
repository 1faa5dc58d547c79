"""weft's Python SDK: write a weft job in Python.

A job is a module with user functions, each decorated with what it is
(`@weft.map`, `@weft.flat_map`, `@weft.filter`, `@weft.reduce`,
`@weft.map_partitions`) and annotated with its record types, and one
`@weft.main` that builds datasets and runs actions::

    import weft

    @weft.flat_map
    def words(line: str) -> list[str]:
        return line.lower().split()

    @weft.main
    def main(ctx: weft.Context) -> None:
        src, out = ctx.args
        counts = ctx.text_file(src).flat_map(words).count_by_value()
        counts.save_as_text_file(out)

`python -m weft.build job.py -o job.wasm` makes it a component that
`weft submit` and `weft local` run. The annotations are the records' types:
weft encodes records by the contract every SDK shares (`weft.codec` has the
table of Python types). A function returning a 2-tuple makes a pair dataset,
keyed by its first element. The guide is `docs/sdk-python.md`.
"""

from __future__ import annotations

import logging

from . import codec
from ._functions import FILTER, FLAT_MAP, MAP, MAP_BATCH, REDUCE, Bound, Function, Layout, register

__all__ = [
    "Context",
    "Dataset",
    "JobFailed",
    "Function",
    "filter",
    "flat_map",
    "main",
    "map",
    "map_partitions",
    "reduce",
    "accumulator",
]

# The width markers: `def f(x: weft.i32) -> weft.u8`.
i8 = codec.MARKERS["i8"]
i16 = codec.MARKERS["i16"]
i32 = codec.MARKERS["i32"]
i128 = codec.MARKERS["i128"]
u8 = codec.MARKERS["u8"]
u16 = codec.MARKERS["u16"]
u32 = codec.MARKERS["u32"]
u64 = codec.MARKERS["u64"]
u128 = codec.MARKERS["u128"]
f32 = codec.MARKERS["f32"]
char = codec.MARKERS["char"]

def map(fn) -> Function:
    """A function of one record to one record."""
    return register(fn, MAP)


def filter(fn) -> Function:
    """A predicate: records for which it returns a true value are kept."""
    return register(fn, FILTER)


def flat_map(fn) -> Function:
    """A function of one record to any number (annotate `-> list[T]` or `Iterable[T]`)."""
    return register(fn, FLAT_MAP)


def map_partitions(fn) -> Function:
    """A function of a whole partition's records (`list[T]`) to a list of records."""
    return register(fn, MAP_BATCH)


def reduce(fn) -> Function:
    """An associative function folding two values of one key into one."""
    return register(fn, REDUCE)


_MAIN: list = []


def main(fn):
    """The job's driver: called with a `Context` when the job starts. An
    exception fails the job with its message and traceback."""
    _MAIN[:] = [fn]
    return fn


class JobFailed(Exception):
    """An action's job failed, or a driver call was refused; the message says why."""


def _driver(f, *args):
    from . import _host

    try:
        return f(*args)
    except _host.DriverFailed as e:
        raise JobFailed(str(e)) from None


class accumulator:
    """A named counter that tasks add to and the driver reads:
    `weft.accumulator("bad-lines").add(1)` in a function, `.value` in main."""

    def __init__(self, name: str):
        self.name = name

    def add(self, delta: int = 1) -> None:
        from . import _host

        _host.accumulator_add(self.name, int(delta))

    @property
    def value(self) -> int:
        from . import _host

        return _driver(_host.accumulator_value, self.name)


class _HostLog(logging.Handler):
    """Python's `logging` into the task's log."""

    LEVELS = [(logging.ERROR, "error"), (logging.WARNING, "warn"), (logging.INFO, "info"), (logging.DEBUG, "debug")]

    def emit(self, record: logging.LogRecord) -> None:
        from . import _host

        level = next((name for n, name in self.LEVELS if record.levelno >= n), "trace")
        try:
            _host.write_log(level, self.format(record))
        except Exception:  # outside a component (tests): nowhere to log
            pass


log = logging.getLogger("weft")
log.addHandler(_HostLog())
log.setLevel(logging.INFO)
log.propagate = False


def _infer(value) -> codec.Type:
    """The contract type of a Python value, for `parallelize` and `broadcast` without `of=`."""
    if isinstance(value, bool):
        return codec.BOOL
    for py, t in ((int, codec.I64), (float, codec.F64), (str, codec.STR), (bytes, codec.BYTES)):
        if isinstance(value, py):
            return t
    if value is None:
        return codec.UNIT
    if isinstance(value, tuple):
        return codec._Tuple([_infer(v) for v in value])
    if isinstance(value, list) and value:
        return codec._List(_infer(value[0]))
    raise TypeError(f"cannot tell the type of {value!r:.60}: pass `of=` (e.g. of=list[float])")


class Context:
    """What `main` is given: the job's arguments, sources of datasets,
    broadcasts and accumulators."""

    @property
    def args(self) -> list[str]:
        """What followed `--` on the command line."""
        from . import _host

        return list(_host.args())

    def text_file(self, uri: str, partitions: int = 2) -> "Dataset":
        """The lines of the text files at `uri` (plain, .gz or .zst), as `str` records."""
        from . import _host

        return Dataset(_driver(_host.text_file, uri, partitions, False), Layout(codec.STR))

    def text_file_bytes(self, uri: str, partitions: int = 2) -> "Dataset":
        """As `text_file`, but each line is `bytes`, not checked to be UTF-8."""
        from . import _host

        return Dataset(_driver(_host.text_file, uri, partitions, True), Layout(codec.BYTES))

    def parallelize(self, records, partitions: int = 2, of=None) -> "Dataset":
        """A dataset of `records`; `of` is their type (inferred from the first
        record when left out). A 2-tuple type makes a pair dataset."""
        from . import _host

        records = list(records)
        if of is not None:
            t = codec.of(of, "parallelize's `of`")
        elif records:
            t = _infer(records[0])
        else:
            raise TypeError("parallelize of no records needs `of=`")
        layout = Layout(t)
        return Dataset(_driver(_host.parallelize, layout.encode(records), layout.keyed, partitions), layout)

    def broadcast(self, value, of=None) -> "Broadcast":
        """Ship `value` once to every task; bind it to functions with `f.bind(b)`."""
        from . import _host

        t = codec.of(of, "broadcast's `of`") if of is not None else _infer(value)
        return Broadcast(_driver(_host.broadcast_new, t.record(value)), t)


class Broadcast:
    """A value shipped once to every task (`Context.broadcast`)."""

    def __init__(self, id: int, type: codec.Type):
        self.id = id
        self.type = type


def _plain(f, want: str, what: str) -> Function:
    """The function for `what`, which takes no bound parameter."""
    if isinstance(f, Bound):
        raise TypeError(f"{what} takes a function without a bound parameter")
    fn, _ = _step(f, want)
    return fn


def _step(f, want: str):
    """(function, parameter id) for a step of kind `want`."""
    param = None
    if isinstance(f, Bound):
        f, value = f.function, f.value
        if isinstance(value, Broadcast):
            if value.type.name != f.param.name:
                raise TypeError(f"`{f.name}` takes a `{f.param.name}`, the broadcast is a `{value.type.name}`")
            param = value.id
        else:
            from . import _host

            param = _driver(_host.broadcast_new, f.param.record(value))
    if not isinstance(f, Function):
        raise TypeError(
            f"{f!r} is not a weft function: decorate it with @weft.{want.replace('-', '_')} "
            "at module level (lambdas and closures cannot travel to tasks)"
        )
    if f.kind != want:
        raise TypeError(f"`{f.name}` is a @weft.{f.kind.replace('-', '_')} function; this needs @weft.{want.replace('-', '_')}")
    if f.param is not None and param is None:
        raise TypeError(f"`{f.name}` takes a parameter of type `{f.param.name}`: pass `{f.fn.__name__}.bind(value)`")
    return f, param


class Dataset:
    """A distributed collection of records, built lazily: transformations
    return new datasets, actions (`collect`, `count`, `save_as_text_file`, ...)
    run jobs. A pair dataset holds `(key, value)` tuples."""

    def __init__(self, id: int, layout: Layout):
        self._id = id
        self._layout = layout

    @property
    def type(self) -> str:
        """The records' contract type, e.g. `(string, i64)`."""
        return self._layout.type.name

    def __repr__(self) -> str:
        return f"<weft Dataset #{self._id} of {self.type}>"

    # -- narrow transformations -------------------------------------------

    def _narrow(self, kind: str, name: str, param, out: Layout) -> "Dataset":
        from . import _host

        return Dataset(_driver(_host.narrow, self._id, kind, name, param, out.keyed), out)

    def _user(self, f, kind: str) -> "Dataset":
        fn, param = _step(f, kind)
        if fn.input.type.name != self._layout.type.name:
            raise TypeError(f"`{fn.name}` takes `{fn.input}` records; this dataset holds `{self.type}`")
        return self._narrow(kind, fn.name, param, fn.output)

    @staticmethod
    def _takes(fn: Function, t: codec.Type) -> Function:
        """`fn`, which must take records of type `t`."""
        if fn.input.type.name != t.name:
            raise TypeError(f"`{fn.name}` takes `{fn.input}` records; these are `{t.name}`")
        return fn

    def _own(self, op: str, args, out: Layout, kind: str = MAP) -> "Dataset":
        from . import _steps

        return self._narrow(kind, _steps.name(op, *args), None, out)

    def map(self, f) -> "Dataset":
        """Each record turned by a `@weft.map` function (or `f.bind(value)`)."""
        return self._user(f, MAP)

    def filter(self, f) -> "Dataset":
        """The records a `@weft.filter` function accepts."""
        return self._user(f, FILTER)

    def flat_map(self, f) -> "Dataset":
        """Each record turned into any number by a `@weft.flat_map` function."""
        return self._user(f, FLAT_MAP)

    def map_partitions(self, f) -> "Dataset":
        """A `@weft.map_partitions` function applied once to each whole partition."""
        fn = self._takes(_plain(f, MAP_BATCH, "map_partitions"), self._layout.type)
        from ._dispatch import PARTITION

        return self._narrow(MAP_BATCH, PARTITION + fn.name, None, fn.output)

    def map_batch(self, f) -> "Dataset":
        """A `@weft.map_partitions` function applied to each batch of records as
        it comes (a part of a partition; `map_partitions` waits for the whole)."""
        return self._user(f, MAP_BATCH)

    def key_by(self, f) -> "Dataset":
        """Pairs `(f(record), record)` for a `@weft.map` function `f`."""
        fn = self._takes(_plain(f, MAP, "key_by"), self._layout.type)
        return self._own("key-by", [fn.name], Layout(codec._Tuple([fn.output.type, fn.input.type])))

    def union(self, other: "Dataset") -> "Dataset":
        """The records of both datasets (of one type)."""
        from . import _host

        if other.type != self.type:
            raise TypeError(f"union of `{self.type}` and `{other.type}`")
        return Dataset(_driver(_host.union, self._id, other._id), self._layout)

    def distinct(self, partitions: int = 0) -> "Dataset":
        """Each record once."""
        t = self._layout.type
        keyed = self._own("self-key", [t], Layout(codec._Tuple([t, codec.UNIT])))
        return keyed.reduce_by_key(_keep(), partitions).keys()

    def count_by_value(self, partitions: int = 0) -> "Dataset":
        """Pairs `(record, number of times it occurs)`, counted map-side first."""
        t = self._layout.type
        ones = self._own("one", [t], Layout(codec._Tuple([t, codec.I64])))
        return ones.reduce_by_key(_add(), partitions)

    def sample(self, fraction: float, seed: int = 0) -> "Dataset":
        """Each record kept with probability `fraction`, drawn from a stream seeded
        by `seed` and the partition: the same records on every run."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"sample's fraction is between 0 and 1, not {fraction}")
        return self._own("sample", [self._layout.type, repr(float(fraction)), int(seed)], self._layout, FILTER)

    def repartition(self, partitions: int) -> "Dataset":
        """The records spread evenly over `partitions` partitions (a shuffle)."""
        t = self._layout.type
        spread = self._own("spread", [t], Layout(codec._Tuple([codec.I64, t])))
        return spread.partition_by(partitions).values()

    def coalesce(self, partitions: int) -> "Dataset":
        """Into `partitions` partitions; unlike Spark's, always with a shuffle."""
        return self.repartition(partitions)

    def zip_with_index(self) -> "Dataset":
        """Pairs `(index, record)`, the index counting from 0 in partition order.
        Like Spark's, it first runs a job counting each partition's records."""
        t = self._layout.type
        sizes = self._own("sizes", [t], Layout(codec._Tuple([codec.U32, codec.I64])), MAP_BATCH)
        counts = dict(sizes.sum_by_key(1).collect())
        offsets, total = [], 0
        for p in range(max(counts, default=-1) + 1):
            offsets.append(total)
            total += counts.get(p, 0)
        return self._own("index", [t, ",".join(str(o) for o in offsets)], Layout(codec._Tuple([codec.I64, t])))

    def cartesian(self, other: "Dataset") -> "Dataset":
        """Every pair `(a, b)` of a record of this dataset and one of the other,
        made in one task: keep one side small."""
        a, b = self._layout.type, other._layout.type
        left = self._own("unit-key", [a], Layout(codec._Tuple([codec.UNIT, a])))
        right = other._own("unit-key", [b], Layout(codec._Tuple([codec.UNIT, b])))
        return left.join(right, 1).values()

    def subtract(self, other: "Dataset", partitions: int = 0) -> "Dataset":
        """The records of this dataset that the other lacks (duplicates kept)."""
        return self._by_value(other, "subtract", partitions)

    def intersection(self, other: "Dataset", partitions: int = 0) -> "Dataset":
        """The records in both datasets, each once."""
        return self._by_value(other, "intersection", partitions)

    def _by_value(self, other: "Dataset", op: str, partitions: int) -> "Dataset":
        t = self._layout.type
        if other.type != self.type:
            raise TypeError(f"{op} of `{self.type}` and `{other.type}`")
        keyed = Layout(codec._Tuple([t, codec.UNIT]))
        a, b = self._own("self-key", [t], keyed), other._own("self-key", [t], keyed)
        return a._grouped_sides(b, partitions)._own(op, [t, codec.UNIT, codec.UNIT], Layout(t), FLAT_MAP)

    def foreach(self, f) -> None:
        """Action: run a `@weft.map` function on every record, in the tasks, for
        its effects (accumulators, logs); its results are dropped."""
        self.map(f).count()

    def foreach_partition(self, f) -> None:
        """Action: run a `@weft.map_partitions` function once per whole partition,
        for its effects."""
        self.map_partitions(f).count()

    def is_empty(self) -> bool:
        return not self.take(1)

    def fold(self, zero, f):
        """Action: the records folded by a `@weft.reduce` function, then into
        `zero` once, on the driver (Spark folds `zero` in once per partition too:
        the results agree when `zero` is an identity of `f`)."""
        fn, _ = _step(f, REDUCE)
        if self.is_empty():
            return zero
        return fn.fn(zero, self.reduce(f))

    def aggregate(self, zero, to, comb):
        """Action: the records turned by a `@weft.map` function `to` and folded by a
        `@weft.reduce` function `comb` with `zero` (Spark's `seqOp(u, t)` is
        `comb(u, to(t))` here)."""
        return self.map(to).fold(zero, comb)

    def take_sample(self, n: int, seed: int = 0) -> list:
        """Action: `n` records drawn without replacement (all of them when there
        are fewer), in an order drawn from `seed`."""
        import random

        total = self.count()
        if n <= 0 or total == 0:
            return []
        # Sample a little more than asked, so one pass almost always suffices.
        fraction = min(1.0, (n + 3 * n**0.5 + 10) / total)
        got = self.sample(fraction, seed).collect() if fraction < 1.0 else self.collect()
        if len(got) < min(n, total):
            got = self.collect()
        return random.Random(seed).sample(got, min(n, len(got)))

    def sort_by(self, f, ascending: bool = True, partitions: int = 0) -> "Dataset":
        """The records ordered by `f(record)` for a `@weft.map` function `f`."""
        return self.key_by(f).sort_by_key(ascending, partitions).values()

    # -- pair transformations ---------------------------------------------

    def _pairs(self, what: str) -> tuple[codec.Type, codec.Type]:
        if not self._layout.keyed:
            raise TypeError(f"{what} needs a pair dataset (records `(key, value)`); this one holds `{self.type}`")
        return self._layout.key, self._layout.value

    def keys(self) -> "Dataset":
        k, v = self._pairs("keys()")
        return self._own("keys", [k, v], Layout(k))

    def values(self) -> "Dataset":
        k, v = self._pairs("values()")
        return self._own("values", [k, v], Layout(v))

    def map_values(self, f) -> "Dataset":
        """`(k, f(v))` for a `@weft.map` function `f`."""
        k, v = self._pairs("map_values")
        fn = self._takes(_plain(f, MAP, "map_values"), v)
        return self._own("map-values", [k, fn.name], Layout(codec._Tuple([k, fn.output.type])))

    def flat_map_values(self, f) -> "Dataset":
        """`(k, w)` for each `w` of a `@weft.flat_map` function's `f(v)`."""
        k, v = self._pairs("flat_map_values")
        fn = self._takes(_plain(f, FLAT_MAP, "flat_map_values"), v)
        return self._own("flat-map-values", [k, fn.name], Layout(codec._Tuple([k, fn.output.type])), FLAT_MAP)

    def _shuffle(self, op: str, arg, partitions: int, out: Layout) -> "Dataset":
        from . import _host

        return Dataset(_driver(_host.shuffle, self._id, op, arg, partitions), out)

    def reduce_by_key(self, f, partitions: int = 0) -> "Dataset":
        """The values of each key folded by a `@weft.reduce` function (map-side first)."""
        k, v = self._pairs("reduce_by_key")
        fn, param = _step(f, REDUCE)
        if param is not None:
            raise TypeError("reduce_by_key takes a function without a bound parameter")
        if fn.input.type.name != v.name:
            raise TypeError(f"`{fn.name}` folds `{fn.input}` values; this dataset's values are `{v.name}`")
        return self._shuffle("reduce-by-key", fn.name, partitions, self._layout)

    def sum_by_key(self, partitions: int = 0) -> "Dataset":
        """The sum of each key's `int` (wrapping at 64 bits) or `float` values, natively in the host."""
        k, v = self._pairs("sum_by_key")
        if v is codec.I64:
            return self._shuffle("sum-by-key", None, partitions, self._layout)
        if v is codec.F64:
            return self._shuffle("fold-by-key", "sum-f64", partitions, self._layout)
        raise TypeError(f"sum_by_key sums int or float values, not `{v.name}`")

    def min_by_key(self, partitions: int = 0) -> "Dataset":
        """The least `int` or `float` value of each key, natively in the host."""
        return self._native_fold("min", partitions)

    def max_by_key(self, partitions: int = 0) -> "Dataset":
        """The greatest `int` or `float` value of each key, natively in the host."""
        return self._native_fold("max", partitions)

    def _native_fold(self, fold: str, partitions: int) -> "Dataset":
        k, v = self._pairs(f"{fold}_by_key")
        if v not in (codec.I64, codec.F64):
            raise TypeError(f"{fold}_by_key folds int or float values, not `{v.name}`")
        return self._shuffle("fold-by-key", fold, partitions, self._layout)

    def fold_by_key(self, zero, f, partitions: int = 0) -> "Dataset":
        """The values of each key folded by a `@weft.reduce` function, then into
        `zero` once per key (Spark: once per key and partition; the results agree
        when `zero` is an identity of `f`)."""
        k, v = self._pairs("fold_by_key")
        fn, _ = _step(f, REDUCE)
        hexed = fn.input.type.record(zero).hex()
        reduced = self.reduce_by_key(f, partitions)
        return reduced._own("with-zero", [k, fn.name, hexed], self._layout)

    def combine_by_key(self, create, merge, partitions: int = 0) -> "Dataset":
        """Each key's values turned into combiners by a `@weft.map` function and
        merged by a `@weft.reduce` one (Spark's `mergeValue(c, v)` is
        `merge(c, create(v))` here)."""
        return self.map_values(create).reduce_by_key(merge, partitions)

    def aggregate_by_key(self, zero, to, comb, partitions: int = 0) -> "Dataset":
        """Each key's values turned by a `@weft.map` function and folded by a
        `@weft.reduce` one with `zero` (Spark's `seqOp(u, v)` is `comb(u, to(v))`)."""
        return self.map_values(to).fold_by_key(zero, comb, partitions)

    def _grouped_sides(self, other: "Dataset", partitions: int) -> "Dataset":
        """Both pair datasets' values tagged with their side, grouped by key."""
        k, v = self._pairs("cogroup")
        k2, w = other._pairs("cogroup")
        if k.name != k2.name:
            raise TypeError(f"cogroup of `{k.name}` keys with `{k2.name}` keys")
        tagged = Layout(codec._Tuple([k, codec.BYTES]))
        a = self._own("tag", [k, v, 0], tagged)
        b = other._own("tag", [k, w, 1], tagged)
        return a.union(b).group_by_key(partitions)

    def cogroup(self, other: "Dataset", partitions: int = 0) -> "Dataset":
        """For each key of either dataset, `(key, (its values here, its values there))`."""
        return self._sides(other, "cogroup", partitions)

    def left_outer_join(self, other: "Dataset", partitions: int = 0) -> "Dataset":
        """`(k, (v, w))` for equal keys, and `(k, (v, None))` where the other lacks `k`."""
        return self._sides(other, "left-outer", partitions)

    def right_outer_join(self, other: "Dataset", partitions: int = 0) -> "Dataset":
        """`(k, (v, w))` for equal keys, and `(k, (None, w))` where this one lacks `k`."""
        return self._sides(other, "right-outer", partitions)

    def full_outer_join(self, other: "Dataset", partitions: int = 0) -> "Dataset":
        """`(k, (v, w))` for equal keys, and `None` on the side that lacks a key."""
        return self._sides(other, "full-outer", partitions)

    def _sides(self, other: "Dataset", op: str, partitions: int) -> "Dataset":
        k, v = self._pairs(op)
        _, w = other._pairs(op)
        option = codec._Option
        values = {
            "cogroup": lambda: codec._Tuple([codec._List(v), codec._List(w)]),
            "left-outer": lambda: codec._Tuple([v, option(w)]),
            "right-outer": lambda: codec._Tuple([option(v), w]),
            "full-outer": lambda: codec._Tuple([option(v), option(w)]),
        }[op]()
        kind = MAP if op == "cogroup" else FLAT_MAP
        grouped = self._grouped_sides(other, partitions)
        return grouped._own(op, [k, v, w], Layout(codec._Tuple([k, values])), kind)

    def count_by_key(self, partitions: int = 0) -> "Dataset":
        """Pairs `(key, number of its values)`."""
        k, v = self._pairs("count_by_key")
        return self._own("ones", [k, v], Layout(codec._Tuple([k, codec.I64]))).reduce_by_key(_add(), partitions)

    def group_by_key(self, partitions: int = 0) -> "Dataset":
        """Pairs `(key, list of its values)`, the values in no particular order."""
        k, v = self._pairs("group_by_key")
        return self._shuffle("group-by-key", None, partitions, Layout(codec._Tuple([k, codec._List(v)])))

    def sort_by_key(self, ascending: bool = True, partitions: int = 0) -> "Dataset":
        """Totally ordered by key; into several partitions by sampled key ranges."""
        self._pairs("sort_by_key")
        return self._shuffle("sort-by-key", bool(ascending), partitions, self._layout)

    def partition_by(self, partitions: int) -> "Dataset":
        """Redistributed by key hash."""
        self._pairs("partition_by")
        return self._shuffle("partition-by", None, partitions, self._layout)

    def join(self, other: "Dataset", partitions: int = 0) -> "Dataset":
        """Inner join on equal keys: `(k, (v, w))` for each matching pair."""
        from . import _host

        k, v = self._pairs("join")
        k2, w = other._pairs("join")
        if k.name != k2.name:
            raise TypeError(f"join of `{k.name}` keys with `{k2.name}` keys")
        out = Layout(codec._Tuple([k, codec._Tuple([v, w])]))
        return Dataset(_driver(_host.join, self._id, other._id, partitions), out)

    # -- persistence --------------------------------------------------------

    def cache(self) -> "Dataset":
        """Keep the partitions in the agents' memory once computed."""
        return self.persist("memory-only")

    def persist(self, level: str = "memory-only") -> "Dataset":
        """Keep the partitions: `memory-only`, `memory-and-disk` or `disk-only`."""
        from . import _host

        _driver(_host.persist, self._id, level)
        return self

    def unpersist(self) -> "Dataset":
        from . import _host

        _driver(_host.persist, self._id, None)
        return self

    # -- actions --------------------------------------------------------------

    def collect(self) -> list:
        """Every record, in partition order."""
        from . import _host

        return self._layout.decode(_driver(_host.collect, self._id))

    def collect_as_map(self) -> dict:
        """The pairs as a dict (a later pair of a key wins)."""
        self._pairs("collect_as_map")
        return dict(self.collect())

    def count(self) -> int:
        from . import _host

        return _driver(_host.count, self._id)

    def take(self, n: int) -> list:
        """The first `n` records."""
        from . import _host

        return self._layout.decode(_driver(_host.take, self._id, n))

    def first(self):
        got = self.take(1)
        if not got:
            raise JobFailed("first() of an empty dataset")
        return got[0]

    def top(self, n: int) -> list:
        """The `n` greatest records, greatest first."""
        return self._ordered(n, False)

    def take_ordered(self, n: int) -> list:
        """The `n` least records, least first."""
        return self._ordered(n, True)

    def _ordered(self, n: int, ascending: bool) -> list:
        t = self._layout.type
        keyed = self._own("self-key", [t], Layout(codec._Tuple([t, codec.UNIT])))
        return [k for k, _ in keyed.sort_by_key(ascending, 1).take(n)]

    def reduce(self, f):
        """The records folded by a `@weft.reduce` function, in the tasks (map-side) first."""
        t = self._layout.type
        one = self._own("unit-key", [t], Layout(codec._Tuple([codec.UNIT, t])))
        got = one.reduce_by_key(f, 1).collect()
        if not got:
            raise JobFailed("reduce() of an empty dataset")
        return got[0][1]

    def save_as_text_file(self, uri: str) -> None:
        """One line per record under `uri` (`str(record)`; pairs as `key<TAB>value`), committed atomically."""
        from . import _host

        ds = self
        if self._layout.type is not codec.STR:
            ds = self._own("display", [self._layout.type], Layout(codec.STR))
        _driver(_host.save_as_text_file, ds._id, uri)


def _add():
    from . import _steps

    return _steps.add


def _keep():
    from . import _steps

    return _steps.keep


def _run_main() -> None:
    """The `run` export's body: call the job's `@weft.main`."""
    if not _MAIN:
        raise RuntimeError("this job has no @weft.main function")
    _MAIN[0](Context())


# Import the SDK's modules now: componentize-py snapshots what is imported at
# build time, and a task may need any of them.
from . import _dispatch, _steps  # noqa: E402,F401

try:
    from . import _host  # noqa: F401  (only inside a component)
except ImportError:
    pass
