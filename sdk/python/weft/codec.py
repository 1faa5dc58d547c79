"""The record contract in Python: batches, keys and records.

Implements `docs/record-format.md` (the contract every weft SDK follows):
batch framing, the order-preserving key encoding and the record encoding,
for the types a job's functions declare in their annotations. A [`Type`]
knows how to encode and decode one value as a record and as a key; [`of`]
finds the type of an annotation, [`parse`] the type of a contract type name
(`"(string, i64)"`, `"option<list<f64>>"`), as the golden vectors spell them.

The Python types each contract type maps to are in `docs/sdk-python.md`.
"""

from __future__ import annotations

import dataclasses
import struct
import types
import typing

__all__ = [
    "DecodeError",
    "EncodeError",
    "Type",
    "entries",
    "frame",
    "of",
    "parse",
]


class DecodeError(ValueError):
    """Bytes that are not a value of the expected type, or not a batch."""


class EncodeError(ValueError):
    """A value that the declared type cannot encode (out of range, wrong kind)."""


_U32 = struct.Struct("<I")
_unpack_u32 = _U32.unpack_from
_pack_u32 = _U32.pack


def entries(buf: bytes) -> list[bytes]:
    """The entries of a batch (`u32` little-endian length, then the bytes)."""
    out = []
    append = out.append
    pos, end = 0, len(buf)
    while pos < end:
        if end - pos < 4:
            raise DecodeError(f"a batch entry's length is cut short at byte {pos}")
        (n,) = _unpack_u32(buf, pos)
        pos += 4
        stop = pos + n
        if stop > end:
            raise DecodeError(f"a batch entry of {n} bytes runs past the end at byte {pos - 4}")
        append(buf[pos:stop])
        pos = stop
    return out


def strings(buf: bytes) -> list[str]:
    """The entries of a batch of `string` records, decoded in the same pass."""
    out = []
    append = out.append
    pos, end = 0, len(buf)
    try:
        while pos < end:
            (n,) = _unpack_u32(buf, pos)
            pos += 4
            stop = pos + n
            if stop > end:
                raise DecodeError(f"a batch entry of {n} bytes runs past the end at byte {pos - 4}")
            append(str(buf[pos:stop], "utf-8"))
            pos = stop
    except struct.error:
        raise DecodeError(f"a batch entry's length is cut short at byte {pos}") from None
    except UnicodeDecodeError as e:
        raise DecodeError(f"a `string` that is not UTF-8: {e}") from None
    return out


def frame(parts) -> bytes:
    """One batch of `parts`, each framed with its length."""
    out = []
    append = out.append
    for p in parts:
        append(_pack_u32(len(p)))
        append(p)
    return b"".join(out)


class Type:
    """A contract type: how one Python value becomes bytes and back.

    `record(v)` and `from_record(b)` are the record encoding; `key(v)` and
    `from_key(b)` the key encoding of a whole key. `keyable` is false for
    types with no key encoding (lists, dataclasses with lists...).
    """

    name: str = "?"
    keyable: bool = True

    def record(self, v) -> bytes:
        raise NotImplementedError

    def from_record(self, b: bytes):
        raise NotImplementedError

    def key(self, v) -> bytes:
        out = bytearray()
        self.put_key(v, True, out)
        return bytes(out)

    def from_key(self, b: bytes):
        v, pos = self.take_key(b, 0, True)
        if pos != len(b):
            raise DecodeError(f"{len(b) - pos} bytes left over after a `{self.name}` key")
        return v

    def put_key(self, v, last: bool, out: bytearray) -> None:
        raise NotImplementedError

    def take_key(self, b: bytes, pos: int, last: bool):
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class _Fixed(Type):
    """A type of `width` bytes whose key encoding is its record encoding."""

    width: int

    def put_key(self, v, last, out):
        out += self.record(v)

    def take_key(self, b, pos, last):
        stop = pos + self.width
        if stop > len(b):
            raise DecodeError(f"a `{self.name}` key is {self.width} bytes; {len(b) - pos} left")
        return self.from_record(b[pos:stop]), stop


