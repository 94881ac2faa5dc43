"""rfc9162_ref.py - an independent reference for the Merkle tree of RFC 9162 §2.1.

Written from the RFC's text, not from lib/pki/merkle.c: the tree hash, inclusion
paths and consistency proofs are the recursive definitions of §2.1.1,
§2.1.3.1 and §2.1.4.1 over the leaf list itself (no node storage, no
perfect-subtree decomposition), and the verifiers follow the numbered steps of
§2.1.3.2 and §2.1.4.2 with nothing added: no separate length check, so a
proof of the wrong length has to be caught by the RFC's own steps.  The
integration tests and bench/merkle.sh use it to check the C library.

One convention outside the RFC, which defines consistency proofs only for
0 < m < n: between equal sizes the proof is empty and the two heads must be
equal; m == 0 and m > n have no proof.

Command line (bench/merkle.sh):
    rfc9162_ref.py verify FILE    time the verification of every proof in FILE
                                   (JSON written by bench/merkle_bench), print
                                   "inclusion_us X" and "consistency_us Y"
"""

import base64
import hashlib
import json
import sys
import time


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(data):
    """§2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return sha256(b"\x00" + data)


def node_hash(left, right):
    """§2.1.1: SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return sha256(b"\x01" + left + right)


def split(n):
    """k, the largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Tree:
    """D[n], a list of leaf inputs, with the RFC's functions over its ranges.

    MTH of a range is memoised so that every proof of a 70-leaf tree stays
    cheap; the values are those of the plain recursive definition."""

    def __init__(self, leaves):
        self.leaves = list(leaves)
        self._memo = {}

    def mth(self, lo, hi):
        """MTH(D[lo:hi])."""
        key = (lo, hi)
        if key in self._memo:
            return self._memo[key]
        n = hi - lo
        if n == 0:
            h = sha256(b"")
        elif n == 1:
            h = leaf_hash(self.leaves[lo])
        else:
            k = split(n)
            h = node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))
        self._memo[key] = h
        return h

    def root(self, n):
        return self.mth(0, n)

    def path(self, m, lo, hi):
        """§2.1.3.1: PATH(m, D[lo:hi]), m relative to lo."""
        n = hi - lo
        if n == 1:
            return []
        k = split(n)
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def inclusion_proof(self, index, size):
        if not 0 <= index < size <= len(self.leaves):
            raise ValueError("index out of range")
        return self.path(index, 0, size)

    def subproof(self, m, lo, hi, b):
        """§2.1.4.1: SUBPROOF(m, D[lo:hi], b)."""
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = split(n)
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]

    def consistency_proof(self, m, n):
        if not 0 < m <= n <= len(self.leaves):
            raise ValueError("sizes out of range")
        return self.subproof(m, 0, n, True)


def verify_inclusion(leaf_index, tree_size, hash_, inclusion_path, root_hash):
    """§2.1.3.2, step by step; True when the proof holds."""
    # 1.
    if leaf_index >= tree_size:
        return False
    # 2., 3.
    fn, sn = leaf_index, tree_size - 1
    r = hash_
    # 4.
    for p in inclusion_path:
        if sn == 0:  # a.
            return False
        if fn & 1 or fn == sn:  # b.
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # c.
        sn >>= 1
    # 5.
    return sn == 0 and r == root_hash


def verify_consistency(first, second, first_hash, second_hash, consistency_path):
    """§2.1.4.2, step by step (0 < first < second); True when the proof holds."""
    if first == 0 or first > second:
        return False
    if first == second:  # outside the RFC: see the module comment
        return not consistency_path and first_hash == second_hash
    path = list(consistency_path)
    # 1.
    if not path:
        return False
    # 2.
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    # 3.
    fn, sn = first - 1, second - 1
    # 4.
    if fn & 1:
        while fn & 1:
            fn >>= 1
            sn >>= 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:  # a.
            return False
        if fn & 1 or fn == sn:  # b.
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # c.
        sn >>= 1
    # 7.
    return fr == first_hash and sr == second_hash and sn == 0


def b64(raw):
    return base64.b64encode(raw).decode()


def unb64(text):
    return base64.b64decode(text, validate=True)


def _time_per_call(calls, repeat):
    """Microseconds per call, the best of repeat passes over calls."""
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        for fn, args in calls:
            if not fn(*args):
                raise SystemExit(f"rfc9162_ref: a proof did not verify: {fn.__name__}{args[:2]}")
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best / len(calls) * 1e6


def bench_verify(path, repeat=3):
    with open(path) as f:
        doc = json.load(f)
    inc = [(verify_inclusion, (p["index"], p["size"], unb64(p["leaf"]),
                               [unb64(h) for h in p["proof"]], unb64(p["root"])))
           for p in doc["inclusion"]]
    con = [(verify_consistency, (p["m"], p["n"], unb64(p["root_m"]), unb64(p["root_n"]),
                                 [unb64(h) for h in p["proof"]]))
           for p in doc["consistency"]]
    print(f"inclusion_us {_time_per_call(inc, repeat):.3f} n={len(inc)}")
    print(f"consistency_us {_time_per_call(con, repeat):.3f} n={len(con)}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "verify":
        sys.exit("usage: rfc9162_ref.py verify FILE")
    bench_verify(sys.argv[2])
