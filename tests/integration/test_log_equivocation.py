"""A key server made to equivocate (PROTOCOL.md §10.3): a fake key server on loopback
(HTTPS, the test CA) passes the real one's answers through, then shows the client a
different history, with heads the test signs itself with the domain's issuer key (from
`anchorctl domain init`), so every signature and chain is valid.  anchorctl, remembering
the first head in its state file, must report log_fork with both heads as evidence."""

import json
import re
from dataclasses import dataclass

import pytest

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import rfc9162_ref as ref
import routefixtures as rf


@dataclass
class Endpoint:
    """What kf.run_ctl needs of a key server: its URL and TLS files."""
    base_url: str
    tls: object


@pytest.fixture(scope="module")
def keyserver(make_keyserver):
    # No response cache: this module judges the client, and older heads (?size=N) must
    # come from the store (test_log_proofs.py checks them through the cache).
    return make_keyserver(extra={"cache_max_age": "0"})


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-eq-")
    yield d
    anchorlib.remove_tree(d)


@pytest.fixture(scope="module")
def dom(keyserver, client, work, operator_token):
    d = kf.register_domain(keyserver, work, kf.new_domain_name("eq"), operator_token.token)
    for i in range(5):
        kf.enroll_new(client, d, f"u{i}@{d.name}")
    return d


@pytest.fixture()
def middle(keyserver, client):
    m = rf.MiddleServer(keyserver.tls, client)
    yield m
    m.stop()


def fake(middle, keyserver):
    return Endpoint(f"https://127.0.0.1:{middle.port}", keyserver.tls)


def forked_tree(client, dom, rewrite):
    """The real log's leaves with leaf `rewrite` changed: another history of equal size."""
    leaves = [e["leaf"] for e in lf.entries(client, dom)]
    doc = json.loads(leaves[rewrite])
    doc["fingerprint"] = "sha256:" + "ab" * 32
    leaves[rewrite] = json.dumps(doc, separators=(",", ":"), sort_keys=True)
    return [x.encode() for x in leaves]


def assert_fork(r, real_size, real_root, seen_size, seen_root):
    assert r.rc == 1, (r.out, r.err)
    assert re.search(r"^anchorctl: log_fork: ", r.err, re.M), r.err
    assert f"remembered head size {real_size} root {ref.b64(real_root)}" in r.err, r.err
    assert f"now head size {seen_size} root {ref.b64(seen_root)}" in r.err, r.err
    # The evidence: both signed heads, in full.
    assert "evidence of the fork" in r.err
    assert r.err.count('"signature"') >= 2, r.err
    assert "BEGIN CERTIFICATE" not in r.out


