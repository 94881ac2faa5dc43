"""Key server core, operations: rate limiting, HTTP caching, metrics, durability of an
acknowledged enrollment, and two key-server nodes sharing one database
(PROTOCOL.md §4, §6)."""

import secrets
import time

import pytest

import anchorlib
import ksfixtures as kf


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("ops")


@pytest.fixture(scope="module")
def dom(keyserver, operator_token, base):
    return kf.register_domain(keyserver, base, kf.new_domain_name("ops"), operator_token.token)


# --------------------------------------------------------------------------
# Rate limiting

@pytest.mark.serial  # counts what a token bucket lets through in the elapsed time
def test_rate_limit(make_keyserver):
    ks = make_keyserver(extra={"rate_limit": "2", "rate_burst": "3"})
    c = ks.client()
    results = [c.get("/v1/domains/not-hosted.test") for _ in range(12)]
    codes = [r.status for r in results]
    assert codes[0] == 404, codes  # the burst lets the first requests through
    assert 429 in codes, codes
    assert codes.count(404) <= 3 + 2, codes  # burst + what 12 quick requests may refill
    limited = next(r for r in results if r.status == 429)
    assert limited.error_code() == "rate_limited"
    retry = limited.headers.get("retry-after")
    assert retry is not None and retry.isdigit() and int(retry) >= 1, limited.headers
    assert int(retry) <= 5, "2 requests/s refill: a retry within a few seconds"

    # After waiting as told, requests go through again.
    time.sleep(int(retry) + 0.1)
    r = c.get("/v1/domains/not-hosted.test")
    assert r.status == 404 and r.error_code() == "unknown_domain", r.body
    time.sleep(1.6)  # refill before reading /metrics, which is limited like the rest
    assert kf.metric(c, "anchor_http_rate_limited_total") >= codes.count(429)


def test_rate_limit_disabled_by_default_limits(client):
    """The default limit (200/s, burst 400) does not refuse a modest burst."""
    codes = [client.get("/healthz").status for _ in range(30)]
    assert codes == [200] * 30


# --------------------------------------------------------------------------
# HTTP caching

def test_etag_and_cache_control(client, dom):
    addr = f"alice@{dom.name}"
    obj, _ = kf.enroll_new(client, dom, addr)
    paths = [f"/v1/addresses/{addr}", f"/v1/addresses/{addr}/history",
             f"/v1/keys/{obj['key_id']}", f"/v1/keys/{obj['key_id']}/certificate.pem",
             f"/v1/fingerprints/{obj['fingerprint']}", f"/v1/domains/{dom.name}",
             f"/v1/domains/{dom.name}/root.pem"]
    for path in paths:
        r = client.get(path)
        assert r.status == 200, (path, r.body)
        etag = r.headers.get("etag")
        assert etag and etag.startswith('"') and etag.endswith('"'), (path, r.headers)
        cc = r.headers.get("cache-control", "")
        assert "public" in cc and "max-age=300" in cc, (path, cc)
        # Same content, same tag (also when answered from the cache).
        r2 = client.get(path)
        assert r2.status == 200 and r2.headers.get("etag") == etag and r2.body == r.body
        # Conditional request.
        r3 = client.get(path, headers={"If-None-Match": etag})
        assert r3.status == 304, (path, r3.status)
        assert r3.body == b""
        assert r3.headers.get("etag") == etag
        # A tag of something else does not match.
        r4 = client.get(path, headers={"If-None-Match": '"0000000000000000"'})
        assert r4.status == 200 and r4.body == r.body


def test_etag_changes_after_reenrollment(client, dom):
    addr = f"bob@{dom.name}"
    old, _ = kf.enroll_new(client, dom, addr)
    paths = [f"/v1/addresses/{addr}", f"/v1/addresses/{addr}/history",
             f"/v1/keys/{old['key_id']}"]
    tags = {}
    for p in paths:
        r = client.get(p)
        assert r.status == 200
        tags[p] = r.headers["etag"]
        assert client.get(p, headers={"If-None-Match": tags[p]}).status == 304
    new, _ = kf.enroll_new(client, dom, addr)
    for p in paths:
        r = client.get(p, headers={"If-None-Match": tags[p]})
        assert r.status == 200, (p, "the cached answer must be invalidated")
        assert r.headers["etag"] != tags[p]
    doc = client.get(paths[0]).json()
    assert [c["key_id"] for c in doc["certificates"]] == [new["key_id"]]
    assert client.get(paths[2]).json()["status"] == "superseded"


