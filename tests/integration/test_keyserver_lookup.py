"""Key server core: public lookups, encryption policies and several domains on one
server (PROTOCOL.md §3, §5.2)."""

import re
from urllib.parse import quote

import pytest

import ksfixtures as kf


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("lookup")


@pytest.fixture(scope="module")
def dom(keyserver, operator_token, base):
    return kf.register_domain(keyserver, base, kf.new_domain_name("look"), operator_token.token)


# --------------------------------------------------------------------------
# 5. Lookups

def test_lookup_by_key_id_and_fingerprint(client, dom):
    obj, _ = kf.enroll_new(client, dom, f"alice@{dom.name}")
    kid, fpr = obj["key_id"], obj["fingerprint"]
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", fpr), fpr
    assert fpr == kf.cert_fingerprint(obj["certificate"])

    r = client.get(f"/v1/keys/{kid}")
    assert r.status == 200, r.body
    got = r.json()
    assert got["key_id"] == kid and got["name"] == f"alice@{dom.name}"
    assert got["certificate"] == obj["certificate"] and got["status"] == "current"
    assert "chain" not in got

    r = client.get(f"/v1/keys/{kid}/certificate.pem")
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/x-pem-file")
    assert r.text.strip() == obj["certificate"].strip()

    # Key ids are compared as UUIDs: upper case finds the same key.
    r = client.get(f"/v1/keys/{kid.upper()}")
    assert r.status == 200 and r.json()["key_id"] == kid

    for f in (fpr, "sha256:" + fpr[7:].upper()):
        r = client.get(f"/v1/fingerprints/{f}")
        assert r.status == 200, (f, r.body)
        assert r.json()["key_id"] == kid

    # Unknown but well-formed ones.
    r = client.get("/v1/keys/00000000-0000-4000-8000-000000000000")
    assert r.status == 404 and r.error_code() == "not_found"
    r = client.get("/v1/keys/00000000-0000-4000-8000-000000000000/certificate.pem")
    assert r.status == 404 and r.error_code() == "not_found"
    r = client.get("/v1/fingerprints/sha256:" + "ab" * 32)
    assert r.status == 404 and r.error_code() == "not_found"


def test_lookup_address(client, dom):
    addr = f"erin@{dom.name}"
    obj, _ = kf.enroll_new(client, dom, addr, alg="p256")  # a key that can encrypt
    # Addresses are compared in lowercase.
    for asked in (addr, addr.upper()):
        r = client.get(f"/v1/addresses/{asked}")
        assert r.status == 200, r.body
        doc = r.json()
        assert doc["address"] == addr and doc["domain"] == dom.name
        assert doc["policy"] == "isp"
        assert [c["key_id"] for c in doc["certificates"]] == [obj["key_id"]]
        assert doc["encryption"]["address"] == addr
        assert doc["encryption"]["reason"] == "isp"
        assert [c["key_id"] for c in doc["encryption"]["certificates"]] == [obj["key_id"]]


def test_domain_object_and_pems(client, dom):
    r = client.get(f"/v1/domains/{dom.name}")
    assert r.status == 200, r.body
    doc = r.json()
    assert doc["domain"] == dom.name
    assert doc["root"].strip() == dom.root_pem.strip()
    assert doc["issuer"].strip() == dom.issuer_pem.strip()
    assert doc["pins"] == [kf.spki_pin(dom.root_pem)] == [dom.pin]
    assert doc["policy"] == "isp" and doc["mode"] == "enforce"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["updated"])
    for part, want in (("root.pem", dom.root_pem), ("issuer.pem", dom.issuer_pem)):
        r = client.get(f"/v1/domains/{dom.name}/{part}")
        assert r.status == 200
        assert r.headers["content-type"].startswith("application/x-pem-file")
        assert r.text.strip() == want.strip()


def test_domain_names_in_urls_compare_in_lowercase(client, dom):
    """PROTOCOL.md §1: names are compared in lowercase (addresses already are)."""
    r = client.get(f"/v1/domains/{dom.name.upper()}")
    assert r.status == 200, (r.status, r.body)
    assert r.json()["domain"] == dom.name
    r = client.get(f"/v1/domains/{dom.name.upper()}/root.pem")
    assert r.status == 200, (r.status, r.body)
    assert r.text.strip() == dom.root_pem.strip()


