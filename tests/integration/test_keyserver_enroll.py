"""Key server core: a domain's hierarchy and user enrollment (PROTOCOL.md §2, §4, §5.1).

Driven end to end with the real anchorctl, checked independently: openssl(1)
verifies chains and S/MIME signatures, python3-cryptography reads the
certificates and computes the pins."""

import hashlib
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import ksfixtures as kf


@pytest.fixture(scope="module")
def dom(keyserver, operator_token, tmp_path_factory):
    """One registered domain for the tests of this module."""
    base = tmp_path_factory.mktemp("enroll")
    return kf.register_domain(keyserver, base, kf.new_domain_name("enr"), operator_token.token)


# --------------------------------------------------------------------------
# 1. End to end with the real CLI

def test_end_to_end_with_anchorctl(keyserver, operator_token, tmp_path):
    name = kf.new_domain_name("e2e")
    addr = f"alice@{name}"

    init = kf.ctl_ok(keyserver, "domain", "init", name, cwd=tmp_path)
    printed_pin = re.search(r"^pin: (sha256:\S+)$", init.out, re.M).group(1)

    # Registration needs the operator token, taken from the environment.
    refused = kf.run_ctl(keyserver, "domain", "register", name, cwd=tmp_path)
    assert refused.rc == 1, (refused.out, refused.err)
    reg = kf.ctl_ok(keyserver, "domain", "register", name, cwd=tmp_path,
                    env={"ANCHOR_OPERATOR_TOKEN": operator_token.token})
    assert f"pin: {printed_pin}" in reg.out
    token_file = tmp_path / name / "admin.token"
    assert (token_file.stat().st_mode & 0o777) == 0o600
    admin_token = token_file.read_text().strip()
    assert admin_token not in reg.out, "the admin token is not printed without --print-token"

    tok = kf.ctl_ok(keyserver, "token", "issue", addr, cwd=tmp_path)
    enroll_token = tok.out.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", enroll_token), tok.out

    kf.ctl_ok(keyserver, "key", "new", addr, cwd=tmp_path)
    assert ((tmp_path / f"{addr}.key").stat().st_mode & 0o777) == 0o600
    enr = kf.ctl_ok(keyserver, "key", "enroll", addr, "--token", enroll_token, cwd=tmp_path)
    key_id = re.search(r"^key id:\s+(\S+)$", enr.out, re.M).group(1)

    # Fetch with an independent client.
    def curl(path, out):
        r = keyserver.curl(path, "-f", "-o", str(tmp_path / out))
        assert r.rc == 0, (path, r.err)
        return tmp_path / out

    user = curl(f"/v1/keys/{key_id}/certificate.pem", "user.pem")
    root = curl(f"/v1/domains/{name}/root.pem", "root.pem")
    issuer = curl(f"/v1/domains/{name}/issuer.pem", "issuer.pem")
    v = kf.openssl("verify", "-CAfile", root, "-untrusted", issuer, user)
    assert v.returncode == 0, v.stderr_text
    assert f"{user}: OK" in v.stdout_text
    # The published root is the one made locally; the served certificate is the one saved.
    assert root.read_text().strip() == (tmp_path / name / "root.pem").read_text().strip()
    assert user.read_text().strip() == (tmp_path / f"{addr}.pem").read_text().strip()
    # ... and it holds the key made by anchorctl key new.
    key_pub = kf.openssl("pkey", "-in", tmp_path / f"{addr}.key", "-pubout", check=True)
    cert_pub = kf.openssl("x509", "-in", user, "-noout", "-pubkey", check=True)
    assert key_pub.stdout == cert_pub.stdout

    # The pin: printed by init and register, computed here, and published.
    computed = kf.spki_pin(root.read_text())
    assert printed_pin == computed
    doc = keyserver.client().get(f"/v1/domains/{name}").json()
    assert doc["pins"][0] == computed
    assert doc["domain"] == name


# --------------------------------------------------------------------------
# 2. The root's name constraints bind even the issuer key

def _sign_with_issuer(dom, workdir, address):
    """A user certificate for address signed by the domain's issuer key with openssl x509."""
    key, csr = kf.make_csr(address, alg="p256", subject_email=False)
    csr_path = workdir / f"{address}.csr"
    csr_path.write_text(csr)
    ext = workdir / f"{address}.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=emailProtection\n"
                   f"subjectAltName=email:{address}\n")
    out = workdir / f"{address}.pem"
    kf.openssl("x509", "-req", "-in", csr_path, "-CA", dom.dir / "issuer.pem",
               "-CAkey", dom.dir / "issuer.key", "-set_serial", "12345", "-days", "30",
               "-extfile", ext, "-out", out, check=True)
    return out


