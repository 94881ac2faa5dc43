"""Renewal by the current key (PROTOCOL.md §5.3), against the real key server and signer.

A holder renews its certificate with a request signed by its current key: a JWS (typ
anchor-renew-request+jws, x5c [leaf, issuer, root]) whose payload carries a PKCS#10
request for the same key or a new one.  No token and no admin.  The requests here are
made and signed by the test itself (python3-cryptography, jwcrypto); the answers are
checked with openssl(1) and the log's reference implementation.

Three key servers share one database:
    open   renew_window = 400d (beyond the 365-day lifetime), renew_min_interval = 0
    dflt   the defaults: a third of the lifetime, 1h
    often  renew_window = 400d, renew_min_interval = 1h
Every refused request must leave the key server's tables as they were.
"""

import base64
import datetime
import json
import re
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import routefixtures as rf

TYP = "anchor-renew-request+jws"


@pytest.fixture(scope="module")
def servers(make_keyserver):
    open_ = make_keyserver(extra={"renew_window": "400d", "renew_min_interval": "0"})
    dflt = make_keyserver()
    often = make_keyserver(extra={"renew_window": "400d", "renew_min_interval": "1h"})
    return open_, dflt, often


@pytest.fixture(scope="module")
def dom(servers, operator_token):
    base = anchorlib.mktemp_dir("anchor-renew-")
    return kf.register_domain(servers[0], base, kf.new_domain_name("renew"),
                              operator_token.token)


def chain_of(cert_obj):
    return [cert_obj["certificate"], *cert_obj["chain"]]


def renew_request(key, chain, name, csr, purpose="smime", issued=None, **extra):
    payload = {"type": "anchor-renew-request", "name": name, "purpose": purpose, "csr": csr,
               "issued": int(time.time()) if issued is None else issued}
    payload.update(extra)
    return rf.sign(key, chain, payload, TYP)


def post_renew(client, dom, body):
    return client.post(f"/v1/domains/{dom.name}/renew", body,
                       headers={"Content-Type": "application/json"})


def status_of(client, key_id):
    r = client.get(f"/v1/keys/{key_id}")
    assert r.status == 200, r.body
    return r.json()["status"]


def spki(key_or_cert):
    pub = key_or_cert.public_key()
    return pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def check_issued(client, dom, answer, old_key_id, workdir):
    """The renewed certificate verifies to the domain's root and is in the signed log,
    its issuance naming the key it renews; the old one is superseded."""
    v = kf.verify_chain(workdir, dom.root_pem, dom.issuer_pem, answer["certificate"])
    assert v.returncode == 0, v.stdout_text + v.stderr_text
    head = lf.verify_head(answer["tree_head"], dom, workdir)
    leaf = lf.check_cert_log(answer, head)
    assert leaf["renewal_of"] == old_key_id, leaf
    assert answer["key_id"] != old_key_id
    assert status_of(client, old_key_id) == "superseded"
    assert status_of(client, answer["key_id"]) == "current"


def refused(client, pg, db, dom, body, status, code):
    before = kf.db_snapshot(pg, db)
    r = post_renew(client, dom, body)
    assert r.status == status and r.error_code() == code, (r.status, r.body)
    assert kf.db_snapshot(pg, db) == before, "a refused renewal changed the key server"
    return r


# --------------------------------------------------------------------------

def test_renew_by_current_key(servers, dom):
    client = servers[0].client()
    addr = f"alice@{dom.name}"
    cert, key = kf.enroll_new(client, dom, addr)
    _, csr = kf.make_csr(addr, key=key)
    r = post_renew(client, dom, renew_request(key, chain_of(cert), addr, csr))
    assert r.status == 201, (r.status, r.body)
    new = r.json()
    check_issued(client, dom, new, cert["key_id"], dom.base)
    assert spki(kf.load_cert(new["certificate"])) == spki(key), "the key must stay the same"
    assert new["revocation_secret"], "a renewed user certificate has a new revocation secret"
    # The lookup now offers the renewed certificate only.
    r = client.get(f"/v1/addresses/{addr}")
    assert r.status == 200, r.body
    assert [c["key_id"] for c in r.json()["certificates"]] == [new["key_id"]]