def test_no_listing(client, dom):
    obj, _ = kf.enroll_new(client, dom, f"frank@{dom.name}")
    for path in ("/v1/addresses/", "/v1/addresses", "/v1/keys/", "/v1/keys",
                 "/v1/fingerprints/", "/v1/domains/", "/v1/domains",
                 f"/v1/addresses/{quote('*@' + dom.name)}", f"/v1/addresses/%25@{dom.name}",
                 f"/v1/addresses/@{dom.name}"):
        r = client.get(path)
        assert 400 <= r.status < 500, (path, r.status, r.body)
        r.error_code()
        assert b"frank@" not in r.body and obj["key_id"].encode() not in r.body, path
    # The servers list is for the domain admin only.
    r = client.get(f"/v1/domains/{dom.name}/servers")
    assert r.status == 401 and r.error_code() == "unauthorized"


def test_unknown_address_and_domain(client, dom):
    r = client.get(f"/v1/addresses/nobody@{dom.name}")
    assert r.status == 404 and r.error_code() == "not_found"
    r = client.get(f"/v1/addresses/nobody@{dom.name}/history")
    assert r.status == 404 and r.error_code() == "not_found"
    r = client.get("/v1/addresses/alice@not-hosted.test")
    assert r.status == 404 and r.error_code() == "unknown_domain"
    r = client.get("/v1/domains/not-hosted.test")
    assert r.status == 404 and r.error_code() == "unknown_domain"
    r = client.get("/v1/domains/not-hosted.test/root.pem")
    assert r.status == 404 and r.error_code() == "unknown_domain"


# --------------------------------------------------------------------------
# 6. Encryption policies

def _enc(client, addr):
    r = client.get(f"/v1/addresses/{addr}")
    assert r.status == 200, (addr, r.status, r.body)
    doc = r.json()
    return (doc["policy"], doc["encryption"]["address"],
            [c["key_id"] for c in doc["encryption"]["certificates"]],
            [c["key_id"] for c in doc["certificates"]])


def test_policy_corporate_via_anchorctl_and_api(keyserver, client, operator_token, base):
    d = kf.register_domain(keyserver, base, kf.new_domain_name("corp"), operator_token.token)
    # P-256: keys a sender can encrypt to (an Ed25519 one is never offered, §3.3).
    alice, _ = kf.enroll_new(client, d, f"alice@{d.name}", alg="p256")
    corp, _ = kf.enroll_new(client, d, f"escrow@{d.name}", alg="p256")
    assert _enc(client, f"alice@{d.name}") == ("isp", f"alice@{d.name}", [alice["key_id"]],
                                              [alice["key_id"]])

    r = kf.ctl_ok(keyserver, "policy", "set", d.name, "corporate", "--corporate-address",
                  f"escrow@{d.name}", cwd=base)
    assert "corporate" in r.out
    assert _enc(client, f"alice@{d.name}") == ("corporate", f"escrow@{d.name}",
                                              [corp["key_id"]], [alice["key_id"]])
    # An address without a key of its own still gets the corporate key for encryption.
    assert _enc(client, f"nokey@{d.name}") == ("corporate", f"escrow@{d.name}",
                                              [corp["key_id"]], [])
    assert client.get(f"/v1/domains/{d.name}").json()["policy"] == "corporate"

    # Back to isp through the API; then corporate again through the API.
    r = client.put(f"/v1/domains/{d.name}/policy", {"policy": "isp"}, token=d.admin_token)
    assert r.status == 200, r.body
    assert r.json()["policy"] == "isp" and r.json()["domain"] == d.name
    assert _enc(client, f"alice@{d.name}")[:3] == ("isp", f"alice@{d.name}", [alice["key_id"]])
    r = client.get(f"/v1/addresses/nokey@{d.name}")
    assert r.status == 404 and r.error_code() == "not_found"

    r = client.put(f"/v1/domains/{d.name}/policy",
                   {"policy": "corporate", "corporate_address": f"ESCROW@{d.name}",
                    "mode": "testing"}, token=d.admin_token)
    assert r.status == 200, r.body
    assert r.json()["policy"] == "corporate" and r.json()["mode"] == "testing"
    assert _enc(client, f"alice@{d.name}")[1:3] == (f"escrow@{d.name}", [corp["key_id"]])

    # Refused: corporate without an address, an address of another domain, unknown words.
    for body, status, code in (
            ({"policy": "corporate"}, 400, "bad_request"),
            ({"policy": "corporate", "corporate_address": "x@other.test"}, 400,
             "address_outside_domain"),
            ({"policy": "escrow"}, 400, "bad_policy"),
            ({"mode": "loose"}, 400, "bad_policy")):
        r = client.put(f"/v1/domains/{d.name}/policy", body, token=d.admin_token)
        assert (r.status, r.error_code()) == (status, code), body
    assert client.get(f"/v1/domains/{d.name}").json()["policy"] == "corporate"


