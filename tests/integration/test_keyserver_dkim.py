"""Key server: the DKIM key of a selector, GET /v1/domains/{domain}/dkim/{selector}
(PROTOCOL.md §3.5, §8.1's selector rule, §9 revocation, §10 log members)."""

import pytest

import ksfixtures as kf
import logfixtures as lf


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("dkim")


@pytest.fixture(scope="module")
def dom(keyserver, operator_token, base):
    return kf.register_domain(keyserver, base, kf.new_domain_name("dkim"), operator_token.token)


def issue(client, dom, host, purpose="signing", alg="ed25519"):
    _, csr = kf.make_csr(host=host, alg=alg)
    r = client.post(f"/v1/domains/{dom.name}/servers", {"csr": csr, "purpose": purpose},
                    token=dom.admin_token)
    assert r.status == 201, r.body
    return r.json()


def revoke(client, dom, kid, reason="keyCompromise"):
    r = client.post(f"/v1/keys/{kid}/revoke", {"reason": reason}, token=dom.admin_token)
    assert r.status == 200, r.body
    return r.json()


def dkim(client, dom, selector, **kw):
    return client.get(f"/v1/domains/{dom.name}/dkim/{selector}", **kw)


def check_answer(doc, dom, work, key_id, host, status="current"):
    """The certificate object as other lookups give it: verified log member and head."""
    assert doc["key_id"] == key_id, doc
    assert doc["kind"] == "server" and doc["purpose"] == "signing" and doc["name"] == host
    assert doc["status"] == status
    assert "chain" not in doc and "log_seq" not in doc and "_domain_id" not in doc
    assert doc["fingerprint"] == kf.cert_fingerprint(doc["certificate"])
    v = kf.verify_chain(work, dom.root_pem, dom.issuer_pem, doc["certificate"])
    assert v.returncode == 0, v.stderr_text
    head = lf.verify_head(doc["tree_head"], dom, work)
    leaf = lf.check_cert_log(doc, head)
    assert leaf["purpose"] == "signing"


def test_selectors_map_to_signing_certificates(client, dom, tmp_path):
    apex = issue(client, dom, dom.name)
    s1 = issue(client, dom, f"s2026.{dom.name}", alg="rsa2048")
    issue(client, dom, f"mx.{dom.name}", purpose="mta")

    r = dkim(client, dom, "anchor")
    assert r.status == 200, r.body
    check_answer(r.json(), dom, tmp_path, apex["key_id"], dom.name)

    # Selectors compare without regard to case, like the DNS names they stand for.
    for sel in ("s2026", "S2026"):
        r = dkim(client, dom, sel)
        assert r.status == 200, (sel, r.body)
        check_answer(r.json(), dom, tmp_path, s1["key_id"], f"s2026.{dom.name}")
        assert r.json()["algorithm"].startswith("rsa")

    # An mta certificate is no DKIM key; unknown selectors are not found.
    for sel in ("mx", "s2025", "anchor2"):
        r = dkim(client, dom, sel)
        assert r.status == 404 and r.error_code() == "not_found", (sel, r.body)


def test_supersede_and_revocation(client, dom, tmp_path):
    host = f"rot.{dom.name}"
    first = issue(client, dom, host)
    r = dkim(client, dom, "rot")
    assert r.status == 200 and r.json()["key_id"] == first["key_id"]

    # A new certificate supersedes the old one: the current one is served.
    second = issue(client, dom, host)
    r = dkim(client, dom, "rot")
    assert r.status == 200 and r.json()["key_id"] == second["key_id"], r.body
    etag = r.headers.get("etag")

    # Revoking it leaves no current key: the revoked one is served, marked, so that a
    # verifier sees the revocation rather than a missing key.  The cache does not hide it.
    revoke(client, dom, second["key_id"])
    r = dkim(client, dom, "rot")
    assert r.status == 200, r.body
    doc = r.json()
    check_answer(doc, dom, tmp_path, second["key_id"], host, status="revoked")
    assert doc["revocation"]["reason"] == "keyCompromise"
    assert etag is None or r.headers.get("etag") != etag

    # A fresh issuance is preferred over the revoked one.
    third = issue(client, dom, host)
    r = dkim(client, dom, "rot")
    assert r.status == 200 and r.json()["key_id"] == third["key_id"]
    assert r.json()["status"] == "current"


def test_revoked_apex_key(client, operator_token, keyserver, base, tmp_path):
    d = kf.register_domain(keyserver, base, kf.new_domain_name("dkimrev"), operator_token.token)
    obj = issue(client, d, d.name)
    revoke(client, d, obj["key_id"], reason="cessationOfOperation")
    r = dkim(client, d, "anchor")
    assert r.status == 200, r.body
    check_answer(r.json(), d, tmp_path, obj["key_id"], d.name, status="revoked")
    assert r.json()["revocation"]["reason"] == "cessationOfOperation"


def test_superseded_only_is_not_found(client, pg, db, operator_token, keyserver, base):
    """A key that was superseded (not revoked) with no current one left is gone: 404."""
    d = kf.register_domain(keyserver, base, kf.new_domain_name("dkimsup"), operator_token.token)
    obj = issue(client, d, f"old.{d.name}")
    pg.psql(f"UPDATE certificates SET status = 'superseded', superseded_at = now() "
            f"WHERE key_id = '{obj['key_id']}'", dbname=kf.dbname_of(db))
    r = client.get(f"/v1/domains/{d.name}/dkim/old")
    assert r.status == 404 and r.error_code() == "not_found", r.body


def test_bad_requests(client, dom):
    for sel in ("bad!sel", "a.b", "-x", "x-", "x" * 64, "s%20x", "s_x"):
        r = dkim(client, dom, sel)
        assert r.status == 400 and r.error_code() == "bad_name", (sel, r.status, r.body)
    # a NUL never reaches the handler: the HTTP layer's gate refuses it (PROTOCOL §1.2)
    r = dkim(client, dom, "%00")
    assert r.status == 400 and r.error_code() == "nul_byte", r.body
    r = client.get("/v1/domains/nope-unknown.test/dkim/anchor")
    assert r.status == 404 and r.error_code() == "unknown_domain", r.body
    r = client.get("/v1/domains/bad..name/dkim/anchor")
    assert r.status == 400, r.body
    r = client.post(f"/v1/domains/{dom.name}/dkim/anchor", {})
    assert r.status == 405 and "GET" in r.headers.get("allow", ""), r.body
    # Public: no token needed, and a token changes nothing.
    assert dkim(client, dom, "anchor").status == dkim(client, dom, "anchor",
                                                       token=dom.admin_token).status
