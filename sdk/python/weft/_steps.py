"""The SDK's own steps: the type-generic operations (`keys()`, `map_values`,
`count_by_value`, ...) that no user function expresses.

A step's name spells it: `_weft.<op>|<arg>|...`, each argument a contract type
name (`codec.parse`) or a user function's name, so every task instance can
rebuild the step from the name alone (tasks do not share the driver's memory).
The table is in `docs/sdk-python.md`.
"""

from __future__ import annotations

import random

from . import codec
from ._dispatch import MAP, CallFailed, _Step
from ._functions import FILTER, MAP_BATCH, REDUCE, REGISTRY, Layout, register

PREFIX = "_weft."


def name(op: str, *args) -> str:
    """The name of step `op` with `args` (types or function names)."""
    return "|".join([PREFIX + op, *(a.name if isinstance(a, codec.Type) else str(a) for a in args)])


def add(a: int, b: int) -> int:
    """`count_by_key`'s and `count_by_value`'s reduce function."""
    return a + b


def keep(a: None, b: None) -> None:
    """`distinct`'s reduce function: the key is all there is."""
    return None


add = register(add, REDUCE)
keep = register(keep, REDUCE)


def _pair(k: codec.Type, v: codec.Type) -> Layout:
    return Layout(codec._Tuple([k, v]))


def _user(fname: str):
    f = REGISTRY.get(fname)
    if f is None:
        raise CallFailed("unknown-function", f"no function `{fname}` in this job")
    return f


def _types(args, n):
    if len(args) != n:
        raise ValueError(f"takes {n} arguments")
    return [codec.parse(a) for a in args]


def _partition() -> int:
    """The partition this task computes (0 outside a component)."""
    try:
        from . import _host
    except ImportError:
        return 0
    return _host.partition()


def _bernoulli(fraction: float, seed: int):
    """Keep each record with probability `fraction`, from a stream seeded by
    `seed` and the partition: the same records on every run."""
    draw = random.Random(f"{seed}:{_partition()}").random
    return lambda _r: draw() < fraction


def _split(values: list[bytes], v: codec.Type, w: codec.Type):
    """A cogroup's tagged values (`tag`: side byte, then the record) split by side."""
    left, right = [], []
    for b in values:
        if b[:1] == b"\x00":
            left.append(v.from_record(b[1:]))
        else:
            right.append(w.from_record(b[1:]))
    return left, right


def _sides(op: str, full: str, k: codec.Type, v: codec.Type, w: codec.Type) -> _Step:
    """The steps after a cogroup's `group_by_key`: `(k, [tagged values])` in."""
    grouped = _pair(k, codec._List(codec.BYTES))
    if op == "cogroup":
        out = _pair(k, codec._Tuple([codec._List(v), codec._List(w)]))
        return _Step(MAP, full, lambda kv: (kv[0], _split(kv[1], v, w)), grouped, out)
    if op in ("subtract", "intersection"):
        # Self-keyed records `(r, ())` on both sides: the key is the record.
        def keep(kv):
            left, right = _split(kv[1], codec.UNIT, codec.UNIT)
            if op == "subtract":
                return [] if right else [kv[0]] * len(left)
            return [kv[0]] if left and right else []

        return _Step("flat-map", full, keep, grouped, Layout(k))

    def joined(kv):
        key, (left, right) = kv[0], _split(kv[1], v, w)
        if op == "left-outer":
            return [(key, (a, b)) for a in left for b in (right or [None])]
        if op == "right-outer":
            return [(key, (a, b)) for a in (left or [None]) for b in right]
        return [(key, (a, b)) for a in (left or [None]) for b in (right or [None])]

    vt = v if op == "left-outer" else codec._Option(v)
    wt = w if op == "right-outer" else codec._Option(w)
    return _Step("flat-map", full, joined, grouped, _pair(k, codec._Tuple([vt, wt])))


def resolve(kind: str, full: str) -> _Step:
    op, *args = full[len(PREFIX) :].split("|")
    try:
        return _build(op, args, full)
    except (ValueError, TypeError, ImportError, AttributeError) as e:
        raise CallFailed("unknown-function", f"`{full}` is not a step of this SDK: {e}") from None


