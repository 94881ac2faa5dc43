"""Receiver-chosen transfer between anchored relays (ANCHOR-PARTIAL, PROTOCOL.md §12.12),
with two real relays on one module-scoped stack:

    sender   (relay.x.test: signs x.test, MX of dest.test -> the receiver, keeps what it
              sent as a view, answers FETCH on its inbound port)
    receiver (mx.dest.test: partial_tiers = unknown, asks for the text view, delivers it
              to a sink with its Anchor-Partial field, fetches the rest through its
              control API / anchorctl relay fetch)

    - a message with a big attachment arrives as headers and its one text part; the
      fetch brings the whole message, byte for byte what the sender signed, and the
      sender forgets it (a second fetch: 404; the token: 550 Unknown);
    - FETCH by a peer with another key, a forged token, a bad token, an expired message:
      clear 5xx replies from the sender, and the control API's fetch says so
      (fetch_refused);
    - a kept message tampered with on the sender: hash_mismatch, nothing delivered;
    - a peer is known by the key of its TLS certificate (anchored_peers = name=sha256:PIN):
      a client without STARTTLS, or with a certificate whose key is not listed, sees no
      ANCHOR-PARTIAL and gets 500 for PARTIAL and FETCH, as from any legacy server; a
      view whose fetch address is a server without the sending peer's key is never
      fetched from it.
"""

import base64
import hashlib
import json
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

BOB = "bob@dest.test"
ATTACHMENT = b"QkINARYATTACHMENT" * 12000  # ~200 KB, base64-looking, one marker to find


def pin_of(key):
    spki = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                          check=True, capture_output=True).stdout
    return "sha256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def client_cert(directory, name):
    """A self-signed P-256 certificate: (cert, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", f"/CN={name}"], check=True, capture_output=True)
    return cert, key


class Client:
    """A raw SMTP client."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.buf = b""
        self.lines = []
        self.reply()

    def reply(self):
        self.lines = []
        while True:
            while b"\r\n" not in self.buf:
                data = self.s.recv(65536)
                if not data:
                    raise EOFError(self.buf)
                self.buf += data
            line, self.buf = self.buf.split(b"\r\n", 1)
            line = line.decode(errors="replace")
            self.lines.append(line)
            if line[3:4] == " ":
                return line

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\r\n")
        return self.reply()

    def starttls(self, cert=None):
        """STARTTLS, presenting cert (cert, key) when given; then EHLO again."""
        assert self.cmd("STARTTLS").startswith("220 "), self.lines
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cert is not None:
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.s = ctx.wrap_socket(self.s, server_hostname="localhost")

    def close(self):
        self.s.close()


def peer_session(port, cert, helo="peer.test"):
    """EHLO, STARTTLS with cert, EHLO: the session and its EHLO lines."""
    c = Client(port)
    assert c.cmd(f"EHLO {helo}").startswith("250 ")
    c.starttls(cert)
    assert c.cmd(f"EHLO {helo}").startswith("250 ")
    return c


