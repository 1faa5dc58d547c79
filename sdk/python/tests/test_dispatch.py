"""The dispatcher, natively: chains over real batches, checked against plain
Python computations of the same result."""

import collections
import random
import unittest

from weft import _dispatch, _steps, codec
from weft._functions import Layout

from . import jobfns  # noqa: F401  (registers the functions)

STR_INT = Layout(codec.parse("(string, i64)"))
F64_KEYS = Layout(codec.parse("(f64, f64)"))


def lines_batch(lines):
    return codec.frame([l.encode() for l in lines])


def text(seed, n):
    r = random.Random(seed)
    vocab = ["alpha", "be", "gamma", "delta", "ox", "boomerang", "épée", "z"]
    return [" ".join(r.choice(vocab) for _ in range(r.randrange(0, 8))) for _ in range(n)]


class Chains(unittest.TestCase):
    def setUp(self):
        _dispatch._HELD.clear()

    def test_narrow_steps_run_in_order(self):
        lines = text(1, 200)
        chain = [("flat-map", "tests.jobfns.words", None), ("filter", "tests.jobfns.long", None),
                 ("map", "tests.jobfns.shout", None)]
        out = _dispatch.run_chain(chain, lines_batch(lines))
        want = [w.upper() for l in lines for w in l.split() if len(w) > 3]
        self.assertEqual(codec.strings(out), want)

    def test_an_empty_chain_returns_its_input(self):
        self.assertEqual(_dispatch.run_chain([], b"\x01\x00\x00\x00x"), b"\x01\x00\x00\x00x")

    def _count(self, chain, batches):
        got = collections.Counter()
        for b in batches:
            for k, v in STR_INT.decode(_dispatch.run_chain(chain, b)):
                got[k] += v
        for k, v in STR_INT.decode(_dispatch.flush_chain(chain)):
            got[k] += v
        return got

    def test_a_combine_holds_its_folds_until_flushed(self):
        batches = [lines_batch(text(s, 300)) for s in range(5)]
        want = collections.Counter(w for s in range(5) for l in text(s, 300) for w in l.split())
        counted = [("flat-map", "tests.jobfns.words", None), ("map", _steps.name("one", codec.STR), None),
                   ("combine", "weft._steps.add", None)]
        generic = [("flat-map", "tests.jobfns.words", None), ("map", "tests.jobfns.pair_one", None),
                   ("combine", "tests.jobfns.plus", None)]
        outs = [_dispatch.run_chain(counted, b) for b in batches]
        self.assertEqual(outs, [b""] * 5, "nothing comes back before the flush")
        _dispatch._HELD.clear()
        self.assertEqual(self._count(counted, batches), want)
        self.assertEqual(self._count(generic, batches), want)
        self.assertEqual(_dispatch.flush_chain(generic), b"", "a flush forgets what it returned")

    def test_a_combine_hands_back_what_it_holds_past_its_bound(self):
        old = _dispatch.HELD_KEYS
        _dispatch.HELD_KEYS = 3
        try:
            chain = [("map", "tests.jobfns.pair_one", None), ("combine", "tests.jobfns.plus", None)]
            self.assertEqual(_dispatch.run_chain(chain, lines_batch(["a", "b", "a"])), b"")
            out = _dispatch.run_chain(chain, lines_batch(["c", "a"]))
            self.assertEqual(sorted(STR_INT.decode(out)), [("a", 3), ("b", 1), ("c", 1)])
            self.assertEqual(_dispatch.run_chain(chain, lines_batch(["d"])), b"")
            self.assertEqual(STR_INT.decode(_dispatch.flush_chain(chain)), [("d", 1)])
        finally:
            _dispatch.HELD_KEYS = old

    def test_float_keys_fold_by_their_bits(self):
        # -0.0 == 0.0 in Python, but they are different keys.
        pairs = [(0.0, 1.0), (-0.0, 2.0), (0.0, 4.0), (float("nan"), 8.0), (float("nan"), 16.0)]
        chain = [("combine", "tests.jobfns.fplus", None)]
        self.assertEqual(_dispatch.run_chain(chain, F64_KEYS.encode(pairs)), b"")
        got = F64_KEYS.decode(_dispatch.flush_chain(chain))
        by_bits = {codec.F64.key(k): v for k, v in got}
        self.assertEqual(by_bits[codec.F64.key(0.0)], 5.0)
        self.assertEqual(by_bits[codec.F64.key(-0.0)], 2.0)
        self.assertEqual(by_bits[codec.F64.key(float("nan"))], 24.0)
        self.assertEqual(len(got), 3)

    def test_reduce_folds_runs_of_equal_key_bytes(self):
        pairs = [("a", 1), ("a", 2), ("b", 5), ("c", 1), ("c", 1), ("c", 1)]
        chain = [("reduce", "tests.jobfns.plus", None), ("map", "tests.jobfns.show", None)]
        out = _dispatch.run_chain(chain, STR_INT.encode(pairs))
        self.assertEqual(codec.strings(out), ["a=3", "b=5", "c=3"])
        alone = _dispatch.run_chain([("reduce", "tests.jobfns.plus", None)], STR_INT.encode(pairs))
        self.assertEqual(STR_INT.decode(alone), [("a", 3), ("b", 5), ("c", 3)])

    def test_a_whole_partition_step_runs_once_at_the_flush(self):
        chain = [("map-batch", "weft:partition:tests.jobfns.sizes", None)]
        for lines in (["a", "b"], ["c"], []):
            self.assertEqual(_dispatch.run_chain(chain, lines_batch(lines)), b"")
        self.assertEqual(Layout(codec.I64).decode(_dispatch.flush_chain(chain)), [3])

    def test_a_combine_after_a_whole_partition_step_gives_everything_at_the_flush(self):
        chain = [("map-batch", "weft:partition:tests.jobfns.pairs_of", None), ("combine", "tests.jobfns.plus", None)]
        for lines in (["a", "b"], ["a"], []):
            self.assertEqual(_dispatch.run_chain(chain, lines_batch(lines)), b"")
        self.assertEqual(sorted(STR_INT.decode(_dispatch.flush_chain(chain))), [("a", 2), ("b", 1)])
        self.assertEqual(_dispatch.flush_chain(chain), b"", "nothing is left held")

    def test_two_whole_partition_steps_both_run_at_the_flush(self):
        chain = [("map-batch", "weft:partition:tests.jobfns.upper_all", None),
                 ("map-batch", "weft:partition:tests.jobfns.sizes", None)]
        self.assertEqual(_dispatch.run_chain(chain, lines_batch(["a", "b"])), b"")
        self.assertEqual(_dispatch.run_chain(chain, lines_batch(["c"])), b"")
        self.assertEqual(Layout(codec.I64).decode(_dispatch.flush_chain(chain)), [3])
        # Nothing is left held: the next flush is an empty partition's.
        self.assertEqual(Layout(codec.I64).decode(_dispatch.flush_chain(chain)), [0])

    def test_counting_after_a_whole_partition_step_gives_the_counts_at_the_flush(self):
        chain = [("map-batch", "weft:partition:tests.jobfns.upper_all", None),
                 ("map", _steps.name("one", codec.STR), None), ("combine", "weft._steps.add", None)]
        self.assertEqual(_dispatch.run_chain(chain, lines_batch(["a", "b", "a"])), b"")
        self.assertEqual(sorted(STR_INT.decode(_dispatch.flush_chain(chain))), [("A", 2), ("B", 1)])
        self.assertEqual(_dispatch.run_chain(chain, lines_batch(["c"])), b"", "the next task starts clean")
        self.assertEqual(STR_INT.decode(_dispatch.flush_chain(chain)), [("C", 1)])

    def test_a_bound_parameter_is_fetched_once(self):
        fetched = []

        def value(fid, t, name):
            fetched.append(fid)
            return 4

        old = _dispatch._Params.get
        _dispatch._Params.get = staticmethod(value)
        try:
            chain = [("flat-map", "tests.jobfns.words", None), ("filter", "tests.jobfns.longer_than", 9)]
            out = _dispatch.run_chain(chain, lines_batch(["ox alpha boomerang z"]))
            self.assertEqual(codec.strings(out), ["alpha", "boomerang"])
            self.assertEqual(fetched, [9])
            _dispatch.run_chain(chain, lines_batch(["delta"]))
            self.assertEqual(fetched, [9], "the plan keeps the bound value")
        finally:
            _dispatch._Params.get = old
            _dispatch._PLANS.clear()