def _build(op: str, args: list[str], full: str) -> _Step:
    if op == "keys":
        k, v = _types(args, 2)
        return _Step(MAP, full, lambda kv: kv[0], _pair(k, v), Layout(k))
    if op == "values":
        k, v = _types(args, 2)
        return _Step(MAP, full, lambda kv: kv[1], _pair(k, v), Layout(v))
    if op == "ones":
        k, v = _types(args, 2)
        return _Step(MAP, full, lambda kv: (kv[0], 1), _pair(k, v), _pair(k, codec.I64))
    if op == "one":
        (t,) = _types(args, 1)
        return _Step(MAP, full, lambda r: (r, 1), Layout(t), _pair(t, codec.I64))
    if op == "unit-key":
        (t,) = _types(args, 1)
        return _Step(MAP, full, lambda r: (None, r), Layout(t), _pair(codec.UNIT, t))
    if op == "self-key":
        (t,) = _types(args, 1)
        return _Step(MAP, full, lambda r: (r, None), Layout(t), _pair(t, codec.UNIT))
    if op == "display":
        (t,) = _types(args, 1)
        layout = Layout(t)
        show = (lambda kv: f"{kv[0]}\t{kv[1]}") if layout.keyed else str
        return _Step(MAP, full, show, layout, Layout(codec.STR))
    if op in ("map-values", "flat-map-values"):
        k = codec.parse(args[0])
        f = _user(args[1])
        fn = f.fn
        if op == "map-values":
            apply = lambda kv: (kv[0], fn(kv[1]))  # noqa: E731
            kind = MAP
        else:
            apply = lambda kv: [(kv[0], w) for w in fn(kv[1])]  # noqa: E731
            kind = "flat-map"
        return _Step(kind, f.name, apply, _pair(k, f.input.type), _pair(k, f.output.type), fn)
    if op == "with-zero":
        k = codec.parse(args[0])
        f = _user(args[1])
        zero = f.input.type.from_record(bytes.fromhex(args[2]))
        fn = f.fn
        return _Step(MAP, f.name, lambda kv: (kv[0], fn(zero, kv[1])), _pair(k, f.input.type), _pair(k, f.output.type), fn)
    if op == "tag":
        k, v = _types(args[:2], 2)
        side = bytes([int(args[2])])
        enc = v.record
        return _Step(MAP, full, lambda kv: (kv[0], side + enc(kv[1])), _pair(k, v), _pair(k, codec.BYTES))
    if op in ("cogroup", "left-outer", "right-outer", "full-outer", "subtract", "intersection"):
        k, v, w = _types(args, 3)
        return _sides(op, full, k, v, w)
    if op == "sample":
        (t,) = _types(args[:1], 1)
        fraction, seed = float(args[1]), int(args[2])
        return _Step(FILTER, full, _bernoulli(fraction, seed), Layout(t), Layout(t))
    if op == "spread":
        (t,) = _types(args, 1)
        base = _partition() << 32
        counter = iter(range(base, base + (1 << 32)))
        return _Step(MAP, full, lambda r: (next(counter), r), Layout(t), _pair(codec.I64, t))
    if op == "sizes":
        (t,) = _types(args, 1)
        part = _partition()
        return _Step(MAP_BATCH, full, lambda rs: [(part, len(rs))], Layout(t), _pair(codec.U32, codec.I64))
    if op == "index":
        t = codec.parse(args[0])
        offsets = [int(x) for x in args[1].split(",")] if args[1] else []
        part = _partition()
        counter = iter(range(offsets[part] if part < len(offsets) else 0, 1 << 63))
        return _Step(MAP, full, lambda r: (next(counter), r), Layout(t), _pair(codec.I64, t))
    if op == "key-by":
        f = _user(args[0])
        fn = f.fn
        return _Step(MAP, f.name, lambda r: (fn(r), r), f.input, _pair(f.output.type, f.input.type), fn)
    raise ValueError(f"no step `{op}`")