def message(subject):
    boundary = "b0undary"
    return (f"From: Alice <alice@x.test>\r\nTo: <{BOB}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}@x.test>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hello Bob, the report is attached.\r\n"
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n").encode() + \
        b"\r\n".join(ATTACHMENT[i:i + 76] for i in range(0, len(ATTACHMENT), 76)) + \
        f"\r\n--{boundary}--\r\n".encode()


@pytest.fixture(scope="module")
def stack(request):
    if not rx.relay_available():
        pytest.skip("anchor-relay is not built")
    work = anchorlib.mktemp_dir("anchor-partial-")
    st = type("Stack", (), {})()
    started = []

    def finish():
        for item in reversed(started):
            item.stop()
        failed = request.session.testsfailed
        if not failed:
            anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    st.tls = anchorlib.make_tls(work / "tls")  # the receiver's certificate
    st.stls = anchorlib.make_tls(work / "tls-sender")  # the sender's
    st.recv_cert = (st.tls.cert, st.tls.key)
    st.sender_cert = (st.stls.cert, st.stls.key)
    st.other = client_cert(work, "other")  # listed by the sender, under another name
    st.stranger = client_cert(work, "stranger")  # listed nowhere
    st.token = anchorlib.make_token()
    st.token_file = work / "relay.token"
    st.token_file.write_text(st.token.token + "\n")
    st.sink = rx.PySink().start()
    started.append(st.sink)
    st.recv = rx.Relay(work / "recv", tls=st.tls, control=True, hostname="mx.dest.test",
                       local_domains="dest.test", inbound_next_hop=st.sink.hop,
                       anchored_peers=f"relay.x.test={pin_of(st.stls.key)}",
                       anchored_client="yes", control_token_hash=st.token.hash,
                       unknown_folder="Unknown")
    st.sender = rx.Relay(work / "sender", tls=st.stls, sign_domains={"x.test": "ed25519"},
                         hostname="relay.x.test", local_domains="x.test", control=True,
                         held_sweep_interval="1s",
                         smtp_port=st.recv.inbound_port, anchored_client="yes",
                         anchored_peers=f"mx.dest.test={pin_of(st.tls.key)}, "
                                        f"other.test={pin_of(st.other[1])}")
    st.nsd = rx.start_nsd(work, {"x.test": st.sender.records()}, mx_domains=["dest.test"])
    started.append(st.nsd)
    for r in (st.recv, st.sender):
        r.params["dns_server"] = st.nsd.resolver
        started.append(r.start())
    return st


def submit(st, subject):
    """Send through the sender's submission port; the view that reaches the sink."""
    c = Client(st.sender.submission_port)
    assert c.cmd("EHLO client.x.test").startswith("250 ")
    assert c.cmd("MAIL FROM:<alice@x.test>").startswith("250 ")
    assert c.cmd(f"RCPT TO:<{BOB}>").startswith("250 ")
    assert c.cmd("DATA").startswith("354 ")
    c.s.sendall(message(subject) + b".\r\n")
    assert c.reply().startswith("250 "), c.lines
    c.cmd("QUIT")
    return wait_message(st, subject, "text")


def wait_message(st, subject, view, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        for m in st.sink.messages():
            ap = m.header("Anchor-Partial")
            if m.header("Subject") == [subject] and ap and f"view={view}" in ap[0]:
                return m
        assert time.monotonic() < deadline, \
            f"no {view} of {subject!r}:\n{st.sender.text()[-3000:]}\n{st.recv.text()[-3000:]}"
        time.sleep(0.05)


def view_id(m):
    return re.search(r"id=([0-9a-f]{32})", m.header("Anchor-Partial")[0]).group(1)


def record(st, id_):
    """The receiver's record of a view (key=value lines)."""
    text = (st.recv.state_dir / "partial" / "in" / id_).read_text()
    return dict(line.split("=", 1) for line in text.splitlines())


def kept_file(st, token, ext):
    name = hashlib.sha256(token.encode()).hexdigest()
    return st.sender.state_dir / "partial" / "out" / f"{name}.{ext}"


def api_fetch(st, id_):
    """POST /v1/partial/{id}/fetch as the admin: (status, JSON)."""
    ctx = ssl.create_default_context(cafile=str(st.tls.ca))
    req = urllib.request.Request(f"{st.recv.control_url}/v1/partial/{id_}/fetch", data=b"",
                                 method="POST",
                                 headers={"Authorization": f"Bearer {st.token.token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def fetch_as(st, token, cert, helo="mx.dest.test"):
    """FETCH from the sender over STARTTLS with cert: the reply."""
    c = peer_session(st.sender.inbound_port, cert, helo)
    r = c.cmd(f"FETCH {token}")
    c.close()
    return r


def legacy_sees_nothing(c):
    assert not any("ANCHOR" in line for line in c.lines), c.lines
    assert c.cmd("MAIL FROM:<a@legacy.test>").startswith("250 ")
    assert c.cmd(f"RCPT TO:<{BOB}>").startswith("250 ")
    assert c.cmd("PARTIAL").startswith("500 5.5.2"), c.lines
    assert c.cmd("RSET").startswith("250 ")
    assert c.cmd("FETCH " + "0" * 64).startswith("500 5.5.2"), c.lines
    c.close()


def test_peers_see_the_extension_legacy_clients_do_not(stack):
    c = peer_session(stack.recv.inbound_port, stack.sender_cert, "relay.x.test")
    assert "250-ANCHOR-PARTIAL" in c.lines, c.lines
    c.close()
    # the same address and EHLO name without TLS, without a certificate, with a key that
    # is not listed: a legacy client each time
    plain = Client(stack.recv.inbound_port)
    plain.cmd("EHLO relay.x.test")
    legacy_sees_nothing(plain)
    for cert in (None, stack.stranger, stack.recv_cert):
        legacy_sees_nothing(peer_session(stack.recv.inbound_port, cert, "relay.x.test"))


def test_view_then_full_fetch(stack):
    sent_view = submit(stack, "partial one")
    # only the headers and the text part came: the attachment stayed with the sender
    assert b"Hello Bob, the report is attached." in sent_view.data
    assert b"QkINARYATTACHMENT" not in sent_view.data
    assert len(sent_view.data) < 8000, len(sent_view.data)
    assert "token=" not in sent_view.text  # the fetch token never reaches a mailbox
    # unknown-tier mail: into unknown_folder, as any other; the signature's body hash was
    # not checked on a view, and the receiver's Authentication-Results says so
    assert sent_view.rcpts == ["bob+Unknown@dest.test"], sent_view.rcpts
    ar = [re.sub(r"\s+", " ", v) for v in sent_view.header("Authentication-Results")
          if v.startswith("mx.dest.test;")]
    assert len(ar) == 1 and 'dkim=neutral reason="body hash not checked: partial view" ' \
        'header.d=x.test' in ar[0] and "dkim=pass" not in ar[0], ar
    id_ = view_id(sent_view)
    rec = record(stack, id_)
    assert kept_file(stack, rec["token"], "msg").exists()

    r = anchorlib.run_program([anchorlib.binary("anchorctl"), "-s", stack.recv.control_url,
                               "--cacert", stack.tls.ca, "--token-file", stack.token_file,
                               "--json", "relay", "fetch", id_],
                              env=dx.clean_env(), timeout=60)
    assert r.rc == 0, (r.out, r.err, stack.recv.text()[-3000:])
    assert json.loads(r.out)["status"] == "fetched"
    full = wait_message(stack, "partial one", "full")
    assert full.rcpts == ["bob+Unknown@dest.test"], full.rcpts
    assert any(v.startswith("mx.dest.test;") and "dkim=pass" in v
               for v in full.header("Authentication-Results")), full.header(
                   "Authentication-Results")
    assert full.data.replace(b"\r\n", b"").count(b"QkINARYATTACHMENT") == 12000
    # what arrived is what the sender signed: every field the view showed, and its body
    ours = f"Anchor-Partial: id={id_}; view=full\r\n".encode()
    kept = full.data[full.data.index(ours) + len(ours):]
    assert hashlib.sha256(kept).hexdigest() == rec["sha256"]
    assert rx.dkimpy_verify(kept, stack.sender.records())
    # fetched once: the receiver's record and the sender's copy are gone
    assert not kept_file(stack, rec["token"], "msg").exists()
    status, body = api_fetch(stack, id_)
    assert (status, body["error"]) == (404, "not_found"), body
    assert fetch_as(stack, rec["token"], stack.recv_cert) == "550 5.7.1 Unknown fetch token"


def test_fetch_refused_to_others_forged_and_expired(stack):
    id_ = view_id(submit(stack, "partial two"))
    token = record(stack, id_)["token"]
    # another peer's key, even with the receiver's EHLO name: refused
    assert fetch_as(stack, token, stack.other) == \
        "550 5.7.1 This message was not sent to other.test"
    assert fetch_as(stack, "ab" * 32, stack.recv_cert) == "550 5.7.1 Unknown fetch token"
    assert fetch_as(stack, "xyz", stack.recv_cert) == "501 5.5.4 Syntax: FETCH <token> [DONE]"
    # no certificate, or one whose key is not listed: FETCH is no command at all
    for cert in (None, stack.stranger):
        outsider = peer_session(stack.sender.inbound_port, cert, "mx.dest.test")
        assert outsider.cmd(f"FETCH {token}").startswith("500 5.5.2")
        outsider.close()
    plain = Client(stack.sender.inbound_port)
    plain.cmd("EHLO mx.dest.test")
    assert plain.cmd(f"FETCH {token}").startswith("500 5.5.2")
    plain.close()
    # still there for its peer; then its time runs out
    meta = kept_file(stack, token, "meta")
    assert meta.exists()
    meta.write_text(re.sub(r"expires=\d+", "expires=1", meta.read_text()))
    status, body = api_fetch(stack, id_)
    assert status == 502 and body["error"] == "fetch_refused", body
    # the sender says it is no longer kept, or (the periodic sweep came first) unknown
    assert "550 5.4.7" in body["message"] or "550 5.7.1 Unknown fetch token" in body["message"]
    assert not meta.exists() and not kept_file(stack, token, "msg").exists()


def test_expired_copy_is_swept_unasked(stack):
    """A kept message past partial_keep_time goes with the periodic sweep, though nobody
    fetches it; /metrics counts it."""
    control = anchorlib.Client(stack.sender.control_url, stack.stls.ca)

    def swept():
        m = re.search(r'^anchor_relay_held_swept_total\{store="partial"\} (\d+)$',
                      control.get("/metrics").text, re.M)
        assert m
        return int(m.group(1))
    id_ = view_id(submit(stack, "partial swept"))
    token = record(stack, id_)["token"]
    meta, msg = kept_file(stack, token, "meta"), kept_file(stack, token, "msg")
    assert msg.exists()
    before = swept()
    tmp = meta.with_name("edit.tmp")
    tmp.write_text(re.sub(r"expires=\d+", "expires=1", meta.read_text()))
    tmp.rename(meta)
    deadline = time.monotonic() + 20
    while meta.exists() or msg.exists():
        assert time.monotonic() < deadline, stack.sender.text()[-3000:]
        time.sleep(0.05)
    assert swept() >= before + 1


def test_tampered_full_message_refused(stack):
    before = len(stack.sink.messages())
    id_ = view_id(submit(stack, "partial three"))
    token = record(stack, id_)["token"]
    msg = kept_file(stack, token, "msg")
    msg.write_bytes(msg.read_bytes().replace(b"Hello Bob", b"Hello Eve"))
    status, body = api_fetch(stack, id_)
    assert (status, body["error"]) == (502, "hash_mismatch"), body
    # nothing queued: only the view arrived, and the record stays for a later try
    assert not stack.recv.spool_files("in")
    assert len(stack.sink.messages()) == before + 1
    assert record(stack, id_)["token"] == token


def test_bad_views_refused(stack):
    """A peer's view must start with a readable Anchor-Partial field of the view asked for:
    nothing else is queued."""
    body = b"From: <alice@x.test>\r\nSubject: bad view\r\n\r\n"
    good = "sha256=" + "a" * 64 + "; token=" + "b" * 64
    cases = [
        (b"", "550 5.6.0 A view starts with its Anchor-Partial field"),
        (f"Anchor-Partial: view=text; size=1; {good}\r\n".encode(),
         "550 5.6.0 Bad Anchor-Partial field: view, size, sha256, token and fetch are "
         "required"),
        (f"Anchor-Partial: view=headers; size=1; {good}; fetch=127.0.0.1:25\r\n".encode(),
         "550 5.6.0 This is the headers view; text was asked for"),
    ]
    for field, want in cases:
        c = peer_session(stack.recv.inbound_port, stack.sender_cert, "relay.x.test")
        assert c.cmd("PARTIAL") == "503 5.5.1 PARTIAL comes after the recipients"
        assert c.cmd("MAIL FROM:<alice@x.test>").startswith("250 ")
        assert c.cmd(f"RCPT TO:<{BOB}>").startswith("250 ")
        assert c.cmd("PARTIAL") == "250 2.0.0 VIEW=text"
        view = field + body
        c.s.sendall(f"BDAT {len(view)} LAST\r\n".encode() + view)
        assert c.reply() == want, (want, c.lines)
        c.close()
    assert not stack.recv.spool_files("in")
    assert not any(m.header("Subject") == ["bad view"] for m in stack.sink.messages())


def test_fetch_only_from_the_peers_key(stack):
    """A view whose fetch address is a server without the key of the peer the view came
    from (here the receiver itself): the receiver refuses to FETCH there, and says so."""
    body = (b"From: <carol@legacy.test>\r\nTo: <bob@dest.test>\r\nSubject: misdirected\r\n"
            b"Message-ID: <1@legacy.test>\r\n\r\nhello\r\n")
    field = (f"Anchor-Partial: view=text; size={len(body)}; "
             f"sha256={hashlib.sha256(body).hexdigest()}; token={'c' * 64}; "
             f"fetch=127.0.0.1:{stack.recv.inbound_port}\r\n").encode()
    c = peer_session(stack.recv.inbound_port, stack.sender_cert, "relay.x.test")
    assert c.cmd("MAIL FROM:<carol@legacy.test>").startswith("250 ")
    assert c.cmd(f"RCPT TO:<{BOB}>").startswith("250 ")
    assert c.cmd("PARTIAL") == "250 2.0.0 VIEW=text"
    view = field + body
    c.s.sendall(f"BDAT {len(view)} LAST\r\n".encode() + view)
    assert c.reply().startswith("250 "), c.lines
    c.close()
    id_ = view_id(wait_message(stack, "misdirected", "text"))
    assert record(stack, id_)["peer"] == "relay.x.test"
    status, answer = api_fetch(stack, id_)
    assert (status, answer["error"]) == (502, "fetch_refused"), answer
    assert "does not hold the key of relay.x.test" in answer["message"], answer
    assert record(stack, id_)["token"] == "c" * 64  # kept for a later try
