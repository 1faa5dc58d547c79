"""The dispatcher: `run-chain` and `flush-chain` in plain Python.

A chain's input batch is decoded once with its first step's layout; the
steps then pass Python lists to each other (no re-encoding between steps) and
the last step's output is encoded once. Pairs after a `reduce` keep their key
bytes until a step needs the key itself. The semantics of each step kind are
the contract's (`docs/record-format.md`, "The dispatcher"); the SDK's own
steps (`_weft.*`) are described in `docs/sdk-python.md`.
"""

from __future__ import annotations

import traceback
from collections import _count_elements
from itertools import chain as _chain

from . import codec
from ._functions import FILTER, FLAT_MAP, MAP, MAP_BATCH, REDUCE, REGISTRY, Layout

COMBINE = "combine"

#: Names of whole-partition steps (the host calls `flush-chain` for them).
PARTITION = "weft:partition:"

#: How many keys a `combine` holds between calls before it hands them back.
HELD_KEYS = 1 << 17


class CallFailed(Exception):
    """A chain failed: `kind` is `decode`, `user` or `unknown-function`."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


def _user_error(name: str, record, e: BaseException) -> CallFailed:
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-8))
    shown = repr(record)
    if len(shown) > 200:
        shown = shown[:200] + "…"
    return CallFailed("user", f"`{name}` raised {type(e).__name__}: {e}\n  on record {shown}\n{tb.rstrip()}")


class _Params:
    """Bound parameters, fetched and decoded once per instance."""

    values: dict = {}

    @classmethod
    def get(cls, fid: int, t: codec.Type, name: str):
        key = (fid, t.name)
        if key not in cls.values:
            from . import _host

            raw = _host.broadcast_value(fid)
            if raw is None:
                raise CallFailed("decode", f"`{name}`: the job has no broadcast value {fid}")
            try:
                cls.values[key] = t.from_record(raw)
            except codec.DecodeError as e:
                raise CallFailed("decode", f"`{name}`: its parameter is not a `{t.name}`: {e}") from None
        return cls.values[key]


class _Step:
    """One resolved step: what it reads, what it makes, how; `user` is the
    user function it calls, if any (to find the record it failed on)."""

    def __init__(self, kind: str, name: str, fn, input: Layout | None, output: Layout | None, user=None):
        self.kind, self.name, self.fn, self.input, self.output = kind, name, fn, input, output
        self.code = getattr(user, "__code__", None)


def _culprit(step: _Step, e: BaseException):
    """The record a failed step was called with: the first argument of the
    user function's frame in the traceback (the loops run in C, without a
    record at hand)."""
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code is step.code and step.code.co_argcount:
            return frame.f_locals.get(step.code.co_varnames[0], "<unknown>")
        tb = tb.tb_next
    return "<unknown>"


def _resolve(kind: str, name: str, param) -> _Step:
    if name.startswith("_weft."):
        from . import _steps

        return _steps.resolve(kind, name)
    if name.startswith(PARTITION):
        f = REGISTRY.get(name[len(PARTITION) :])
        if f is None or f.kind != MAP_BATCH:
            raise CallFailed("unknown-function", f"no @weft.map_partitions function `{name[len(PARTITION):]}`")
        return _Step("partition", f.name, f.fn, f.input, f.output, f.fn)
    f = REGISTRY.get(name)
    want = REDUCE if kind == COMBINE else kind
    if f is None or f.kind != want:
        there = f"a {f.kind} function" if f else "no function"
        raise CallFailed("unknown-function", f"`{name}` is needed as a {want} function; this job has {there}")
    fn = f.fn
    if f.param is not None:
        if param is None:
            raise CallFailed("decode", f"`{name}` needs a bound parameter and the step has none")
        value = _Params.get(param, f.param, name)
        if kind == REDUCE or kind == COMBINE:
            fn = lambda a, b, _f=f.fn, _p=value: _f(a, b, _p)  # noqa: E731
        else:
            fn = lambda r, _f=f.fn, _p=value: _f(r, _p)  # noqa: E731
    return _Step(kind, f.name, fn, f.input, f.output, f.fn)


_PLANS: dict = {}


def _plan(chain) -> list[_Step]:
    key = tuple(chain)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = [_resolve(*op) for op in chain]
    return plan


class _Raw:
    """Pairs whose keys are still key bytes (after a reduce): `(bytes, value)`."""

    __slots__ = ("pairs",)

    def __init__(self, pairs):
        self.pairs = pairs


def _decode_keys(raw: _Raw, layout: Layout, name: str) -> list:
    if not layout.keyed:
        raise CallFailed("decode", f"`{name}` takes records, but its input is pairs")
    fk = layout.key.from_key
    try:
        return [(fk(k), v) for k, v in raw.pairs]
    except codec.DecodeError as e:
        raise CallFailed("decode", f"the input of `{name}`: {e}") from None


def _apply(step: _Step, recs: list) -> list:
    fn = step.fn
    try:
        if step.kind == MAP:
            return list(map(fn, recs))
        if step.kind == FILTER:
            return list(filter(fn, recs))
        if step.kind == FLAT_MAP:
            return list(_chain.from_iterable(map(fn, recs)))
        return list(fn(recs))  # map-batch
    except CallFailed:
        raise
    except Exception as e:
        record = f"<a batch of {len(recs)} records>" if step.kind == MAP_BATCH else _culprit(step, e)
        raise _user_error(step.name, record, e) from None


def _fold_runs(step: _Step, pairs) -> _Raw:
    """A `reduce`: runs of equal key bytes folded into one pair each."""
    fn = step.fn
    out = []
    k = v = None
    b = None
    try:
        for kb, b in pairs:
            if kb == k:
                v = fn(v, b)
            else:
                if k is not None:
                    out.append((k, v))
                k, v = kb, b
    except Exception as e:
        raise _user_error(step.name, (v, b), e) from None
    if k is not None:
        out.append((k, v))
    return _Raw(out)


class _Held:
    """A `combine`'s folds, kept between calls: key → value."""

    def __init__(self, step: _Step, key: codec.Type | None):
        self.step = step
        self.key = key
        self.values: dict = {}