def test_policy_groups_via_anchorctl_and_api(keyserver, client, operator_token, base):
    d = kf.register_domain(keyserver, base, kf.new_domain_name("grp"), operator_token.token,
                           policy="groups")
    # P-256: keys a sender can encrypt to, so that they appear under `encryption` (§3.3).
    a = {n: kf.enroll_new(client, d, f"{n}@{d.name}", alg="p256")[0]["key_id"]
         for n in ("sales", "ann", "bert", "cleo", "ops")}

    kf.ctl_ok(keyserver, "group", "set", f"sales@{d.name}", f"ann@{d.name}", f"bert@{d.name}",
              cwd=base)
    assert _enc(client, f"ann@{d.name}") == ("groups", f"sales@{d.name}", [a["sales"]],
                                            [a["ann"]])
    assert _enc(client, f"bert@{d.name}")[1:3] == (f"sales@{d.name}", [a["sales"]])
    # Not a member: its own key.
    assert _enc(client, f"cleo@{d.name}")[1:3] == (f"cleo@{d.name}", [a["cleo"]])

    # Through the API: a second group; a member may be in only one group.
    r = client.put(f"/v1/domains/{d.name}/groups/ops@{d.name}",
                   {"members": [f"CLEO@{d.name}"]}, token=d.admin_token)
    assert r.status == 200, r.body
    assert _enc(client, f"cleo@{d.name}")[1:3] == (f"ops@{d.name}", [a["ops"]])
    r = client.put(f"/v1/domains/{d.name}/groups/ops@{d.name}",
                   {"members": [f"cleo@{d.name}", f"ann@{d.name}"]}, token=d.admin_token)
    assert r.status == 409 and r.error_code() == "conflict"
    assert _enc(client, f"ann@{d.name}")[1] == f"sales@{d.name}", "refused change kept nothing"
    r = client.put(f"/v1/domains/{d.name}/groups/ops@{d.name}",
                   {"members": ["x@other.test"]}, token=d.admin_token)
    assert r.status == 400 and r.error_code() == "address_outside_domain"
    r = client.put(f"/v1/domains/{d.name}/groups/ops@{d.name}", {"members": "cleo"},
                   token=d.admin_token)
    assert r.status == 400 and r.error_code() == "bad_request"
    assert _enc(client, f"cleo@{d.name}")[1] == f"ops@{d.name}"

    # Replacing the members of a group drops the old ones.
    r = client.put(f"/v1/domains/{d.name}/groups/sales@{d.name}",
                   {"members": [f"bert@{d.name}"]}, token=d.admin_token)
    assert r.status == 200, r.body
    assert _enc(client, f"ann@{d.name}")[1:3] == (f"ann@{d.name}", [a["ann"]])

    # Deleting a group (CLI and API).
    kf.ctl_ok(keyserver, "group", "delete", f"sales@{d.name}", cwd=base)
    assert _enc(client, f"bert@{d.name}")[1:3] == (f"bert@{d.name}", [a["bert"]])
    r = client.delete(f"/v1/domains/{d.name}/groups/ops@{d.name}", token=d.admin_token)
    assert r.status == 200, r.body
    assert _enc(client, f"cleo@{d.name}")[1:3] == (f"cleo@{d.name}", [a["cleo"]])

    # Groups only count under the groups policy.
    kf.ctl_ok(keyserver, "group", "set", f"sales@{d.name}", f"ann@{d.name}", cwd=base)
    kf.ctl_ok(keyserver, "policy", "set", d.name, "isp", cwd=base)
    assert _enc(client, f"ann@{d.name}")[:3] == ("isp", f"ann@{d.name}", [a["ann"]])


