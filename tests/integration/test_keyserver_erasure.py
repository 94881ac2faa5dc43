"""Erasure (PROTOCOL.md §10.1): after `POST /v1/domains/{domain}/erase` nothing the key
server serves or keeps ties anything to the address, while the CRL and the log stay whole.

One address is given every kind of trace (two certificates, one superseded by the other,
a route, an unused enrollment token, a webhook on its keys), every lookup is asked on two
key-server nodes over one database so that both response caches hold the answers, and the
address is erased through the first node.  Then every read path is asked again on both:
by address, history, key id (JSON and PEM), fingerprint, route, log entries (public and
admin), the feed, inclusion proofs, the CRL, webhook payloads, anchorctl's lookups and
audit; and every key-server table is read at rest.  Neither the address nor the
certificate (whose SAN names it) may appear anywhere; the serials stay on the CRL, the
log's leaves and hashes stay, `anchorctl audit` still verifies the log."""

import base64
import json
import re
import secrets

import pytest

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import rfc9162_ref as ref
import routefixtures as rf
from test_log_webhooks import Receiver

# Paths a reader may ask about an address or its keys; {a} address, {k} key id, {f}
# fingerprint, {d} domain.
LOOKUPS = ("/v1/addresses/{a}", "/v1/addresses/{a}/history", "/v1/keys/{k}",
           "/v1/keys/{k}/certificate.pem", "/v1/fingerprints/{f}", "/v1/routes/{a}",
           "/v1/domains/{d}/feed?since=0&limit=1000")


@pytest.fixture(scope="module")
def keyserver(make_keyserver):
    return make_keyserver(extra={"webhook_allow_http": "yes", "webhook_retry_base": "1s"})


@pytest.fixture(scope="module")
def node_b(keyserver, make_keyserver):
    return make_keyserver()


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-er-")
    yield d
    anchorlib.remove_tree(d)


@pytest.fixture(scope="module")
def dom(keyserver, work, operator_token):
    return kf.register_domain(keyserver, work, kf.new_domain_name("er"), operator_token.token)


@pytest.fixture(scope="module")
def receiver():
    r = Receiver()
    yield r
    r.stop()


def first_line(pem):
    """The first base64 line of a PEM certificate (64 characters, its serial among them):
    found in any text that carries the certificate, as PEM, in JSON or in a table."""
    return pem.splitlines()[1]


def serial_hex(cert):
    return format(kf.load_cert(cert["certificate"]).serial_number, "X")


def paths(addr, cert, dom):
    return [p.format(a=addr, k=cert["key_id"], f=cert["fingerprint"], d=dom.name)
            for p in LOOKUPS]


def assert_no_trace(text, person, where):
    """Neither the address (its random local part, in any case) nor a certificate."""
    low = text.lower()
    assert person["local"] not in low, f"{where} names the erased address:\n{text[:2000]}"
    for c in person["certs"]:
        assert first_line(c["certificate"]) not in text, \
            f"{where} still serves an erased certificate:\n{text[:2000]}"


