"""Logistic regression in Python, as the Spark example computes it.

`weft local logreg.wasm -- <points-uri> <dimensions> <iterations> [partitions]`
reads points, one per line (`label x1 … xD`, the label -1 or 1), keeps the
parsed points cached, and runs `iterations` steps of gradient descent from
zero weights: each step sums, over every point,
`(1 / (1 + exp(-y (w·x))) - 1) · y · x` and subtracts the sum from `w`. It
logs each iteration's wall time and the final weights (`final w: w1 … wD`,
each as `repr` prints it, which parses back to the same float).

The weights reach `gradient` as its bound parameter, one per iteration
(`gradient.bind(w)`); the sum is a `reduce_by_key` over one key, folded
in each task before the shuffle.
"""

import math
import time

import weft


@weft.flat_map
def parse_point(line: str) -> list[tuple[float, list[float]]]:
    """`(y, x)` of a line `label x1 … xD`; a line that does not parse is skipped."""
    try:
        y, *x = map(float, line.split())
    except ValueError:
        return []
    return [(y, x)]


@weft.map
def gradient(point: tuple[float, list[float]], w: list[float]) -> tuple[int, list[float]]:
    """One point's contribution to the gradient at `w`, under the one key."""
    y, x = point
    dot = sum(a * b for a, b in zip(w, x))
    try:
        e = math.exp(-y * dot)
    except OverflowError:  # Python raises where IEEE 754 (and Rust) give infinity
        e = math.inf
    scale = (1.0 / (1.0 + e) - 1.0) * y
    return 0, [scale * v for v in x]


@weft.reduce
def add(a: list[float], b: list[float]) -> list[float]:
    """Two partial gradients, added."""
    return [p + q for p, q in zip(a, b)]


@weft.main
def main(ctx: weft.Context) -> None:
    args = ctx.args
    if len(args) not in (3, 4):
        raise ValueError("usage: logreg <points-uri> <dimensions> <iterations> [partitions]")
    dimensions, iterations = int(args[1]), int(args[2])
    partitions = int(args[3]) if len(args) == 4 else 4
    points = ctx.text_file(args[0], partitions).flat_map(parse_point).cache()
    w = [0.0] * dimensions
    for i in range(1, iterations + 1):
        started = time.monotonic()
        sums = points.map(gradient.bind(w)).reduce_by_key(add, 1).collect()
        if len(sums) != 1:
            raise ValueError(f"iteration {i}: {len(sums)} gradient sums, not 1 (no points?)")
        g = sums[0][1]
        if len(g) != dimensions:
            raise ValueError(f"points have {len(g)} features, not {dimensions}")
        w = [a - b for a, b in zip(w, g)]
        weft.log.info("iteration %d: %.6f s", i, time.monotonic() - started)
    weft.log.info("final w: %s", " ".join(repr(v) for v in w))
