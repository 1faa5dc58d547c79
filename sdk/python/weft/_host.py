"""The host's imports (`wit/weft.wit`), reached through componentize-py's
generated bindings; errors become the SDK's exceptions. Imported only inside
a component, where the bindings exist."""

from __future__ import annotations

from componentize_py_types import Err
from wit_world.imports import accumulators, broadcast, context, driver, log, types


class DriverFailed(Exception):
    """A driver call failed: `kind` is `invalid-argument`, `job-failed` or `not-a-driver`."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _call(f, *args):
    try:
        return f(*args)
    except Err as e:
        v = e.value
        if isinstance(v, driver.DriverError_InvalidArgument):
            raise DriverFailed("invalid-argument", v.value) from None
        if isinstance(v, driver.DriverError_JobFailed):
            raise DriverFailed("job-failed", v.value) from None
        raise DriverFailed("not-a-driver", "driver calls work only in the job's main, not inside a task") from None


_KINDS = {
    "map": types.OpKind.MAP,
    "filter": types.OpKind.FILTER,
    "flat-map": types.OpKind.FLAT_MAP,
    "map-batch": types.OpKind.MAP_BATCH,
}

_FOLDS = {"sum-f64": driver.Fold.SUM_F64, "min": driver.Fold.MIN, "max": driver.Fold.MAX}

_LEVELS = {
    "memory-only": driver.StorageLevel.MEMORY_ONLY,
    "memory-and-disk": driver.StorageLevel.MEMORY_AND_DISK,
    "disk-only": driver.StorageLevel.DISK_ONLY,
}


def kind_of(op) -> str:
    """The SDK's name of a WIT `op-kind`."""
    return op.kind.name.lower().replace("_", "-")


def args() -> list[str]:
    return driver.args()


def text_file(uri: str, partitions: int, raw: bool) -> int:
    return _call(driver.text_file_bytes if raw else driver.text_file, uri, partitions)


def parallelize(batch: bytes, keyed: bool, partitions: int) -> int:
    return _call(driver.parallelize, batch, keyed, partitions)


def narrow(parent: int, kind: str, function: str, param: int | None, keyed: bool) -> int:
    return _call(driver.narrow, parent, types.Op(_KINDS[kind], function, param), keyed)


def shuffle(parent: int, op: str, arg, partitions: int) -> int:
    step = {
        "reduce-by-key": lambda: driver.ShuffleOp_ReduceByKey(arg),
        "sum-by-key": lambda: driver.ShuffleOp_SumByKey(),
        "group-by-key": lambda: driver.ShuffleOp_GroupByKey(),
        "sort-by-key": lambda: driver.ShuffleOp_SortByKey(arg),
        "partition-by": lambda: driver.ShuffleOp_PartitionBy(),
        "fold-by-key": lambda: driver.ShuffleOp_FoldByKey(_FOLDS[arg]),
    }[op]()
    return _call(driver.shuffle, parent, step, partitions)


def join(left: int, right: int, partitions: int) -> int:
    return _call(driver.join, left, right, partitions)


def union(a: int, b: int) -> int:
    return _call(driver.union, a, b)


def persist(ds: int, level: str | None) -> None:
    if level is None:
        _call(driver.unpersist, ds)
    else:
        _call(driver.persist, ds, _LEVELS[level])


def collect(ds: int) -> bytes:
    return _call(driver.collect, ds)


def count(ds: int) -> int:
    return _call(driver.count, ds)


def take(ds: int, n: int) -> bytes:
    return _call(driver.take, ds, n)


def save_as_text_file(ds: int, uri: str) -> None:
    _call(driver.save_as_text_file, ds, uri)


def broadcast_new(value: bytes) -> int:
    return _call(driver.broadcast, value)


def broadcast_value(fid: int) -> bytes | None:
    return broadcast.get(fid)


def partition() -> int:
    """The partition this task computes."""
    return context.info().partition


def accumulator_add(name: str, delta: int) -> None:
    accumulators.add(name, delta)


def accumulator_value(name: str) -> int:
    return _call(driver.accumulator_value, name)


_LEVEL = {
    "trace": log.Level.TRACE,
    "debug": log.Level.DEBUG,
    "info": log.Level.INFO,
    "warn": log.Level.WARN,
    "error": log.Level.ERROR,
}


def write_log(level: str, message: str) -> None:
    log.log(_LEVEL[level], message)
