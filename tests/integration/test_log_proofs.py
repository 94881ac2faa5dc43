"""The transparency log's proofs (PROTOCOL.md §10), judged by an independent RFC 9162
implementation (rfc9162_ref.py, written from the RFC), with the heads' signatures checked
by python3-jwcrypto and their chains by openssl: for a log of a few dozen entries
(enrollments, re-enrollments, route changes), every inclusion proof served with lookups
and by /log/inclusion, consistency proofs between many pairs of sizes, the entries
themselves, and the server's refusal of bad query parameters."""

import hashlib
import itertools
import json
import re

import pytest

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import rfc9162_ref as ref
import routefixtures as rf

USERS = 8


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-lp-")
    yield d
    anchorlib.remove_tree(d)


@pytest.fixture(scope="module")
def dom(keyserver, client, work, operator_token):
    """A domain whose log holds a few dozen entries of every kind a user or admin makes."""
    d = kf.register_domain(keyserver, work, kf.new_domain_name("lp"), operator_token.token)
    for i in range(USERS):
        kf.enroll_new(client, d, f"user{i}@{d.name}", alg=("ed25519", "p256")[i % 2])
    for i in range(0, USERS, 2):  # re-enrollments: issued + superseded
        kf.enroll_new(client, d, f"user{i}@{d.name}")
    for i in range(10):
        body = {"servers": [{"host": f"mx{i}.{d.name}", "port": 25, "priority": 10,
                             "weight": 1 + i, "pin": rf.pin_of_key(kf.make_key())}],
                "ttl": 600 + i}
        r = rf.route_put(client, f"user{i % USERS}@{d.name}", body, token=d.admin_token)
        assert r.status == 200, r.body
    r = rf.route_put(client, f"user1@{d.name}", {"alias": f"user2@{d.name}", "ttl": 300},
                     token=d.admin_token)
    assert r.status == 200, r.body
    assert rf.route_delete(client, f"user3@{d.name}", token=d.admin_token).status == 200
    return d


@pytest.fixture(scope="module")
def log(client, dom):
    """(entries, reference tree) of the whole log."""
    es = lf.entries(client, dom)
    assert len(es) >= 29, len(es)
    return es, ref.Tree([e["leaf"].encode() for e in es])


def sizes_of(n):
    """A spread of sizes: the small ones, around powers of two, the last."""
    s = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, n - 1, n}
    return sorted(x for x in s if 1 <= x <= n)


def head_root(client, dom, work, tree, n):
    """The root of the signed head of size n, checked against the reference; a size
    inside a batch that one head covered (PROTOCOL.md §10.2) has no head of its own (404
    not_found): then the reference's root, which the proofs must lead to all the same."""
    r = client.get(f"/v1/domains/{dom.name}/log/head?size={n}")
    if r.status == 404:
        assert r.error_code() == "not_found", r.body
        return tree.root(n)
    assert r.status == 200, (r.status, r.body)
    p = lf.verify_head(r.text, dom, work)
    assert p["size"] == n
    assert ref.unb64(p["root_hash"]) == tree.root(n), f"head {n} is not MTH(D[{n}])"
    return tree.root(n)


def test_entries_hash_as_rfc9162_says(client, dom, log):
    es, _ = log
    types = {e["type"] for e in es}
    assert {"registered", "issued", "superseded", "route_set", "route_removed"} <= types, types
    for i, e in enumerate(es):
        assert e["seq"] == i
        assert ref.unb64(e["leaf_hash"]) == ref.leaf_hash(e["leaf"].encode())
        leaf = json.loads(e["leaf"])
        assert leaf["seq"] == i and leaf["domain"] == dom.name and leaf["type"] == e["type"]
        # canonical JSON: compact, keys sorted
        assert e["leaf"] == json.dumps(leaf, separators=(",", ":"), sort_keys=True)
        if "subject" in leaf:
            assert leaf["subject"] == lf.subject_of(e["salt"], e["name"])
            assert re.fullmatch(r"[0-9a-f]{32}", e["salt"])
    # Outsiders see the leaves, not the names.
    public = lf.entries(client, dom, token=False)
    assert [p["leaf"] for p in public] == [e["leaf"] for e in es]
    assert all("name" not in p and "salt" not in p for p in public)


def test_every_head_verifies_and_matches_the_reference(client, dom, log, work):
    es, tree = log
    newest = lf.verify_head(lf.head(client, dom), dom, work)
    assert newest["size"] == len(es)
    for n in range(1, len(es) + 1):
        head_root(client, dom, work, tree, n)