_HELD: dict = {}


def _key_bytes(key: codec.Type | None):
    """How a combine indexes its dict: by the key itself where Python's equality is
    the key bytes' (no floats inside), else by the key bytes."""
    if key is None:
        return None
    if _exact(key):
        return False
    return key.key


def _exact(t: codec.Type) -> bool:
    if isinstance(t, codec._Float):
        return False
    if isinstance(t, codec._Option):
        return _exact(t.inner)
    if isinstance(t, codec._Tuple):
        return all(_exact(e) for e in t.elems)
    return True


def _combine(held: _Held, recs, raw: bool) -> None:
    fn = held.step.fn
    d = held.values
    get = d.get
    index = None if raw else _key_bytes(held.key)
    k = v = None
    try:
        if index is False or index is None:
            if fn is _steps_add():
                for k, v in recs:
                    d[k] = get(k, 0) + v
            else:
                for k, v in recs:
                    d[k] = fn(d[k], v) if k in d else v
        else:
            for k, v in recs:
                kb = index(k)
                if kb in d:
                    d[kb] = (k, fn(d[kb][1], v))
                else:
                    d[kb] = (k, v)
    except codec.EncodeError as e:
        raise CallFailed("user", f"`{held.step.name}`: a key does not encode: {e}") from None
    except Exception as e:
        raise _user_error(held.step.name, (k, v), e) from None


def _steps_add():
    from . import _steps

    return _steps.add.fn


def _drain(held: _Held, raw: bool) -> bytes:
    d = held.values
    held.values = {}
    vr = held.step.output.type.record
    try:
        if raw:
            parts = [x for k, v in d.items() for x in (k, vr(v))]
        elif _key_bytes(held.key) is False:
            kk = held.key.key
            parts = [x for k, v in d.items() for x in (kk(k), vr(v))]
        else:
            parts = [x for kb, (_, v) in d.items() for x in (kb, vr(v))]
    except codec.EncodeError as e:
        raise CallFailed("user", f"`{held.step.name}` returned a value that does not encode: {e}") from None
    return codec.frame(parts)


def run_chain(chain, batch: bytes) -> bytes:
    """Run `chain` (a list of `(kind, function, param)`) over one input batch."""
    plan = _plan(chain)
    if not plan:
        return batch
    return _run(chain, plan, batch, flushing=False)


def flush_chain(chain) -> bytes:
    """What a chain holds (a `combine`'s folds, a whole partition), for the task's end."""
    plan = _plan(chain)
    return _run(chain, plan, None, flushing=True)