class _Int(_Fixed):
    def __init__(self, width: int, signed: bool):
        self.width = width
        self.signed = signed
        self.name = f"{'i' if signed else 'u'}{width * 8}"
        self.offset = 1 << (width * 8 - 1) if signed else 0
        self.limit = 1 << (width * 8)

    def record(self, v) -> bytes:
        if not isinstance(v, int) or isinstance(v, bool):
            raise EncodeError(f"{v!r} is not an integer (`{self.name}`)")
        u = v + self.offset
        if not 0 <= u < self.limit:
            raise EncodeError(f"{v} is out of range of `{self.name}`")
        return u.to_bytes(self.width, "big")

    def from_record(self, b: bytes):
        if len(b) != self.width:
            raise DecodeError(f"a `{self.name}` is {self.width} bytes, not {len(b)}")
        return int.from_bytes(b, "big") - self.offset


class _Float(_Fixed):
    def __init__(self, width: int):
        self.width = width
        self.name = f"f{width * 8}"
        self.fmt = struct.Struct(">d" if width == 8 else ">f")
        self.sign = 1 << (width * 8 - 1)
        self.ones = (1 << (width * 8)) - 1

    def record(self, v) -> bytes:
        if not isinstance(v, (float, int)) or isinstance(v, bool):
            raise EncodeError(f"{v!r} is not a number (`{self.name}`)")
        try:
            bits = int.from_bytes(self.fmt.pack(v), "big")
        except (OverflowError, struct.error) as e:
            raise EncodeError(f"{v!r} does not fit an `{self.name}`: {e}") from None
        bits ^= self.ones if bits & self.sign else self.sign
        return bits.to_bytes(self.width, "big")

    def from_record(self, b: bytes):
        if len(b) != self.width:
            raise DecodeError(f"an `{self.name}` is {self.width} bytes, not {len(b)}")
        bits = int.from_bytes(b, "big")
        bits ^= self.sign if bits & self.sign else self.ones
        return self.fmt.unpack(bits.to_bytes(self.width, "big"))[0]


class _Bool(_Fixed):
    name = "bool"
    width = 1

    def record(self, v) -> bytes:
        if not isinstance(v, bool):
            raise EncodeError(f"{v!r} is not a bool")
        return b"\x01" if v else b"\x00"

    def from_record(self, b: bytes):
        if b == b"\x00":
            return False
        if b == b"\x01":
            return True
        raise DecodeError(f"a `bool` is one byte 00 or 01, not {b.hex() or 'nothing'}")


class _Char(_Fixed):
    name = "char"
    width = 4

    def record(self, v) -> bytes:
        if not isinstance(v, str) or len(v) != 1:
            raise EncodeError(f"{v!r} is not one character (`char`)")
        c = ord(v)
        if 0xD800 <= c <= 0xDFFF:
            raise EncodeError(f"U+{c:04X} is a surrogate, not a Unicode scalar value")
        return c.to_bytes(4, "big")

    def from_record(self, b: bytes):
        if len(b) != 4:
            raise DecodeError(f"a `char` is 4 bytes, not {len(b)}")
        c = int.from_bytes(b, "big")
        if c > 0x10FFFF or 0xD800 <= c <= 0xDFFF:
            raise DecodeError(f"{c:#x} is not a Unicode scalar value")
        return chr(c)


class _Unit(_Fixed):
    name = "()"
    width = 0

    def record(self, v) -> bytes:
        if v is not None:
            raise EncodeError(f"{v!r} is not None (`()`)")
        return b""

    def from_record(self, b: bytes):
        if b:
            raise DecodeError(f"a `()` is no bytes, not {len(b)}")
        return None



