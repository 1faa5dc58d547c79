"""User functions: the decorators' registry, and how a function's records sit
in a batch (its layout), read from its annotations."""

from __future__ import annotations

import collections.abc
import inspect
import typing

from . import codec

#: Every function a job (or the SDK) can name in a chain, by name.
REGISTRY: dict[str, "Function"] = {}

MAP, FILTER, FLAT_MAP, MAP_BATCH, REDUCE = "map", "filter", "flat-map", "map-batch", "reduce"


class Layout:
    """How one record sits in a batch: one entry (plain) or two (a pair:
    the key in the key encoding, then the value as a record)."""

    __slots__ = ("keyed", "type", "key", "value")

    def __init__(self, t: codec.Type):
        self.type = t
        self.keyed = isinstance(t, codec._Tuple) and len(t.elems) == 2 and t.make is tuple
        self.key, self.value = (t.elems[0], t.elems[1]) if self.keyed else (None, None)
        if self.keyed and not self.key.keyable:
            raise TypeError(f"`{self.key.name}` cannot be a key (lists and dataclasses have no key encoding)")

    def decode(self, batch: bytes) -> list:
        if not self.keyed:
            if self.type is codec.STR:
                return codec.strings(batch)
            es = codec.entries(batch)
            if self.type is codec.BYTES:
                return es
            return [self.type.from_record(e) for e in es]
        es = codec.entries(batch)
        if len(es) % 2:
            raise codec.DecodeError("a pair batch with an odd number of entries")
        fk, fv = self.key.from_key, self.value.from_record
        it = iter(es)
        return [(fk(k), fv(v)) for k, v in zip(it, it)]

    def encode(self, records) -> bytes:
        if not self.keyed:
            return codec.frame([self.type.record(r) for r in records])
        fk, fv = self.key.key, self.value.record
        parts = []
        for r in records:
            if not isinstance(r, tuple) or len(r) != 2:
                raise codec.EncodeError(f"{r!r:.60} is not a (key, value) pair")
            parts.append(fk(r[0]))
            parts.append(fv(r[1]))
        return codec.frame(parts)

    def __repr__(self) -> str:
        return self.type.name


class Function:
    """A user function, as a decorator registered it."""

    def __init__(self, fn, kind: str, name: str, input: Layout, output: Layout | None, param: codec.Type | None):
        self.fn = fn
        self.kind = kind
        self.name = name
        self.input = input
        self.output = output
        self.param = param
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def bind(self, value) -> "Bound":
        """This function with `value` as its second argument in every task
        (shipped once to every task, as a broadcast value)."""
        if self.param is None:
            raise TypeError(f"`{self.name}` takes no parameter: it has one argument")
        return Bound(self, value)

    def __repr__(self) -> str:
        return f"<weft {self.kind} function {self.name}>"


class Bound:
    """A function with its parameter (see `Function.bind`)."""

    def __init__(self, function: Function, value):
        self.function = function
        self.value = value


def _hints(fn) -> dict:
    try:
        return typing.get_type_hints(fn)
    except Exception as e:  # a NameError for a type not yet defined, say
        raise TypeError(f"cannot read the annotations of `{fn.__qualname__}`: {e}") from None


def _element(annotation, where: str):
    """The element type of an iterable annotation (`list[T]`, `Iterable[T]`, `Iterator[T]`)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    iterables = (list, collections.abc.Iterable, collections.abc.Iterator, collections.abc.Generator)
    if origin in iterables and args:
        return args[0]
    raise TypeError(f"{where}: annotate the result as list[T], Iterable[T] or Iterator[T], not {annotation!r}")


def register(fn, kind: str) -> Function:
    """Register `fn` as a user function of `kind`, its record types from its annotations."""
    if not callable(fn) or not hasattr(fn, "__qualname__"):
        raise TypeError(f"@weft.{kind.replace('-', '_')} decorates a function, not {fn!r}")
    if "<locals>" in fn.__qualname__ or fn.__name__ == "<lambda>":
        raise TypeError(
            f"`{fn.__qualname__}` must be defined at a module's top level: tasks run in other "
            "instances of the component, which find functions by name"
        )
    name = f"{fn.__module__}.{fn.__qualname__}"
    where = f"`{name}`"
    params = list(inspect.signature(fn).parameters)
    hints = _hints(fn)
    want = 2 if kind == REDUCE else 1
    if len(params) not in (want, want + 1):
        raise TypeError(f"{where} takes {want} argument(s) (and optionally a bound parameter), not {len(params)}")
    missing = [p for p in params if p not in hints] + ([] if "return" in hints or kind == FILTER else ["return"])
    if missing:
        raise TypeError(f"{where}: annotate {', '.join(missing)}; weft encodes records by their types")
    first = hints[params[0]]
    param = codec.of(hints[params[want]], where) if len(params) > want else None
    if kind == REDUCE:
        value = codec.of(first, where)
        return _add(Function(fn, kind, name, Layout(value), Layout(value), param))
    if kind == MAP_BATCH:
        first = _element(first, where)
        out = _element(hints["return"], where)
    elif kind == FLAT_MAP:
        out = _element(hints["return"], where)
    elif kind == FILTER:
        out = first
    else:
        out = hints["return"]
    return _add(Function(fn, kind, name, Layout(codec.of(first, where)), Layout(codec.of(out, where)), param))


def _add(f: Function) -> Function:
    if f.name in REGISTRY and REGISTRY[f.name].fn is not f.fn:
        raise TypeError(f"two functions are named `{f.name}`")
    REGISTRY[f.name] = f
    return f
