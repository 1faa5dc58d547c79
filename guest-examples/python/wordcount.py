"""Word count in Python: every word of the input with its number of occurrences.

`weft local wordcount.wasm -- <input-uri> <output-uri>` writes `word<TAB>count`
lines under the output URI and logs the ten most frequent words.
"""

import weft


@weft.flat_map
def split_words(line: str) -> list[str]:
    """The lowercased words of a line, split as `str.split()` splits."""
    return line.lower().split()


@weft.map
def by_count(pair: tuple[str, int]) -> tuple[int, str]:
    """Key by count, to sort by it."""
    word, n = pair
    return n, word


@weft.main
def main(ctx: weft.Context) -> None:
    if len(ctx.args) != 2:
        raise ValueError("usage: wordcount <input-uri> <output-uri>")
    src, out = ctx.args
    counts = ctx.text_file(src, 4).flat_map(split_words).count_by_value().cache()
    counts.save_as_text_file(out)
    weft.log.info("%d distinct words", counts.count())
    for n, word in counts.map(by_count).sort_by_key(False, 4).take(10):
        weft.log.info("%s: %d", word, n)