def test_inclusion_proofs_from_the_log(client, dom, log, work):
    es, tree = log
    checked = 0
    for n in sizes_of(len(es)):
        root = head_root(client, dom, work, tree, n)
        for i in range(n):
            r = client.get(f"/v1/domains/{dom.name}/log/inclusion?seq={i}&size={n}")
            assert r.status == 200, r.body
            doc = r.json()
            assert (doc["seq"], doc["tree_size"]) == (i, n)
            proof = [ref.unb64(h) for h in doc["proof"]]
            assert proof == tree.inclusion_proof(i, n)
            assert ref.verify_inclusion(i, n, ref.leaf_hash(es[i]["leaf"].encode()), proof,
                                        root)
            # and the reference refuses it for any other leaf or root
            assert not ref.verify_inclusion(i, n, ref.leaf_hash(b"x"), proof, root)
            checked += 1
    assert checked > 100
    # Without size: the current size.
    r = client.get(f"/v1/domains/{dom.name}/log/inclusion?seq=0").json()
    assert r["tree_size"] == len(es)


def test_consistency_proofs_between_many_sizes(client, dom, log, work):
    es, tree = log
    roots = {n: head_root(client, dom, work, tree, n) for n in sizes_of(len(es))}
    pairs = [(m, n) for m, n in itertools.combinations_with_replacement(sorted(roots), 2)]
    pairs += [(m, len(es)) for m in range(1, len(es) + 1) if m not in roots]
    for m, n in pairs:
        r = client.get(f"/v1/domains/{dom.name}/log/consistency?first={m}&second={n}")
        assert r.status == 200, (m, n, r.body)
        doc = r.json()
        assert (doc["first"], doc["second"]) == (m, n)
        proof = [ref.unb64(h) for h in doc["proof"]]
        assert proof == tree.consistency_proof(m, n), (m, n)
        rm = roots.get(m) or tree.root(m)
        assert ref.verify_consistency(m, n, rm, roots[n], proof), (m, n)
        if m < n:
            assert not ref.verify_consistency(m, n, tree.root(m), ref.sha256(b"x"), proof)
    assert len(pairs) > 80


def test_lookups_carry_proofs_to_a_signed_head(client, dom, log, work):
    es, _ = log
    for i in range(USERS):
        addr = f"user{i}@{dom.name}"
        hist = client.get(f"/v1/addresses/{addr}/history").json()
        head = lf.verify_head(hist["tree_head"], dom, work)
        assert head["size"] == len(es)
        for c in hist["certificates"]:
            leaf = lf.check_cert_log(c, head)
            assert es[c["log"]["seq"]]["key_id"] == c["key_id"] == leaf["key_id"]
        cur = client.get(f"/v1/addresses/{addr}").json()
        for c in cur["certificates"]:
            lf.check_cert_log(c, lf.verify_head(cur["tree_head"], dom, work))
        k = client.get(f"/v1/keys/{cur['certificates'][0]['key_id']}").json()
        lf.check_cert_log(k, lf.verify_head(k["tree_head"], dom, work))


def test_route_answers_carry_proofs(client, dom, log, work):
    es, _ = log
    for i in (0, 2, 4):
        addr = f"user{i}@{dom.name}"
        r = rf.route_get(client, addr)
        assert r.status == 200
        payload = rf.verify_route(r.body, dom.pin, addr, work)
        doc = json.loads(r.body)
        log_ = doc["header"]["log"]
        head = lf.verify_head(doc["header"]["tree_head"], dom, work)
        leaf = json.loads(log_["leaf"])
        assert leaf["type"] == "route_set" and leaf["subject"] == lf.subject_of(log_["salt"], addr)
        content = {"servers": payload["servers"], "ttl": payload["ttl"]}
        digest = hashlib.sha256(json.dumps(content, separators=(",", ":"),
                                           sort_keys=True).encode()).hexdigest()
        assert leaf["route_sha256"] == digest
        assert ref.verify_inclusion(log_["seq"], log_["tree_size"],
                                    ref.leaf_hash(log_["leaf"].encode()),
                                    [ref.unb64(h) for h in log_["proof"]],
                                    ref.unb64(head["root_hash"]))


