"""Sign and give back (PROTOCOL.md §12.6, POST /v1/sign on the relay's control API).

A submitter authenticated with its submission credentials (HTTP Basic over the control
API's TLS, the submission_users table SMTP AUTH reads) hands over a message and gets it
back signed by the relay's signer process (the domain's key, and the user's own), without
anything being queued or sent.  `anchorctl relay sign` drives it; python3-dkim verifies
the message it prints against the keys NSD serves (asked with dig, as a verifier would).

    signed      both signatures verify from DNS; the spool stays empty, the sink gets
                nothing, the relay's log says "not sent"
    refusals    a wrong password or an unknown user (401, WWW-Authenticate), another
                From: (403 from_not_owned), no message or not base64 (400), GET (405), and
                a relay without submission_auth = required (403 signback_unavailable)
"""

import base64
import ctypes
import ctypes.util
import json
import subprocess
import time

import pytest

import anchorlib
import relayfixtures as rx
from relayfixtures import make_relay, smtp_sink  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

ALICE, ALICE_PW = "alice@x.test", "alices-signing-pw"


def crypt_hash(password):
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    return lib.crypt(password.encode(), lib.crypt_gensalt(b"$y$", 0, None, 0)).decode()


def message(sender=ALICE, subject="give it back"):
    return (f"From: Alice <{sender}>\r\nTo: <bob@far.test>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{time.time_ns()}@x.test>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Signed here, sent by somebody else.\r\n").encode()


def dig_dnsfunc(nsd):
    """dkimpy's dnsfunc: the TXT record as NSD serves it (dig +short, strings joined)."""
    def func(name, timeout=5):
        qname = name.decode().rstrip(".")
        r = subprocess.run(["dig", "-p", str(nsd.port), "@127.0.0.1", "+short", "TXT", qname],
                           capture_output=True, text=True, timeout=timeout + 5)
        out = r.stdout.strip()
        if not out:
            return None
        parts = []
        for line in out.splitlines()[:1]:
            parts += [p for p in line.split('"') if p.strip()]
        return "".join(parts).encode()
    return func


def verify_from_dns(msg, nsd):
    import dkim
    d = dkim.DKIM(msg)
    n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])

    def one(i):
        try:
            return bool(d.verify(idx=i, dnsfunc=dig_dnsfunc(nsd)))
        except dkim.DKIMException:  # "body hash mismatch" is raised, not returned
            return False

    return n, [one(i) for i in range(n)]


@pytest.fixture
def signing_relay(make_relay, smtp_sink, request, tmp_path):
    sink = smtp_sink()
    users = tmp_path / "users"
    users.write_text(f"{ALICE}:{crypt_hash(ALICE_PW)}\nbob@x.test:{crypt_hash('bobs-pw')}\n")
    users.chmod(0o600)
    relay = make_relay(start=False, sign_domains={"x.test": ["ed25519"]}, control=True,
                       submission_auth="required", submission_users=users,
                       smtp_port=sink.port)
    k = rx.dkim_keys(relay.dir / "ukeys-src", "x.test", "anchor-user", "ed25519")
    udir = relay.dir / "ukeys"
    udir.mkdir(mode=0o700)
    dest = udir / f"{ALICE}.key"
    dest.write_bytes(k.key_file.read_bytes())
    dest.chmod(0o600)
    relay.params["user_keys_dir"] = str(udir)
    records = dict(relay.records())
    records.update(rx.records_of([k]))
    nsd = rx.start_nsd(tmp_path / "dns", {"x.test": records})
    request.addfinalizer(nsd.stop)
    relay.start()
    return relay, sink, nsd


def ctl_sign(relay, tls, tmp_path, address, password, msg, *extra):
    pw = tmp_path / f"pw-{time.time_ns()}"
    pw.write_text(password + "\n")
    pw.chmod(0o600)
    src = tmp_path / f"msg-{time.time_ns()}.eml"
    src.write_bytes(msg)
    return subprocess.run([str(anchorlib.binary("anchorctl")), "-s", relay.control_url,
                           "--cacert", str(tls.ca), "relay", "sign", address, str(src),
                           "--password-file", str(pw), *extra],
                          capture_output=True, timeout=60,
                          env={**anchorlib.SANITIZER_ENV, "PATH": "/usr/bin:/bin"})


def test_signed_and_given_back_not_sent(signing_relay, tls, tmp_path):
    relay, sink, nsd = signing_relay
    msg = message()
    r = ctl_sign(relay, tls, tmp_path, ALICE, ALICE_PW, msg)
    assert r.returncode == 0, r.stderr.decode()
    signed = r.stdout
    assert signed.endswith(msg), signed[:400]
    n, verdicts = verify_from_dns(signed, nsd)
    assert n == 2 and all(verdicts), (n, verdicts, signed[:1500])
    head = signed[: len(signed) - len(msg)].decode()
    assert "d=x.test" in head and f"i={ALICE}" in head and "s=anchor-user" in head, head
    # tampered: the domain's signature no longer verifies
    n, verdicts = verify_from_dns(signed.replace(b"Signed here", b"Forged here"), nsd)
    assert not any(verdicts)
    # nothing queued, nothing sent
    assert relay.spool_files("out") == [] and relay.spool_files("in") == []
    time.sleep(0.3)
    assert sink.count() == 0
    assert "signed and given back for <alice@x.test>" in relay.text()
    assert ALICE_PW not in relay.text()


def test_signback_refusals(signing_relay, tls, tmp_path, make_relay):
    relay, sink, nsd = signing_relay
    client = anchorlib.Client(relay.control_url, tls.ca)

    def post(body, user=ALICE, password=ALICE_PW, method="POST"):
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        return client.request(method, "/v1/sign", body=body,
                              headers={"Authorization": f"Basic {basic}",
                                       "Content-Type": "application/json"})

    good = {"message": base64.b64encode(message()).decode()}
    r = post(good, password="wrong")
    assert r.status == 401 and r.json()["error"] == "unauthorized", r.body
    assert r.headers.get("www-authenticate", "").startswith("Basic")
    r = post(good, user="nobody@x.test")
    assert r.status == 401, r.body
    r = client.request("POST", "/v1/sign", body=good,
                       headers={"Content-Type": "application/json"})
    assert r.status == 401, r.body
    # bob may not have alice's message signed, nor alice bob's
    r = post(good, user="bob@x.test", password="bobs-pw")
    assert r.status == 403 and r.json()["error"] == "from_not_owned", r.body
    r = post({"message": base64.b64encode(message(sender="bob@x.test")).decode()})
    assert r.status == 403 and r.json()["error"] == "from_not_owned", r.body
    for body in ({}, {"message": "%%% not base64"}, {"message": ""}):
        r = post(body)
        assert r.status == 400, (body, r.body)
    r = post(None, method="GET")
    assert r.status == 405, r.body
    # the command line says so too
    r = ctl_sign(relay, tls, tmp_path, ALICE, "wrong", message())
    assert r.returncode != 0 and b"unauthorized" in r.stderr, r.stderr
    assert relay.spool_files("out") == [] and sink.count() == 0
    # a relay whose submission is not authenticated offers no signing without sending
    open_relay = make_relay(sign_domains={"x.test": ["ed25519"]}, control=True)
    r = anchorlib.Client(open_relay.control_url, tls.ca).request(
        "POST", "/v1/sign", body=good, headers={"Content-Type": "application/json"})
    assert r.status == 403 and r.json()["error"] == "signback_unavailable", r.body
