"""Build a Python weft job into a WebAssembly component.

    python -m weft.build job.py -o job.wasm

runs componentize-py over the job module with this SDK and the weft WIT
world `job`, so that the result exports the dispatcher and `run` that agents
call. The job's module (and any module beside it) is imported once, at build
time, and snapshotted: module-level code runs then, not in every task.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

SDK = pathlib.Path(__file__).resolve().parent.parent


def _wit() -> pathlib.Path:
    env = os.environ.get("WEFT_WIT")
    if env:
        return pathlib.Path(env)
    for here in [SDK, *SDK.parents]:
        if (here / "wit" / "weft.wit").is_file():
            return here / "wit"
    sys.exit("weft.build: cannot find wit/weft.wit; set WEFT_WIT to the directory holding it")


def _componentize_py(given: str | None) -> str:
    found = given or os.environ.get("COMPONENTIZE_PY") or shutil.which("componentize-py")
    if not found:
        sys.exit(
            "weft.build: componentize-py not found; install it with `pip install componentize-py==0.25.1` "
            "(or run `cargo xtask sdk-tools` in the weft repository), or pass --componentize-py"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m weft.build",
        description="Build a Python weft job (a module with a @weft.main) into a WebAssembly component.",
        epilog="Example: python -m weft.build wordcount.py -o wordcount.wasm && weft local wordcount.wasm -- in.txt out/",
    )
    p.add_argument("job", help="the job's module file, e.g. wordcount.py")
    p.add_argument("-o", "--output", required=True, help="where to write the component (.wasm)")
    p.add_argument("-p", "--path", action="append", default=[], help="another directory of modules the job imports")
    p.add_argument("--componentize-py", help="the componentize-py executable (default: on PATH)")
    args = p.parse_args(argv)

    job = pathlib.Path(args.job).resolve()
    if not job.is_file() or job.suffix != ".py":
        p.error(f"{args.job} is not a .py file")
    if not job.stem.isidentifier():
        p.error(f"{job.name}: the job is imported as a module, so its name must be a Python identifier (e.g. word_count.py)")
    tool = _componentize_py(args.componentize_py)
    with tempfile.TemporaryDirectory(prefix="weft-build-") as tmp:
        app = pathlib.Path(tmp) / "weft_app.py"
        app.write_text(
            f"import {job.stem}  # noqa: F401  (registers the job's functions)\n"
            "from weft._guest import Dispatcher, WitWorld  # noqa: F401\n"
        )
        cmd = [tool, "-d", str(_wit()), "-w", "job", "componentize", "weft_app"]
        for path in [tmp, str(job.parent), str(SDK), *args.path]:
            cmd += ["-p", path]
        cmd += ["-o", str(pathlib.Path(args.output).resolve())]
        done = subprocess.run(cmd)
        if done.returncode != 0:
            print(f"weft.build: componentize-py failed ({done.returncode})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