class Failures(unittest.TestCase):
    def test_a_user_exception_names_the_function_the_record_and_the_traceback(self):
        chain = [("flat-map", "tests.jobfns.words", None), ("map", "tests.jobfns.shout", None)]
        with self.assertRaises(_dispatch.CallFailed) as c:
            _dispatch.run_chain(chain, lines_batch(["fine words", "then boom"]))
        e = c.exception
        self.assertEqual(e.kind, "user")
        for part in ("tests.jobfns.shout", "ValueError: no booms here", "on record 'boom'", "jobfns.py"):
            self.assertIn(part, e.message)

    def test_bad_input_is_a_decode_error(self):
        chain = [("map", "tests.jobfns.shout", None)]
        for bad in (b"\x05\x00\x00\x00ab", b"\x02\x00", b"\x01\x00\x00\x00\xff"):
            with self.subTest(bad=bad):
                with self.assertRaises(_dispatch.CallFailed) as c:
                    _dispatch.run_chain(chain, bad)
                self.assertEqual(c.exception.kind, "decode")
                self.assertIn("tests.jobfns.shout", c.exception.message)

    def test_unknown_and_mismatched_functions_are_named(self):
        for op in (("map", "tests.jobfns.nothing", None), ("map", "tests.jobfns.long", None),
                   ("map", "_weft.nope|string", None)):
            with self.subTest(op=op):
                with self.assertRaises(_dispatch.CallFailed) as c:
                    _dispatch.run_chain([op], b"")
                self.assertEqual(c.exception.kind, "unknown-function")
                self.assertIn(op[1].split("|")[0], c.exception.message)

    def test_a_string_that_is_not_unicode_is_an_error(self):
        with self.assertRaises(_dispatch.CallFailed) as c:
            _dispatch.run_chain([("map", "tests.jobfns.lone_surrogate", None)], lines_batch(["x"]))
        self.assertEqual(c.exception.kind, "user")
        self.assertIn("not valid Unicode", c.exception.message)

    def test_a_result_of_the_wrong_type_is_an_error(self):
        with self.assertRaises(_dispatch.CallFailed) as c:
            _dispatch.run_chain([("map", "tests.jobfns.not_an_int", None)], lines_batch(["x"]))
        self.assertEqual(c.exception.kind, "user")
        self.assertIn("`tests.jobfns.not_an_int` returned a value that is not `i64`", c.exception.message)