def test_name_constraints_refuse_another_domain(dom, tmp_path):
    root, issuer = dom.dir / "root.pem", dom.dir / "issuer.pem"
    own = _sign_with_issuer(dom, tmp_path, f"bob@{dom.name}")
    v = kf.openssl("verify", "-CAfile", root, "-untrusted", issuer, own)
    assert v.returncode == 0, v.stderr_text

    foreign = _sign_with_issuer(dom, tmp_path, "bob@other.test")
    assert kf.load_cert(foreign).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.RFC822Name) == \
        ["bob@other.test"]
    v = kf.openssl("verify", "-CAfile", root, "-untrusted", issuer, foreign)
    assert v.returncode != 0, "a certificate for another domain must not verify"
    assert "subtree" in (v.stdout_text + v.stderr_text).lower(), v.stdout_text + v.stderr_text


# --------------------------------------------------------------------------
# 3. The certificate is an S/MIME certificate

def test_certificate_is_smime(keyserver, dom, tmp_path):
    client = keyserver.client()
    addr = f"carol@{dom.name}"
    token = kf.issue_token(client, dom, addr)
    kf.ctl_ok(keyserver, "key", "new", addr, "--alg", "p256", cwd=tmp_path)
    enr = kf.ctl_ok(keyserver, "--json", "key", "enroll", addr, "--token", token, cwd=tmp_path)
    obj = json.loads(enr.out)
    user_pem = (tmp_path / f"{addr}.pem").read_text()
    cert = kf.load_cert(user_pem)

    # The object describes the certificate.
    assert obj["kind"] == "user" and obj["purpose"] == "smime" and obj["name"] == addr
    assert obj["algorithm"] == "p256"
    assert obj["status"] == "current" and obj["superseded"] is None
    assert obj["fingerprint"] == kf.cert_fingerprint(user_pem)
    assert int(obj["serial"], 16) == cert.serial_number
    assert obj["certificate"].strip() == user_pem.strip()
    assert [c.strip() for c in obj["chain"]] == [dom.issuer_pem.strip(), dom.root_pem.strip()]

    # A random UUID key id, also in the subject's serialNumber.
    kid = uuid.UUID(obj["key_id"])
    assert str(kid) == obj["key_id"] and kid.version == 4
    sn = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    assert [a.value for a in sn] == [obj["key_id"]]

    ext = cert.extensions
    assert ext.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.RFC822Name) == [addr]
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in list(eku)
    assert ExtendedKeyUsageOID.SERVER_AUTH not in list(eku)
    ku = ext.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    bc = ext.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False
    assert cert.serial_number.bit_length() > 64, "a random 128-bit serial"
    assert cert.issuer == kf.load_cert(dom.issuer_pem).subject
    days = cert.not_valid_after - cert.not_valid_before
    assert timedelta(days=364) <= days <= timedelta(days=366), days

    # openssl signs a message with it and verifies the signature against root + issuer.
    msg = tmp_path / "msg.txt"
    msg.write_text("Subject: hello\r\n\r\nsigned by carol\r\n")
    signed = tmp_path / "signed.eml"
    root, issuer = tmp_path / "root.pem", tmp_path / "issuer.pem"
    root.write_text(dom.root_pem)
    issuer.write_text(dom.issuer_pem)
    # The signer includes the issuer (openssl smime -verify takes chain certificates only
    # from the message; its -certfile merely helps find the signer).
    kf.openssl("smime", "-sign", "-in", msg, "-signer", tmp_path / f"{addr}.pem",
               "-inkey", tmp_path / f"{addr}.key", "-certfile", issuer, "-out", signed,
               check=True)
    out = tmp_path / "out.txt"
    v = kf.openssl("smime", "-verify", "-in", signed, "-CAfile", root, "-certfile", issuer,
                   "-out", out)
    assert v.returncode == 0, v.stderr_text
    assert "Verification successful" in v.stderr_text
    assert out.read_text().replace("\r\n", "\n") == msg.read_text().replace("\r\n", "\n")
    # The same signature does not verify under another domain's root.
    other = tmp_path / "other"
    kf.ctl_ok(keyserver, "domain", "init", "other.test", "--dir", other, cwd=tmp_path)
    v = kf.openssl("smime", "-verify", "-in", signed, "-CAfile", other / "root.pem",
                   "-certfile", issuer, "-out", tmp_path / "out2.txt")
    assert v.returncode != 0


# --------------------------------------------------------------------------
# 4. Re-enrolling supersedes

