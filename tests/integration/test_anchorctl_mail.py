"""`anchorctl mail encrypt|decrypt|sign|verify` (PROTOCOL.md §14): S/MIME 4.0 against the
real key server, with recipients looked up and checked as `lookup address` checks them, and
interop both ways with `openssl cms` (P-256 users enrolled at the key server) and gpgsm
(RSA).  Bad input: a clear error, exit 1, nothing written."""

import base64
import os
import shutil
import subprocess

import pytest

import doccmds
import ksfixtures as kf

MSG = ("Content-Type: text/plain; charset=utf-8\n\n"
       "Bcc: carol (the sender's copy keeps its Bcc list)\n"
       "The meeting is at noon.\n")


class World:
    pass


@pytest.fixture(scope="module")
def w(keyserver, operator_token, tmp_path_factory):
    """One domain with alice, bob (P-256), erin (RSA 2048) and dave (Ed25519: signing only)."""
    w = World()
    w.ks = keyserver
    w.base = tmp_path_factory.mktemp("mail")
    w.dom = kf.register_domain(keyserver, w.base, kf.new_domain_name("mail"),
                               operator_token.token)
    w.users = w.base / "users"
    w.users.mkdir()
    w.addr = {}
    for name, alg in (("alice", "p256"), ("bob", "p256"), ("erin", "rsa2048"),
                      ("dave", None)):
        addr = f"{name}@{w.dom.name}"
        w.addr[name] = addr
        kf.ctl_ok(keyserver, "key", "new", addr, "--dir", w.users,
                  *(("--alg", alg) if alg else ()), cwd=w.base)
        tok = kf.issue_token(keyserver.client(), w.dom, addr)
        kf.ctl_ok(keyserver, "key", "enroll", addr, "--token", tok, "--dir", w.users,
                  cwd=w.base)
    return w


def key(w, name):
    return w.users / f"{w.addr[name]}.key"


def cert(w, name):
    return w.users / f"{w.addr[name]}.pem"


def mail(w, tmp_path, *args):
    """anchorctl mail ... with a head state file of this test's own."""
    return kf.run_ctl(w.ks, "mail", *args, "--state", tmp_path / "heads.json", cwd=tmp_path)


def write_msg(tmp_path, text=MSG):
    p = tmp_path / "msg.txt"
    p.write_text(text)
    return p


def crlf(text):
    return text.replace("\n", "\r\n")


def openssl_decrypt(w, name, path):
    return kf.openssl("cms", "-decrypt", "-in", path, "-inkey", key(w, name),
                      "-recip", cert(w, name))


# --------------------------------------------------------------------------
# anchorctl -> openssl cms, and back

def test_encrypt_opens_with_openssl_for_each_recipient_and_the_sender(w, tmp_path):
    msg = write_msg(tmp_path)
    r = mail(w, tmp_path, "encrypt", w.addr["bob"], "--key", key(w, "alice"), "--sign",
             "--in", msg, "--out", tmp_path / "enc.p7m")
    assert r.rc == 0, r.err
    assert "AuthEnvelopedData/AES-256-GCM" in r.err and "2 certificate(s)" in r.err
    text = (tmp_path / "enc.p7m").read_text()
    assert "smime-type=authEnveloped-data" in text
    # bob (the recipient) and alice (the sender's own copy) each open it with stock openssl.
    for who in ("bob", "alice"):
        d = openssl_decrypt(w, who, tmp_path / "enc.p7m")
        assert d.returncode == 0, d.stderr_text
        # signed, then encrypted: inside is multipart/signed, which openssl verifies
        assert b"multipart/signed" in d.stdout
        inner = tmp_path / f"inner-{who}.txt"
        inner.write_bytes(d.stdout)
        # the signature carries alice's chain: the root alone is the trust
        v = kf.openssl("cms", "-verify", "-in", inner, "-CAfile", w.dom.dir / "root.pem")
        assert v.returncode == 0, v.stderr_text
        assert crlf("The meeting is at noon.\n").encode() in v.stdout


