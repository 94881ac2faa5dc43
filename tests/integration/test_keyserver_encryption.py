"""Encryption certificates (PROTOCOL.md §3.3, §4.1, §5.2), against the real key server and
its signer.

An encryption key proves itself by decrypting: the key server encrypts a nonce to the
submitted public key (ECDH-ES+A256GCM for X25519 and P-256, RSA-OAEP-256 for RSA), the
client sends the nonce back with an enrollment token or a request signed by a current
smime key of the address.  The client side here is python3-cryptography, and anchorctl
in the end-to-end tests; openssl cms shows the certificates are usable as issued.
Every refused request must leave the tables as they were.
"""

import base64
import json
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import logfixtures as lf
import routefixtures as rf

TABLES = ("certificates", "revocations", "log_entries", "enroll_tokens", "enc_challenges")
TYP = "anchor-encryption-request+jws"


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-enc-")
    yield d
    anchorlib.remove_tree(d)


@pytest.fixture(scope="module")
def dom(keyserver, work, operator_token):
    return kf.register_domain(keyserver, work, kf.new_domain_name("enc"), operator_token.token)


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key(alg):
    if alg == "x25519":
        return x25519.X25519PrivateKey.generate()
    if alg == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "ed25519":
        return kf.make_key("ed25519")
    return rsa.generate_private_key(public_exponent=65537, key_size=int(alg[3:]))


