"""grep in Python: the lines of the input that contain a pattern.

`weft local grep.wasm -- <pattern> <input-uri> <output-uri>` writes the
matching lines under the output URI and logs how many there are, out of how
many lines scanned.

Functions capture nothing from the driver (tasks run in other instances of
the component), so the pattern reaches the filter as its bound parameter
(`matches.bind(pattern)`). The lines scanned are counted with an accumulator,
which the master sums over the tasks that finished.
"""

import weft

scanned = weft.accumulator("lines scanned")


@weft.filter
def matches(line: str, pattern: str) -> bool:
    """Whether the line contains the pattern."""
    scanned.add(1)
    return pattern in line


@weft.main
def main(ctx: weft.Context) -> None:
    if len(ctx.args) != 3:
        raise ValueError("usage: grep <pattern> <input-uri> <output-uri>")
    pattern, src, out = ctx.args
    lines = ctx.text_file(src, 4).filter(matches.bind(pattern)).cache()
    lines.save_as_text_file(out)
    # Read before the next action: as in Spark, an accumulator added to in a
    # transformation counts again whenever a later action recomputes it.
    total = scanned.value
    weft.log.info("%d of %d lines contain %r", lines.count(), total, pattern)
