"""Revocation end to end (PROTOCOL.md §9): by the key itself, by the revocation secret,
by the domain admin.  Each time the CRL (openssl crl, openssl verify -crl_check), the
status in lookups and the feed all show it, and the relying party's lookup refuses the
key; and the bad requests are refused with their precise code, changing nothing."""

import json
import os
import re
import stat

import pytest

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import routefixtures as rf


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-rv-")
    yield d
    anchorlib.remove_tree(d)


@pytest.fixture(scope="module")
def dom(keyserver, work, operator_token):
    return kf.register_domain(keyserver, work, kf.new_domain_name("rv"), operator_token.token)


def post_jws(client, kid, text):
    return client.post(f"/v1/keys/{kid}/revoke", text,
                       headers={"Content-Type": "application/json"})


def crl_pem(client, dom, work, tag):
    r = client.get(f"/v1/domains/{dom.name}/crl.pem")
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("application/x-pem-file")
    p = work / f"crl-{tag}.pem"
    p.write_bytes(r.body)
    return p


def crl_text(client, dom, work):
    """`openssl crl -inform DER -noout -text` of the DER CRL."""
    r = client.get(f"/v1/domains/{dom.name}/crl")
    assert r.status == 200 and r.headers["content-type"] == "application/pkix-crl", r.headers
    der = work / "crl.der"
    der.write_bytes(r.body)
    out = kf.openssl("crl", "-inform", "DER", "-in", der, "-noout", "-text", check=True)
    return out.stdout_text


def verify_with_crl(dom, work, address, crl):
    return kf.openssl("verify", "-crl_check", "-CRLfile", crl, "-CAfile", dom.dir / "root.pem",
                      "-untrusted", dom.dir / "issuer.pem", work / f"{address}.pem")


def serial_of(work, address):
    return format(kf.load_cert((work / f"{address}.pem").read_text()).serial_number, "X")


def assert_revoked_everywhere(keyserver, client, dom, work, address, kid, reason, reason_text,
                              method, crl_before):
    # The CRL: the serial with its reason, and openssl verify now refuses the certificate.
    assert verify_with_crl(dom, work, address, crl_before).returncode == 0
    text = crl_text(client, dom, work)
    serial = serial_of(work, address)
    m = re.search(rf"Serial Number: 0*{serial}\s+Revocation Date: [^\n]+\n\s+CRL entry "
                  rf"extensions:\s+X509v3 CRL Reason Code:\s+{reason_text}", text, re.I)
    assert m, f"serial {serial} with reason {reason_text} not in the CRL:\n{text}"
    crl = crl_pem(client, dom, work, kid)
    r = verify_with_crl(dom, work, address, crl)
    assert r.returncode != 0 and "certificate revoked" in r.stdout_text + r.stderr_text, \
        r.stdout_text + r.stderr_text
    # The status in every lookup.
    obj = client.get(f"/v1/keys/{kid}").json()
    assert obj["status"] == "revoked", obj
    assert obj["revocation"]["reason"] == reason and obj["revocation"]["method"] == method
    fpr = obj["fingerprint"]
    assert client.get(f"/v1/fingerprints/{fpr}").json()["status"] == "revoked"
    hist = client.get(f"/v1/addresses/{address}/history").json()["certificates"]
    assert [c["status"] for c in hist if c["key_id"] == kid] == ["revoked"]
    # No longer offered for the address.
    r = client.get(f"/v1/addresses/{address}")
    assert r.status == 404 or kid not in [c["key_id"] for c in r.json()["certificates"]]
    # The feed: a revoked entry with the key id, fingerprint and reason.
    f = lf.feed(client, dom)
    rev = [json.loads(e["leaf"]) for e in f["entries"] if e["type"] == "revoked"
           and e.get("key_id") == kid]
    assert len(rev) == 1, f["entries"]
    assert rev[0]["fingerprint"] == fpr and rev[0]["reason"] == reason
    assert rev[0]["method"] == method
    # anchorctl, as a relying party: verified, shown revoked, never offered.
    r = lf.ctl(keyserver, "lookup", "key", kid, cwd=work)
    assert r.rc == 0, r.err
    assert re.search(r"status:\s+revoked", r.out) and "REVOKED" in r.out, r.out
    assert f"reason {reason}" in r.out and f"by {method}" in r.out
    assert re.search(r"^log: included in head of size \d+ \(verified\)$", r.out, re.M), r.out
    r = lf.ctl(keyserver, "lookup", "address", address, "--pem", cwd=work)
    assert "BEGIN CERTIFICATE" not in r.out
    return obj