def pub_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def open_envelope(key, env):
    """The nonce of a challenge envelope, as enckey.h describes it."""
    if env["alg"] == "RSA-OAEP-256":
        return key.decrypt(unb64u(env["ct"]), padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    assert env["alg"] == "ECDH-ES+A256GCM", env
    epk = serialization.load_der_public_key(unb64u(env["epk"]))
    secret = key.exchange(epk) if isinstance(key, x25519.X25519PrivateKey) \
        else key.exchange(ec.ECDH(), epk)
    k = HKDF(hashes.SHA256(), 32, None, b"anchor encryption challenge v1").derive(secret)
    return AESGCM(k).decrypt(unb64u(env["iv"]), unb64u(env["ct"]) + unb64u(env["tag"]), None)


def challenge(client, dom, address, key, device="default"):
    return client.post(f"/v1/domains/{dom.name}/encryption/challenge",
                       {"address": address, "device": device, "public_key": pub_pem(key)})


def answer(client, dom, key, address, device="default", **auth):
    r = challenge(client, dom, address, key, device)
    assert r.status == 201, (r.status, r.body)
    ch = r.json()
    nonce = open_envelope(key, ch["envelope"])
    return client.post(f"/v1/domains/{dom.name}/encryption",
                       {"challenge": ch["challenge"], "answer": b64u(nonce), **auth})


def enroll_enc(client, dom, address, alg, device="default"):
    key = new_key(alg)
    token = kf.issue_token(client, dom, address)
    r = answer(client, dom, key, address, device, token=token)
    assert r.status == 201, (r.status, r.body)
    return r.json(), key


def lookup(client, address):
    r = client.get(f"/v1/addresses/{address}")
    assert r.status == 200, (r.status, r.body)
    return r.json()


def enc_ids(client, address):
    return {c["key_id"] for c in lookup(client, address)["encryption"]["certificates"]}


def signed_request(key, chain, address, device, enc_key, issued=None):
    payload = {"type": "anchor-encryption-request", "address": address, "device": device,
               "public_key": pub_pem(enc_key),
               "issued": int(time.time()) if issued is None else issued}
    return rf.sign(key, chain, payload, TYP)


def test_ed25519_signing_cert_is_not_offered_for_encryption(client, dom):
    """The bug this fixes: a signature-only (Ed25519) certificate listed under
    `encryption`.  It stays under `certificates`, for verifiers."""
    addr = f"sig@{dom.name}"
    cert, _ = kf.enroll_new(client, dom, addr)
    doc = lookup(client, addr)
    assert [c["key_id"] for c in doc["certificates"]] == [cert["key_id"]]
    assert doc["encryption"]["certificates"] == [], doc["encryption"]
    assert doc["encryption"]["requirement"] == "none"
    # A P-256 smime certificate carries keyAgreement: a sender may use it.
    addr2 = f"sigp@{dom.name}"
    cert2, _ = kf.enroll_new(client, dom, addr2, alg="p256")
    assert enc_ids(client, addr2) == {cert2["key_id"]}


@pytest.mark.parametrize("alg,usage", [("x25519", "Key Agreement"), ("p256", "Key Agreement"),
                                       ("rsa2048", "Key Encipherment")])
def test_enroll_each_algorithm(client, dom, work, alg, usage):
    addr = f"e-{alg}@{dom.name}"
    cert, key = enroll_enc(client, dom, addr, alg)
    assert cert["purpose"] == "encryption" and cert["device"] == "default", cert
    assert cert["algorithm"] == ("rsa" if alg.startswith("rsa") else alg)
    assert "revocation_secret" in cert
    text = kf.openssl("x509", "-noout", "-text", input=cert["certificate"], check=True).stdout_text
    ku = text.split("X509v3 Key Usage: critical", 1)[1].split("\n")[1].strip()
    assert ku == usage, text  # encryption only: no digitalSignature
    kf.verify_chain(work, dom.root_pem, dom.issuer_pem, cert["certificate"])
    doc = lookup(client, addr)
    assert doc["certificates"] == []  # not a signing certificate
    assert [c["key_id"] for c in doc["encryption"]["certificates"]] == [cert["key_id"]]
    pub = x509.load_pem_x509_certificate(cert["certificate"].encode()).public_key()
    assert pub_pem(key) == pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_wrong_answer_refused_nothing_stored(client, dom, pg, db):
    addr = f"wrong@{dom.name}"
    key = new_key("x25519")
    token = kf.issue_token(client, dom, addr)
    r = challenge(client, dom, addr, key)
    assert r.status == 201, r.body
    ch = r.json()
    before = lf.tables_digest(pg, db, TABLES)
    r = client.post(f"/v1/domains/{dom.name}/encryption",
                    {"challenge": ch["challenge"], "answer": b64u(b"\0" * 32), "token": token})
    assert r.status == 403 and r.error_code() == "challenge_failed", r.body
    assert lf.tables_digest(pg, db, TABLES) == before
    assert kf.token_used_at(pg, db, token) == ""
    # A key that is not the one challenged cannot answer either.
    other = new_key("x25519")
    with pytest.raises(Exception):
        open_envelope(other, ch["envelope"])
    # The right answer still works: the refusal consumed nothing.
    nonce = open_envelope(key, ch["envelope"])
    r = client.post(f"/v1/domains/{dom.name}/encryption",
                    {"challenge": ch["challenge"], "answer": b64u(nonce), "token": token})
    assert r.status == 201, r.body
    # ... once.
    r = client.post(f"/v1/domains/{dom.name}/encryption",
                    {"challenge": ch["challenge"], "answer": b64u(nonce), "token": token})
    assert r.status == 409 and r.error_code() in ("challenge_used", "token_used"), r.body


@pytest.mark.parametrize("alg", ["rsa1024", "ed25519"])
def test_weak_or_signing_key_refused(client, dom, pg, db, alg):
    addr = f"weak@{dom.name}"
    before = lf.tables_digest(pg, db, TABLES)
    r = challenge(client, dom, addr, new_key(alg))
    assert r.status == 422 and r.error_code() == "weak_key", (r.status, r.body)
    assert lf.tables_digest(pg, db, TABLES) == before


def test_bad_challenge_requests(client, dom):
    addr = f"bad@{dom.name}"
    key = new_key("p256")
    r = client.post(f"/v1/domains/{dom.name}/encryption/challenge",
                    {"address": addr, "public_key": "not a key"})
    assert r.status == 400 and r.error_code() == "bad_key"
    r = challenge(client, dom, addr, key, device="Bad Device")
    assert r.status == 400 and r.error_code() == "bad_device"
    r = challenge(client, dom, "x@other.test", key)
    assert r.status == 400 and r.error_code() == "address_outside_domain"
    r = client.post(f"/v1/domains/{dom.name}/encryption",
                    {"challenge": "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11", "answer": "AAAA",
                     "token": "x"})
    assert r.status == 404 and r.error_code() == "challenge_unknown"
    r = client.post(f"/v1/domains/{dom.name}/encryption",
                    {"challenge": "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11", "answer": "AAAA"})
    assert r.status == 400 and r.error_code() == "bad_request"


def test_token_of_another_address_refused(client, dom, pg, db):
    key = new_key("x25519")
    token = kf.issue_token(client, dom, f"other@{dom.name}")
    r = challenge(client, dom, f"mine@{dom.name}", key)
    ch = r.json()
    before = lf.tables_digest(pg, db, TABLES)
    r = client.post(f"/v1/domains/{dom.name}/encryption",
                    {"challenge": ch["challenge"],
                     "answer": b64u(open_envelope(key, ch["envelope"])), "token": token})
    assert r.status == 400 and r.error_code() == "address_mismatch", r.body
    assert lf.tables_digest(pg, db, TABLES) == before


def test_devices_by_signed_request_and_revocation(client, dom, pg, db):
    """Several devices, each its own current certificate; a device added by a request
    signed with the address's current smime key; a revoked key adds none; revoking an
    encryption certificate takes it out of the lookup at once."""
    addr = f"multi@{dom.name}"
    smime, skey = kf.enroll_new(client, dom, addr)
    chain = [smime["certificate"], *smime["chain"]]
    laptop, _ = enroll_enc(client, dom, addr, "x25519", device="laptop")
    phone_key = new_key("p256")
    r = answer(client, dom, phone_key, addr, "phone",
               request=signed_request(skey, chain, addr, "phone", phone_key))
    assert r.status == 201, r.body
    phone = r.json()
    assert enc_ids(client, addr) == {laptop["key_id"], phone["key_id"]}

    # A new key for the laptop replaces the laptop's only.
    laptop2, _ = enroll_enc(client, dom, addr, "rsa2048", device="laptop")
    assert enc_ids(client, addr) == {laptop2["key_id"], phone["key_id"]}
    assert client.get(f"/v1/keys/{laptop['key_id']}").json()["status"] == "superseded"
    hist = client.get(f"/v1/addresses/{addr}/history").json()["certificates"]
    assert {c["key_id"]: c["status"] for c in hist if c["purpose"] == "encryption"} == {
        laptop["key_id"]: "superseded", laptop2["key_id"]: "current",
        phone["key_id"]: "current"}

    # A request naming another key than the challenged one.
    k = new_key("x25519")
    r = answer(client, dom, k, addr, "tablet",
               request=signed_request(skey, chain, addr, "tablet", new_key("x25519")))
    assert r.status == 400 and r.error_code() == "request_mismatch", r.body

    # Revoke the phone's certificate: gone from the encryption block at once (and the
    # cached answer with it).
    assert enc_ids(client, addr) == {laptop2["key_id"], phone["key_id"]}
    r = client.post(f"/v1/keys/{phone['key_id']}/revoke", {"secret": phone["revocation_secret"]})
    assert r.status == 200, r.body
    assert enc_ids(client, addr) == {laptop2["key_id"]}

    # The smime key revoked: it authorises no new device, and nothing is stored.
    r = client.post(f"/v1/keys/{smime['key_id']}/revoke", {"secret": smime["revocation_secret"]})
    assert r.status == 200, r.body
    k = new_key("x25519")
    r = challenge(client, dom, addr, k, "tablet")
    ch = r.json()
    before = lf.tables_digest(pg, db, TABLES)
    r = client.post(f"/v1/domains/{dom.name}/encryption",
                    {"challenge": ch["challenge"], "answer": b64u(open_envelope(k, ch["envelope"])),
                     "request": signed_request(skey, chain, addr, "tablet", k)})
    assert r.status == 403 and r.error_code() == "key_revoked", r.body
    assert lf.tables_digest(pg, db, TABLES) == before
    assert enc_ids(client, addr) == {laptop2["key_id"]}


def test_signed_by_another_address_refused(client, dom):
    addr = f"victim@{dom.name}"
    other, okey = kf.enroll_new(client, dom, f"mallory@{dom.name}")
    k = new_key("x25519")
    r = answer(client, dom, k, addr, "default",
               request=signed_request(okey, [other["certificate"], *other["chain"]], addr,
                                      "default", k))
    assert r.status == 403 and r.error_code() == "not_current_key", r.body


def cms_roundtrip(work, certs, keys, tag):
    """openssl cms -encrypt to every certificate; each key decrypts it alone."""
    msg = work / f"{tag}.txt"
    msg.write_text(f"Subject: {tag}\n\nfor every device\n")
    paths = []
    for i, pem in enumerate(certs):
        p = work / f"{tag}-{i}.pem"
        p.write_text(pem)
        paths.append(str(p))
    out = work / f"{tag}.p7m"
    subprocess.run(["openssl", "cms", "-encrypt", "-aes-256-gcm", "-in", str(msg), "-out",
                    str(out), *paths], check=True, capture_output=True)
    for key in keys:
        r = subprocess.run(["openssl", "cms", "-decrypt", "-in", str(out), "-inkey", str(key)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert "for every device" in r.stdout


def test_anchorctl_enroll_and_openssl_cms(keyserver, client, dom, work):
    """anchorctl makes the keys, answers the challenges (token, then the signing key) and
    the listed certificates work with openssl cms: each device decrypts."""
    addr = f"cms@{dom.name}"
    kf.ctl_ok(keyserver, "key", "new", addr, cwd=work)
    tok = kf.issue_token(client, dom, addr)
    kf.ctl_ok(keyserver, "key", "enroll", addr, "--token", tok, cwd=work)
    tok = kf.issue_token(client, dom, addr)
    r = kf.ctl_ok(keyserver, "key", "enroll", addr, "--encryption", "--alg", "p256",
                  "--device", "laptop", "--token", tok, cwd=work)
    assert "device:      laptop" in r.out, r.out
    # No token: the request is signed with DIR/<address>.key; RSA by default.
    r = kf.ctl_ok(keyserver, "key", "enroll", addr, "--encryption", "--device", "desk",
                  cwd=work)
    assert "(rsa, mode 0600)" in r.out, r.out
    # The same device again without removing its key: refused before anything is sent.
    r = kf.run_ctl(keyserver, "key", "enroll", addr, "--encryption", "--device", "desk",
                   cwd=work)
    assert r.rc != 0 and "exists" in r.err, r.err
    listed = lookup(client, addr)["encryption"]["certificates"]
    assert sorted(c["device"] for c in listed) == ["desk", "laptop"]
    cms_roundtrip(work, [c["certificate"] for c in listed],
                  [work / f"{addr}.laptop.enc.key", work / f"{addr}.desk.enc.key"], "cms")


def test_domain_encryption_requirement(keyserver, client, dom, work):
    assert client.get(f"/v1/domains/{dom.name}").json()["encryption"] == "none"
    r = kf.ctl_ok(keyserver, "domain", "encryption", dom.name, "required", cwd=work)
    assert f"{dom.name}: encryption required" in r.out, r.out
    assert client.get(f"/v1/domains/{dom.name}").json()["encryption"] == "required"
    # Logged like the other policy changes.
    feed = client.get(f"/v1/domains/{dom.name}/feed").json()
    pol = [json.loads(e["leaf"]) for e in feed["entries"] if e["type"] == "policy"]
    assert pol and pol[-1]["encryption"] == "required", pol
    r = client.put(f"/v1/domains/{dom.name}/policy", {"encryption": "always"},
                   token=dom.admin_token)
    assert r.status == 400 and r.error_code() == "bad_policy", r.body
    r = client.put(f"/v1/domains/{dom.name}/policy", {"encryption": "none"})
    assert r.status == 401, r.body
    r = kf.run_ctl(keyserver, "domain", "encryption", dom.name, "maybe", cwd=work)
    assert r.rc == 2, (r.rc, r.err)
    r = kf.ctl_ok(keyserver, "domain", "encryption", dom.name, "none", cwd=work)


def test_smimea_only_for_certificates_that_encrypt(keyserver, client, dom, work):
    signer = f"onlysig@{dom.name}"
    kf.enroll_new(client, dom, signer)
    enc = f"hasenc@{dom.name}"
    cert, _ = enroll_enc(client, dom, enc, "p256")
    r = dx.anchor_dns("records", dom.name, "-s", keyserver.base_url, "--cacert",
                      keyserver.tls.ca, "--token-file", dom.dir / "admin.token",
                      "--keyserver", f"keys.{dom.name}:{keyserver.port}:10:10",
                      "--smimea", signer, "--smimea", enc)
    assert r.rc == 0, r.err
    smimea = [line for line in r.out.splitlines() if "SMIMEA" in line.split()]
    assert len(smimea) == 1, r.out
    der = x509.load_pem_x509_certificate(cert["certificate"].encode()).public_bytes(
        serialization.Encoding.DER)
    assert smimea[0].split()[-1].lower() == der.hex()
    assert f"{signer} has no certificate that can encrypt" in r.err
