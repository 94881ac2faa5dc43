"""Changes to one domain are committed in batches (PROTOCOL.md §10.2): one transaction
and one signed head for every change queued meanwhile, each change behind its own
savepoint.

- kill -9 of the key server and its signer process (which runs the route changes'
  batches and signs their heads in the same transaction) while route changes stream in
  from several clients: every
  route acknowledged 200 is in the log afterwards, its answer's inclusion proof (in the
  route answer's unprotected header) leads to the head it came with, nothing is
  half-written (a route row without its entry or an entry without its route row), a
  head covers the whole log once read, and the audit passes.
- A change refused inside a batch (an alias that would close a loop, the removal of a
  route that is not there) is undone alone: its client gets its own error while the
  changes around it commit, and the log stays gap-free with exactly the accepted ones.

Nothing here depends on timing: how many changes share a batch is never asserted."""

import json
import os
import signal
import threading

import pytest

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import rfc9162_ref as ref
import routefixtures as rf

PIN = "sha256:" + "A" * 43 + "="


@pytest.fixture(scope="module")
def keyserver(make_keyserver):
    return make_keyserver(extra={"cache_max_age": "0", "http_threads": "8"})


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-batch-")
    yield d
    anchorlib.remove_tree(d)


def servers_body(i):
    return {"servers": [{"host": f"mx{i % 5}.example.net", "port": 25, "priority": 10,
                         "weight": 1 + i, "pin": PIN}], "ttl": 600}


def run_parallel(n, fn):
    errors = []

    def one(i):
        try:
            fn(i)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors


def check_route_answer(text, dom, work):
    """A route answer's log proof (unprotected header) against the head it carries."""
    doc = json.loads(text)
    log, head = doc["header"]["log"], lf.verify_head(doc["header"]["tree_head"], dom, work)
    assert log["tree_size"] == head["size"] and log["seq"] < head["size"]
    assert json.loads(log["leaf"])["type"] == "route_set"
    assert ref.verify_inclusion(log["seq"], log["tree_size"],
                                ref.leaf_hash(log["leaf"].encode()),
                                [ref.unb64(h) for h in log["proof"]],
                                ref.unb64(head["root_hash"])), "inclusion proof refused"
    return log["seq"]


def gap_free(client, dom):
    es = lf.entries(client, dom)
    assert [e["seq"] for e in es] == list(range(len(es)))
    return es


def audit_ok(ks, dom, work):
    r = lf.ctl(ks, "audit", dom.name, "--json", cwd=work)
    doc = json.loads(r.out) if r.out.strip().startswith("{") else None
    assert r.rc == 0 and doc is not None and doc["problems"] == [], r.out + r.err


def test_refused_changes_in_a_batch_are_undone_alone(keyserver, work, operator_token):
    dom = kf.register_domain(keyserver, work, kf.new_domain_name("bt1"), operator_token.token)
    admin = keyserver.client()
    # x -> y exists: y -> x would close a loop, refused whenever it runs.
    r = rf.route_put(admin, f"x@{dom.name}", {"alias": f"y@{dom.name}", "ttl": 600},
                     token=dom.admin_token)
    assert r.status == 200, r.body
    start = len(gap_free(admin, dom))
    accepted, lock = [], threading.Lock()

    def writer(k):
        c = keyserver.client()
        conn = c.connection()
        for j in range(6):
            i = k * 6 + j
            if j % 3 == 1:
                r = rf.route_put(c, f"y@{dom.name}", {"alias": f"x@{dom.name}", "ttl": 600},
                                 token=dom.admin_token)
                assert r.status == 400 and r.error_code() == "route_loop", (r.status, r.body)
            elif j % 3 == 2:
                r = c.delete(rf.route_path(f"none{i}@{dom.name}"), token=dom.admin_token,
                             conn=conn)
                assert r.status == 404 and r.error_code() == "no_route", (r.status, r.body)
            else:
                r = c.put(rf.route_path(f"r{i}@{dom.name}"), servers_body(i),
                          token=dom.admin_token, conn=conn)
                assert r.status == 200, (r.status, r.body)
                with lock:
                    accepted.append((f"r{i}@{dom.name}", check_route_answer(r.text, dom, work)))
        conn.close()

    run_parallel(6, writer)
    es = gap_free(admin, dom)
    assert len(es) == start + len(accepted) == start + 12
    assert all(e["type"] == "route_set" for e in es[start:])
    names = {e["name"]: e["seq"] for e in es[start:]}
    assert names == dict(accepted)
    assert lf.verify_head(lf.head(admin, dom), dom, work)["size"] == len(es)
    r = rf.route_get(admin, f"y@{dom.name}")
    assert r.status == 404, (r.status, r.body)  # no route of its own was ever stored
    audit_ok(keyserver, dom, work)


def kill9_with_signer(ks):
    """SIGKILL the signer process (the route changes' batches run there) and then the key
    server: no process gets to finish a batch it holds."""
    pid = ks.proc.pid
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        children = [int(c) for c in f.read().split()]
    assert children, "the key server has no signer process"
    for c in children:
        os.kill(c, signal.SIGKILL)
    kf.kill9(ks)


def test_kill9_during_route_changes(make_keyserver, operator_token, tmp_path, pg, db):
    ks = make_keyserver(extra={"cache_max_age": "0", "http_threads": "8"})
    dom = kf.register_domain(ks, tmp_path, kf.new_domain_name("bt2"), operator_token.token)
    n = 36
    acked, lock = {}, threading.Lock()
    killed = threading.Event()

    def writer(k):
        c = ks.client()
        for i in range(k, n, 6):
            if killed.is_set():
                return
            try:
                r = c.put(rf.route_path(f"k{i}@{dom.name}"), servers_body(i),
                          token=dom.admin_token)
            except Exception:  # the server died under us: this one was not acknowledged
                return
            if r.status == 200:
                with lock:
                    acked[f"k{i}@{dom.name}"] = check_route_answer(r.text, dom, tmp_path)
                    if len(acked) == n // 3:  # kill while the other writers are mid-flight
                        killed.set()
                        kill9_with_signer(ks)

    run_parallel(6, writer)
    assert killed.is_set() and len(acked) >= n // 3

    ks.start()
    c = ks.client()
    # A read of the newest head signs whatever the dead server left unsigned.
    head = lf.verify_head(lf.head(c, dom), dom, tmp_path)
    es = gap_free(c, dom)
    assert head["size"] == len(es)
    logged = {e["name"]: e["seq"] for e in es if e["type"] == "route_set"}
    for name, seq in acked.items():
        assert logged.get(name) == seq, f"acknowledged route of {name} is not in the log"
        r = rf.route_get(c, name)
        assert r.status == 200, (r.status, r.body)
        assert check_route_answer(r.text, dom, tmp_path) == seq
    # Nothing half-written: every route row has its entry and every entry its row.
    did = pg.psql(f"SELECT id FROM domains WHERE name = '{dom.name}'",
                  dbname=kf.dbname_of(db)).strip()
    rows = pg.psql(f"SELECT name, coalesce(log_seq::text, '') FROM routes "
                   f"WHERE domain_id = {did}", dbname=kf.dbname_of(db))
    stored = {name: int(seq) for name, seq in
              (line.split("|") for line in rows.strip().splitlines() if line)}
    assert stored == logged, (stored, logged)
    audit_ok(ks, dom, tmp_path)