def test_two_heads_of_one_size(keyserver, client, dom, work, middle):
    state = work / "same-size.json"
    ep = fake(middle, keyserver)
    real = lf.verify_head(lf.head(client, dom), dom, work)
    real_root = ref.unb64(real["root_hash"])
    r = lf.ctl_ok(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert f"head of size {real['size']} (verified)" in r.out
    # The same size, another root: a fork, whatever else the server says.
    other = ref.Tree(forked_tree(client, dom, 2)).root(real["size"])
    middle.answers[f"/v1/domains/{dom.name}/log/head"] = lf.sign_head(dom, real["size"], other)
    r = lf.ctl(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert_fork(r, real["size"], real_root, real["size"], other)
    # What is remembered did not change.
    assert json.loads(state.read_text())["heads"][dom.name]["root_hash"] == real["root_hash"]


def test_a_certificate_proven_in_a_forked_tree(keyserver, client, dom, work, middle):
    """The lookup is self-consistent (the proof leads to the forged head), so only the
    remembered head can tell: the relying party refuses it as a fork."""
    state = work / "cert.json"
    ep = fake(middle, keyserver)
    kid = client.get(f"/v1/addresses/u3@{dom.name}").json()["certificates"][0]["key_id"]
    r = lf.ctl_ok(ep, "lookup", "key", kid, cwd=work, state=state)
    real = json.loads(state.read_text())["heads"][dom.name]
    obj = client.get(f"/v1/keys/{kid}").json()
    seq, n = obj["log"]["seq"], real["size"]
    tree = ref.Tree(forked_tree(client, dom, 1))
    assert seq != 1
    obj["log"]["proof"] = [ref.b64(h) for h in tree.inclusion_proof(seq, n)]
    obj["tree_head"] = lf.sign_head(dom, n, tree.root(n))
    middle.answers[f"/v1/keys/{kid}"] = json.dumps(obj)
    # A client that remembers nothing cannot tell: the answer verifies on its own.
    r = lf.ctl(ep, "lookup", "key", kid, cwd=work, state=work / "fresh.json")
    assert r.rc == 0 and "(verified)" in r.out, r.err
    r = lf.ctl(ep, "lookup", "key", kid, cwd=work, state=state)
    assert_fork(r, n, ref.unb64(real["root_hash"]), n, tree.root(n))


def test_a_newer_head_that_is_not_an_extension(keyserver, client, dom, work, middle):
    state = work / "grow.json"
    ep = fake(middle, keyserver)
    lf.ctl_ok(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    real = json.loads(state.read_text())["heads"][dom.name]
    m = real["size"]
    leaves = forked_tree(client, dom, 0) + [b'{"extra":1}', b'{"extra":2}']
    tree = ref.Tree(leaves)
    n = len(leaves)
    path = f"/v1/domains/{dom.name}/log"
    middle.answers[f"{path}/head"] = lf.sign_head(dom, n, tree.root(n))
    # The forked server's own (valid for its tree) consistency proof does not join them.
    proof = [ref.b64(h) for h in tree.consistency_proof(m, n)]
    middle.answers[f"{path}/consistency?first={m}&second={n}"] = json.dumps(
        {"first": m, "second": n, "proof": proof})
    r = lf.ctl(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert_fork(r, m, ref.unb64(real["root_hash"]), n, tree.root(n))
    # Nor does a proof of the wrong length.
    middle.answers[f"{path}/consistency?first={m}&second={n}"] = json.dumps(
        {"first": m, "second": n, "proof": proof[:-1]})
    r = lf.ctl(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert_fork(r, m, ref.unb64(real["root_hash"]), n, tree.root(n))
    assert json.loads(state.read_text())["heads"][dom.name]["size"] == m


def test_an_older_head_of_another_history(keyserver, client, dom, work, middle):
    """Going backwards is fine only along the same history."""
    state = work / "back.json"
    ep = fake(middle, keyserver)
    lf.ctl_ok(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    real = json.loads(state.read_text())["heads"][dom.name]
    path = f"/v1/domains/{dom.name}/log/head"
    # An older real head: consistent, accepted, the newer one stays remembered.
    middle.answers[path] = lf.head(client, dom, 3)
    r = lf.ctl_ok(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert "head of size 3 (verified)" in r.out
    assert json.loads(state.read_text())["heads"][dom.name]["size"] == real["size"]
    # An older head of a rewritten history: the real server's proof cannot join them.
    other = ref.Tree(forked_tree(client, dom, 1)).root(3)
    middle.answers[path] = lf.sign_head(dom, 3, other)
    r = lf.ctl(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert r.rc == 1 and "log_fork" in r.err, r.err
    assert ref.b64(other) in r.err and real["root_hash"] in r.err


def test_bad_heads_are_refused_and_not_remembered(keyserver, client, dom, work, middle):
    state = work / "bad.json"
    ep = fake(middle, keyserver)
    path = f"/v1/domains/{dom.name}/log/head"
    real_text = lf.head(client, dom)
    doc = json.loads(real_text)
    # A head whose signature does not verify.
    sig = doc["signature"]
    doc["signature"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    middle.answers[path] = json.dumps(doc)
    r = lf.ctl(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert r.rc == 1 and "jws_signature" in r.err, r.err
    # A head signed by a user's key (valid chain to the root, but not the issuer).
    user = f"signer@{dom.name}"
    _, key = kf.enroll_new(client, dom, user)
    upem = client.get(f"/v1/addresses/{user}").json()["certificates"][0]["certificate"]
    payload = rf.jws_payload(real_text)
    middle.answers[path] = rf.sign(key, [upem, dom.issuer_pem, dom.root_pem], payload,
                                   "anchor-tree-head+jws")
    r = lf.ctl(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert r.rc == 1 and "bad_tree_head" in r.err, r.err
    # A head of another domain.
    middle.answers[path] = lf.sign_head(dom, payload["size"], ref.unb64(payload["root_hash"]),
                                        domain="other.test")
    r = lf.ctl(ep, "lookup", "domain", dom.name, cwd=work, state=state)
    assert r.rc == 1 and "bad_tree_head" in r.err, r.err
    assert not state.exists() or dom.name not in json.loads(state.read_text())["heads"]