def test_revoke_by_key_signed_request(keyserver, client, dom, work):
    addr = f"alice@{dom.name}"
    kid, _, _ = lf.enroll_cli(keyserver, client, dom, addr, work)
    crl0 = crl_pem(client, dom, work, "0-alice")
    r = lf.ctl_ok(keyserver, "key", "revoke", kid, "--key", work / f"{addr}.key",
                  "--reason", "keyCompromise", cwd=work)
    assert re.search(r"^status:\s+revoked$", r.out, re.M) and "method:   key" in r.out, r.out
    assert_revoked_everywhere(keyserver, client, dom, work, addr, kid, "keyCompromise",
                              "Key Compromise", "key", crl0)


def test_revoke_with_a_request_signed_in_advance(keyserver, client, dom, work, pg, db):
    """--sign-only makes the request offline (no server needed with the chain file);
    --request sends it later; sending it again is a replay (409), changing nothing."""
    addr = f"bob@{dom.name}"
    kid, _, _ = lf.enroll_cli(keyserver, client, dom, addr, work)
    crl0 = crl_pem(client, dom, work, "0-bob")
    r = anchorlib.anchorctl("key", "revoke", kid, "--key", work / f"{addr}.key",
                            "--reason", "superseded", "--sign-only", cwd=work)
    assert r.rc == 0, r.err
    req = work / "bob.revocation"
    req.write_text(r.out)
    doc, header, payload = rf.jws_parts(r.out)
    assert payload == {"type": "anchor-revoke", "key_id": kid, "reason": "superseded"}
    assert header["typ"] == "anchor-revoke+jws" and len(header["x5c"]) == 3
    # Still current: signing sent nothing.
    assert client.get(f"/v1/keys/{kid}").json()["status"] == "current"
    lf.ctl_ok(keyserver, "key", "revoke", "--request", req, cwd=work)
    assert_revoked_everywhere(keyserver, client, dom, work, addr, kid, "superseded",
                              "Superseded", "key", crl0)
    before = lf.tables_digest(pg, db)
    r = lf.ctl(keyserver, "key", "revoke", "--request", req, cwd=work)
    assert r.rc == 1 and "already_revoked" in r.err, r.err
    r = post_jws(client, kid, req.read_text())
    assert r.status == 409 and r.error_code() == "already_revoked"
    assert lf.tables_digest(pg, db) == before


def test_revoke_by_secret(keyserver, client, dom, work, pg, db):
    addr = f"carol@{dom.name}"
    kid, _, enrolled = lf.enroll_cli(keyserver, client, dom, addr, work)
    secret_file = work / f"{addr}.revoke"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) == 43 and secret not in enrolled.out and secret not in enrolled.err
    assert f"./{addr}.revoke (0600)" in enrolled.out
    # The key is lost: only the secret is left.
    (work / f"{addr}.key").unlink()
    crl0 = crl_pem(client, dom, work, "0-carol")

    # A wrong secret: 403 wrong_secret, nothing changed.
    before = lf.tables_digest(pg, db)
    wrong = work / "wrong.revoke"
    wrong.write_text(kf.anchorlib.make_token().token + "\n")
    r = lf.ctl(keyserver, "key", "revoke", kid, "--secret-file", wrong, cwd=work)
    assert r.rc == 1 and r.err.startswith("anchorctl: wrong_secret:"), r.err
    r = client.post(f"/v1/keys/{kid}/revoke", {"secret": "x" * 43})
    assert r.status == 403 and r.error_code() == "wrong_secret"
    assert lf.tables_digest(pg, db) == before
    assert client.get(f"/v1/keys/{kid}").json()["status"] == "current"

    r = lf.ctl_ok(keyserver, "key", "revoke", kid, "--secret-file", secret_file,
                  "--reason", "affiliationChanged", cwd=work)
    assert "method:   secret" in r.out
    assert_revoked_everywhere(keyserver, client, dom, work, addr, kid, "affiliationChanged",
                              "Affiliation Changed", "secret", crl0)


