"""Gateway encryption (PROTOCOL.md §12.9), end to end on loopback: one key server with
four anchored domains, NSD serving their anchors, two anchor-relays (the sender's and
the receiving MX of b) and an SMTP sink as b's final hop.

    a   the sender's domain (alice), DKIM key `s1` certified by a's key server; encryption
        `opportunistic`, and carol@a has no certificate: sent in the clear
    b   encryption `required`: bob has two devices' P-256 encryption certificates, and a
        third device's certificate that was revoked; dave@b has none: deferred, then
        returned

What must hold: b's copy is S/MIME (application/pkcs7-mime) to exactly bob's two live
devices (the RecipientInfos name their serials, never the revoked one's); each device's
key alone opens it with `openssl cms` and `anchorctl mail decrypt`; inside is alice's
message with the DKIM signature the sending relay made, which verifies; the outer
message is signed by a again, and the receiving relay's verdict on it is pass.  Without
the code each of these arrives in the clear.  The receiving relay refuses plain mail
from an anchored sender to b (refuse_unencrypted = anchored), and still takes it from a
legacy one.
"""

import base64
import re
import time

import pytest
from cryptography.hazmat.primitives import serialization

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import relayfixtures as rx
import routefixtures as rf
from test_keyserver_encryption import enroll_enc

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

PARENT = "genc.test"
KS_HOST = f"keys.{PARENT}"
A, B = f"a.{PARENT}", f"b.{PARENT}"
ALICE, BOB, DAVE, CAROL = f"alice@{A}", f"bob@{B}", f"dave@{B}", f"carol@{A}"
INNER = b"Content-Type: message/rfc822\r\n\r\n"


def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def w(pg, db, operator_token, tls, request):
    work = anchorlib.mktemp_dir("anchor-genc-")
    ktls = dx.make_tls(work / "tls", [KS_HOST])
    ks = anchorlib.Keyserver(work / "ks", db, ktls, operator_token.hash)
    w = type("World", (), {})()
    w.work, w.ks, w.stops = work, ks, []

    def finish():
        for stop in reversed(w.stops):
            stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks.start()
    w.stops.append(ks.stop)
    base = work / "domains"
    client = ks.client()
    doms = {d: kf.register_domain(ks, base, d, operator_token.token) for d in (A, B)}
    for d, req in ((B, "required"), (A, "opportunistic")):
        kf.ctl_ok(ks, "domain", "encryption", d, req, cwd=base)
    kf.ctl_ok(ks, "server", "issue", f"s1.{A}", "--purpose", "signing", "--alg", "ed25519",
              cwd=base)
    w.sign_key = base / f"s1.{A}.signing.key"
    host = f"mx.{B}"
    kf.ctl_ok(ks, "server", "issue", host, "--purpose", "mta", cwd=base)
    chain = work / "mx-b-fullchain.pem"
    chain.write_text((base / f"{host}.mta.pem").read_text() +
                     (base / f"{host}.mta.chain.pem").read_text())
    # bob's devices: two live ones, and one whose certificate is revoked
    w.dev = {}
    for dev in ("laptop", "phone", "lost"):
        cert, key = enroll_enc(client, doms[B], BOB, "p256", device=dev)
        (work / f"{dev}.key").write_bytes(pem_key(key))
        (work / f"{dev}.pem").write_text(cert["certificate"])
        w.dev[dev] = cert
    r = client.post(f"/v1/keys/{w.dev['lost']['key_id']}/revoke",
                    {"secret": w.dev["lost"]["revocation_secret"]})
    assert r.status == 200, r.body

    zdir = work / "zones"
    zdir.mkdir()
    zones = {PARENT: zdir / "parent.zone"}
    zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
    for d in doms:
        r = dx.anchor_dns("records", d, "-s", ks.base_url, "--cacert", ktls.ca, "--keyserver",
                          f"{KS_HOST}:{ks.port}:10:10")
        assert r.rc == 0, r.err
        zones[d] = zdir / f"{d}.zone"
        zones[d].write_text(dx.zone_text(d, r.out + "mx IN A 127.0.0.1\n", mx=False))
    nsd = dx.Nsd(work / "nsd", zones).start()
    w.stops.append(nsd.stop)

    w.sink = rx.PySink().start()
    w.stops.append(w.sink.stop)
    common = dict(dns_server=nsd.resolver, keyserver_cacert=ktls.ca)
    w.recv = rx.Relay(work / "recv", tls=tls, hostname=host, local_domains=",".join(doms),
                      inbound_next_hop=w.sink.hop, tls_cert_file=chain,
                      tls_key_file=base / f"{host}.mta.key", refuse_unencrypted="anchored",
                      **common)
    w.send = rx.Relay(work / "send", tls=tls, control=True, hostname=f"mx.{A}",
                      signing_keys=f"{A}:s1:{w.sign_key}", encryption_defer_time="3s",
                      **common)
    for relay in (w.recv, w.send):
        relay.start()
        w.stops.append(relay.stop)
    for d in doms:  # every domain's mail goes to b's MX, pinned to b's root
        r = rf.route_put(client, d, {"servers": [{"host": host, "port": w.recv.inbound_port,
                                                  "priority": 10, "weight": 1,
                                                  "pin": doms[B].pin}], "ttl": 60},
                         token=doms[d].admin_token)
        assert r.status == 200, (d, r.status, r.body)
    pub = serialization.load_pem_private_key(w.sign_key.read_bytes(), None).public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    w.records = {f"s1._domainkey.{A}": "v=DKIM1; k=ed25519; p=" + base64.b64encode(raw).decode()}
    return w