def test_policy_change_invalidates_cache(client, dom, keyserver, base):
    addr = f"carol@{dom.name}"
    kf.enroll_new(client, dom, addr)
    corp, _ = kf.enroll_new(client, dom, f"corp@{dom.name}", alg="p256")  # it can encrypt
    p = f"/v1/addresses/{addr}"
    first = client.get(p)
    assert first.json()["encryption"]["address"] == addr
    client.get(p)  # now surely cached
    try:
        r = client.put(f"/v1/domains/{dom.name}/policy",
                       {"policy": "corporate", "corporate_address": f"corp@{dom.name}"},
                       token=dom.admin_token)
        assert r.status == 200, r.body
        r = client.get(p, headers={"If-None-Match": first.headers["etag"]})
        assert r.status == 200
        assert r.json()["encryption"]["address"] == f"corp@{dom.name}"
        assert r.json()["encryption"]["certificates"][0]["key_id"] == corp["key_id"]
        d = client.get(f"/v1/domains/{dom.name}").json()
        assert d["policy"] == "corporate"
    finally:
        client.put(f"/v1/domains/{dom.name}/policy", {"policy": "isp"}, token=dom.admin_token)


def test_cache_max_age_setting(make_keyserver, operator_token, tmp_path):
    ks = make_keyserver(extra={"cache_max_age": "17s"})
    d = kf.register_domain(ks, tmp_path, kf.new_domain_name("maxage"), operator_token.token)
    r = ks.client().get(f"/v1/domains/{d.name}")
    assert r.status == 200
    assert "max-age=17" in r.headers.get("cache-control", ""), r.headers


# --------------------------------------------------------------------------
# Metrics

def test_enrollment_metric(client, dom):
    before = kf.metric(client, "anchor_keyserver_enrollments_total")
    kf.enroll_new(client, dom, f"dave@{dom.name}")
    assert kf.metric(client, "anchor_keyserver_enrollments_total") == before + 1
    # A refused enrollment does not count.
    token = kf.issue_token(client, dom, f"dave2@{dom.name}")
    r = kf.enroll(client, dom.name, token, kf.make_csr(f"other@{dom.name}")[1])
    assert r.status == 400
    assert kf.metric(client, "anchor_keyserver_enrollments_total") == before + 1
    text = client.get("/metrics").text
    assert 'anchor_http_requests_total{route="enroll",code="201"}' in text
    assert 'anchor_http_requests_total{route="enroll",code="400"}' in text


# --------------------------------------------------------------------------
# Durability: a 201 means committed

def test_enrollment_survives_kill9(make_keyserver, operator_token, tmp_path, pg, db):
    ks = make_keyserver()
    d = kf.register_domain(ks, tmp_path, kf.new_domain_name("dur"), operator_token.token)
    c = ks.client()
    token = kf.issue_token(c, d, f"alice@{d.name}")
    _, csr = kf.make_csr(f"alice@{d.name}")
    conn = c.connection()
    r = c.post(f"/v1/domains/{d.name}/enroll", {"token": token, "csr": csr}, conn=conn)
    kf.kill9(ks)  # immediately after the answer, no clean shutdown
    conn.close()
    assert r.status == 201, r.body
    kid = r.json()["key_id"]

    ks.start()
    c = ks.client()
    r = c.get(f"/v1/keys/{kid}")
    assert r.status == 200, r.body
    assert r.json()["status"] == "current"
    doc = c.get(f"/v1/addresses/alice@{d.name}").json()
    assert [x["key_id"] for x in doc["certificates"]] == [kid]
    assert kf.token_used_at(pg, db, token) != ""
    # The issuer key survived too: the server still issues for the domain.
    kf.enroll_new(c, d, f"bob@{d.name}")


# --------------------------------------------------------------------------
# Two nodes, one database