def test_rekey(servers, dom):
    client = servers[0].client()
    addr = f"rekey@{dom.name}"
    cert, key = kf.enroll_new(client, dom, addr)
    new_key, csr = kf.make_csr(addr, alg="p256")
    r = post_renew(client, dom, renew_request(key, chain_of(cert), addr, csr))
    assert r.status == 201, (r.status, r.body)
    new = r.json()
    check_issued(client, dom, new, cert["key_id"], dom.base)
    assert spki(kf.load_cert(new["certificate"])) == spki(new_key)
    assert new["algorithm"] != cert["algorithm"]


def test_revoked_key_cannot_renew(servers, dom, pg, db):
    client = servers[0].client()
    addr = f"bob@{dom.name}"
    cert, key = kf.enroll_new(client, dom, addr)
    kf.ctl_ok(servers[0], "key", "revoke", cert["key_id"], cwd=dom.base)
    assert status_of(client, cert["key_id"]) == "revoked"
    _, csr = kf.make_csr(addr)
    refused(client, pg, db, dom, renew_request(key, chain_of(cert), addr, csr), 403,
            "key_revoked")


def test_superseded_key_cannot_renew(servers, dom, pg, db):
    client = servers[0].client()
    addr = f"carol@{dom.name}"
    cert, key = kf.enroll_new(client, dom, addr)
    _, csr = kf.make_csr(addr, key=key)
    first = renew_request(key, chain_of(cert), addr, csr)
    r = post_renew(client, dom, first)
    assert r.status == 201, (r.status, r.body)
    # The old certificate (same key, but superseded) renews nothing, nor does a replay.
    refused(client, pg, db, dom, first, 403, "key_superseded")
    _, csr2 = kf.make_csr(addr)
    refused(client, pg, db, dom, renew_request(key, chain_of(cert), addr, csr2), 403,
            "key_superseded")
    # The renewed certificate still can.
    new = r.json()
    r = post_renew(client, dom, renew_request(key, chain_of(new), addr, csr2))
    assert r.status == 201, (r.status, r.body)