def test_revoke_by_admin(keyserver, client, dom, work):
    addr = f"dave@{dom.name}"
    kid, _, _ = lf.enroll_cli(keyserver, client, dom, addr, work)
    crl0 = crl_pem(client, dom, work, "0-dave")
    # The admin token comes from ./<domain>/admin.token (found through the key's domain).
    r = lf.ctl_ok(keyserver, "key", "revoke", kid, "--reason", "cessationOfOperation", cwd=work)
    assert "method:   admin" in r.out
    assert_revoked_everywhere(keyserver, client, dom, work, addr, kid, "cessationOfOperation",
                              "Cessation Of Operation", "admin", crl0)


def test_crl_number_grows(client, dom, work):
    text = crl_text(client, dom, work)
    m = re.search(r"X509v3 CRL Number:\s+(\d+)", text)
    assert m and int(m.group(1)) >= 5, text  # four revocations so far, numbered from 1
    assert "Authority Key Identifier" in text and "Next Update" in text


# --------------------------------------------------------------------------
# Refusals

def test_revocation_signed_by_another_key(keyserver, client, dom, work, pg, db):
    """erin's key signs a revocation of frank's key: 403 wrong_key, nothing changed;
    anchorctl refuses to sign such a request in the first place."""
    erin, frank = f"erin@{dom.name}", f"frank@{dom.name}"
    lf.enroll_cli(keyserver, client, dom, erin, work)
    fkid, _, _ = lf.enroll_cli(keyserver, client, dom, frank, work)
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key((work / f"{erin}.key").read_bytes(), None)
    chain = [(work / f"{erin}.pem").read_text(), dom.issuer_pem, dom.root_pem]
    body = rf.sign(key, chain, {"type": "anchor-revoke", "key_id": fkid,
                                "reason": "keyCompromise"}, "anchor-revoke+jws")
    before = lf.tables_digest(pg, db)
    r = post_jws(client, fkid, body)
    assert r.status == 403 and r.error_code() == "wrong_key", r.body
    assert lf.tables_digest(pg, db) == before
    r = lf.ctl(keyserver, "key", "revoke", fkid, "--key", work / f"{erin}.key", cwd=work)
    assert r.rc == 1 and "wrong_key" in r.err, r.err
    assert lf.tables_digest(pg, db) == before
    assert client.get(f"/v1/keys/{fkid}").json()["status"] == "current"


def test_revocation_signed_for_another_key_id(keyserver, client, dom, work, pg, db):
    """frank's own key, but the payload names another key id: refused."""
    frank = f"frank@{dom.name}"
    fkid = client.get(f"/v1/addresses/{frank}").json()["certificates"][0]["key_id"]
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key((work / f"{frank}.key").read_bytes(), None)
    chain = [(work / f"{frank}.pem").read_text(), dom.issuer_pem, dom.root_pem]
    body = rf.sign(key, chain, {"type": "anchor-revoke", "key_id":
                                "00000000-0000-4000-8000-000000000000"}, "anchor-revoke+jws")
    before = lf.tables_digest(pg, db)
    r = post_jws(client, fkid, body)
    assert r.status == 400 and r.error_code() == "bad_request", r.body
    assert lf.tables_digest(pg, db) == before


