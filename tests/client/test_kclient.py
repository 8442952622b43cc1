"""Offline unit tests of kclient's workload generator and verify logic (no broker needed).

Run: .tools/venv/bin/python -m unittest discover -s tests/client -p 'test_*.py'
"""

import copy
import unittest

import kclient


def rec(i, offset, seed=1, p_ts=None):
    wl = kclient.Workload(seed, 100)
    v = wl.value(i)
    return {
        "offset": offset,
        "i": i,
        "key": kclient.hexb(wl.key(i)),
        "value_len": len(v),
        "value_sha": kclient.hashlib.sha256(v).hexdigest(),
        "headers": [[k, kclient.hexb(x)] for k, x in wl.headers(i)],
        "ts": wl.timestamp(i) if p_ts is None else p_ts,
        "ts_type": "create",
    }


def source(n=30, parts=3):
    out = {p: [] for p in range(parts)}
    for i in range(n):
        out[i % parts].append(rec(i, len(out[i % parts])))
    return out


class WorkloadTest(unittest.TestCase):
    def test_deterministic_and_sized(self):
        a, b = kclient.Workload(7, 300), kclient.Workload(7, 300)
        for i in (0, 1, 99, 12345):
            self.assertEqual(a.value(i), b.value(i))
            self.assertEqual(len(a.value(i)), 300)
            self.assertTrue(a.value(i).startswith(b"7:%d:" % i))
        self.assertNotEqual(kclient.Workload(8, 300).value(5), a.value(5))
        self.assertEqual(len(kclient.Workload(1, 200_000).value(3)), 200_000)

    def test_keys_and_headers(self):
        wl = kclient.Workload(1, 100)
        self.assertIsNone(wl.key(20))
        self.assertEqual(wl.key(21), b"k21")
        self.assertEqual(wl.headers(15), [("i", b"15"), ("h2", None), ("dup", b"a"), ("dup", b"b")])


class CompareTest(unittest.TestCase):
    def check(self, dst, **want):
        res = kclient.compare(source(), dst)
        got = {k: res[k] for k in want}
        self.assertEqual(got, want, res)
        return res

    def test_identical(self):
        res = self.check(source(), lost=0, duplicated=0, reordered=0, mismatched=0, extra=0)
        self.assertEqual(res["offsets_equal"], 30)

    def test_lost(self):
        dst = source()
        del dst[1][3]
        self.check(dst, lost=1, duplicated=0, reordered=0, mismatched=0, extra=0)

    def test_duplicated_tail(self):
        dst = source()
        dst[0] += copy.deepcopy(dst[0][-3:])
        self.check(dst, lost=0, duplicated=3, reordered=0, mismatched=0, extra=0)

    def test_reordered(self):
        dst = source()
        dst[2][2], dst[2][5] = dst[2][5], dst[2][2]
        self.check(dst, lost=0, duplicated=0, reordered=2, mismatched=0)

    def test_mismatched_value_and_timestamp(self):
        dst = source()
        dst[0][1]["value_sha"] = "00"
        dst[1][1]["ts"] += 1
        res = self.check(dst, lost=0, mismatched=2)
        self.assertEqual(kclient.compare(source(), dst, ignore_timestamp=True)["mismatched"], 1, res)

    def test_wrong_partition(self):
        dst = source()
        dst[1].append(dst[0].pop())
        self.check(dst, lost=0, mismatched=1)
        self.assertEqual(kclient.compare(source(), dst, ignore_partition=True)["mismatched"], 0)

    def test_extra_and_shifted_offsets(self):
        dst = source()
        dst[0].insert(0, rec(999, 0))
        for n, r in enumerate(dst[0]):
            r["offset"] = n
        res = self.check(dst, lost=0, extra=1, duplicated=0, reordered=0)
        self.assertEqual(res["offsets_equal"], 20)

    def test_records_without_index_use_fingerprints(self):
        src = source()
        for rs in src.values():
            for r in rs:
                r["i"] = None
        dst = copy.deepcopy(src)
        del dst[2][0]
        res = kclient.compare(src, dst)
        self.assertEqual((res["lost"], res["extra"]), (1, 0), res)

    def test_lis(self):
        self.assertEqual(kclient.lis_len([0, 1, 5, 2, 3, 4]), 5)
        self.assertEqual(kclient.lis_len([]), 0)


if __name__ == "__main__":
    unittest.main()
