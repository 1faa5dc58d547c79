"""The component's exports: the dispatcher and `run`, as componentize-py
expects them (classes named after the exported interface and the world).
Failures cross the boundary as the WIT's `call-error` and `run`'s error
string, with the Python traceback in the message."""

from __future__ import annotations

import traceback

from componentize_py_types import Err
from wit_world import WitWorld as _World
from wit_world.exports import Dispatcher as _Dispatcher
from wit_world.imports import types

from . import JobFailed, _dispatch, _host, _run_main
from ._functions import REGISTRY

_ERRORS = {
    "unknown-function": types.CallError_UnknownFunction,
    "decode": types.CallError_Decode,
    "user": types.CallError_User,
}


def _chain(ops):
    return [(_host.kind_of(op), op.function, op.param) for op in ops]


class Dispatcher(_Dispatcher):
    def functions(self) -> list[str]:
        return sorted(REGISTRY)

    def run_chain(self, chain, input: bytes) -> bytes:
        try:
            return _dispatch.run_chain(_chain(chain), input)
        except Exception as e:
            raise Err(_failed(e)) from None

    def flush_chain(self, chain) -> bytes:
        try:
            return _dispatch.flush_chain(_chain(chain))
        except Exception as e:
            raise Err(_failed(e)) from None


def _failed(e: Exception):
    """The WIT `call-error` of a failed chain; an error of the SDK itself is
    reported with its traceback rather than trapping the task."""
    if isinstance(e, _dispatch.CallFailed):
        return _ERRORS[e.kind](e.message)
    tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-8))
    return types.CallError_User(f"the chain failed: {type(e).__name__}: {e}\n{tb.rstrip()}")


class WitWorld(_World):
    def run(self) -> None:
        try:
            _run_main()
        except JobFailed as e:
            # An action's job failed: its message already says where and why.
            raise Err(str(e)) from None
        except Exception as e:
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-8))
            raise Err(f"{type(e).__name__}: {e}\n{tb.rstrip()}") from None