def _take_escaped(b: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """The bytes of an escaped key element (`00` as `00 ff`, ended by `00 00`)."""
    out = bytearray()
    while True:
        z = b.find(b"\x00", pos)
        if z < 0 or z + 1 >= len(b):
            raise DecodeError(f"a `{what}` inside a key lacks its terminator")
        out += b[pos:z]
        nxt = b[z + 1]
        if nxt == 0x00:
            return bytes(out), z + 2
        if nxt != 0xFF:
            raise DecodeError(f"a `{what}` inside a key has 00 followed by {nxt:02x}")
        out.append(0)
        pos = z + 2


class _Bytes(Type):
    name = "bytes"

    def record(self, v) -> bytes:
        if not isinstance(v, (bytes, bytearray, memoryview)):
            raise EncodeError(f"{type(v).__name__} is not bytes")
        return bytes(v)

    def from_record(self, b: bytes):
        return bytes(b)

    def put_key(self, v, last, out):
        raw = self.record(v)
        if last:
            out += raw
        else:
            out += raw.replace(b"\x00", b"\x00\xff")
            out += b"\x00\x00"

    def take_key(self, b, pos, last):
        if last:
            return bytes(b[pos:]), len(b)
        return _take_escaped(b, pos, self.name)


class _Str(_Bytes):
    name = "string"

    def record(self, v) -> bytes:
        if not isinstance(v, str):
            raise EncodeError(f"{type(v).__name__} {v!r:.40} is not a str")
        try:
            return v.encode()
        except UnicodeEncodeError as e:
            raise EncodeError(f"{v!r:.40} is not valid Unicode (a `string` is UTF-8): {e.reason}") from None

    def from_record(self, b: bytes):
        try:
            return str(b, "utf-8")
        except UnicodeDecodeError as e:
            raise DecodeError(f"a `string` that is not UTF-8: {e}") from None

    def take_key(self, b, pos, last):
        raw, pos = super().take_key(b, pos, last)
        return self.from_record(raw), pos


class _Option(Type):
    def __init__(self, inner: Type):
        if isinstance(inner, _Option) or isinstance(inner, _Unit):
            raise TypeError(f"option<{inner.name}> cannot be told apart from None in Python")
        self.inner = inner
        self.name = f"option<{inner.name}>"
        self.keyable = inner.keyable

    def record(self, v) -> bytes:
        return b"" if v is None else frame([self.inner.record(v)])

    def from_record(self, b: bytes):
        es = entries(b)
        if not es:
            return None
        if len(es) > 1:
            raise DecodeError(f"an `{self.name}` holds {len(es)} entries, not 0 or 1")
        return self.inner.from_record(es[0])

    def put_key(self, v, last, out):
        if v is None:
            out.append(0)
        else:
            out.append(1)
            self.inner.put_key(v, last, out)

    def take_key(self, b, pos, last):
        if pos >= len(b):
            raise DecodeError(f"an `{self.name}` key is cut short")
        tag = b[pos]
        if tag == 0:
            return None, pos + 1
        if tag != 1:
            raise DecodeError(f"an option's tag is 00 or 01, not {tag:02x}")
        return self.inner.take_key(b, pos + 1, last)


class _Tuple(Type):
    def __init__(self, elems: list[Type], make=tuple, label: str | None = None):
        if not 1 <= len(elems) <= 6:
            raise TypeError(f"tuples have 1 to 6 elements, not {len(elems)}")
        self.elems = elems
        self.make = make
        names = ", ".join(e.name for e in elems)
        self.name = label or (f"({names},)" if len(elems) == 1 else f"({names})")
        self.keyable = make is tuple and len(elems) >= 2 and all(e.keyable for e in elems)
        self.fields = None

    def _values(self, v):
        if self.fields is not None:
            try:
                return [getattr(v, f) for f in self.fields]
            except AttributeError:
                raise EncodeError(f"{v!r:.60} is not a `{self.name}`") from None
        if not isinstance(v, (tuple, list)) or len(v) != len(self.elems):
            raise EncodeError(f"{v!r:.60} is not a {len(self.elems)}-tuple (`{self.name}`)")
        return v

    def record(self, v) -> bytes:
        return frame([t.record(x) for t, x in zip(self.elems, self._values(v))])

    def from_record(self, b: bytes):
        es = entries(b)
        if len(es) != len(self.elems):
            raise DecodeError(f"a `{self.name}` holds {len(self.elems)} entries, not {len(es)}")
        return self.make(t.from_record(e) for t, e in zip(self.elems, es))

    def put_key(self, v, last, out):
        vs = self._values(v)
        n = len(self.elems) - 1
        for i, (t, x) in enumerate(zip(self.elems, vs)):
            t.put_key(x, last and i == n, out)

    def take_key(self, b, pos, last):
        n = len(self.elems) - 1
        vs = []
        for i, t in enumerate(self.elems):
            v, pos = t.take_key(b, pos, last and i == n)
            vs.append(v)
        return tuple(vs), pos


class _List(Type):
    keyable = False

    def __init__(self, elem: Type):
        self.elem = elem
        self.name = f"list<{elem.name}>"

    def record(self, v) -> bytes:
        if not isinstance(v, (list, tuple)):
            raise EncodeError(f"{type(v).__name__} is not a list (`{self.name}`)")
        enc = self.elem.record
        return frame([enc(x) for x in v])

    def from_record(self, b: bytes):
        dec = self.elem.from_record
        return [dec(e) for e in entries(b)]


I8, I16, I32, I64 = (_Int(w, True) for w in (1, 2, 4, 8))
U8, U16, U32, U64 = (_Int(w, False) for w in (1, 2, 4, 8))
I128, U128 = _Int(16, True), _Int(16, False)
F32, F64 = _Float(4), _Float(8)
BOOL, CHAR, UNIT, STR, BYTES = _Bool(), _Char(), _Unit(), _Str(), _Bytes()

_SCALARS = {
    t.name: t for t in (I8, I16, I32, I64, I128, U8, U16, U32, U64, U128, F32, F64, BOOL, CHAR, UNIT, STR, BYTES)
}

# The markers users annotate with for widths Python's `int` and `float` lack.
# `typing.NewType` keeps them plain ints and floats for type checkers.
MARKERS = {
    name: typing.NewType(name, float if name == "f32" else (str if name == "char" else int))
    for name in ("i8", "i16", "i32", "i128", "u8", "u16", "u32", "u64", "u128", "f32", "char")
}
_BY_MARKER = {id(m): _SCALARS[name] for name, m in MARKERS.items()}
_BY_PYTHON = {str: STR, bytes: BYTES, int: I64, float: F64, bool: BOOL, type(None): UNIT}


def of(annotation, where: str = "a value") -> Type:
    """The contract type of a Python annotation (see the module's table)."""
    if annotation is None:
        return UNIT
    t = _BY_MARKER.get(id(annotation))
    if t is not None:
        return t
    if annotation in _BY_PYTHON:
        return _BY_PYTHON[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return _Tuple([of(a, where) for a in args])
    if origin is list and len(args) == 1:
        return _List(of(args[0], where))
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(args) == 2:
            return _Option(of(rest[0], where))
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        hints = typing.get_type_hints(annotation)
        fields = [f.name for f in dataclasses.fields(annotation)]
        label = f"@{annotation.__module__}:{annotation.__qualname__}"
        t = _Tuple([of(hints[f], where) for f in fields], make=lambda vs: annotation(*vs), label=label)
        t.fields = fields
        return t
    raise TypeError(
        f"weft cannot encode {annotation!r} ({where}): use str, bytes, int, float, bool, None, "
        "tuple[...], list[...], Optional[...], a dataclass, or a width marker such as weft.i32"
    )


def _dataclass(path: str) -> Type:
    """The type of the dataclass at `module:QualName` (how names spell it)."""
    import importlib

    module, _, qualname = path.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return of(obj, path)


def parse(name: str) -> Type:
    """The type a contract type name spells (`"(string, i64)"`, `"option<f64>"`)."""
    t, rest = _parse(name.strip())
    if rest.strip():
        raise ValueError(f"type name {name!r} has {rest!r} left over")
    return t


def _parse(s: str) -> tuple[Type, str]:
    s = s.lstrip()
    if s.startswith("("):
        s = s[1:].lstrip()
        if s.startswith(")"):
            return UNIT, s[1:]
        elems = []
        while True:
            t, s = _parse(s)
            elems.append(t)
            s = s.lstrip()
            if s.startswith(","):
                s = s[1:].lstrip()
                if s.startswith(")"):
                    return _Tuple(elems), s[1:]
                continue
            if s.startswith(")"):
                return _Tuple(elems), s[1:]
            raise ValueError(f"expected `,` or `)` at {s!r}")
    for wrapper, make in (("option<", _Option), ("list<", _List)):
        if s.startswith(wrapper):
            inner, s = _parse(s[len(wrapper) :])
            s = s.lstrip()
            if not s.startswith(">"):
                raise ValueError(f"expected `>` at {s!r}")
            return make(inner), s[1:]
    word = s.split(",")[0].split(")")[0].split(">")[0].strip()
    if word.startswith("@"):
        return _dataclass(word[1:]), s[len(word) :]
    if word == "f64 bits":
        return F64, s[len(word) :]
    if word in _SCALARS:
        return _SCALARS[word], s[len(word) :]
    raise ValueError(f"unknown type name {word!r}")

