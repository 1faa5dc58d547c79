"""The golden vectors of the record contract (`codec/golden/records.json`),
decoded and re-encoded byte for byte by the Python SDK's codec."""

import json
import pathlib
import struct
import unittest
from itertools import groupby

from weft import codec

GOLDEN = pathlib.Path(__file__).resolve().parents[3] / "codec" / "golden" / "records.json"


def value_of(vector):
    """The vector's value as the Python SDK represents it."""
    if vector["type"] == "f64 bits":
        return struct.unpack(">d", bytes.fromhex(vector["value"]))[0]
    t = vector["type"]
    return _convert(codec.parse(t), vector["value"])


def _convert(t, v):
    """JSON's arrays are tuples where the type is a tuple; bytes are hex."""
    if v is None:
        return None
    if isinstance(t, codec._Option):
        return _convert(t.inner, v)
    if isinstance(t, codec._Tuple):
        return tuple(_convert(e, x) for e, x in zip(t.elems, v))
    if isinstance(t, codec._List):
        return [_convert(t.elem, x) for x in v]
    if t is codec.BYTES:
        return bytes.fromhex(v)
    if t is codec.F64 or t is codec.F32:
        return float(v)
    return v


class Golden(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.vectors = json.loads(GOLDEN.read_text())["vectors"]

    def test_the_file_holds_every_vector(self):
        # As the Rust SDK's test: a vector dropped from the file fails here.
        self.assertEqual(len(self.vectors), 74)

    def test_records_encode_and_decode_byte_for_byte(self):
        for v in self.vectors:
            with self.subTest(type=v["type"], value=v["value"]):
                t = codec.parse(v["type"])
                want = bytes.fromhex(v["record"])
                self.assertEqual(t.record(value_of(v)).hex(), want.hex())
                # Decoding and encoding again gives the same bits (-0.0, NaN).
                self.assertEqual(t.record(t.from_record(want)).hex(), want.hex())

    def test_keys_encode_and_decode_byte_for_byte(self):
        for v in self.vectors:
            if v["key"] is None:
                continue
            with self.subTest(type=v["type"], value=v["value"]):
                t = codec.parse(v["type"])
                want = bytes.fromhex(v["key"])
                self.assertEqual(t.key(value_of(v)).hex(), want.hex())
                self.assertEqual(t.key(t.from_key(want)).hex(), want.hex())

    def test_key_bytes_sort_as_the_values_rank(self):
        def family(v):
            return "f64" if v["type"] == "f64 bits" else v["type"]

        ranked = sorted((v for v in self.vectors if "order" in v), key=family)
        checked = 0
        for name, group in groupby(ranked, key=family):
            group = list(group)
            by_rank = sorted(group, key=lambda v: v["order"])
            by_bytes = sorted(group, key=lambda v: bytes.fromhex(v["key"]))
            self.assertEqual([v["order"] for v in by_bytes], [v["order"] for v in by_rank], name)
            checked += 1
        self.assertGreater(checked, 10)


class Malformed(unittest.TestCase):
    """What a decoder must reject (docs/record-format.md, "Keys")."""

    def test_rejected(self):
        cases = [
            ("bool", "record", "02"),
            ("option<i64>", "key", "02"),
            ("(string, i64)", "key", "6100018000000000000001"),
            ("(string, i64)", "key", "6100"),
            ("char", "key", "0000d800"),
            ("i64", "key", "80"),
            ("i64", "key", "800000000000000000"),
            ("string", "record", "ff"),
            ("(string, i64)", "record", "0100000061"),
            ("option<i64>", "record", "0800000080000000000000000800000080000000"
             "00000000"),
        ]
        for name, kind, hexed in cases:
            with self.subTest(type=name, kind=kind, bytes=hexed):
                t = codec.parse(name)
                decode = t.from_key if kind == "key" else t.from_record
                with self.assertRaises(codec.DecodeError):
                    decode(bytes.fromhex(hexed))

    def test_out_of_range_values_are_encode_errors(self):
        for name, value in [("i64", 1 << 63), ("u8", -1), ("u8", 256), ("i64", "1"), ("string", b"x")]:
            with self.subTest(type=name, value=value):
                with self.assertRaises(codec.EncodeError):
                    codec.parse(name).record(value)


if __name__ == "__main__":
    unittest.main()