def test_two_nodes_share_state_and_invalidate(keyserver, make_keyserver, dom):
    a = keyserver.client()
    node_b = make_keyserver()
    b = node_b.client()
    addr = f"multi@{dom.name}"

    r = b.get(f"/v1/addresses/{addr}")
    assert r.status == 404 and r.error_code() == "not_found"
    first, _ = kf.enroll_new(a, dom, addr)

    def b_current():
        r = b.get(f"/v1/addresses/{addr}")
        return r.status == 200 and [x["key_id"] for x in r.json()["certificates"]]

    assert kf.poll(b_current, timeout=1.0) == [first["key_id"]]
    assert b.get(f"/v1/keys/{first['key_id']}").status == 200

    # B answers from its cache now ...
    hits = kf.metric(b, "anchor_keyserver_cache_hits_total")
    etag_b = b.get(f"/v1/addresses/{addr}").headers["etag"]
    b.get(f"/v1/addresses/{addr}")
    assert kf.metric(b, "anchor_keyserver_cache_hits_total") > hits, \
        "node B should be serving the address from its cache"

    # ... and a re-enrollment through A retires that cached answer on B.
    second, _ = kf.enroll_new(a, dom, addr)
    t0 = time.monotonic()
    got = kf.poll(lambda: b_current() == [second["key_id"]], timeout=1.0)
    assert got, f"node B still answers {b_current()} {time.monotonic() - t0:.2f}s later"
    r = b.get(f"/v1/addresses/{addr}", headers={"If-None-Match": etag_b})
    assert r.status == 200 and r.headers["etag"] != etag_b
    r = b.get(f"/v1/keys/{first['key_id']}")
    assert r.json()["status"] == "superseded"



def _write_through_second_node(keyserver, node_b, dom):
    a, b = keyserver.client(), node_b.client()
    addr = f"via-b-{node_b.port}@{dom.name}"
    first, _ = kf.enroll_new(a, dom, addr)
    assert a.get(f"/v1/addresses/{addr}").status == 200
    a.get(f"/v1/addresses/{addr}")  # cached on A
    second, _ = kf.enroll_new(b, dom, addr)
    assert kf.poll(lambda: [x["key_id"] for x in a.get(f"/v1/addresses/{addr}").json()
                            ["certificates"]] == [second["key_id"]], timeout=1.0)
    assert a.get(f"/v1/keys/{first['key_id']}").json()["status"] == "superseded"


def test_two_nodes_write_through_either(keyserver, make_keyserver, dom):
    """DESIGN.md §7: key-server nodes are stateless.  A domain registered through node A
    enrolls through node B: the issuer key is sealed in the database under the KEK that
    both nodes hold; A's cache is retired by B's writes just as B's is by A's."""
    node_b = make_keyserver()
    _write_through_second_node(keyserver, node_b, dom)


def test_node_with_another_kek_cannot_issue(keyserver, make_keyserver, pg, db, dom, tmp_path):
    """A node whose issuer_kek_file differs cannot unseal the issuer keys: it refuses to
    issue (500, logged) and changes nothing, rather than issuing with anything else.  Its
    signer cannot seal an enrollment token either (the seals' key derives from the KEK),
    so it refuses to make one."""
    node_c = make_keyserver(extra={"issuer_kek_file": str(anchorlib.make_kek(tmp_path / "other.kek"))})
    c = node_c.client()
    addr = f"kek-{secrets.token_hex(3)}@{dom.name}"
    before = kf.db_snapshot(pg, db)
    r = c.post(f"/v1/domains/{dom.name}/tokens", {"address": addr}, token=dom.admin_token)
    assert r.status == 500, (r.status, r.body)
    assert kf.db_snapshot(pg, db) == before
    token = kf.issue_token(keyserver.client(), dom, addr)
    _, csr = kf.make_csr(addr)
    r = c.post(f"/v1/domains/{dom.name}/enroll", {"token": token, "csr": csr})
    assert r.status == 500, (r.status, r.body)
    assert "cannot be unsealed" in node_c.stderr()
    # The token is still good on a node with the right key.
    r = keyserver.client().post(f"/v1/domains/{dom.name}/enroll", {"token": token, "csr": csr})
    assert r.status == 201, (r.status, r.body)