def test_decrypt_reports_the_signers_anchored_identity(w, tmp_path):
    msg = write_msg(tmp_path)
    assert mail(w, tmp_path, "encrypt", w.addr["bob"], "--key", key(w, "alice"), "--sign",
                "--in", msg, "--out", tmp_path / "enc.p7m").rc == 0
    r = mail(w, tmp_path, "decrypt", "--key", key(w, "bob"), "--in", tmp_path / "enc.p7m",
             "--out", tmp_path / "plain.txt")
    assert r.rc == 0, r.err
    assert f"signed by {w.addr['alice']}: anchored" in r.err
    assert (tmp_path / "plain.txt").read_text().replace("\r\n", "\n") == MSG
    # offline: the signer checked against the domain's root file only
    r = mail(w, tmp_path, "decrypt", "--key", key(w, "bob"), "--in", tmp_path / "enc.p7m",
             "--no-discover", "--ca", w.dom.dir / "root.pem")
    assert r.rc == 0, r.err
    assert f"signed by {w.addr['alice']}: chains to" in r.err
    assert "The meeting is at noon." in r.out


def test_openssl_encrypt_opens_with_anchorctl(w, tmp_path):
    msg = write_msg(tmp_path)
    for cipher in ("-aes-256-gcm", "-aes-256-cbc", "-aes-128-cbc"):
        enc = tmp_path / f"enc{cipher}"
        e = kf.openssl("cms", "-encrypt", cipher, "-in", msg, "-out", enc, cert(w, "bob"))
        assert e.returncode == 0, e.stderr_text
        r = mail(w, tmp_path, "decrypt", "--key", key(w, "bob"), "--in", enc)
        assert r.rc == 0, (cipher, r.err)
        assert "not signed" in r.err
        assert "The meeting is at noon." in r.out


def test_sign_and_verify_both_ways(w, tmp_path):
    msg = write_msg(tmp_path)
    r = mail(w, tmp_path, "sign", "--key", key(w, "alice"), "--in", msg,
             "--out", tmp_path / "signed.eml")
    assert r.rc == 0, r.err
    text = (tmp_path / "signed.eml").read_text()
    assert "multipart/signed" in text and 'protocol="application/pkcs7-signature"' in text
    v = kf.openssl("cms", "-verify", "-in", tmp_path / "signed.eml", "-CAfile",
                   w.dom.dir / "root.pem")
    assert v.returncode == 0, v.stderr_text
    r = mail(w, tmp_path, "verify", "--in", tmp_path / "signed.eml", "--out",
             tmp_path / "content.txt")
    assert r.rc == 0, r.err
    assert f"signed by {w.addr['alice']}: anchored" in r.err
    assert "The meeting is at noon." in (tmp_path / "content.txt").read_text()

    # openssl cms -sign (bob's key and chain) verifies with anchorctl verify
    s = kf.openssl("cms", "-sign", "-in", msg, "-signer", cert(w, "bob"), "-inkey",
                   key(w, "bob"), "-certfile", w.users / f"{w.addr['bob']}.chain.pem",
                   "-out", tmp_path / "os.eml")
    assert s.returncode == 0, s.stderr_text
    r = mail(w, tmp_path, "verify", "--in", tmp_path / "os.eml")
    assert r.rc == 0, r.err
    assert f"signed by {w.addr['bob']}: anchored" in r.err


def test_changed_signed_message_fails(w, tmp_path):
    msg = write_msg(tmp_path)
    assert mail(w, tmp_path, "sign", "--key", key(w, "alice"), "--in", msg,
                "--out", tmp_path / "signed.eml").rc == 0
    bad = tmp_path / "bad.eml"
    bad.write_text((tmp_path / "signed.eml").read_text().replace("noon", "nine"))
    r = mail(w, tmp_path, "verify", "--in", bad, "--out", tmp_path / "content.txt")
    assert r.rc == 1 and "bad_signature" in r.err, r.err
    assert not (tmp_path / "content.txt").exists()


def test_signer_from_another_root_is_not_anchored(w, tmp_path):
    """A signature by a self-made certificate claiming alice's address: the key server
    does not know it, so it is no anchored identity."""
    msg = write_msg(tmp_path)
    kf.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-keyout", tmp_path / "fake.key", "-out", tmp_path / "fake.pem",
               "-subj", "/CN=alice", "-addext", f"subjectAltName=email:{w.addr['alice']}",
               "-days", "2", check=True)
    kf.openssl("cms", "-sign", "-in", msg, "-signer", tmp_path / "fake.pem", "-inkey",
               tmp_path / "fake.key", "-out", tmp_path / "fake.eml", check=True)
    r = mail(w, tmp_path, "verify", "--in", tmp_path / "fake.eml")
    assert r.rc == 1 and "untrusted_signer" in r.err, r.err
    r = mail(w, tmp_path, "verify", "--in", tmp_path / "fake.eml", "--no-discover", "--ca",
             w.dom.dir / "root.pem")
    assert r.rc == 1 and "untrusted_signer" in r.err, r.err


