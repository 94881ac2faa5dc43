"""Tree heads are a group commit (PROTOCOL.md §10.2): one head covers every entry
committed before it was signed, and nobody is answered before both are committed.

- A change of two entries (a re-enrollment: superseded + issued) gets one head, of the
  size after both: the size between has none (404), and the audit still passes.
- Many clients appending at once (route sets and enrollments, each on its own
  connection): every change lands, the indexes are gap-free and in order, every
  enrollment's inclusion proof leads to the head it came with, and the audit passes.
- kill -9 of the key server while enrollments run: every enrollment answered 201 is in
  the log afterwards with its certificate, nothing is half-written (a certificate
  without its entry, an entry without its certificate, a used token without a
  certificate), a head covers the whole log once it is read, and the audit passes.

Nothing here depends on timing: how many entries a head covers is never asserted
where that depends on the scheduling."""

import base64
import json
import threading

import pytest

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import rfc9162_ref as ref


PIN = "sha256:" + base64.b64encode(bytes(32)).decode()


@pytest.fixture(scope="module")
def keyserver(make_keyserver):
    # The audit reads older heads by size; no response cache (see test_log_audit.py).
    return make_keyserver(extra={"cache_max_age": "0", "http_threads": "8"})


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-gc-")
    yield d
    anchorlib.remove_tree(d)


def head_payload(client, dom, work, size=None):
    return lf.verify_head(lf.head(client, dom, size), dom, work)


def audit_ok(keyserver, dom, work):
    r = lf.ctl(keyserver, "audit", dom.name, "--json", cwd=work)
    doc = json.loads(r.out) if r.out.strip().startswith("{") else None
    assert r.rc == 0 and doc is not None and doc["problems"] == [], r.out + r.err
    return doc


def check_gap_free(client, dom):
    es = lf.entries(client, dom)
    assert [e["seq"] for e in es] == list(range(len(es)))
    for e in es:
        leaf = json.loads(e["leaf"])
        assert leaf["seq"] == e["seq"] and leaf["domain"] == dom.name
        assert ref.b64(ref.leaf_hash(e["leaf"].encode())) == e["leaf_hash"]
    return es


def test_a_change_of_two_entries_gets_one_head(keyserver, client, work, operator_token):
    dom = kf.register_domain(keyserver, work, kf.new_domain_name("gc1"), operator_token.token)
    addr = f"twice@{dom.name}"
    kf.enroll_new(client, dom, addr)
    before = head_payload(client, dom, work)["size"]
    cert, _ = kf.enroll_new(client, dom, addr)  # supersedes the first: two entries
    es = check_gap_free(client, dom)
    assert [e["type"] for e in es[before:]] == ["superseded", "issued"]
    head = head_payload(client, dom, work)
    assert head["size"] == before + 2 == len(es)
    # The answer's proof leads to that head; the size between has no head of its own.
    lf.check_cert_log(cert, head)
    r = client.get(f"/v1/domains/{dom.name}/log/head?size={before + 1}")
    assert r.status == 404 and r.error_code() == "not_found", (r.status, r.body)
    assert head_payload(client, dom, work, size=before)["size"] == before
    # Proofs between the heads that exist still verify.
    old = head_payload(client, dom, work, size=before)
    r = client.get(f"/v1/domains/{dom.name}/log/consistency?first={before}&second={before + 2}")
    assert r.status == 200, r.body
    assert ref.verify_consistency(before, before + 2, ref.unb64(old["root_hash"]),
                                  ref.unb64(head["root_hash"]),
                                  [ref.unb64(h) for h in r.json()["proof"]])
    audit_ok(keyserver, dom, work)


def run_parallel(n, fn):
    results, errors = [None] * n, []

    def one(i):
        try:
            results[i] = fn(i)
        except Exception as exc:  # reported below, with the others' results
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    return results