def test_unknown_key_and_bad_input(keyserver, client, dom, work, pg, db):
    before = lf.tables_digest(pg, db)
    unknown = "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11"
    r = client.post(f"/v1/keys/{unknown}/revoke", {"reason": "keyCompromise"},
                    token=dom.admin_token)
    assert r.status == 404 and r.error_code() == "not_found"
    r = lf.ctl(keyserver, "key", "revoke", unknown, "--secret-file", work / "wrong.revoke",
               cwd=work)
    assert r.rc == 1 and "not_found" in r.err, r.err
    r = client.post("/v1/keys/not-a-uuid/revoke", {}, token=dom.admin_token)
    assert r.status == 400
    frank = f"frank@{dom.name}"
    fkid = client.get(f"/v1/addresses/{frank}").json()["certificates"][0]["key_id"]
    r = client.post(f"/v1/keys/{fkid}/revoke", {"reason": "becauseISaidSo"},
                    token=dom.admin_token)
    assert r.status == 400 and r.error_code() == "bad_reason"
    r = client.post(f"/v1/keys/{fkid}/revoke", {"reason": "keyCompromise"})
    assert r.status == 401
    r = client.post(f"/v1/keys/{fkid}/revoke", {"reason": "keyCompromise"},
                    token=kf.anchorlib.make_token().token)
    assert r.status in (401, 403)
    r = lf.ctl(keyserver, "key", "revoke", fkid, "--reason", "becauseISaidSo", cwd=work)
    assert r.rc == 2 and "reason" in r.err
    assert lf.tables_digest(pg, db) == before


def test_admin_replay_is_already_revoked(keyserver, client, dom, work, pg, db):
    dave = client.get(f"/v1/addresses/dave@{dom.name}/history").json()["certificates"][0]
    before = lf.tables_digest(pg, db)
    r = client.post(f"/v1/keys/{dave['key_id']}/revoke", {}, token=dom.admin_token)
    assert r.status == 409 and r.error_code() == "already_revoked"
    assert lf.tables_digest(pg, db) == before


def test_a_revoked_key_of_an_erased_address_is_no_longer_served(keyserver, client, dom, work):
    """Erasure (a user's request, PROTOCOL.md §10.1) takes the certificate away with the
    address: its key id answers 410 with the status only, the CRL keeps its serial, and
    the log still verifies without a name (tests/integration/test_keyserver_erasure.py
    tries every other path)."""
    addr = f"dave@{dom.name}"
    kid = client.get(f"/v1/addresses/{addr}/history").json()["certificates"][0]["key_id"]
    serial = serial_of(work, addr)
    r = client.post(f"/v1/domains/{dom.name}/erase", {"address": addr}, token=dom.admin_token)
    assert r.status == 200, r.body
    r = client.get(f"/v1/keys/{kid}")
    assert r.status == 410 and r.error_code() == "erased", r.body
    obj = r.json()
    assert obj["status"] == "revoked" and "certificate" not in obj and "name" not in obj, obj
    assert re.search(rf"Serial Number: 0*{serial}\b", crl_text(client, dom, work), re.I)
    r = lf.ctl(keyserver, "lookup", "key", kid, cwd=work)
    assert r.rc != 0 and "erased" in r.err, (r.out, r.err)
    assert "dave" not in r.out + r.err
    r = lf.ctl(keyserver, "audit", dom.name, cwd=work)
    assert r.rc == 0 and "(name erased)" in r.out and addr not in r.out, r.out + r.err


def test_lookup_address_after_revocation_says_where_the_key_is(keyserver, client, dom, work):
    """anchorctl(1): the address lookup lists current certificates only (PROTOCOL.md §3.3);
    once the only key is revoked it answers not_found, and anchorctl says that revoked
    ones are shown by lookup history, which does show it revoked."""
    addr = f"lookup-after-revoke@{dom.name}"
    kid, _, _ = lf.enroll_cli(keyserver, client, dom, addr, work)
    r = lf.ctl(keyserver, "lookup", "address", addr, cwd=work)
    assert r.rc == 0 and kid in r.out, r.err
    lf.ctl_ok(keyserver, "key", "revoke", kid, "--reason", "keyCompromise", cwd=work)
    r = lf.ctl(keyserver, "lookup", "address", addr, cwd=work)
    assert r.rc == 1 and r.err.startswith("anchorctl: not_found: "), r.err
    assert f"`anchorctl lookup history {addr}` shows revoked and superseded ones" in r.err
    r = lf.ctl(keyserver, "lookup", "history", addr, cwd=work)
    assert r.rc == 0, r.err
    assert kid in r.out and re.search(r"status:\s+revoked", r.out), r.out
