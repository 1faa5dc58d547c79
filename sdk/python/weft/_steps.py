"""The SDK's own steps: the type-generic operations (`keys()`, `map_values`,
`count_by_value`, ...) that no user function expresses.

A step's name spells it: `_weft.<op>|<arg>|...`, each argument a contract type
name (`codec.parse`) or a user function's name, so every task instance can
rebuild the step from the name alone (tasks do not share the driver's memory).
The table is in `docs/sdk-python.md`.
"""

from __future__ import annotations

from . import codec
from ._dispatch import MAP, CallFailed, _Step
from ._functions import REDUCE, REGISTRY, Layout, register

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
    if op == "key-by":
        f = _user(args[0])
        fn = f.fn
        return _Step(MAP, f.name, lambda r: (fn(r), r), f.input, _pair(f.output.type, f.input.type), fn)
    raise ValueError(f"no step `{op}`")
