"""The SDK conformance job, in Python: the same cases as the Rust one
(`tests/guests/conformance`), with the same outputs, checked against native
references by `cli/tests/all/conformance.rs`.

    conformance <case> <uris...>
"""

import sys

import weft


# -- word count, sort, join, group -------------------------------------------


@weft.flat_map
def split_words(line: str) -> list[str]:
    return line.lower().split()


@weft.map
def key_and_number(line: str) -> tuple[str, int]:
    key, number = line.split(",")
    return key, int(number)


@weft.map
def first_word_key(line: str) -> tuple[str, str]:
    return line.split(" ", 1)[0], line


@weft.map
def join_line(pair: tuple[str, tuple[int, int]]) -> str:
    key, (left, right) = pair
    return f"{key}\t{left}\t{right}"


@weft.map
def group_line(pair: tuple[str, list[int]]) -> str:
    key, values = pair
    return f"{key}\t" + ",".join(str(v) for v in sorted(values))


# -- accumulators, a bound parameter ---------------------------------------


@weft.map
def measure(line: str) -> str:
    weft.accumulator("lines").add(1)
    weft.accumulator("bytes").add(len(line.encode()))
    return line


@weft.filter
def contains(line: str, word: str) -> bool:
    return word in line


# -- failures ------------------------------------------------------------------


@weft.map
def reject_bad(line: str) -> str:
    if "BAD" in line:
        raise ValueError(f"conformance: bad record {line!r}")
    return line


@weft.map
def divide(line: str) -> int:
    return len(line) // (len(line) - len(line))


@weft.map
def spin(line: str) -> str:
    n = 0
    while True:
        n += 1


@weft.map
def grow(line: str) -> str:
    blocks = []
    while True:
        blocks.append(bytearray(1 << 20))


@weft.map
def recurse(line: str) -> str:
    sys.setrecursionlimit(1 << 30)
    return str(_deeper(0))


def _deeper(n: int) -> int:
    return _deeper(n + 1) + 1


@weft.flat_map
def huge_output(line: str) -> list[str]:
    return ["x" * (1 << 20) for _ in range(1024)]


HOSTILE = {"spin": spin, "grow": grow, "recurse": recurse}


@weft.main
def main(ctx: weft.Context) -> None:
    case, *uris = ctx.args
    if case == "wordcount":
        src, out = uris
        ctx.text_file(src, 4).flat_map(split_words).count_by_value(3).save_as_text_file(out)
    elif case == "join":
        a, b, out = uris
        left = ctx.text_file(a, 2).map(key_and_number)
        right = ctx.text_file(b, 3).map(key_and_number)
        left.join(right, 4).map(join_line).save_as_text_file(out)
    elif case == "sort":
        src, out = uris
        ctx.text_file(src, 3).map(first_word_key).sort_by_key(True, 4).values().save_as_text_file(out)
    elif case == "group":
        src, out = uris
        ctx.text_file(src, 3).map(key_and_number).group_by_key(3).map(group_line).save_as_text_file(out)
    elif case == "accumulate":
        (src,) = uris
        n = ctx.text_file(src, 4).map(measure).count()
        lines, size = weft.accumulator("lines").value, weft.accumulator("bytes").value
        weft.log.info("count=%d lines=%d bytes=%d", n, lines, size)
    elif case == "broadcast":
        src, out, word = uris
        ctx.text_file(src, 3).filter(contains.bind(word)).save_as_text_file(out)
    elif case == "cache":
        (src,) = uris
        words = ctx.text_file(src, 4).flat_map(split_words).cache()
        first, again = words.count(), words.count()
        distinct = words.distinct(2).count()
        weft.log.info("words=%d again=%d distinct=%d", first, again, distinct)
    elif case == "fail":
        (src,) = uris
        ctx.text_file(src, 2).map(reject_bad).count()
    elif case == "panic":
        (src,) = uris
        ctx.text_file(src, 2).map(divide).count()
    elif case in HOSTILE:
        (src,) = uris
        ctx.text_file(src, 2).map(HOSTILE[case]).count()
    elif case == "giant":
        (src,) = uris
        ctx.text_file(src, 2).flat_map(huge_output).count()
    else:
        raise ValueError(f"no case {case!r}")
