"""lib/dkim against dkimpy (python3-dkim), a DKIM implementation nobody here wrote.

Both directions, through the unit-test binary's two extra modes
(tests/unit/test_dkim.c):

  DKIM_SIGN_IN    our library signs a message; dkimpy verifies it with a
                  dnsfunc that serves our key record.
  DKIM_VERIFY_IN  dkimpy signs a message; our library verifies it with the
                  same key record.

rsa-sha256 and ed25519-sha256 (RFC 8463), simple and relaxed; a tampered body
or signed header must fail in both.
"""

import base64
import os
import subprocess

import pytest

import anchorlib

dkim = pytest.importorskip("dkim")
pytest.importorskip("nacl")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

DOMAIN = "example.org"
SELECTOR = "sel"

MESSAGE = (b"From: Alice <alice@example.org>\r\n"
           b"To: Bob <bob@example.net>\r\n"
           b"Subject: Quarterly  figures\r\n"
           b"\tand a folded line\r\n"
           b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <42@example.org>\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\n"
           b"\r\n"
           b"Hello Bob,   \r\n"
           b"\r\n"
           b"the numbers\tare  attached.\r\n"
           b"\r\n"
           b"\r\n")

CANONS = ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"]


class Key:
    def __init__(self, alg, tmp):
        self.alg = alg
        if alg == "rsa":
            self.priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            spki = self.priv.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            self.record = "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()
            self.dkimpy_key = self.priv.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption())
            self.a = b"rsa-sha256"
        else:
            self.priv = ed25519.Ed25519PrivateKey.generate()
            raw = self.priv.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            self.record = "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()
            seed = self.priv.private_bytes(serialization.Encoding.Raw,
                                           serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption())
            self.dkimpy_key = base64.b64encode(seed)
            self.a = b"ed25519-sha256"
        self.pem = tmp / f"{alg}.pem"
        self.pem.write_bytes(self.priv.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        os.chmod(self.pem, 0o600)
        self.recfile = tmp / f"{alg}.txt"
        self.recfile.write_text(self.record)

    def dnsfunc(self, name, timeout=5):
        want = f"{SELECTOR}._domainkey.{DOMAIN}."
        assert name.decode().rstrip(".") + "." == want, name
        return self.record.encode()


@pytest.fixture(scope="module", params=["rsa", "ed25519"])
def key(request, tmp_path_factory):
    return Key(request.param, tmp_path_factory.mktemp("dkim"))


def run_unit(env_extra):
    env = dict(os.environ, **anchorlib.SANITIZER_ENV, CMOCKA_MESSAGE_OUTPUT="STDOUT")
    env.update({k: str(v) for k, v in env_extra.items()})
    r = subprocess.run([str(anchorlib.binary("tests/test_dkim"))], env=env,
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert anchorlib.sanitizer_report(out) is None, out
    assert r.returncode == 0, out
    assert "[  PASSED  ] 1 test" in out, out


def c_sign(key, msg, canon, tmp_path, identity=None):
    src, dst = tmp_path / "in.eml", tmp_path / "signed.eml"
    src.write_bytes(msg)
    env = {"DKIM_SIGN_IN": src, "DKIM_KEY": key.pem, "DKIM_D": DOMAIN, "DKIM_S": SELECTOR,
           "DKIM_CANON": canon, "DKIM_OUT": dst}
    if identity:
        env["DKIM_I"] = identity
    run_unit(env)
    return dst.read_bytes()


def c_verify(key, msg, tmp_path):
    src, dst = tmp_path / "verify.eml", tmp_path / "verdicts.txt"
    src.write_bytes(msg)
    run_unit({"DKIM_VERIFY_IN": src, "DKIM_KEYREC": key.recfile, "DKIM_OUT": dst})
    return [line.split() for line in dst.read_text().splitlines()]


def py_sign(key, msg, canon):
    h, b = canon.encode().split(b"/")
    field = dkim.sign(msg, SELECTOR.encode(), DOMAIN.encode(), key.dkimpy_key,
                      canonicalize=(h, b), signature_algorithm=key.a,
                      include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return field + msg


def py_verify(key, msg):
    return dkim.verify(msg, dnsfunc=key.dnsfunc)


def tamper_body(msg):
    return msg.replace(b"attached", b"attacked")


def tamper_header(msg):
    return msg.replace(b"Subject: Quarterly", b"Subject: Annual")


@pytest.mark.parametrize("canon", CANONS)
def test_ours_verify_with_dkimpy(key, canon, tmp_path):
    signed = c_sign(key, MESSAGE, canon, tmp_path)
    assert signed.startswith(b"DKIM-Signature: v=1; a=" + key.a)
    assert py_verify(key, signed), signed.decode()
    assert not py_verify(key, tamper_body(signed))
    assert not py_verify(key, tamper_header(signed))
    # Our own verifier agrees on all three.
    assert c_verify(key, signed, tmp_path)[0][0] == "pass"
    assert c_verify(key, tamper_body(signed), tmp_path)[0][:2] == ["fail", "dkim_body_hash"]
    assert c_verify(key, tamper_header(signed), tmp_path)[0][:2] == ["fail",
                                                                     "dkim_bad_signature"]


def test_ours_with_identity_and_bare_lf(key, tmp_path):
    lf = MESSAGE.replace(b"\r\n", b"\n")
    signed = c_sign(key, lf, "relaxed/relaxed", tmp_path, identity="alice@example.org")
    assert b"i=alice@example.org" in signed
    # dkimpy reads either line end; the CRLF form carries the same signature.
    assert py_verify(key, signed)
    assert py_verify(key, signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


@pytest.mark.parametrize("canon", CANONS)
def test_dkimpy_verify_with_ours(key, canon, tmp_path):
    signed = py_sign(key, MESSAGE, canon)
    assert py_verify(key, signed)
    verdicts = c_verify(key, signed, tmp_path)
    assert verdicts == [["pass", "-", DOMAIN, SELECTOR, key.a.decode()]], verdicts
    assert c_verify(key, tamper_body(signed), tmp_path)[0][0] == "fail"
    assert c_verify(key, tamper_header(signed), tmp_path)[0][0] == "fail"


def test_both_signatures_on_one_message(key, tmp_path):
    """dkimpy signs, we add ours on top: each verifier passes both."""
    inner = py_sign(key, MESSAGE, "relaxed/simple")
    both = c_sign(key, inner, "relaxed/relaxed", tmp_path)
    verdicts = c_verify(key, both, tmp_path)
    assert [v[0] for v in verdicts] == ["pass", "pass"], verdicts
    d = dkim.DKIM(both)
    assert d.verify(idx=0, dnsfunc=key.dnsfunc)
    assert d.verify(idx=1, dnsfunc=key.dnsfunc)


# RFC 6532 / RFC 8616: UTF-8 in header values and in the local part of i=; d= stays
# the A-label domain.  Both directions, with a tampered UTF-8 header failing.
UTF8_MESSAGE = ("From: J\u00f6rg <j\u00f6rg@example.org>\r\n"
                "To: \u00c5sa <\u00e5sa@xn--bcher-kva.example>\r\n"
                "Subject: Gr\u00fc\u00dfe aus K\u00f6ln\r\n"
                "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
                "Message-ID: <43@example.org>\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "\r\n"
                "Sch\u00f6ne Gr\u00fc\u00dfe,  \r\n"
                "J\u00f6rg\r\n").encode()


def tamper_utf8(msg):
    return msg.replace("K\u00f6ln".encode(), "Koln".encode())


@pytest.mark.parametrize("canon", ["relaxed/relaxed", "simple/simple"])
def test_utf8_headers_and_identity_both_ways(key, canon, tmp_path):
    signed = c_sign(key, UTF8_MESSAGE, canon, tmp_path, identity="j\u00f6rg@example.org")
    assert "i=j\u00f6rg@example.org".encode() in signed, signed
    assert py_verify(key, signed), signed.decode()
    assert not py_verify(key, tamper_utf8(signed))
    assert c_verify(key, signed, tmp_path)[0][0] == "pass"
    assert c_verify(key, tamper_utf8(signed), tmp_path)[0][0] == "fail"

    theirs = py_sign(key, UTF8_MESSAGE, canon)
    assert py_verify(key, theirs)
    assert c_verify(key, theirs, tmp_path) == [["pass", "-", DOMAIN, SELECTOR,
                                                 key.a.decode()]]
    assert c_verify(key, tamper_utf8(theirs), tmp_path)[0][0] == "fail"