def test_concurrent_appends_all_land_gap_free_with_valid_proofs(keyserver, work,
                                                                 operator_token):
    dom = kf.register_domain(keyserver, work, kf.new_domain_name("gc2"), operator_token.token)
    admin = keyserver.client()
    tokens = [kf.issue_token(admin, dom, f"u{i}@{dom.name}") for i in range(16)]
    csrs = [kf.make_csr(f"u{i}@{dom.name}")[1] for i in range(16)]
    start = head_payload(admin, dom, work)["size"]

    def writer(k):
        c = keyserver.client()
        conn = c.connection()
        certs = []
        for j in range(4):
            i = k * 4 + j
            if k % 2 == 0:  # enrollments
                t = (k // 2) * 4 + j
                r = c.post(f"/v1/domains/{dom.name}/enroll",
                           {"token": tokens[t], "csr": csrs[t]}, conn=conn)
                assert r.status == 201, (r.status, r.body)
                certs.append(r.json())
            else:  # route sets
                r = c.put(f"/v1/routes/r{i}@{dom.name}",
                          {"servers": [{"host": f"mx.{dom.name}", "port": 25, "priority": 10,
                                        "weight": 1, "pin": PIN}], "ttl": 600},
                          token=dom.admin_token, conn=conn)
                assert r.status == 200, (r.status, r.body)
        conn.close()
        return certs

    certs = [c for cs in run_parallel(8, writer) for c in cs]
    assert len(certs) == 16
    es = check_gap_free(admin, dom)
    assert len(es) == start + 32
    assert sorted(e["type"] for e in es[start:]) == ["issued"] * 16 + ["route_set"] * 16
    # Each answer was given after a head covering its entry: its proof leads there.
    for cert in certs:
        head = lf.verify_head(cert["tree_head"], dom, work)
        assert cert["log"]["seq"] < head["size"] <= len(es)
        lf.check_cert_log(cert, head)
    assert head_payload(admin, dom, work)["size"] == len(es)
    audit_ok(keyserver, dom, work)


def test_kill9_during_concurrent_enrollments(make_keyserver, operator_token, tmp_path, pg,
                                             db):
    ks = make_keyserver(extra={"cache_max_age": "0", "http_threads": "8"})
    dom = kf.register_domain(ks, tmp_path, kf.new_domain_name("gc3"), operator_token.token)
    admin = ks.client()
    n = 48
    tokens = [kf.issue_token(admin, dom, f"k{i}@{dom.name}") for i in range(n)]
    csrs = [kf.make_csr(f"k{i}@{dom.name}")[1] for i in range(n)]
    acked, lock = [], threading.Lock()
    killed = threading.Event()

    def writer(k):
        c = ks.client()
        for i in range(k, n, 6):
            if killed.is_set():
                return
            try:
                r = c.post(f"/v1/domains/{dom.name}/enroll", {"token": tokens[i], "csr": csrs[i]})
            except Exception:  # the server died under us: this one was not acknowledged
                return
            if r.status == 201:
                with lock:
                    acked.append((i, r.json()["key_id"]))
                    if len(acked) == n // 3:  # kill while the other writers are mid-flight
                        killed.set()
                        kf.kill9(ks)

    run_parallel(6, writer)
    assert killed.is_set() and len(acked) >= n // 3

    ks.start()
    c = ks.client()
    # A read of the newest head signs whatever the dead server left unsigned.
    head = head_payload(c, dom, tmp_path)
    es = check_gap_free(c, dom)
    assert head["size"] == len(es)
    issued = {json.loads(e["leaf"])["key_id"]: e["seq"] for e in es if e["type"] == "issued"}
    for i, kid in acked:
        assert kid in issued, f"acknowledged enrollment {i} ({kid}) is not in the log"
        r = c.get(f"/v1/keys/{kid}")
        assert r.status == 200 and r.json()["status"] == "current", (r.status, r.body)
        assert r.json()["log"]["seq"] == issued[kid]
    # Nothing half-written: certificates, their entries and the used tokens agree.
    did = pg.psql(f"SELECT id FROM domains WHERE name = '{dom.name}'",
                  dbname=kf.dbname_of(db)).strip()
    rows = pg.psql(f"SELECT key_id::text, coalesce(log_seq::text, '') FROM certificates "
                   f"WHERE domain_id = {did} AND kind = 'user'", dbname=kf.dbname_of(db))
    certs = dict(line.split("|") for line in rows.strip().splitlines() if line)
    assert set(certs) == set(issued), (certs, issued)
    assert all(int(certs[k]) == issued[k] for k in certs)
    used = pg.psql(f"SELECT count(*) FROM enroll_tokens WHERE domain_id = {did} "
                   f"AND used_at IS NOT NULL", dbname=kf.dbname_of(db)).strip()
    assert int(used) == len(certs)
    audit_ok(ks, dom, tmp_path)