def _run(chain, plan: list[_Step], batch, flushing: bool) -> bytes:
    key = tuple(chain)
    start = 0
    recs = None
    if flushing:
        # Resume at the first step that holds something: a whole partition
        # (its later steps still run) or the final combine.
        start = next((i for i, s in enumerate(plan) if s.kind == "partition"), len(plan) - 1)
        if plan[start].kind == COMBINE:
            held = _HELD.pop(key, None)
            return _drain(held, held.key is None) if held else b""
        if plan[start].kind != "partition":
            return b""
        held_batches = _HELD.pop(key, None) or []
        recs = _apply_partition(plan[start], held_batches)
        start += 1
    else:
        first = plan[0]
        if first.kind == "partition":
            _HELD.setdefault(key, []).append(_decode(first, batch))
            return b""
        if first.kind == REDUCE:
            recs = _fold_runs(first, _raw_pairs(first, batch))
            start = 1
        elif first.kind == COMBINE:
            recs = _Raw(_raw_pairs(first, batch))
        else:
            recs = _decode(first, batch)
    last_layout = plan[start - 1].output if start else None
    for i in range(start, len(plan)):
        step = plan[i]
        if step.kind == "partition":
            whole = recs if not isinstance(recs, _Raw) else _decode_keys(recs, step.input, step.name)
            if flushing:
                # A later whole-partition step: the earlier one's output is
                # this partition's whole input already.
                recs = _apply_partition(step, [whole])
                last_layout = step.output
                continue
            _HELD.setdefault(key, []).append(whole)
            return b""
        if step.kind == COMBINE:
            raw = isinstance(recs, _Raw)
            ktype = None if raw else last_layout.key if last_layout is not None and last_layout.keyed else None
            if not raw and ktype is None:
                raise CallFailed("decode", f"`{step.name}` combines pairs, but its input is not pairs")
            held = _HELD.get(key)
            if held is None:
                held = _HELD[key] = _Held(step, ktype)
            _combine(held, recs.pairs if raw else recs, raw)
            if flushing or len(held.values) >= HELD_KEYS:
                # At the flush a whole partition's output ends here: all of it.
                if flushing:
                    _HELD.pop(key, None)
                return _drain(held, raw)
            return b""
        if step.kind == REDUCE:
            raise CallFailed("decode", f"`{step.name}` reduces a shuffle's output: it must start its chain")
        if i == len(plan) - 2 and _counts(step, plan[-1]) and not isinstance(recs, _Raw):
            # `count_by_value`: count the records in C, with no (record, 1) pairs.
            held = _HELD.get(key)
            if held is None:
                held = _HELD[key] = _Held(plan[-1], step.input.type)
            _count_elements(held.values, recs)
            if flushing:
                _HELD.pop(key, None)
                return _drain(held, False)
            return _drain(held, False) if len(held.values) >= HELD_KEYS else b""
        if isinstance(recs, _Raw):
            recs = _decode_keys(recs, step.input, step.name)
        recs = _apply(step, recs)
        last_layout = step.output
    return _encode(plan[-1], recs)


def _counts(step: _Step, last: _Step) -> bool:
    """Whether `step` then `last` count records: `_weft.one`, then a combine with `add`."""
    return (
        last.kind == COMBINE
        and step.name.startswith("_weft.one|")
        and last.fn is _steps_add()
        and _exact(step.input.type)
    )


def _decode(step: _Step, batch: bytes) -> list:
    try:
        return step.input.decode(batch)
    except codec.DecodeError as e:
        raise CallFailed("decode", f"the input of `{step.name}` is not `{step.input}`: {e}") from None


def _raw_pairs(step: _Step, batch: bytes):
    try:
        es = codec.entries(batch)
        if len(es) % 2:
            raise codec.DecodeError("a pair batch with an odd number of entries")
        dec = step.input.type.from_record
        it = iter(es)
        return [(k, dec(v)) for k, v in zip(it, it)]
    except codec.DecodeError as e:
        raise CallFailed("decode", f"the input of `{step.name}`: {e}") from None


def _apply_partition(step: _Step, held_batches) -> list:
    recs = [r for b in held_batches for r in b]
    try:
        return list(step.fn(recs))
    except Exception as e:
        raise _user_error(step.name, f"<a partition of {len(recs)} records>", e) from None


def _encode(step: _Step, recs) -> bytes:
    try:
        if isinstance(recs, _Raw):
            vr = step.output.type.record
            return codec.frame([x for k, v in recs.pairs for x in (k, vr(v))])
        return step.output.encode(recs)
    except codec.EncodeError as e:
        raise CallFailed("user", f"`{step.name}` returned a value that is not `{step.output}`: {e}") from None
