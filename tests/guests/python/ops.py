"""The Python SDK's operators beyond the conformance job, each written to its
own output for `cli/tests/all/conformance.rs` to check against native
results.

    ops <left-uri> <right-uri> <words-uri> <out-dir-uri>
"""

import weft


@weft.map
def key_and_number(line: str) -> tuple[str, int]:
    key, number = line.split(",")
    return key, int(number)


@weft.flat_map
def split_words(line: str) -> list[str]:
    return line.split()


@weft.reduce
def add(a: int, b: int) -> int:
    return a + b


@weft.map
def as_list(n: int) -> list[int]:
    return [n]


@weft.reduce
def concat(a: list[int], b: list[int]) -> list[int]:
    return a + b


@weft.map
def doubled(n: int) -> int:
    return 2 * n


@weft.map
def length(word: str) -> int:
    return len(word)


@weft.map
def show_cogroup(pair: tuple[str, tuple[list[int], list[int]]]) -> str:
    key, (left, right) = pair
    return f"{key}\t{','.join(map(str, sorted(left)))}\t{','.join(map(str, sorted(right)))}"


@weft.map
def show_left(pair: tuple[str, tuple[int, int | None]]) -> str:
    key, (v, w) = pair
    return f"{key}\t{v}\t{'-' if w is None else w}"


@weft.map
def show_right(pair: tuple[str, tuple[int | None, int]]) -> str:
    key, (v, w) = pair
    return f"{key}\t{'-' if v is None else v}\t{w}"


@weft.map
def show_full(pair: tuple[str, tuple[int | None, int | None]]) -> str:
    key, (v, w) = pair
    return f"{key}\t{'-' if v is None else v}\t{'-' if w is None else w}"


@weft.map
def show_sorted(pair: tuple[str, list[int]]) -> str:
    key, values = pair
    return f"{key}\t{','.join(map(str, sorted(values)))}"


@weft.map
def show_pair(pair: tuple[str, str]) -> str:
    return f"{pair[0]}\t{pair[1]}"


@weft.map
def show_indexed(pair: tuple[int, str]) -> str:
    return f"{pair[0]}\t{pair[1]}"


@weft.main
def main(ctx: weft.Context) -> None:
    left_uri, right_uri, words_uri, out = ctx.args
    left = ctx.text_file(left_uri, 2).map(key_and_number)
    right = ctx.text_file(right_uri, 3).map(key_and_number)
    words = ctx.text_file(words_uri, 3).flat_map(split_words)
    lines = ctx.text_file(words_uri, 3)

    left.cogroup(right, 3).map(show_cogroup).save_as_text_file(f"{out}/cogroup")
    left.left_outer_join(right, 2).map(show_left).save_as_text_file(f"{out}/left")
    left.right_outer_join(right, 2).map(show_right).save_as_text_file(f"{out}/right")
    left.full_outer_join(right, 2).map(show_full).save_as_text_file(f"{out}/full")
    left.fold_by_key(0, add, 2).save_as_text_file(f"{out}/fold_by_key")
    left.combine_by_key(as_list, concat, 2).map(show_sorted).save_as_text_file(f"{out}/combine_by_key")
    left.aggregate_by_key(0, doubled, add, 2).save_as_text_file(f"{out}/aggregate_by_key")

    other = ctx.parallelize(["the", "and", "nothing-like-it"], 2)
    words.subtract(other, 3).save_as_text_file(f"{out}/subtract")
    words.intersection(other, 2).save_as_text_file(f"{out}/intersection")
    small = ctx.parallelize(["a", "b", "c"], 2)
    small.cartesian(ctx.parallelize(["x", "y"], 1)).map(show_pair).save_as_text_file(f"{out}/cartesian")
    lines.repartition(3).save_as_text_file(f"{out}/repartition")
    lines.zip_with_index().map(show_indexed).save_as_text_file(f"{out}/zip_with_index")
    lines.sample(0.5, 7).save_as_text_file(f"{out}/sample")
    lines.sample(0.5, 7).save_as_text_file(f"{out}/sample-again")

    lengths = words.map(length)
    weft.log.info("fold=%d", lengths.fold(0, add))
    weft.log.info("aggregate=%d", words.aggregate(0, length, add))
    weft.log.info("reduce=%d", lengths.reduce(add))
    weft.log.info("distinct=%d", words.distinct(2).count())
    weft.log.info("top=%s", ",".join(words.top(3)))
    weft.log.info("take_ordered=%s", ",".join(words.take_ordered(3)))
    weft.log.info("take_sample=%s", "|".join(lines.take_sample(5, 11)))
    weft.log.info("is_empty=%s,%s", str(words.is_empty()).lower(), str(words.filter(never).is_empty()).lower())
    weft.log.info("collect_as_map=%d", len(left.reduce_by_key(add).collect_as_map()))
    counted = weft.accumulator("seen")
    words.foreach(see)
    weft.log.info("foreach=%d", counted.value)


@weft.filter
def never(word: str) -> bool:
    return False


@weft.map
def see(word: str) -> None:
    weft.accumulator("seen").add(1)