@pytest.fixture(scope="module")
def erased(keyserver, node_b, dom, work, receiver, pg, db):
    """Alice with every kind of trace, cached on both nodes, then erased through node A."""
    a, b = keyserver.client(), node_b.client()
    local = f"alice-{secrets.token_hex(6)}"
    addr = f"{local}@{dom.name}"
    old, _ = kf.enroll_new(a, dom, addr)
    new, _ = kf.enroll_new(a, dom, addr)  # supersedes old
    for c, name in ((old, "old"), (new, "new")):
        (work / f"{name}.pem").write_text(c["certificate"])
    kf.issue_token(a, dom, addr)  # left unused
    r = rf.route_put(a, addr, {"alias": f"postmaster@{dom.name}", "ttl": 300},
                     token=dom.admin_token)
    assert r.status == 200, r.body
    r = a.post(f"/v1/domains/{dom.name}/webhooks",
               {"url": receiver.url, "key_ids": [old["key_id"], new["key_id"]]})
    assert r.status == 201, r.body
    # The owner's current key is revoked first, as the erasure of old releases demanded.
    r = a.post(f"/v1/keys/{new['key_id']}/revoke", {"reason": "keyCompromise"},
               token=dom.admin_token)
    assert r.status == 200, r.body
    assert kf.poll(lambda: len(receiver.delivered()) == 1, timeout=15, interval=0.1)
    # Both nodes answer every lookup, twice: the second answer comes from the cache.
    etags = {}
    for node, cl in (("a", a), ("b", b)):
        for p in paths(addr, old, dom) + paths(addr, new, dom):
            first = cl.get(p)
            assert first.status in (200, 404), (p, first.status, first.body)
            etags[(node, p)] = first.headers.get("etag")
        hits = kf.metric(cl, "anchor_keyserver_cache_hits_total")
        assert cl.get(f"/v1/keys/{old['key_id']}").status == 200
        assert kf.metric(cl, "anchor_keyserver_cache_hits_total") > hits, "not cached"
    delivered_before = len(receiver.delivered())
    r = a.post(f"/v1/domains/{dom.name}/erase", {"address": addr.upper()},
               token=dom.admin_token)
    assert r.status == 200, r.body
    return {"addr": addr, "local": local, "certs": [old, new], "old": old, "new": new,
            "answer": r.json(), "etags": etags, "delivered_before": delivered_before}


def test_erase_answer(erased):
    ans = erased["answer"]
    assert ans["erased"] is True
    assert ans["certificates_erased"] == 2
    assert ans["certificates_revoked"] == 1  # the superseded one; the current was revoked
    assert ans["log_entries_unlinked"] >= 5  # issued x2, superseded, revoked x2, route_set


@pytest.mark.parametrize("node", ["a", "b"])
def test_no_lookup_serves_the_address_or_its_certificates(keyserver, node_b, dom, erased,
                                                          node):
    """Node B had every answer cached: the erasure's NOTIFY retires them there too."""
    cl = keyserver.client() if node == "a" else node_b.client()
    addr = erased["addr"]

    def settled():  # B learns of the change through LISTEN/NOTIFY, a moment later
        return cl.get(f"/v1/keys/{erased['old']['key_id']}").status == 410

    assert kf.poll(settled, timeout=5, interval=0.05)
    never = f"never-{secrets.token_hex(4)}@{dom.name}"
    for c in erased["certs"]:
        for p in paths(addr, c, dom):
            r = cl.get(p)
            if addr in p:
                # Asked by the address: the answer for an address that never was, which
                # may echo the question and nothing else.
                r0 = cl.get(p.replace(addr, never))
                assert (r.status, r.text.replace(addr, "X")) == \
                    (r0.status, r0.text.replace(never, "X")), (p, r.status, r.text)
                assert r.status == 404, (p, r.body)
            else:
                assert_no_trace(r.text, erased, f"GET {p} on node {node} ({r.status})")
            # A conditional request with the old tag gets the new answer, not a 304.
            tag = erased["etags"].get((node, p))
            if tag:
                r2 = cl.get(p, headers={"If-None-Match": tag})
                assert r2.status != 304, p
        for p in (f"/v1/keys/{c['key_id']}", f"/v1/keys/{c['key_id']}/certificate.pem",
                  f"/v1/fingerprints/{c['fingerprint']}"):
            r = cl.get(p)
            assert r.status == 410 and r.error_code() == "erased", (p, r.status, r.body)
            doc = r.json()
            assert "certificate" not in doc and "name" not in doc and "log" not in doc, doc
            assert doc["key_id"] == c["key_id"] and doc["fingerprint"] == c["fingerprint"]
            assert doc["serial"] == c["serial"] and doc["status"] == "revoked", doc
            assert doc["revocation"]["time"] and doc["erased"], doc
            assert "max-age" not in r.headers.get("cache-control", ""), r.headers
        # Every entry of the log, as the public and as the admin read it.
        for token in (None, dom.admin_token):
            r = cl.get(f"/v1/domains/{dom.name}/log/entries?start=0&end=1000", token=token)
            assert r.status == 200
            assert_no_trace(r.text, erased, f"log entries on node {node}")


