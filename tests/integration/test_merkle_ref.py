"""lib/merkle against an independent implementation of RFC 9162 §2.1.

rfc9162_ref.py is written from the RFC (recursive definitions over the
leaves, the numbered verification steps), sharing no code with lib/pki/merkle.c.
Both directions are checked, through the unit-test binary's two extra modes:

  MERKLE_VECTORS  the C library writes its roots and every inclusion and
                  consistency proof of trees of 0..70 leaves; each must equal
                  the reference's and verify with the reference's verifiers.
  MERKLE_CHECK    the reference writes its own proofs, plus tampered ones
                  (wrong length, flipped bit, wrong index or size, swapped or
                  stale heads, a fork); the C verifiers must agree on every one.
"""

import json
import os
import subprocess

import pytest

import anchorlib
import rfc9162_ref as ref

N = 70


def run_mode(env_name, path):
    env = dict(os.environ, **anchorlib.SANITIZER_ENV, CMOCKA_MESSAGE_OUTPUT="STDOUT")
    env[env_name] = str(path)
    r = subprocess.run([str(anchorlib.binary("tests/test_merkle"))], env=env,
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert anchorlib.sanitizer_report(out) is None, out
    assert r.returncode == 0, out
    assert "[  PASSED  ] 1 test" in out, out
    return out


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    path = tmp_path_factory.mktemp("merkle") / "vectors.json"
    run_mode("MERKLE_VECTORS", path)
    with open(path) as f:
        doc = json.load(f)
    doc["tree"] = ref.Tree([ref.unb64(x) for x in doc["leaves"]])
    return doc


def proof(item):
    return [ref.unb64(h) for h in item["proof"]]


def test_c_roots_equal_reference(vectors):
    tree = vectors["tree"]
    assert len(vectors["leaves"]) == N
    assert len(vectors["roots"]) == N + 1
    for n, root in enumerate(vectors["roots"]):
        assert ref.unb64(root) == tree.root(n), f"size {n}"
    # The certificate-transparency suite's 8-leaf tree, as published.
    assert tree.root(8).hex() == \
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def test_c_inclusion_proofs_verify_with_reference(vectors):
    tree = vectors["tree"]
    roots = [ref.unb64(r) for r in vectors["roots"]]
    seen = set()
    for item in vectors["inclusion"]:
        i, n, p = item["index"], item["size"], proof(item)
        leaf = ref.leaf_hash(tree.leaves[i])
        assert p == tree.inclusion_proof(i, n), f"index {i} size {n}"
        assert ref.verify_inclusion(i, n, leaf, p, roots[n]), f"index {i} size {n}"
        seen.add((i, n))
    assert seen == {(i, n) for n in range(1, N + 1) for i in range(n)}


def test_c_consistency_proofs_verify_with_reference(vectors):
    tree = vectors["tree"]
    roots = [ref.unb64(r) for r in vectors["roots"]]
    seen = set()
    for item in vectors["consistency"]:
        m, n, p = item["m"], item["n"], proof(item)
        assert p == tree.consistency_proof(m, n), f"m {m} n {n}"
        assert ref.verify_consistency(m, n, roots[m], roots[n], p), f"m {m} n {n}"
        if m < n:  # the same proof must not pass for a different old head
            assert not ref.verify_consistency(m, n, roots[m - 1], roots[n], p)
        seen.add((m, n))
    assert seen == {(m, n) for n in range(1, N + 1) for m in range(1, n + 1)}


def flip(h, bit):
    b = bytearray(h)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def inclusion_cases(tree, roots):
    """(why, index, size, leaf, proof, root, expect): genuine and tampered."""
    for n in range(1, N + 1):
        for i in range(n):
            leaf = ref.leaf_hash(tree.leaves[i])
            p = tree.inclusion_proof(i, n)
            yield "genuine", i, n, leaf, p, roots[n], True
            if p:
                yield "truncated", i, n, leaf, p[:-1], roots[n], False
                yield "first hash dropped", i, n, leaf, p[1:], roots[n], False
                k = (i * 7 + n) % len(p)
                yield "bit flipped", i, n, leaf, p[:k] + [flip(p[k], i + n)] + p[k + 1:], \
                    roots[n], False
            yield "extended", i, n, leaf, p + [roots[n]], roots[n], False
            yield "other leaf", i, n, ref.leaf_hash(tree.leaves[(i + 1) % N]), p, roots[n], \
                False
            if n > 1:
                yield "wrong index", (i + 1) % n, n, leaf, p, roots[n], False
            if n < N:
                yield "wrong size", i, n + 1, leaf, p, roots[n + 1], False
            yield "stale head", i, n, leaf, p, roots[n - 1], False
            yield "index past the end", n, n, leaf, p, roots[n], False


def consistency_cases(tree, roots):
    for n in range(1, N + 1):
        for m in range(1, n + 1):
            p = tree.consistency_proof(m, n)
            yield "genuine", m, n, roots[m], roots[n], p, True
            if p:
                yield "truncated", m, n, roots[m], roots[n], p[:-1], False
                yield "first hash dropped", m, n, roots[m], roots[n], p[1:], False
                k = (m * 5 + n) % len(p)
                yield "bit flipped", m, n, roots[m], roots[n], \
                    p[:k] + [flip(p[k], m * n)] + p[k + 1:], False
            yield "extended", m, n, roots[m], roots[n], p + [roots[m]], False
            yield "fork: other old head", m, n, flip(roots[m], 3), roots[n], p, False
            yield "fork: other new head", m, n, roots[m], flip(roots[n], 5), p, False
            if n < N:
                yield "wrong size", m, n + 1, roots[m], roots[n + 1], p, False
            if m > 1:
                yield "wrong old size", m - 1, n, roots[m - 1], roots[n], p, False
            if m < n:
                yield "backwards", n, m, roots[n], roots[m], p, False
    yield "from the empty tree", 0, 5, roots[0], roots[5], [], False
    yield "from the empty tree, to it", 0, 0, roots[0], roots[0], [], False


def test_reference_proofs_verify_with_c(tmp_path):
    # Leaves of the reference's own choosing, not the C test's.
    leaves = [bytes([i % 251]) * (i % 5) + b"ref-%d" % i for i in range(N)]
    tree = ref.Tree(leaves)
    roots = [tree.root(n) for n in range(N + 1)]
    inc, con = [], []
    for why, i, n, leaf, p, root, expect in inclusion_cases(tree, roots):
        # The reference must agree with itself before it judges the C code.
        assert ref.verify_inclusion(i, n, leaf, p, root) == expect, (why, i, n)
        inc.append({"why": why, "index": i, "size": n, "leaf": ref.b64(leaf),
                    "proof": [ref.b64(h) for h in p], "root": ref.b64(root), "expect": expect})
    for why, m, n, rm, rn, p, expect in consistency_cases(tree, roots):
        assert ref.verify_consistency(m, n, rm, rn, p) == expect, (why, m, n)
        con.append({"why": why, "m": m, "n": n, "root_m": ref.b64(rm), "root_n": ref.b64(rn),
                    "proof": [ref.b64(h) for h in p], "expect": expect})
    path = tmp_path / "check.json"
    path.write_text(json.dumps({"leaves": [ref.b64(x) for x in leaves],
                                "roots": [ref.b64(r) for r in roots],
                                "inclusion": inc, "consistency": con}))
    out = run_mode("MERKLE_CHECK", path)
    assert f"merkle_check: {len(inc)} inclusion, {len(con)} consistency, 0 disagreements" \
        in out, out
    assert sum(c["expect"] for c in inc) == N * (N + 1) // 2
    assert sum(not c["expect"] for c in con) > 5 * N * (N + 1) // 2
