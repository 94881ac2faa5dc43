"""UTF-8 addresses end to end (PROTOCOL.md §1.3, §4; RFC 9598), with real daemons.

    - enrollment of dörte@bücher.<parent> with anchorctl (key new + key enroll under the
      U-label): the certificate names her in one otherName id-on-SmtpUTF8Mailbox
      (UTF8String, U-label domain) and no rfc822Name, and openssl verifies it against the
      domain's name-constrained root;
    - lookups by U-label and by A-label (HTTP, anchorctl) are one record;
    - a message From her, submitted with SMTPUTF8 to a relay holding her key and the
      domain's signing key, is signed twice (s=anchor-user with i=<her address>), goes to a
      second relay that verifies both with the key server (her signature: "user key",
      the From verified as her), and on to a Postfix with smtputf8_enable = yes; it arrives
      intact and python3-dkim verifies both signatures;
    - requests that try to name her, or name no valid mailbox, through the otherName:
      another spelling of one address is that address; another user's address, an ASCII
      local part, an A-label domain, a NUL and invalid UTF-8 are refused and change nothing.

The world (module scope): one key server and NSD for u8e.test, two relays, one Postfix.
"""

import base64
import json
import re
import shutil
import smtplib
import time
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ObjectIdentifier

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import relayfixtures as rx

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

PARENT = "u8e.test"
KS = f"keys.{PARENT}"
UDOM = f"b\u00fccher.{PARENT}"
ADOM = f"xn--bcher-kva.{PARENT}"
DEST = f"dest.{PARENT}"
DORTE = f"d\u00f6rte@{ADOM}"          # canonical: NFC, lowercase, A-label
DORTE_U = f"d\u00f6rte@{UDOM}"        # RFC 9598's form in the certificate
ASA = f"\u00e5sa@{DEST}"
SMTPUTF8_OID = ObjectIdentifier("1.3.6.1.5.5.7.8.9")


def register(ks, base, name, token):
    r = kf.ctl_ok(ks, "domain", "init", name, cwd=base)
    pin = re.search(r"^pin: (sha256:\S+)$", r.out, re.M).group(1)
    kf.ctl_ok(ks, "domain", "register", name, cwd=base,
              env={"ANCHOR_OPERATOR_TOKEN": token})
    admin = (base / name / "admin.token").read_text().strip()
    return kf.Domain(name, base, base / name, admin, pin)


def ed25519_record(pem_path):
    """The DKIM record of the ed25519 key in pem_path (private key or certificate)."""
    data = pem_path.read_bytes()
    if b"CERTIFICATE" in data:
        pub = x509.load_pem_x509_certificate(data).public_key()
    else:
        pub = serialization.load_pem_private_key(data, None).public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


@pytest.fixture(scope="module")
def kworld(pg, db, operator_token, request):
    """The key server with the domain registered and its signing key issued."""
    work = anchorlib.mktemp_dir("anchor-u8e-")
    kstls = dx.make_tls(work / "tls", [KS])
    ks = anchorlib.Keyserver(work / "ks", db, kstls, operator_token.hash)
    w = SimpleNamespace(work=work, ks=ks, kstls=kstls)

    def finish():
        ks.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks.start()
    base = w.base = work / "domains"
    base.mkdir()
    w.dom = register(ks, base, ADOM, operator_token.token)
    kf.ctl_ok(ks, "server", "issue", f"s1.{ADOM}", "--purpose", "signing", "--alg",
              "ed25519", cwd=base)
    w.sign_key = base / f"s1.{ADOM}.signing.key"
    assert w.sign_key.exists(), list(base.iterdir())
    return w