def test_the_log_keeps_its_leaves_and_verifies(keyserver, dom, erased, work):
    """The entries about the erased keys are still there, with key id and fingerprint and
    a valid inclusion proof, but no salt or name: the subject cannot be recomputed."""
    a = keyserver.client()
    es = lf.entries(a, dom)
    head = lf.verify_head(lf.head(a, dom), dom, work)
    for c in erased["certs"]:
        mine = [e for e in es if e.get("key_id") == c["key_id"]]
        types = sorted(json.loads(e["leaf"])["type"] for e in mine)
        assert "issued" in types and "revoked" in types, types
        for e in mine:
            assert "salt" not in e and "name" not in e, e
            leaf = json.loads(e["leaf"])
            assert leaf["fingerprint"] == c["fingerprint"], leaf
            r = a.get(f"/v1/domains/{dom.name}/log/inclusion?seq={e['seq']}"
                      f"&size={head['size']}")
            assert r.status == 200, r.body
            proof = r.json()
            assert ref.verify_inclusion(e["seq"], head["size"],
                                        ref.leaf_hash(e["leaf"].encode()),
                                        [ref.unb64(h) for h in proof["proof"]],
                                        ref.unb64(head["root_hash"]))
    revoked_now = [json.loads(e["leaf"]) for e in es
                   if e.get("key_id") == erased["old"]["key_id"] and e["type"] == "revoked"]
    assert revoked_now[0]["reason"] == "cessationOfOperation", revoked_now
    assert revoked_now[0]["method"] == "admin"


def test_webhook_payloads_carry_no_trace(erased, receiver, dom, work):
    """The subscriber watching the erased keys hears of the superseded key's revocation
    by the erasure, and no payload, before or after, names the address."""
    got = kf.poll(lambda: len(receiver.delivered()) > erased["delivered_before"],
                  timeout=15, interval=0.1)
    assert got, receiver.calls
    for body in receiver.delivered():
        assert_no_trace(json.dumps(body), erased, "a webhook payload")
        assert "salt" not in body["entry"]
    last = json.loads(receiver.delivered()[-1]["entry"]["leaf"])
    assert last["type"] == "revoked" and last["key_id"] == erased["old"]["key_id"], last


def test_the_crl_keeps_both_serials(keyserver, dom, erased, work):
    r = keyserver.client().get(f"/v1/domains/{dom.name}/crl.pem")
    assert r.status == 200
    crl = work / "crl.pem"
    crl.write_bytes(r.body)
    text = kf.openssl("crl", "-in", crl, "-noout", "-text", check=True).stdout_text
    for c in erased["certs"]:
        assert re.search(rf"Serial Number: 0*{serial_hex(c)}\b", text, re.I), (c["serial"], text)
    for name in ("old", "new"):
        v = kf.openssl("verify", "-crl_check", "-CRLfile", crl, "-CAfile", dom.dir / "root.pem",
                       "-untrusted", dom.dir / "issuer.pem", work / f"{name}.pem")
        assert v.returncode != 0 and "revoked" in (v.stdout_text + v.stderr_text), name


def test_anchorctl_lookups_and_audit(keyserver, dom, erased, work):
    c = erased["new"]
    for args in (("lookup", "key", c["key_id"]), ("lookup", "fingerprint", c["fingerprint"]),
                 ("lookup", "key", c["key_id"], "--pem")):
        r = lf.ctl(keyserver, *args, cwd=work)
        assert r.rc != 0 and "erased" in r.err, (args, r.out, r.err)
        assert_no_trace(r.out + r.err, erased, f"anchorctl {' '.join(args)}")
    for kind in ("address", "history"):
        r = lf.ctl(keyserver, "lookup", kind, erased["addr"], cwd=work)
        assert r.rc != 0 and "not_found" in r.err, (kind, r.out, r.err)
        assert "BEGIN CERTIFICATE" not in r.out
    r = lf.ctl(keyserver, "audit", dom.name, cwd=work)
    assert r.rc == 0, r.out + r.err
    assert r.out.rstrip().endswith("result:   OK"), r.out
    assert "(name erased)" in r.out
    assert_no_trace(r.out, erased, "anchorctl audit")