if __name__ == "__main__":
    unittest.main()


class OwnSteps(unittest.TestCase):
    """The SDK's own steps, natively; the cluster test runs them end to end."""

    def test_tagged_values_split_back_by_side(self):
        tag = lambda side: [("map", _steps.name("tag", codec.STR, codec.I64, side), None)]  # noqa: E731
        a = _dispatch.run_chain(tag(0), STR_INT.encode([("k", 1), ("j", 2)]))
        b = _dispatch.run_chain(tag(1), STR_INT.encode([("k", 3)]))
        tagged = Layout(codec.parse("(string, bytes)")).decode(a + b)
        grouped = {}
        for k, v in tagged:
            grouped.setdefault(k, []).append(v)
        batch = Layout(codec.parse("(string, list<bytes>)")).encode(sorted(grouped.items()))
        for op, want in [
            ("cogroup", [("j", ([2], [])), ("k", ([1], [3]))]),
            ("left-outer", [("j", (2, None)), ("k", (1, 3))]),
            ("right-outer", [("k", (1, 3))]),
            ("full-outer", [("j", (2, None)), ("k", (1, 3))]),
        ]:
            with self.subTest(op=op):
                chain = [("map", _steps.name(op, codec.STR, codec.I64, codec.I64), None)]
                step = _dispatch._plan(chain)[0]
                self.assertEqual(step.output.decode(_dispatch.run_chain(chain, batch)), want)

    def test_with_zero_folds_the_zero_in_once_per_key(self):
        name = _steps.name("with-zero", codec.STR, "tests.jobfns.plus", codec.I64.record(100).hex())
        out = _dispatch.run_chain([("map", name, None)], STR_INT.encode([("a", 1), ("b", 2)]))
        self.assertEqual(STR_INT.decode(out), [("a", 101), ("b", 102)])

    def test_a_sample_is_the_same_every_time(self):
        name = _steps.name("sample", codec.STR, "0.5", 7)
        batch = lines_batch([f"r{i}" for i in range(1000)])
        first = codec.strings(_dispatch.run_chain([("filter", name, None)], batch))
        _dispatch._PLANS.clear()
        again = codec.strings(_dispatch.run_chain([("filter", name, None)], batch))
        self.assertEqual(first, again)
        self.assertTrue(400 < len(first) < 600, len(first))