def test_concurrent_renewals(servers, dom):
    """Two renewals signed by one certificate at once: one is issued, the other finds the
    key superseded; never two current certificates."""
    addr = f"twice@{dom.name}"
    cert, key = kf.enroll_new(servers[0].client(), dom, addr)
    bodies = [renew_request(key, chain_of(cert), addr, kf.make_csr(addr, key=key)[1])
              for _ in range(4)]
    results = [None] * len(bodies)

    def go(i):
        results[i] = post_renew(servers[0].client(), dom, bodies[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    codes = sorted((r.status, r.error_code() if r.status != 201 else "") for r in results)
    assert codes == [(201, "")] + [(403, "key_superseded")] * (len(bodies) - 1), codes
    r = servers[0].client().get(f"/v1/addresses/{addr}")
    assert len(r.json()["certificates"]) == 1


def test_too_early(servers, dom, pg, db):
    client = servers[1].client()
    addr = f"early@{dom.name}"
    cert, key = kf.enroll_new(client, dom, addr)
    _, csr = kf.make_csr(addr, key=key)
    r = refused(client, pg, db, dom, renew_request(key, chain_of(cert), addr, csr), 409,
                "renew_too_early")
    assert "may be renewed from" in r.json()["message"]


def test_too_often(servers, dom, pg, db):
    client = servers[2].client()
    addr = f"often@{dom.name}"
    cert, key = kf.enroll_new(client, dom, addr)
    _, csr = kf.make_csr(addr, key=key)
    refused(client, pg, db, dom, renew_request(key, chain_of(cert), addr, csr), 429,
            "renew_too_often")
    # The same request inside the window of the open server goes through: only the
    # interval refused it.
    r = post_renew(servers[0].client(), dom, renew_request(key, chain_of(cert), addr, csr))
    assert r.status == 201, (r.status, r.body)


def test_another_users_key(servers, dom, pg, db):
    client = servers[0].client()
    dave, erin = f"dave@{dom.name}", f"erin@{dom.name}"
    dcert, dkey = kf.enroll_new(client, dom, dave)
    kf.enroll_new(client, dom, erin)
    # Dave asks for a certificate of erin's address, signed with his own current key.
    _, csr = kf.make_csr(erin)
    refused(client, pg, db, dom, renew_request(dkey, chain_of(dcert), erin, csr), 403,
            "not_current_key")
    # Naming himself while the CSR is erin's does not help either.
    refused(client, pg, db, dom, renew_request(dkey, chain_of(dcert), dave, csr), 400,
            "name_mismatch")
    # Nor does a server purpose for his address.
    refused(client, pg, db, dom, renew_request(dkey, chain_of(dcert), dave,
                                               kf.make_csr(dave)[1], purpose="mta"), 400,
            "bad_name")


def test_tampered_request(servers, dom, pg, db):
    client = servers[0].client()
    addr = f"frank@{dom.name}"
    cert, key = kf.enroll_new(client, dom, addr)
    _, csr = kf.make_csr(addr, key=key)
    body = json.loads(renew_request(key, chain_of(cert), addr, csr))
    # Swap the signed CSR for another key's, keeping the signature.
    _, other_csr = kf.make_csr(addr)
    payload = json.loads(base64.urlsafe_b64decode(body["payload"] + "=="))
    payload["csr"] = other_csr
    body["payload"] = base64.urlsafe_b64encode(
        json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    refused(client, pg, db, dom, json.dumps(body), 422, "jws_signature")
    # A CSR without a valid proof of possession, properly signed by the current key.
    bad = kf.csr_with_flipped_signature(other_csr)
    refused(client, pg, db, dom, renew_request(key, chain_of(cert), addr, bad), 400,
            "csr_signature")
    # A request signed an hour ago.
    refused(client, pg, db, dom, renew_request(key, chain_of(cert), addr, csr,
                                               issued=int(time.time()) - 3600), 400,
            "stale_request")
    # Another typ (a route request's) is not a renewal.
    wrong = rf.sign(key, chain_of(cert), json.loads(base64.urlsafe_b64decode(
        json.loads(renew_request(key, chain_of(cert), addr, csr))["payload"] + "==")),
        "anchor-route-request+jws")
    refused(client, pg, db, dom, wrong, 400, "bad_request")
    # The untouched request still works.
    r = post_renew(client, dom, renew_request(key, chain_of(cert), addr, csr))
    assert r.status == 201, (r.status, r.body)


def expired_cert(dom, address, key):
    """A certificate for address made with the domain's issuer key, valid only in the
    past: everything a renewal checks holds except that it expired."""
    issuer = kf.load_cert(dom.issuer_pem)
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, address)]))
         .issuer_name(issuer.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=10))
         .not_valid_after(now - datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]),
                        critical=False))
    ikey = rf.issuer_key(dom)
    cert = b.sign(ikey, kf._sign_alg(ikey))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_expired_key(servers, dom, pg, db):
    client = servers[0].client()
    addr = f"old@{dom.name}"
    key, csr = kf.make_csr(addr)
    chain = [expired_cert(dom, addr, key), dom.issuer_pem, dom.root_pem]
    refused(client, pg, db, dom, renew_request(key, chain, addr, csr), 403, "cert_expired")
    # anchorctl says so before sending anything, whatever --if-expiring-within says.
    work = anchorlib.mktemp_dir("anchor-renew-old-")
    (work / f"{addr}.key").write_text(kf.key_pem(key))
    (work / f"{addr}.key").chmod(0o600)
    (work / f"{addr}.pem").write_text(chain[0])
    (work / f"{addr}.chain.pem").write_text(dom.issuer_pem + dom.root_pem)
    r = kf.run_ctl(servers[0], "key", "renew", addr, "--if-expiring-within", "1d", cwd=work)
    assert r.rc == 1 and "cert_expired" in r.err and "enroll again" in r.err, (r.rc, r.err)