# --------------------------------------------------------------------------
# Which certificates are used

def test_signing_only_certificate_is_never_used(w, tmp_path):
    """dave's Ed25519 certificate is listed under encryption but cannot encrypt."""
    msg = write_msg(tmp_path)
    r = mail(w, tmp_path, "encrypt", w.addr["dave"], "--self", cert(w, "alice"), "--in", msg,
             "--out", tmp_path / "enc.p7m")
    assert r.rc == 1 and "no_encryption_cert" in r.err, r.err
    assert "signing only" in r.err
    assert not (tmp_path / "enc.p7m").exists()


def test_sender_copy_is_required(w, tmp_path):
    msg = write_msg(tmp_path)
    r = mail(w, tmp_path, "encrypt", w.addr["bob"], "--in", msg)
    assert r.rc == 1 and "no_self" in r.err, r.err
    assert r.out == ""


def test_rsa_recipient_gets_enveloped_data_that_gpgsm_reads(w, tmp_path):
    msg = write_msg(tmp_path)
    r = mail(w, tmp_path, "encrypt", w.addr["erin"], w.addr["bob"], "--from", w.addr["alice"],
             "--in", msg, "--out", tmp_path / "enc.p7m")
    assert r.rc == 0, r.err
    assert "EnvelopedData/AES-256-CBC" in r.err and "3 certificate(s)" in r.err
    for who in ("erin", "bob", "alice"):
        d = openssl_decrypt(w, who, tmp_path / "enc.p7m")
        assert d.returncode == 0, (who, d.stderr_text)
    if shutil.which("gpgsm") is None:
        pytest.skip("gpgsm is not installed")
    g = Gpgsm(tmp_path)
    try:
        g.import_key(key(w, "erin"), cert(w, "erin"))
        out = g.run("--decrypt", g.der_of(tmp_path / "enc.p7m"))
    finally:
        g.stop()
    assert out.returncode == 0, out.stderr
    assert b"The meeting is at noon." in out.stdout


def test_revoked_certificate_is_never_used(w, keyserver, tmp_path):
    """frank enrolls, is revoked: encryption to him refuses; before, it worked."""
    addr = f"frank@{w.dom.name}"
    kf.ctl_ok(keyserver, "key", "new", addr, "--dir", tmp_path, "--alg", "p256", cwd=tmp_path)
    tok = kf.issue_token(keyserver.client(), w.dom, addr)
    enr = kf.ctl_ok(keyserver, "--json", "key", "enroll", addr, "--token", tok, "--dir",
                    tmp_path, cwd=tmp_path)
    import json
    kid = json.loads(enr.out)["key_id"]
    msg = write_msg(tmp_path)
    assert mail(w, tmp_path, "encrypt", addr, "--self", cert(w, "alice"), "--in", msg).rc == 0
    kf.ctl_ok(keyserver, "key", "revoke", kid, "--secret-file", tmp_path / f"{addr}.revoke",
              "--reason", "keyCompromise", cwd=tmp_path)
    r = mail(w, tmp_path, "encrypt", addr, "--self", cert(w, "alice"), "--in", msg,
             "--out", tmp_path / "enc.p7m")
    assert r.rc == 1, r.err
    assert not (tmp_path / "enc.p7m").exists()


# --------------------------------------------------------------------------
# Bad input: clear error, exit 1, nothing written

@pytest.fixture()
def enc_to_bob(w, tmp_path):
    msg = write_msg(tmp_path)
    r = mail(w, tmp_path, "encrypt", w.addr["bob"], "--self", cert(w, "alice"), "--in", msg,
             "--out", tmp_path / "enc.p7m")
    assert r.rc == 0, r.err
    return (tmp_path / "enc.p7m").read_text()