def test_nothing_at_rest_names_the_address(erased, pg, db):
    """Every key-server table, every row, as text: no address, no certificate.  The rows
    of the erased certificates keep what the CRL and the log need."""
    dbname = kf.dbname_of(db)
    tables = pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                     " AND tablename NOT LIKE 'rep\\_%' ORDER BY 1", dbname=dbname).split()
    assert "certificates" in tables and "log_entries" in tables, tables
    for t in tables:
        rows = pg.psql(f"SELECT x::text FROM {t} x", dbname=dbname)
        assert_no_trace(rows, erased, f"table {t} at rest")
    for c in erased["certs"]:
        row = pg.psql("SELECT name IS NULL, pem IS NULL, revocation_secret_hash IS NULL,"
                      " erased_at IS NOT NULL, status, serial, fingerprint, log_seq IS NOT NULL"
                      f" FROM certificates WHERE key_id = '{c['key_id']}'", dbname=dbname)
        assert row.strip() == f"t|t|t|t|revoked|{c['serial']}|{c['fingerprint']}|t", row
        rv = pg.psql(f"SELECT serial FROM revocations WHERE key_id = '{c['key_id']}'",
                     dbname=dbname)
        assert rv.strip() == c["serial"], rv
        le = pg.psql("SELECT count(*), count(salt), count(name), count(leaf_hash)"
                     f" FROM log_entries WHERE key_id = '{c['key_id']}'", dbname=dbname)
        n = le.strip().split("|")
        assert int(n[0]) >= 2 and n[1] == n[2] == "0" and n[3] == n[0], le


def test_erasing_an_address_with_a_current_key_revokes_it(keyserver, dom, work, pg, db):
    """A current key is revoked by the erasure itself (cessationOfOperation, by the admin):
    it stays on the CRL and its key id answers `revoked`, without the certificate."""
    a = keyserver.client()
    addr = f"carol-{secrets.token_hex(4)}@{dom.name}"
    cert, _ = kf.enroll_new(a, dom, addr)
    r = a.post(f"/v1/domains/{dom.name}/erase", {"address": addr}, token=dom.admin_token)
    assert r.status == 200, r.body
    assert r.json()["certificates_revoked"] == 1 and r.json()["certificates_erased"] == 1
    r = a.get(f"/v1/keys/{cert['key_id']}")
    assert r.status == 410, r.body
    rv = r.json()["revocation"]
    assert rv["reason"] == "cessationOfOperation" and rv["method"] == "admin", rv
    assert a.get(f"/v1/addresses/{addr}").status == 404
    crl = work / "crl-carol.der"
    crl.write_bytes(a.get(f"/v1/domains/{dom.name}/crl").body)
    text = kf.openssl("crl", "-inform", "DER", "-in", crl, "-noout", "-text",
                      check=True).stdout_text
    assert re.search(rf"Serial Number: 0*{serial_hex(cert)}\b", text, re.I), text
    # The revocation secret cannot revoke (or probe) it any more; the admin is told it is.
    r = a.post(f"/v1/keys/{cert['key_id']}/revoke", {}, token=dom.admin_token)
    assert r.status == 409 and r.error_code() == "already_revoked", r.body
    # The address may be enrolled afresh: a new person, nothing of the old one.
    new, _ = kf.enroll_new(a, dom, addr)
    hist = a.get(f"/v1/addresses/{addr}/history").json()["certificates"]
    assert [c["key_id"] for c in hist] == [new["key_id"]], hist


def test_the_corporate_address_cannot_be_erased(keyserver, work, operator_token, pg, db):
    """The domain object publishes it: refused (409), nothing changes."""
    a = keyserver.client()
    d = kf.register_domain(keyserver, work, kf.new_domain_name("erc"), operator_token.token)
    corp = f"all@{d.name}"
    r = a.put(f"/v1/domains/{d.name}/policy", {"policy": "corporate", "corporate_address": corp},
              token=d.admin_token)
    assert r.status == 200, r.body
    kf.enroll_new(a, d, corp)
    before = lf.tables_digest(pg, db)
    r = a.post(f"/v1/domains/{d.name}/erase", {"address": corp}, token=d.admin_token)
    assert r.status == 409 and r.error_code() == "corporate_address", r.body
    assert lf.tables_digest(pg, db) == before