def test_policy_needs_admin_token(client, dom):
    r = client.put(f"/v1/domains/{dom.name}/policy", {"policy": "groups"})
    assert r.status == 401 and r.error_code() == "unauthorized"
    r = client.put(f"/v1/domains/{dom.name}/groups/g@{dom.name}", {"members": []},
                   token="not-a-token")
    assert r.status == 401 and r.error_code() == "unauthorized"
    assert client.get(f"/v1/domains/{dom.name}").json()["policy"] == "isp"


# --------------------------------------------------------------------------
# 8. Many domains on one server

def test_domains_are_isolated(keyserver, client, operator_token, base, pg, db, tmp_path):
    a = kf.register_domain(keyserver, base, kf.new_domain_name("iso-a"), operator_token.token)
    b = kf.register_domain(keyserver, base, kf.new_domain_name("iso-b"), operator_token.token)
    b_obj, _ = kf.enroll_new(client, b, f"bob@{b.name}")

    before = kf.db_snapshot(pg, db)
    for method, path, body in (
            ("POST", f"/v1/domains/{b.name}/tokens", {"address": f"x@{b.name}"}),
            ("GET", f"/v1/domains/{b.name}/servers", None),
            ("POST", f"/v1/domains/{b.name}/servers",
             {"csr": kf.make_csr(host=f"mx.{b.name}")[1], "purpose": "mta"}),
            ("PUT", f"/v1/domains/{b.name}/policy", {"policy": "groups"}),
            ("PUT", f"/v1/domains/{b.name}/groups/g@{b.name}", {"members": [f"bob@{b.name}"]}),
            ("DELETE", f"/v1/domains/{b.name}/groups/g@{b.name}", None)):
        r = client.request(method, path, body=body, token=a.admin_token)
        assert r.status == 403, (method, path, r.status, r.body)
        assert r.error_code() == "forbidden"
    assert kf.db_snapshot(pg, db) == before

    # A's enrollment token is unknown to B, even for a request that B would accept.
    token = kf.issue_token(client, a, f"bob@{a.name}")
    _, csr_b = kf.make_csr(f"bob@{b.name}")
    before = kf.db_snapshot(pg, db)
    r = kf.enroll(client, b.name, token, csr_b)
    assert r.status == 404 and r.error_code() == "token_unknown", r.body
    assert kf.db_snapshot(pg, db) == before
    assert kf.token_used_at(pg, db, token) == ""
    # ... and stays good for A.
    _, csr_a = kf.make_csr(f"bob@{a.name}")
    r = kf.enroll(client, a.name, token, csr_a)
    assert r.status == 201, r.body
    a_obj = r.json()

    # Each domain's certificates chain to its own root only.
    assert kf.verify_chain(tmp_path, a.root_pem, a.issuer_pem,
                           a_obj["certificate"]).returncode == 0
    assert kf.verify_chain(tmp_path, b.root_pem, b.issuer_pem,
                           b_obj["certificate"]).returncode == 0
    assert kf.verify_chain(tmp_path, b.root_pem, b.issuer_pem,
                           a_obj["certificate"]).returncode != 0
    assert kf.verify_chain(tmp_path, a.root_pem, a.issuer_pem,
                           b_obj["certificate"]).returncode != 0
    # bob@A and bob@B are different people.
    assert _enc(client, f"bob@{a.name}")[3] == [a_obj["key_id"]]
    assert _enc(client, f"bob@{b.name}")[3] == [b_obj["key_id"]]
    assert client.get(f"/v1/domains/{a.name}").json()["pins"] != \
        client.get(f"/v1/domains/{b.name}").json()["pins"]


def test_domain_registered_twice_conflicts(keyserver, client, operator_token, dom, pg, db):
    body = {"domain": dom.name, "root": dom.root_pem, "issuer": dom.issuer_pem,
            "issuer_key": (dom.dir / "issuer.key").read_text()}
    before = kf.db_snapshot(pg, db)
    r = client.post("/v1/admin/domains", body, token=operator_token.token)
    assert r.status == 409 and r.error_code() == "conflict", r.body
    assert kf.db_snapshot(pg, db) == before
