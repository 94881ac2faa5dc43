"""Key server core: the store goes away and comes back (PROTOCOL.md §1.1 `unavailable`,
§6 /healthz).  With stale_if_error = 0 the key server answers 503 with a JSON error
while PostgreSQL is down, cached lookups included, and recovers by itself, without a
restart, once it is back (test_keyserver_stale.py has the stale answers of the default).

This module stops the session's PostgreSQL cluster; it always starts it again."""

import time

import pytest

import ksfixtures as kf


def _wait(fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(0.1)


@pytest.fixture
def cluster_restarted(pg):
    """Yields pg; whatever happens, the cluster is running again afterwards."""
    try:
        yield pg
    finally:
        pg.start()


def test_database_restart(make_keyserver, operator_token, tmp_path, cluster_restarted):
    pg = cluster_restarted
    keyserver = make_keyserver(extra={"stale_if_error": "0"})
    c = keyserver.client()
    b = make_keyserver().client()  # a second node: its cache depends on the change feed
    d = kf.register_domain(keyserver, tmp_path, kf.new_domain_name("pgdown"),
                           operator_token.token)
    obj, _ = kf.enroll_new(c, d, f"alice@{d.name}")
    addr_path = f"/v1/addresses/alice@{d.name}"
    key_path = f"/v1/keys/{obj['key_id']}"
    assert c.get(addr_path).status == 200
    assert c.get(addr_path).status == 200  # cached now
    pid, port = keyserver.proc.pid, keyserver.port
    token = kf.issue_token(c, d, f"bob@{d.name}")

    pg.stop()

    r = c.get("/healthz")
    assert r.status == 503, (r.status, r.body)
    assert isinstance(r.json().get("error"), str) and r.error_code()
    r = c.get(key_path)  # never fetched before: no cached answer can hide the outage
    assert r.status == 503, (r.status, r.body)
    assert r.error_code() == "unavailable"
    # A cached answer must not outlive the loss of the change feed for long.
    r = _wait(lambda: (lambda x: x if x.status == 503 else None)(c.get(addr_path)), 3.0)
    assert r is not None, "the address lookup kept answering from the cache with no database"
    assert r.error_code() == "unavailable"
    r = kf.enroll(c, d.name, token, kf.make_csr(f"bob@{d.name}")[1])
    assert r.status == 503 and r.error_code() == "unavailable", (r.status, r.body)
    assert r.headers.get("x-request-id")

    pg.start()

    ok = _wait(lambda: c.get("/healthz").status == 200, 15.0)
    assert ok, "/healthz did not recover after the database came back"
    assert c.get("/healthz").json() == {"status": "ok"}
    r = _wait(lambda: (lambda x: x if x.status == 200 else None)(c.get(key_path)), 10.0)
    assert r is not None and r.json()["key_id"] == obj["key_id"]
    r = c.get(addr_path)
    assert r.status == 200 and r.json()["certificates"][0]["key_id"] == obj["key_id"]
    # Writes work again, and the enrollment refused during the outage left the token unused.
    r = kf.enroll(c, d.name, token, kf.make_csr(f"bob@{d.name}")[1])
    assert r.status == 201, r.body
    assert keyserver.running() and keyserver.proc.pid == pid and keyserver.port == port, \
        "the key server recovered without a restart"
    # Node B caches again (its change listener is back) and its cache is retired by a
    # change made through node A.
    assert _wait(lambda: b.get(addr_path).status == 200, 5.0)

    def b_caches():
        hits = kf.metric(b, "anchor_keyserver_cache_hits_total")
        b.get(addr_path)
        return kf.metric(b, "anchor_keyserver_cache_hits_total") > hits
    assert _wait(b_caches, 5.0), "node B no longer answers from its cache"
    new, _ = kf.enroll_new(c, d, f"alice@{d.name}")
    assert _wait(lambda: b.get(addr_path).json()["certificates"][0]["key_id"] ==
                 new["key_id"], 1.0), "node B kept a stale answer after the reconnect"
