"""User functions for the dispatcher's tests (a module, as a job is)."""

import weft


@weft.flat_map
def words(line: str) -> list[str]:
    return line.split()


@weft.map
def pair_one(word: str) -> tuple[str, int]:
    return word, 1


@weft.reduce
def plus(a: int, b: int) -> int:
    return a + b


@weft.reduce
def fplus(a: float, b: float) -> float:
    return a + b


@weft.filter
def long(word: str) -> bool:
    return len(word) > 3


@weft.filter
def longer_than(word: str, n: int) -> bool:
    return len(word) > n


@weft.map
def shout(word: str) -> str:
    if word == "boom":
        raise ValueError("no booms here")
    return word.upper()


@weft.map
def show(pair: tuple[str, int]) -> str:
    return f"{pair[0]}={pair[1]}"


@weft.map_partitions
def sizes(lines: list[str]) -> list[int]:
    return [len(lines)]


@weft.map
def not_an_int(word: str) -> int:
    return word  # type: ignore[return-value]  (on purpose: the annotation lies)


@weft.map_partitions
def pairs_of(lines: list[str]) -> list[tuple[str, int]]:
    return [(line, 1) for line in lines]


@weft.map_partitions
def upper_all(lines: list[str]) -> list[str]:
    return [line.upper() for line in lines]


@weft.map
def lone_surrogate(line: str) -> str:
    return line + "\udc80"