# --------------------------------------------------------------------------
# anchorctl key renew

def files_of(d, base):
    return {s: (d / f"{base}{s}").read_bytes() for s in (".key", ".pem", ".chain.pem")}


def test_anchorctl_renew_if_expiring_within(servers, dom):
    ks = servers[0]
    client = ks.client()
    work = anchorlib.mktemp_dir("anchor-renew-cli-")
    addr = f"gina@{dom.name}"
    old_kid, _, _ = lf.enroll_cli(ks, client, dom, addr, work)
    before = files_of(work, addr)
    # 365 days left: not due within 30 days; nothing sent, nothing written, exit 0.
    r = kf.ctl_ok(ks, "key", "renew", addr, "--if-expiring-within", "30d", cwd=work)
    assert "not due" in r.out, r.out
    assert files_of(work, addr) == before
    assert status_of(client, old_kid) == "current"
    # Due within 400 days: renewed, same key.
    r = kf.ctl_ok(ks, "key", "renew", addr, "--if-expiring-within", "400d", cwd=work)
    new_kid = re.search(r"^key id:\s+(\S+)$", r.out, re.M).group(1)
    after = files_of(work, addr)
    assert after[".key"] == before[".key"] and after[".pem"] != before[".pem"]
    assert status_of(client, old_kid) == "superseded"
    assert status_of(client, new_kid) == "current"
    v = kf.verify_chain(work, dom.root_pem, dom.issuer_pem, after[".pem"].decode())
    assert v.returncode == 0, v.stdout_text + v.stderr_text
    # --rekey: a new key takes the old one's place; the old key is superseded.
    r = kf.ctl_ok(ks, "key", "renew", addr, "--rekey", "--alg", "p256", cwd=work)
    third = files_of(work, addr)
    assert third[".key"] != after[".key"]
    assert not (work / f"{addr}.key.new").exists()
    key = serialization.load_pem_private_key(third[".key"], None)
    assert spki(kf.load_cert(third[".pem"])) == spki(key)
    assert status_of(client, new_kid) == "superseded"
    # A refusal is reported with its code and exit 1; nothing is left behind.
    r = kf.run_ctl(servers[1], "key", "renew", addr, "--rekey", cwd=work)
    assert r.rc == 1 and "renew_too_early" in r.err, (r.rc, r.out, r.err)
    assert files_of(work, addr) == third
    assert not (work / f"{addr}.key.new").exists()


def test_anchorctl_renew_server_certificate(servers, dom):
    ks = servers[0]
    client = ks.client()
    host = f"mx.{dom.name}"
    kf.ctl_ok(ks, "server", "issue", host, "--purpose", "mta", cwd=dom.base)
    base = f"{host}.mta"
    before = files_of(dom.base, base)
    old_fpr = kf.cert_fingerprint(before[".pem"].decode())
    r = client.get(f"/v1/fingerprints/{old_fpr}")
    old_kid = r.json()["key_id"]
    r = kf.ctl_ok(ks, "key", "renew", "--server", host, "--purpose", "mta", cwd=dom.base)
    after = files_of(dom.base, base)
    assert after[".pem"] != before[".pem"] and after[".key"] == before[".key"]
    assert status_of(client, old_kid) == "superseded"
    v = kf.verify_chain(dom.base, dom.root_pem, dom.issuer_pem, after[".pem"].decode())
    assert v.returncode == 0, v.stdout_text + v.stderr_text
    assert not (dom.base / f"{base}.revoke").exists()


# --------------------------------------------------------------------------
# A domain's own limits (PUT /v1/domains/{d}/renewal, anchorctl domain renewal), held
# within the key server's.  All on the open server (window 400d, interval 0), so every
# refusal below comes from the domain's own limits.

@pytest.fixture(scope="module")
def strict(servers, operator_token):
    base = anchorlib.mktemp_dir("anchor-renew-strict-")
    d = kf.register_domain(servers[0], base, kf.new_domain_name("strict"),
                           operator_token.token)
    yield d
    anchorlib.remove_tree(base)