def test_anchorctl_verifies_and_remembers_heads(keyserver, client, dom, log, work):
    es, tree = log
    state = work / "state-cli.json"
    r = lf.ctl_ok(keyserver, "lookup", "address", f"user0@{dom.name}", cwd=work, state=state)
    assert f"log: included in head of size {len(es)} (verified)" in r.out
    remembered = json.loads(state.read_text())["heads"][dom.name]
    assert remembered["size"] == len(es)
    assert ref.unb64(remembered["root_hash"]) == tree.root(len(es))
    assert (state.stat().st_mode & 0o777) == 0o600
    # The log grows; the next lookup checks consistency and remembers the newer head.
    kf.enroll_new(client, dom, f"late@{dom.name}")
    r = lf.ctl_ok(keyserver, "lookup", "key",
                  client.get(f"/v1/addresses/late@{dom.name}").json()["certificates"][0]
                  ["key_id"], cwd=work, state=state)
    assert f"log: included in head of size {len(es) + 1} (verified)" in r.out
    assert json.loads(state.read_text())["heads"][dom.name]["size"] == len(es) + 1
    r = lf.ctl_ok(keyserver, "lookup", "domain", dom.name, cwd=work, state=state)
    assert f"log:     head of size {len(es) + 1} (verified)" in r.out
    # A pin that is not the domain's: refused.
    r = lf.ctl(keyserver, "lookup", "address", f"user0@{dom.name}", "--pin",
               "sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", cwd=work, state=state)
    assert r.rc == 1 and "pin_mismatch" in r.err, r.err


@pytest.mark.parametrize("query,status", [
    ("inclusion?seq=-1", 400), ("inclusion?seq=abc", 400), ("inclusion?seq=0&size=0", 400),
    ("inclusion?seq=5&size=5", 400), ("inclusion?seq=0&size=99999", 400),
    ("inclusion", 400), ("inclusion?seq=1x", 400),
    ("consistency?first=0&second=3", 400), ("consistency?first=4&second=3", 400),
    ("consistency?first=1", 400), ("consistency?second=2", 400),
    ("consistency?first=a&second=2", 400), ("consistency?first=1&second=99999", 404),
    ("entries?start=-1", 400), ("entries?start=x", 400), ("entries?start=5&end=4", 400),
    ("head?size=0", 400), ("head?size=x", 400), ("head?size=99999", 404),
])
def test_bad_query_parameters(client, dom, log, query, status):
    r = client.get(f"/v1/domains/{dom.name}/log/{query}")
    assert r.status == status, (query, r.status, r.body)
    assert r.error_code() in ("bad_request", "not_found")


@pytest.mark.parametrize("query", ["since=-1", "since=x", "limit=0", "limit=1001", "limit=x"])
def test_bad_feed_parameters(client, dom, log, query):
    r = client.get(f"/v1/domains/{dom.name}/feed?{query}")
    assert r.status == 400 and r.error_code() == "bad_request", (query, r.body)


def test_feed_pages_with_a_cursor(keyserver, client, dom, log, work):
    es, _ = log
    f = lf.feed(client, dom, since=0, limit=7)
    assert f["since"] == 0 and f["next"] == 7 and len(f["entries"]) == 7
    assert f["size"] >= len(es)
    got, since = [], 0
    while True:
        f = lf.feed(client, dom, since=since, limit=5)
        got += f["entries"]
        if f["next"] == since:
            break
        since = f["next"]
    assert [g["leaf"] for g in got][:len(es)] == [e["leaf"] for e in es]
    assert all("name" not in g for g in got)
    r = lf.ctl_ok(keyserver, "feed", dom.name, "--since", "3", "--limit", "4", cwd=work)
    lines = r.out.strip().splitlines()
    assert len(lines) == 5 and lines[-1] == "next: 7", r.out
    assert lines[0].split()[0] == "3" and lines[0].split()[2] == es[3]["type"]


def test_feed_follow_prints_new_entries(keyserver, client, dom, work):
    import os
    import subprocess
    import time
    size = lf.feed(client, dom, since=0, limit=1)["size"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
    env.update(anchorlib.SANITIZER_ENV)
    p = subprocess.Popen([str(anchorlib.binary("anchorctl")), "-s", keyserver.base_url,
                          "--cacert", str(keyserver.tls.ca), "feed", dom.name, "--since",
                          str(size), "--follow", "--interval", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == f"next: {size}"
        kf.enroll_new(client, dom, f"follow@{dom.name}")
        deadline = time.monotonic() + 10
        line = p.stdout.readline()
        assert line.split()[0] == str(size) and line.split()[2] == "issued", line
        assert time.monotonic() < deadline
        assert p.stdout.readline().strip() == f"next: {size + 1}"
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert anchorlib.sanitizer_report(err) is None, err