@pytest.fixture(scope="module")
def world(kworld, tls, request):
    """kworld, dörte enrolled with anchorctl, NSD, two relays and a Postfix."""
    w = kworld
    ks, base, work, kstls = w.ks, w.base, w.work, w.kstls
    own = rx._Owned(request, "anchor-u8e-")
    w.nsd = None

    def finish():
        own.finish()
        if w.nsd:
            w.nsd.stop()

    request.addfinalizer(finish)
    # dörte's key and certificate, by anchorctl, named in upper case under the U-label
    w.users = work / "users"
    w.users.mkdir()
    kf.ctl_ok(ks, "key", "new", f"D\u00d6RTE@{UDOM.upper()}", "--alg", "ed25519", "--dir",
              w.users, cwd=base)
    tok = kf.issue_token(ks.client(), w.dom, DORTE)
    w.enroll = kf.ctl_ok(ks, "--json", "key", "enroll", DORTE_U, "--token", tok, "--dir",
                         w.users, cwd=base)
    w.user_key = w.users / f"{DORTE}.key"
    w.user_cert = w.users / f"{DORTE}.pem"
    assert w.user_key.exists() and w.user_cert.exists(), list(w.users.iterdir())

    zdir = work / "zones"
    zdir.mkdir()
    zones = {PARENT: zdir / "parent.zone", DEST: zdir / "dest.zone", ADOM: zdir / "adom.zone"}
    zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
    zones[DEST].write_text(dx.zone_text(DEST, ""))
    r = dx.anchor_dns("records", ADOM, "-s", ks.base_url, "--cacert", kstls.ca,
                      "--keyserver", f"{KS}:{ks.port}:10:10")
    assert r.rc == 0, r.err
    zones[ADOM].write_text(dx.zone_text(ADOM, r.out, mx=False))
    w.nsd = dx.Nsd(work / "nsd", zones).start()

    # Postfix (smtputf8_enable = yes) <- relay B (verifies, inbound) <- relay A (signs)
    w.pf = own.add(rx.Postfix(own.workdir(), name="u8pf", mailbox_domains=[DEST],
                              main={"smtputf8_enable": "yes"})).start()
    w.b = own.add(rx.Relay(own.workdir(), tls=tls, local_domains=DEST,
                           dns_server=w.nsd.resolver, keyserver_cacert=kstls.ca,
                           authserv_id="mx.u8e.test",
                           inbound_next_hop=f"smtp:127.0.0.1:{w.pf.port}")).start()
    w.a = own.add(rx.Relay(own.workdir(), tls=tls, local_domains="none.invalid",
                           dns_server=w.nsd.resolver, keyserver_cacert=kstls.ca,
                           smtp_port=str(w.b.inbound_port),
                           signing_keys=f"{ADOM}:s1:{w.sign_key}"))
    udir = w.a.dir / "ukeys"
    udir.mkdir(mode=0o700)
    shutil.copyfile(w.user_key, udir / f"{DORTE}.key")
    (udir / f"{DORTE}.key").chmod(0o600)
    w.a.params["user_keys_dir"] = str(udir)
    w.a.start()
    w.records = {f"s1._domainkey.{ADOM}": ed25519_record(w.sign_key),
                 f"anchor-user._domainkey.{ADOM}": ed25519_record(w.user_cert)}
    return w


def san_entries(pem):
    cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_enrolled_certificate_names_her_in_smtputf8mailbox(world):
    assert DORTE in world.enroll.out, world.enroll.out
    pem = world.user_cert.read_text()
    san = list(san_entries(pem))
    # RFC 9598 §3: one otherName, UTF8String, the domain in U-labels; no rfc822Name
    assert len(san) == 1 and isinstance(san[0], x509.OtherName), san
    assert san[0].type_id == SMTPUTF8_OID
    raw = DORTE_U.encode()
    assert san[0].value == bytes([0x0C, len(raw)]) + raw, san[0].value
    # OpenSSL checks the otherName against the root's rfc822Name constraint
    r = kf.verify_chain(world.work, world.dom.root_pem, world.dom.issuer_pem, pem)
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_lookup_by_u_label_and_a_label(world):
    c = world.ks.client()
    want = c.get(f"/v1/addresses/{quote(DORTE)}")
    assert want.status == 200, want.body
    certs = want.json()["certificates"]
    assert [x["name"] for x in certs] == [DORTE], certs
    for s in (DORTE_U, f"D\u00d6RTE@{UDOM}", f"do\u0308rte@{ADOM.upper()}"):
        r = c.get(f"/v1/addresses/{quote(s)}")
        assert r.status == 200 and r.json() == want.json(), (s, r.status, r.body)
    r = kf.run_ctl(world.ks, "lookup", "address", DORTE_U, "--json", cwd=world.base)
    assert r.rc == 0, (r.out, r.err)
    assert json.loads(r.out) == want.json()