def set_limits(ks, dom, *args):
    return kf.run_ctl(ks, "domain", "renewal", dom.name, *args, cwd=dom.base)


def lifetime_days(cert_pem):
    c = kf.load_cert(cert_pem)
    return (c.not_valid_after - c.not_valid_before).total_seconds() / 86400


def test_domain_limits_refused_outside_the_servers(servers, strict, dom, pg, db):
    ks = servers[0]
    client = ks.client()
    path = f"/v1/domains/{strict.name}/renewal"
    before = kf.db_snapshot(pg, db)
    cases = [
        ({"window": 401 * 86400}, 400, "renew_limit"),          # beyond renew_window 400d
        ({"max_lifetime": 366 * 86400}, 400, "renew_limit"),    # beyond cert_days 365
        ({"max_lifetime": 3600}, 400, "renew_limit"),           # less than a day
        ({"window": 0}, 400, "renew_limit"),
        ({"window": -5}, 400, "bad_request"),
        ({"window": "30d"}, 400, "bad_request"),
        ({"lifetime": 86400}, 400, "bad_request"),
        ({}, 400, "bad_request"),
    ]
    for body, status, code in cases:
        r = client.put(path, body, token=strict.admin_token)
        assert r.status == status and r.error_code() == code, (body, r.status, r.body)
    # Only the domain's admin: another domain's token, or none.
    r = client.put(path, {"window": 86400}, token=dom.admin_token)  # another domain's
    assert r.status in (401, 403), (r.status, r.body)
    r = client.put(path, {"window": 86400})
    assert r.status == 401, (r.status, r.body)
    assert kf.db_snapshot(pg, db) == before, "a refused setting changed the key server"
    r = set_limits(ks, strict, "--window", "401d")
    assert r.rc == 1 and "renew_limit" in r.err and "renew_window" in r.err, r.err


def test_domain_too_early_and_too_often(servers, strict, pg, db):
    ks = servers[0]
    client = ks.client()
    r = set_limits(ks, strict, "--window", "30d", "--min-interval", "1h",
                   "--max-lifetime", "90d")
    assert r.rc == 0, r.err
    assert "window=2592000s min_interval=3600s max_lifetime=7776000s" in r.out, r.out
    assert client.get(f"/v1/domains/{strict.name}").json()["renewal"] == {
        "window": 30 * 86400, "min_interval": 3600, "max_lifetime": 90 * 86400}
    addr = f"erin@{strict.name}"
    cert, key = kf.enroll_new(client, strict, addr)
    _, csr = kf.make_csr(addr, key=key)
    body = renew_request(key, chain_of(cert), addr, csr)
    # 365 days left, the domain's window is 30 days: too early on a server that allows 400.
    r = refused(client, pg, db, strict, body, 409, "renew_too_early")
    assert "2592000 seconds before it expires" in r.json()["message"], r.body
    # The window back to the server's: now the domain's interval refuses it.
    assert set_limits(ks, strict, "--window", "default").rc == 0
    refused(client, pg, db, strict, renew_request(key, chain_of(cert), addr, csr), 429,
            "renew_too_often")
    # The interval back too: renewed, for at most the domain's 90 days.
    r = set_limits(ks, strict, "--min-interval", "default")
    assert r.rc == 0 and "min_interval=server" in r.out, r.out
    r = post_renew(client, strict, renew_request(key, chain_of(cert), addr, csr))
    assert r.status == 201, (r.status, r.body)
    assert lifetime_days(r.json()["certificate"]) <= 90.01
    # Every limit back to the server's: a renewed certificate lives cert_days again.
    assert set_limits(ks, strict, "--max-lifetime", "default").rc == 0
    assert "renewal" not in client.get(f"/v1/domains/{strict.name}").json()
    new = r.json()
    r = post_renew(client, strict, renew_request(key, chain_of(new), addr, csr))
    assert r.status == 201, (r.status, r.body)
    assert lifetime_days(r.json()["certificate"]) > 300