_n = iter(range(1, 10**6))


def message(to, subject, body):
    mid = f"<genc{next(_n)}.{time.time_ns()}@{A}>"
    return (f"From: Alice <{ALICE}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: {mid}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"), mid


def submit(w, to, subject, body):
    data, mid = message(to, subject, body)
    r = rx.swaks(w.send.submission_port, sender=ALICE, to=to, data=data)
    assert r.last_code() == 250, r.out
    return mid


def arrived(w, mid, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        got = [m for m in w.sink.messages() if mid.encode() in m.data]
        if got:
            return got
        assert time.monotonic() < deadline, f"{mid} did not arrive"
        time.sleep(0.05)


def wait_log(relay, pattern, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, relay.text()):
        assert time.monotonic() < deadline, (pattern, relay.text()[-3000:])
        time.sleep(0.05)
    return re.search(pattern, relay.text())


def serial_of(pem):
    r = kf.openssl("x509", "-noout", "-serial", "-in", pem)
    return int(r.stdout_text.strip().split("=", 1)[1], 16)


def recipient_serials(path):
    """The serial numbers the RecipientInfos of a CMS message name (issuerAndSerialNumber,
    printed in decimal or as 0x hex)."""
    r = kf.openssl("cms", "-cmsout", "-print", "-in", path)
    assert r.returncode == 0, r.stderr
    found = re.findall(r"serialNumber: (0x[0-9A-Fa-f]+|[0-9]+)", r.stdout_text)
    assert found, r.stdout_text
    return {int(s, 0) for s in found}


def test_required_domain_gets_it_encrypted_to_each_live_device(w, tmp_path):
    mid = submit(w, BOB, "quarterly numbers", "The secret is 4711.")
    [m] = arrived(w, mid)
    assert m.rcpts == [BOB]
    # the copy at b's final hop: S/MIME, nothing of the content in the clear
    assert re.match(r"application/pkcs7-mime", m.header("Content-Type")[0]), m.headers()
    assert b"4711" not in m.data and b"quarterly" not in m.data
    assert m.header("Subject") == ["[encrypted message]"]
    # the outer message is a's, signed by a: the receiving relay verified it
    ar = " ".join(m.header("Authentication-Results"))
    assert re.search(rf"dkim=pass[^;]*header\.d={re.escape(A)}", ar), ar
    enc = tmp_path / "enc.eml"
    enc.write_bytes(m.data)
    # exactly the two live devices, never the revoked one
    want = {serial_of(w.work / f"{d}.pem") for d in ("laptop", "phone")}
    assert recipient_serials(enc) == want
    for dev in ("laptop", "phone"):
        r = kf.openssl("cms", "-decrypt", "-in", enc, "-inkey", w.work / f"{dev}.key",
                       "-recip", w.work / f"{dev}.pem")
        assert r.returncode == 0, r.stderr
        plain = r.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert plain.startswith(INNER), plain[:200]
        inner = plain[len(INNER):]
        assert b"The secret is 4711." in inner and b"Subject: quarterly numbers" in inner
        # the message as alice's relay signed it: the signature inside verifies
        assert rx.dkimpy_verify(inner, w.records), inner[:600]
        out = tmp_path / f"{dev}.out"
        r = kf.run_ctl(w.ks, "mail", "decrypt", "--key", w.work / f"{dev}.key", "--cert",
                       w.work / f"{dev}.pem", "--in", enc, "--out", out, cwd=tmp_path)
        assert r.rc == 0, r.err
        assert out.read_bytes().replace(b"\r\n", b"\n") == plain.replace(b"\r\n", b"\n")
    r = kf.openssl("cms", "-decrypt", "-in", enc, "-inkey", w.work / "lost.key",
                   "-recip", w.work / "lost.pem")
    assert r.returncode != 0
    wait_log(w.send, rf"encrypted for 1 recipient\(s\) at {re.escape(B)} to 2 certificate")
    metrics = anchorlib.Client(w.send.control_url, w.send.tls.ca).get("/metrics").text
    assert re.search(r"^anchor_relay_encrypted_total [1-9]", metrics, re.M), metrics


def test_required_without_certificate_is_deferred_then_returned(w):
    mid = submit(w, DAVE, "for dave", "Never in the clear.")
    wait_log(w.send, rf"to=<{re.escape(DAVE)}> status=deferred 4\.7\.5 {re.escape(B)} "
             r"requires encrypted mail")
    wait_log(w.send, rf"to=<{re.escape(DAVE)}> status=failed 5\.7\.5 ")
    # the return reaches alice (a's mail goes to the same MX), with the reason
    deadline = time.monotonic() + 30
    while True:
        dsn = [m for m in w.sink.messages() if m.rcpts == [ALICE] and mid.encode() in m.data]
        if dsn:
            break
        assert time.monotonic() < deadline, "no return to the sender"
        time.sleep(0.05)
    text = dsn[0].data.decode(errors="replace")
    assert "5.7.5" in text and "requires encrypted mail" in text, text
    assert not [m for m in w.sink.messages() if DAVE in m.rcpts]
    metrics = anchorlib.Client(w.send.control_url, w.send.tls.ca).get("/metrics").text
    assert re.search(r"^anchor_relay_encryption_returned_total [1-9]", metrics, re.M)


def test_opportunistic_without_certificate_is_sent_in_the_clear(w):
    mid = submit(w, CAROL, "for carol", "Plain is fine here.")
    [m] = arrived(w, mid)
    assert m.rcpts == [CAROL] and b"Plain is fine here." in m.data
    assert not m.header("Content-Type")[0].startswith("application/pkcs7-mime")


def smtp_in(w, data, sender):
    return rx.swaks(w.recv.inbound_port, sender=sender, to=BOB, data=data)


def test_inbound_refuses_plain_mail_from_anchored_sender(w):
    seed = serialization.load_pem_private_key(w.sign_key.read_bytes(), None).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())
    key = rx.DkimKey(A, "s1", "ed25519", w.sign_key, "", base64.b64encode(seed))
    data, mid = message(BOB, "plain from a", "not encrypted")
    data = data.encode()
    r = smtp_in(w, rx.dkimpy_sign(data, key) + data, ALICE)
    assert r.last_code() == 550, r.out
    assert re.search(rf"5\.7\.1 {re.escape(B)} requires encrypted mail", r.out), r.out
    # a legacy sender is not held to it (refuse_unencrypted = anchored)
    legacy = data.replace(ALICE.encode(), b"someone@nowhere.example")
    r = smtp_in(w, legacy, "someone@nowhere.example")
    assert r.last_code() == 250, r.out
    arrived(w, mid)