def test_reenroll_supersedes(keyserver, dom):
    client = keyserver.client()
    addr = f"dave@{dom.name}"
    old, _ = kf.enroll_new(client, dom, addr, alg="p256")  # keys that can encrypt (§3.3)
    new, _ = kf.enroll_new(client, dom, addr, alg="p256")
    assert old["key_id"] != new["key_id"]

    r = client.get(f"/v1/addresses/{addr}")
    assert r.status == 200, r.body
    doc = r.json()
    assert [c["key_id"] for c in doc["certificates"]] == [new["key_id"]]
    assert doc["certificates"][0]["status"] == "current"
    assert [c["key_id"] for c in doc["encryption"]["certificates"]] == [new["key_id"]]

    r = client.get(f"/v1/addresses/{addr}/history")
    assert r.status == 200, r.body
    hist = r.json()["certificates"]
    assert [c["key_id"] for c in hist] == [new["key_id"], old["key_id"]], "newest first"
    assert hist[0]["status"] == "current" and hist[0]["superseded"] is None
    assert hist[1]["status"] == "superseded"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", hist[1]["superseded"] or ""), hist[1]

    for path in (f"/v1/keys/{old['key_id']}", f"/v1/fingerprints/{old['fingerprint']}"):
        r = client.get(path)
        assert r.status == 200, (path, r.body)
        o = r.json()
        assert o["key_id"] == old["key_id"]
        assert o["status"] == "superseded" and o["superseded"] == hist[1]["superseded"]
        assert o["certificate"] == old["certificate"]
    r = client.get(f"/v1/keys/{old['key_id']}/certificate.pem")
    assert r.status == 200 and r.text.strip() == old["certificate"].strip()


# --------------------------------------------------------------------------
# 9. Algorithms

@pytest.mark.parametrize("alg,pubtype,name", [
    ("ed25519", ed25519.Ed25519PublicKey, "ed25519"),
    ("p256", ec.EllipticCurvePublicKey, "p256"),
    ("rsa2048", rsa.RSAPublicKey, None),
])
def test_accepted_algorithms(keyserver, dom, tmp_path, alg, pubtype, name):
    client = keyserver.client()
    addr = f"alg-{alg}@{dom.name}"
    obj, key = kf.enroll_new(client, dom, addr, alg=alg)
    cert = kf.load_cert(obj["certificate"])
    assert isinstance(cert.public_key(), pubtype)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    if name:
        assert obj["algorithm"] == name
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    if alg.startswith("rsa"):
        assert ku.key_encipherment, "RSA user certificates also allow keyEncipherment"
    v = kf.verify_chain(tmp_path, dom.root_pem, dom.issuer_pem, obj["certificate"])
    assert v.returncode == 0, v.stderr_text


@pytest.mark.parametrize("alg", ["rsa1024", "p384", "dsa2048"])
def test_weak_keys_refused(keyserver, dom, pg, db, alg):
    client = keyserver.client()
    addr = f"weak-{alg}@{dom.name}"
    token = kf.issue_token(client, dom, addr)
    _, csr = kf.make_csr(addr, alg=alg)
    before = kf.db_snapshot(pg, db)
    r = kf.enroll(client, dom.name, token, csr)
    assert r.status == 422, (r.status, r.body)
    assert r.error_code() == "weak_key"
    assert kf.db_snapshot(pg, db) == before
    assert kf.token_used_at(pg, db, token) == ""
    # The token still works with an acceptable key.
    _, good = kf.make_csr(addr, alg="ed25519")
    assert kf.enroll(client, dom.name, token, good).status == 201


# --------------------------------------------------------------------------
# One-time tokens and superseding under concurrency; what the CSR may not smuggle in

def test_token_is_one_time_under_concurrency(keyserver, dom, pg, db):
    addr = f"race@{dom.name}"
    client = keyserver.client()
    token = kf.issue_token(client, dom, addr)
    csrs = [kf.make_csr(addr)[1] for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda csr: keyserver.client().post(
            f"/v1/domains/{dom.name}/enroll", {"token": token, "csr": csr}), csrs))
    codes = sorted(r.status for r in results)
    assert codes == [201] + [409] * 7, [(r.status, r.body[:80]) for r in results]
    assert all(r.error_code() == "token_used" for r in results if r.status == 409)
    hist = client.get(f"/v1/addresses/{addr}/history").json()["certificates"]
    assert len(hist) == 1