def test_mail_signed_verified_and_delivered_intact(world):
    subject = "Gr\u00fc\u00dfe aus der B\u00fccherei"
    body = "Liebe \u00c5sa,\r\n\r\ndie B\u00fccher sind da.  \u2014 D\u00f6rte\r\n"
    msg = (f"From: D\u00f6rte <{DORTE_U}>\r\nTo: <{ASA}>\r\nSubject: {subject}\r\n"
           f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
           f"Message-ID: <{time.time_ns()}@{ADOM}>\r\nMIME-Version: 1.0\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n"
           f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode()
    with smtplib.SMTP("127.0.0.1", world.a.submission_port, timeout=30) as s:
        s.ehlo("client.test")
        assert s.has_extn("smtputf8")
        refused = s.sendmail(DORTE_U, [ASA], msg, mail_options=["SMTPUTF8"])
        assert refused == {}
    [got] = world.pf.wait_mailbox(ASA, 1)
    text = got.decode("utf-8")
    head, _, got_body = text.partition("\r\n\r\n") if "\r\n\r\n" in text else \
        text.partition("\n\n")
    assert got_body.replace("\r\n", "\n") == body.replace("\r\n", "\n"), got_body
    assert f"Subject: {subject}" in head, head
    # two signatures: the domain's (s1) and hers (s=anchor-user, i= her address)
    sigs = re.findall(r"^DKIM-Signature:(.*(?:\r?\n[ \t].*)*)", text, re.M)
    assert len(sigs) == 2, head
    user = [re.sub(r"\s+", "", x) for x in sigs if "anchor-user" in x]
    assert len(user) == 1 and f"i={DORTE};" in user[0], sigs
    # relay B verified both with the key server: her certificate names her address
    ar = re.search(r"^Authentication-Results: mx\.u8e\.test;(.*(?:\r?\n[ \t].*)*)", text,
                   re.M)
    assert ar, head
    assert "dkim=pass (user key)" in ar.group(1), ar.group(1)
    assert re.search(r"dkim=pass \(anchored key\)[^;]*header\.s=s1", ar.group(1)), ar.group(1)
    assert f"{DORTE}: user verified" in world.b.text(), world.b.text()[-4000:]
    # python3-dkim agrees, with the keys the key server holds
    for i in range(2):
        assert rx.dkimpy_verify(got, world.records, index=i), (i, text)
    assert anchorlib.sanitizer_report(world.a.text()) is None
    assert anchorlib.sanitizer_report(world.b.text()) is None


# --------------------------------------------------------------------------
# requests that try to name somebody through the otherName

def utf8string(raw):
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


def csr_with(value, key=None):
    """A CSR whose only SAN entry is a SmtpUTF8Mailbox with the DER value given."""
    key = key or ed25519.Ed25519PrivateKey.generate()
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    b = b.add_extension(x509.SubjectAlternativeName([x509.OtherName(SMTPUTF8_OID, value)]),
                        critical=False)
    return b.sign(key, None).public_bytes(serialization.Encoding.PEM).decode()


def token(world, address):
    return kf.issue_token(world.ks.client(), world.dom, address)


def enroll(world, tok, csr):
    return kf.enroll(world.ks.client(), ADOM, tok, csr)


def test_another_spelling_is_the_same_address(kworld):
    jorg = f"j\u00f6rg@{ADOM}"
    tok = token(kworld, jorg)
    # upper case, decomposed, U-label in upper case: the one canonical address
    r = enroll(kworld, tok, csr_with(utf8string(f"JO\u0308RG@{UDOM.upper()}".encode())))
    assert r.status == 201, (r.status, r.body)
    assert r.json()["name"] == jorg
    [entry] = list(san_entries(r.json()["certificate"]))
    assert entry.value == utf8string(f"j\u00f6rg@{UDOM}".encode())  # as issued, canonical


@pytest.mark.parametrize("token_for, asked, what", [
    ("jorg", f"j\u00f6rg@{UDOM}", "an ASCII look-alike's token"),
    ("j\u00f6rg", f"j\u04e7rg@{UDOM}", "a Cyrillic o with diaeresis"),
    ("d\u00f6rte", f"d\u00f6rte\u00df@{UDOM}", "another address"),
])
def test_another_users_address_is_refused(kworld, token_for, asked, what):
    tok = token(kworld, f"{token_for}@{ADOM}")
    r = enroll(kworld, tok, csr_with(utf8string(asked.encode())))
    assert r.status == 400 and r.error_code() == "address_mismatch", (what, r.status, r.body)


@pytest.mark.parametrize("raw, what", [
    (f"alice@{UDOM}".encode(), "an ASCII local part (RFC 9598: an rfc822Name)"),
    (f"d\u00f6rte@{ADOM}".encode(), "an A-label domain (RFC 9598: U-labels)"),
    (f"d\u00f6rte\0@{UDOM}".encode(), "a NUL"),
    (b"d\xc3rte@" + UDOM.encode(), "invalid UTF-8"),
    (f"d\u202erte@{UDOM}".encode(), "a bidi override"),
    (b"", "empty"),
])
def test_bad_smtputf8mailbox_is_refused_and_changes_nothing(kworld, raw, what):
    local = "alice" if raw.startswith(b"alice") else "d\u00f6rte"
    before = kworld.ks.client().get(f"/v1/addresses/{quote(local)}@{ADOM}").body
    tok = token(kworld, f"{local}@{ADOM}")
    r = enroll(kworld, tok, csr_with(utf8string(raw)))
    assert r.status == 400 and r.error_code() == "bad_name", (what, r.status, r.body)
    assert kworld.ks.client().get(f"/v1/addresses/{quote(local)}@{ADOM}").body == before
    # the token was not used up: a good request with it is taken
    good = kf.make_csr(f"alice@{ADOM}")[1] if local == "alice" else \
        csr_with(utf8string(DORTE_U.encode()))
    r = enroll(kworld, tok, good)
    assert r.status == 201, (r.status, r.body)