def truncated(text):
    head, body = text.split("\n\n", 1)
    lines = body.split("\n")
    return head + "\n\n" + "\n".join(lines[:len(lines) // 2]) + "\n"


def flipped(text):
    """The ciphertext with one byte of its last part changed (GCM's tag catches it)."""
    head, body = text.split("\n\n", 1)
    der = bytearray(base64.b64decode(body))
    der[-40] ^= 0x01
    return head + "\n\n" + base64.encodebytes(bytes(der)).decode()


@pytest.mark.parametrize("case,code", [
    ("garbled", "bad_message"),
    ("truncated", "bad_message"),
    ("tampered", "decrypt_failed"),
    ("someone_else", "not_for_you"),
    ("someone_else_ec", "not_for_you"),
    ("wrong_key", "key_mismatch"),
    ("not_encrypted", "not_encrypted"),
])
def test_decrypt_bad_input(w, tmp_path, enc_to_bob, case, code):
    k, c = key(w, "bob"), cert(w, "bob")
    text = enc_to_bob
    if case == "garbled":
        text = "MIME-Version: 1.0\nContent-Type: application/pkcs7-mime\n\n%%%garbage%%%\n"
    elif case == "truncated":
        text = truncated(text)
    elif case == "tampered":
        text = flipped(text)
    elif case == "someone_else":
        k, c = key(w, "erin"), cert(w, "erin")
    elif case == "someone_else_ec":
        # to bob alone; alice's P-256 key (key agreement: OpenSSL itself says nothing)
        text = kf.openssl("cms", "-encrypt", "-aes-256-gcm", "-in", tmp_path / "msg.txt",
                          cert(w, "bob"), check=True).stdout_text
        k, c = key(w, "alice"), cert(w, "alice")
    elif case == "wrong_key":
        c = cert(w, "alice")
    elif case == "not_encrypted":
        text = (tmp_path / "msg.txt").read_text()
        s = mail(w, tmp_path, "sign", "--key", key(w, "alice"), "--in", tmp_path / "msg.txt")
        text = s.out
    inp = tmp_path / "in.p7m"
    inp.write_text(text)
    out = tmp_path / "out.txt"
    r = mail(w, tmp_path, "decrypt", "--key", k, "--cert", c, "--in", inp, "--out", out)
    assert r.rc == 1, (case, r.out, r.err)
    assert f"anchorctl: {code}:" in r.err, (case, r.err)
    assert not out.exists() and r.out == ""
    # to stdout: nothing either
    r = mail(w, tmp_path, "decrypt", "--key", k, "--cert", c, "--in", inp)
    assert r.rc == 1 and r.out == ""


def test_unsupported_algorithm(w, tmp_path, enc_to_bob):
    """An X25519 key (RFC 8418) this OpenSSL's CMS cannot use, and a content cipher the
    message names that nobody can decrypt: unsupported_algorithm."""
    kf.openssl("genpkey", "-algorithm", "X25519", "-out", tmp_path / "x.key", check=True)
    kf.openssl("pkey", "-in", tmp_path / "x.key", "-pubout", "-out", tmp_path / "x.pub",
               check=True)
    (tmp_path / "ext").write_text("keyUsage=keyAgreement\nsubjectAltName=email:x@x.test\n")
    kf.openssl("x509", "-new", "-force_pubkey", tmp_path / "x.pub", "-subj", "/CN=x", "-key",
               key(w, "alice"), "-extfile", tmp_path / "ext", "-out", tmp_path / "x.pem",
               "-days", "2", check=True)
    inp = tmp_path / "in.p7m"
    inp.write_text(enc_to_bob)
    r = mail(w, tmp_path, "decrypt", "--key", tmp_path / "x.key", "--cert", tmp_path / "x.pem",
             "--in", inp)
    assert r.rc == 1 and "unsupported_algorithm" in r.err and "X25519" in r.err, r.err
    r = mail(w, tmp_path, "encrypt", w.addr["bob"], "--self", tmp_path / "x.pem", "--in",
             write_msg(tmp_path))
    assert r.rc == 1 and "unsupported_algorithm" in r.err, r.err
    assert r.out == ""
    # the content-encryption OID of an AES-256-CBC message swapped for an unknown one of
    # the same length (2.16.840.1.101.3.4.1.99)
    kf.openssl("cms", "-encrypt", "-aes-256-cbc", "-in", write_msg(tmp_path), "-outform",
               "DER", "-out", tmp_path / "e.der", cert(w, "bob"), check=True)
    der = (tmp_path / "e.der").read_bytes()
    aes256cbc = bytes.fromhex("060960864801650304012a")
    assert aes256cbc in der
    (tmp_path / "rc2.der").write_bytes(der.replace(aes256cbc,
                                                   bytes.fromhex("0609608648016503040163"), 1))
    r = mail(w, tmp_path, "decrypt", "--key", key(w, "bob"), "--in", tmp_path / "rc2.der")
    assert r.rc == 1 and "unsupported_algorithm" in r.err, r.err
    assert r.out == ""


# --------------------------------------------------------------------------
# gpgsm, RSA: its encryption opens with anchorctl

class Gpgsm:
    def __init__(self, tmp_path):
        self.home = tmp_path / "gnupg"
        self.home.mkdir(mode=0o700)
        (self.home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
        self.tmp = tmp_path

    def run(self, *args):
        env = dict(os.environ, GNUPGHOME=str(self.home))
        return subprocess.run(["gpgsm", "--batch", "--pinentry-mode", "loopback",
                               "--passphrase", "", "--disable-crl-checks",
                               "--disable-policy-checks", *map(str, args)],
                              capture_output=True, env=env, timeout=60)

    def import_key(self, k, c):
        p12 = self.tmp / "k.p12"
        kf.openssl("pkcs12", "-export", "-inkey", k, "-in", c, "-passout", "pass:",
                   "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1",
                   "-out", p12, check=True)
        r = self.run("--import", p12)
        assert r.returncode == 0, r.stderr

    def der_of(self, smime_path):
        head, body = smime_path.read_text().replace("\r\n", "\n").split("\n\n", 1)
        out = smime_path.with_suffix(".der")
        out.write_bytes(base64.b64decode(body))
        return out

    def stop(self):
        env = dict(os.environ, GNUPGHOME=str(self.home))
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)


def test_gpgsm_rsa_encrypt_opens_with_anchorctl_and_gcm_is_not_for_it(tmp_path):
    if shutil.which("gpgsm") is None:
        pytest.skip("gpgsm is not installed")
    o = lambda *a: kf.openssl(*a, check=True)  # noqa: E731
    o("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "ca.key", "-out",
      tmp_path / "ca.pem", "-subj", "/CN=test ca", "-days", "2", "-addext",
      "keyUsage=critical,keyCertSign,cRLSign")
    o("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
      tmp_path / "r.key")
    o("pkey", "-in", tmp_path / "r.key", "-pubout", "-out", tmp_path / "r.pub")
    (tmp_path / "ext").write_text("keyUsage=digitalSignature,keyEncipherment\n"
                                  "subjectAltName=email:r@rsa.test\n")
    o("x509", "-new", "-force_pubkey", tmp_path / "r.pub", "-subj", "/CN=r", "-CA",
      tmp_path / "ca.pem", "-CAkey", tmp_path / "ca.key", "-extfile", tmp_path / "ext",
      "-out", tmp_path / "r.pem", "-days", "2")
    g = Gpgsm(tmp_path)
    try:
        assert g.run("--import", tmp_path / "ca.pem", tmp_path / "r.pem").returncode == 0
        fpr = o("x509", "-in", tmp_path / "ca.pem", "-noout", "-fingerprint",
                "-sha1").stdout_text.strip().split("=")[1]
        (g.home / "trustlist.txt").write_text(f"{fpr} S relax\n")
        msg = write_msg(tmp_path)
        r = g.run("-r", "r@rsa.test", "--encrypt", "-o", tmp_path / "g.der", msg)
        assert r.returncode == 0, r.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
        d = subprocess.run([str(kf.anchorlib.binary("anchorctl")), "mail", "decrypt", "--key",
                            tmp_path / "r.key", "--cert", tmp_path / "r.pem", "--in",
                            tmp_path / "g.der"], capture_output=True, text=True, env=env)
        assert d.returncode == 0, d.stderr
        assert "The meeting is at noon." in d.stdout
        # gpgsm 2.2 cannot read AuthEnvelopedData: why an RSA recipient gets CBC
        g.import_key(tmp_path / "r.key", tmp_path / "r.pem")
        o("cms", "-encrypt", "-aes-256-gcm", "-in", msg, "-outform", "DER", "-out",
          tmp_path / "gcm.der", tmp_path / "r.pem")
        o("cms", "-encrypt", "-aes-256-cbc", "-in", msg, "-outform", "DER", "-out",
          tmp_path / "cbc.der", tmp_path / "r.pem")
        assert g.run("--decrypt", tmp_path / "cbc.der").returncode == 0
        gcm = g.run("--decrypt", tmp_path / "gcm.der")
        if gcm.returncode == 0:
            pytest.fail("this gpgsm reads AuthEnvelopedData: PROTOCOL.md §14.2's RSA rule "
                        "can be revisited")
    finally:
        g.stop()


# --------------------------------------------------------------------------
# The guide's commands, as written

def test_guide_commands_run(w, tmp_path):
    for name in ("alice", "bob"):
        for suffix in (".key", ".pem", ".chain.pem"):
            shutil.copy(w.users / f"{w.addr[name]}{suffix}", tmp_path)
    write_msg(tmp_path).rename(tmp_path / "note.txt")
    subst = {"bob@example.com": w.addr["bob"], "alice@example.com": w.addr["alice"],
             "https://keys.example.com": w.ks.base_url}
    env = {"ANCHOR_CACERT": str(w.ks.tls.ca), "ANCHOR_STATE": str(tmp_path / "heads.json")}
    r = doccmds.run("encryption.md", "mail-encrypt", subst, env=env, cwd=tmp_path)
    assert r.rc == 0, (r.out, r.err)
    assert "signed by " + w.addr["alice"] + ": anchored" in r.err
    assert "The meeting is at noon." in (tmp_path / "note.out").read_text()


# --------------------------------------------------------------------------
# Without -s: each domain's key server found by discovery, trusted by its DNS pin

@pytest.fixture(scope="module")
def dns(w, tls, request):
    """NSD serving the test domain's _anchor records, the key server as localhost:<port>
    (its certificate names localhost); and the same records with another pin."""
    import dnsfixtures as dx
    zdir = w.base / "zones"
    zdir.mkdir()
    r = dx.anchor_dns("records", w.dom.name, "-s", w.ks.base_url, "--cacert", tls.ca,
                      "--token-file", w.dom.dir / "admin.token", "--keyserver",
                      f"localhost:{w.ks.port}:10:10")
    assert r.rc == 0, r.err
    good = zdir / "good.zone"
    good.write_text(dx.zone_text(w.dom.name, r.out))
    other = "sha256:" + base64.b64encode(os.urandom(32)).decode()
    assert w.dom.pin in r.out
    bad = zdir / "bad.zone"
    bad.write_text(dx.zone_text(w.dom.name, r.out.replace(w.dom.pin, other)))
    envs = {}
    for name, zone in (("good", good), ("bad", bad)):
        nsd = dx.Nsd(w.base / f"nsd-{name}", {w.dom.name: zone}, root=False).start()
        request.addfinalizer(nsd.stop)
        envs[name] = {"ANCHOR_RESOLVER": nsd.resolver, "ANCHOR_CACERT": str(tls.ca),
                      "ANCHOR_TRUST_ANCHOR": ""}
    return envs


def ctl_discover(env, *args, cwd):
    """anchorctl with no -s and no ANCHOR_SERVER: discovery finds the key servers."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
    full.update(kf.anchorlib.SANITIZER_ENV)
    full.update(env)
    r = subprocess.run([str(kf.anchorlib.binary("anchorctl")), *map(str, args)],
                       capture_output=True, text=True, env=full, cwd=cwd, timeout=120)
    assert not kf.anchorlib.sanitizer_report(r.stderr), r.stderr
    return kf.anchorlib.Result(r.returncode, r.stdout, r.stderr)


def test_discovery_finds_the_recipients_key_server(w, dns, tmp_path):
    msg = write_msg(tmp_path)
    state = tmp_path / "heads.json"
    r = ctl_discover(dns["good"], "mail", "encrypt", w.addr["bob"], "--from", w.addr["alice"],
                     "--sign",
                     "--key", key(w, "alice"), "--in", msg, "--out", tmp_path / "enc.p7m",
                     "--state", state, cwd=tmp_path)
    assert r.rc == 0, r.err
    assert openssl_decrypt(w, "bob", tmp_path / "enc.p7m").returncode == 0
    r = ctl_discover(dns["good"], "mail", "decrypt", "--key", key(w, "bob"), "--in",
                     tmp_path / "enc.p7m", "--state", state, cwd=tmp_path)
    assert r.rc == 0, r.err
    assert f"signed by {w.addr['alice']}: anchored" in r.err
    assert "The meeting is at noon." in r.out


def test_discovery_with_a_pin_that_is_not_the_domains_refuses(w, dns, tmp_path):
    """The same key server behind a TXT record whose pin is not the served root's."""
    msg = write_msg(tmp_path)
    r = ctl_discover(dns["bad"], "mail", "encrypt", w.addr["bob"], "--self", cert(w, "alice"), "--in", msg, "--out", tmp_path / "enc.p7m", "--state",
                     tmp_path / "heads.json", cwd=tmp_path)
    assert r.rc == 1, r.err
    assert "pin" in r.err, r.err
    assert not (tmp_path / "enc.p7m").exists() and r.out == ""