def test_concurrent_enrollments_of_one_address(keyserver, dom):
    """Several valid enrollments of the same address at once: each one is issued and
    supersedes the one before; exactly one certificate is current at the end."""
    client = keyserver.client()
    for rnd in range(5):  # a few rounds: the race shows up reliably
        addr = f"busy{rnd}@{dom.name}"
        jobs = [(kf.issue_token(client, dom, addr), kf.make_csr(addr)[1]) for _ in range(8)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda j: keyserver.client().post(
                f"/v1/domains/{dom.name}/enroll", {"token": j[0], "csr": j[1]}), jobs))
        assert [r.status for r in results] == [201] * 8, \
            [(r.status, r.body[:100]) for r in results if r.status != 201]
        hist = client.get(f"/v1/addresses/{addr}/history").json()["certificates"]
        assert len(hist) == 8
        assert [c["status"] for c in hist].count("current") == 1
        cur = client.get(f"/v1/addresses/{addr}").json()["certificates"]
        assert len(cur) == 1 and cur[0]["key_id"] == hist[0]["key_id"]


def test_csr_subject_cannot_smuggle_another_address(keyserver, dom, tmp_path):
    """The subject says bob, the SAN says alice (the token's address): whatever the server
    does, the certificate it issues names alice only."""
    addr, other = f"smug@{dom.name}", f"bob@{dom.name}"
    client = keyserver.client()
    token = kf.issue_token(client, dom, addr)
    key = kf.make_key("ed25519")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, other),
                                    x509.NameAttribute(NameOID.EMAIL_ADDRESS, other),
                                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Root CA")]))
           .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(addr)]), critical=False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(key, None))
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    r = kf.enroll(client, dom.name, token, pem)
    if r.status != 201:
        assert r.status == 400 and r.error_code() in ("bad_csr", "address_mismatch"), r.body
        return
    obj = r.json()
    assert obj["name"] == addr
    cert = kf.load_cert(obj["certificate"])
    text = kf.openssl("x509", "-noout", "-text", input=obj["certificate"]).stdout_text
    assert other not in text and "Root CA" not in text, text
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    v = kf.verify_chain(tmp_path, dom.root_pem, dom.issuer_pem, obj["certificate"])
    assert v.returncode == 0, v.stderr_text


def test_csr_address_compares_in_lowercase(keyserver, dom):
    """PROTOCOL.md §1: names are compared in lowercase.  A request made by another tool
    that spells the address with capitals matches the token of the lowercase address."""
    addr = f"Mixed.Case@{dom.name.upper()}"
    client = keyserver.client()
    token = kf.issue_token(client, dom, addr)
    _, csr = kf.make_csr(addr)
    r = kf.enroll(client, dom.name, token, csr)
    assert r.status == 201, (r.status, r.body)
    assert r.json()["name"] == addr.lower()
    r = client.get(f"/v1/addresses/{addr.lower()}")
    assert r.status == 200


@pytest.mark.parametrize("case", ["unknown_domain_before_csr", "csr_before_token",
                                  "weak_key_before_name", "weak_key_before_token",
                                  "name_before_token", "used_before_mismatch",
                                  "expired_before_mismatch"])
def test_enrollment_check_order(keyserver, dom, pg, db, case):
    """PROTOCOL.md §4: body, domain, request, name, token (unknown, used, expired,
    mismatch), in this order."""
    client = keyserver.client()
    me = f"order-{case.replace('_', '-')}@{dom.name}"
    if case == "unknown_domain_before_csr":
        r = kf.enroll(client, "not-hosted.test", "A" * 43, "garbage")
        want = (404, "unknown_domain")
    elif case == "csr_before_token":
        r = kf.enroll(client, dom.name, "A" * 43, "garbage")
        want = (400, "bad_csr")
    elif case == "weak_key_before_name":
        r = kf.enroll(client, dom.name, "A" * 43, kf.make_csr("x@other.test", alg="rsa1024")[1])
        want = (422, "weak_key")
    elif case == "weak_key_before_token":
        r = kf.enroll(client, dom.name, "A" * 43, kf.make_csr(me, alg="rsa1024")[1])
        want = (422, "weak_key")
    elif case == "name_before_token":
        r = kf.enroll(client, dom.name, "A" * 43, kf.make_csr("x@other.test")[1])
        want = (400, "address_outside_domain")
    elif case == "used_before_mismatch":
        token = kf.issue_token(client, dom, me)
        assert kf.enroll(client, dom.name, token, kf.make_csr(me)[1]).status == 201
        r = kf.enroll(client, dom.name, token, kf.make_csr(f"x{me}")[1])
        want = (409, "token_used")
    else:
        token = kf.issue_token(client, dom, me, ttl=60)
        h = hashlib.sha256(token.encode()).hexdigest()
        pg.psql(f"UPDATE enroll_tokens SET expires_at = now() - interval '1 minute' "
                f"WHERE token_hash = '{h}'", dbname=kf.dbname_of(db))
        r = kf.enroll(client, dom.name, token, kf.make_csr(f"x{me}")[1])
        want = (410, "token_expired")
    assert (r.status, r.error_code()) == want, r.body
