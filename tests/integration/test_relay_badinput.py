"""anchor-relay's inbound side against bad input, with raw sockets (exact bytes, exact
replies, see lib/mail/smtp.h for the rules) and hostile services around it:

    - SMTP: bare LF in a command, over-long command lines, a message without its
      CRLF.CRLF and a client that hangs up (nothing delivered), commands before the
      greeting (early talker: 554), a pipelined batch (answered in order), commands out
      of order (503), oversized messages (552), bare LF and over-long lines in the text
      and header sections that cannot be parsed (550 5.6.0);
    - DKIM: malformed DKIM-Signature fields (delivered, dkim=permerror, nothing of their
      bytes breaks our Authentication-Results); a key server that stalls, answers
      garbage or 500 for an anchored domain's DKIM key (dkim=temperror; a third-party
      signature's message is delivered, a message From the enforce-mode domain itself
      is deferred with 451, never refused with 5xx for a temporary failure);
    - reputation (anchor-reputation from repfixtures, with three reporter domains
      listing 127.0.0.66): a blocked client address gets 554 5.7.1 at connect; with the
      service down, reputation_on_error=open greets, =closed gives 421 4.3.0;
    - after all of it the relay still answers, and its log has no sanitizer report.
"""

import http.server
import re
import socket
import ssl
import threading
import time
from types import SimpleNamespace

import pytest

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import relayfixtures as rx
import repfixtures as rp
from relayfixtures import make_relay, py_sink  # noqa: F401
from smtpclient import SmtpClient

pytestmark = [
    pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built"),
    pytest.mark.skipif(not rp.bin_available(), reason="anchor-reputation is not built"),
]

SLOW = "slow.bad.test"   # anchored (enforce); its key server is reached through Proxy
BLOCKED_IP = "127.0.0.66"
LOCAL = "dest.test"


# --------------------------------------------------------------------------
# a key server in the middle that misbehaves on the DKIM endpoint

class Proxy:
    """HTTPS with the world's certificate: everything proxied to the real key server,
    except /v1/domains/*/dkim/* which follows .mode: "pass", "stall" (answers after
    .stall seconds), "junk" (200, not JSON), "json" (200, a JSON object of nonsense) or
    "error" (500)."""

    def __init__(self, tls, upstream):
        self.mode = "pass"
        self.stall = 4.0
        self.hits = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self, status, body, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                outer.hits.append(self.path)
                mode = outer.mode if "/dkim/" in self.path else "pass"
                if mode == "stall":
                    time.sleep(outer.stall)
                    mode = "pass"
                if mode == "junk":
                    return self.answer(200, b"\x00\xff<html>not json at all", "text/html")
                if mode == "json":
                    return self.answer(200, b'{"certificate": "-----BEGIN CERTIFICATE-----\\n'
                                       b'AAAA\\n-----END CERTIFICATE-----\\n", "tree_head": 7}')
                if mode == "error":
                    return self.answer(500, b'{"error": "internal", "message": "boom"}')
                r = upstream.get(self.path)
                self.answer(r.status, r.body, r.headers.get("content-type", "application/json"))

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    """repfixtures' world (key server, three reporter domains, NSD, anchor-reputation
    listing BLOCKED_IP) plus SLOW, anchored on the same key server behind Proxy, in a
    zone of the relay's own NSD."""
    w = rp.build_world(pg, db, operator_token, request, ["r1", "r2", "r3", "r4"])
    # a domain listed on the reporters' word (see test_reputation_scoring for evidence)
    w.rep = rp.Reputation(w, w.work / "rep", db, {"min_reporters": "3", "list_weight": "2",
                                                   "signed_evidence": "no"}).start()
    for label in ("r1", "r2", "r3"):
        rp.report_ok(w.rep, w.reporters[label], [f"ip:{BLOCKED_IP}", f"domain:{rp.zname('r4')}"],
                     evidence=f"spam run seen by {label}")
    assert rp.query(w.rep, ip=BLOCKED_IP)["verdict"] == "block"
    assert rp.query(w.rep, domain=rp.zname("r4"))["verdict"] == "block"

    base = w.work / "slow"
    base.mkdir()
    w.slow = kf.register_domain(w.ks, base, SLOW, operator_token.token)
    kf.ctl_ok(w.ks, "server", "issue", f"s1.{SLOW}", "--purpose", "signing", "--alg",
              "ed25519", cwd=base)
    w.slow_key = _ed25519_key(SLOW, "s1", base / f"s1.{SLOW}.signing.key")
    w.proxy = Proxy(w.tls, w.ks.client())
    request.addfinalizer(w.proxy.stop)
    r = dx.anchor_dns("records", SLOW, "-s", w.ks.base_url, "--cacert", w.tls.ca,
                      "--keyserver", f"{rp.KEYS_HOST}:{w.proxy.port}:10:10")
    assert r.rc == 0, r.err
    zdir = w.work / "bad-zones"
    zdir.mkdir()
    zones = {SLOW: zdir / "slow.zone", rp.PARENT: zdir / "parent.zone"}
    zones[SLOW].write_text(dx.zone_text(SLOW, r.out, mx=False))
    # the key server's name (in the world's TLS certificate) -> the proxy's address
    zones[rp.PARENT].write_text(dx.zone_text(rp.PARENT, "keys IN A 127.0.0.1\n", mx=False))
    w.relay_nsd = dx.Nsd(w.work / "bad-nsd", zones).start()
    request.addfinalizer(w.relay_nsd.stop)
    return w


def _ed25519_key(domain, selector, pem):
    import base64
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(pem.read_bytes(), None)
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    return rx.DkimKey(domain, selector, "ed25519", pem, "", base64.b64encode(seed))


# --------------------------------------------------------------------------
# a raw SMTP client

class Client(SmtpClient):
    def transaction(self, sender="a@sender.example", rcpts=(f"bob@{LOCAL}",)):
        assert self.cmd("EHLO client.test").startswith("250 ")
        assert self.cmd(f"MAIL FROM:<{sender}>").startswith("250 ")
        for r in rcpts:
            assert self.cmd(f"RCPT TO:<{r}>").startswith("250 ")
        assert self.cmd("DATA").startswith("354 ")


def msg(subject, extra=(), body="body line\r\n", sender="a@sender.example"):
    head = list(extra) + [f"From: <{sender}>", f"To: <bob@{LOCAL}>", f"Subject: {subject}",
                          f"Message-ID: <{subject.replace(' ', '-')}.{time.time_ns()}@x>"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def subjects(sink):
    return [m.header("Subject")[0] for m in sink.messages()]


def wait_subject(sink, subject, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = [m for m in sink.messages() if m.header("Subject") == [subject]]
        if got:
            return got[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{subject!r} not delivered; got {subjects(sink)}")
        time.sleep(0.05)


def our_dkim(m):
    ar = [v for v in m.header("Authentication-Results") if v.startswith("relay.test;")]
    assert len(ar) == 1, m.text
    return re.findall(r"dkim=(\w+)", ar[0]), ar[0]


@pytest.fixture
def relay(world, make_relay, py_sink):
    sink = py_sink()
    r = make_relay(inbound_next_hop=sink.hop, max_message_size="4k",
                   dns_server=world.relay_nsd.resolver, keyserver_cacert=world.tls.ca,
                   lookup_timeout_ms=500, key_cache_ttl=0)
    r.sink = sink
    return r


def assert_healthy(relay):
    c = Client(relay.inbound_port)
    assert c.greeting.startswith("220 relay.test"), c.greeting
    assert c.cmd("NOOP").startswith("250 2.0.0")
    assert c.cmd("QUIT").startswith("221 ")
    c.close()
    assert relay.running(), relay.text()
    bad = anchorlib.sanitizer_report(relay.text())
    assert bad is None, bad


# --------------------------------------------------------------------------
# SMTP

def test_command_line_abuse(relay):
    c = Client(relay.inbound_port)
    # a bare LF does not end a command (RFC 5321 §2.3.8)
    c.send(b"EHLO client.test\n")
    assert c.reply() == "500 5.5.2 Syntax error, bare LF received"
    assert c.cmd("EHLO client.test").startswith("250 ")
    # 512 octets with CRLF is the longest command line (§4.5.3.1.4)
    assert c.cmd("NOOP " + "x" * 505).startswith("250 ")  # 5 + 505 + 2 = 512
    assert c.cmd("NOOP " + "x" * 506) == "500 5.5.2 Line too long"
    assert c.cmd("NOOP " + "y" * 100000) == "500 5.5.2 Line too long"
    # a lone CR inside a command is no line end either
    assert c.cmd("NOOP a\rb") == "500 5.5.2 Syntax error, invalid character"
    # unknown and unsupported commands
    assert c.cmd("FROB").startswith("500 5.5.")
    assert c.cmd("EXPN root").startswith("502 ")
    assert c.cmd("MAIL FROM:<no-at-sign").startswith("501 ")
    assert c.cmd("QUIT").startswith("221 ")
    assert c.closed()


def test_commands_out_of_order(relay):
    c = Client(relay.inbound_port)
    assert c.cmd("MAIL FROM:<a@x.test>") == "503 5.5.1 Send HELO/EHLO first"
    assert c.cmd("RCPT TO:<bob@dest.test>") == "503 5.5.1 Need MAIL before RCPT"
    assert c.cmd("DATA") == "503 5.5.1 Need MAIL before DATA"
    assert c.cmd("HELO client.test").startswith("250 ")
    assert c.cmd("DATA") == "503 5.5.1 Need MAIL before DATA"
    assert c.cmd("MAIL FROM:<a@x.test>").startswith("250 ")
    assert c.cmd("MAIL FROM:<b@x.test>") == "503 5.5.1 Nested MAIL command"
    assert c.cmd("DATA") == "503 5.5.1 Need RCPT before DATA"
    assert c.cmd("RCPT TO:<bob@elsewhere.test>").startswith("550 5.7.1")
    assert c.cmd("DATA") == "503 5.5.1 Need RCPT before DATA"  # no accepted recipient
    assert c.cmd("RSET").startswith("250 ")
    assert c.cmd("RCPT TO:<bob@dest.test>") == "503 5.5.1 Need MAIL before RCPT"
    assert c.cmd("QUIT").startswith("221 ")
    # too many errors: the server hangs up (max_errors, 421)
    c = Client(relay.inbound_port)
    last = ""
    for _ in range(25):
        try:
            last = c.cmd("RCPT TO:<x@dest.test>")
        except EOFError:
            break
        if last.startswith("421"):
            break
    assert last == "421 4.7.0 Too many errors, closing connection", last
    assert c.closed()
    assert relay.sink.messages() == []


def test_missing_terminator_then_disconnect(relay):
    c = Client(relay.inbound_port)
    c.transaction()
    c.send(msg("never finished") + b"more text\r\n.\n")  # a bare-LF dot ends nothing
    c.send(b"still text\r\n..\r\n")                      # a stuffed dot ends nothing
    c.close()
    # a complete one afterwards arrives, alone
    c = Client(relay.inbound_port)
    c.transaction()
    c.send(msg("complete") + b".\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued as ")
    c.cmd("QUIT")
    wait_subject(relay.sink, "complete")
    time.sleep(0.5)
    assert subjects(relay.sink) == ["complete"]
    assert relay.spool_files("in") == [] or all(
        b"never finished" not in p.read_bytes() for p in relay.spool_files("in"))


def test_pipelining(relay):
    c = Client(relay.inbound_port)
    assert c.cmd("EHLO client.test").startswith("250 ")
    # one write: the whole envelope, a foreign recipient in the middle, DATA
    c.send("MAIL FROM:<a@sender.example>\r\nRCPT TO:<bob@dest.test>\r\n"
           "RCPT TO:<eve@elsewhere.test>\r\nRCPT TO:<carol@dest.test>\r\nDATA\r\n")
    got = [c.reply() for _ in range(5)]
    assert [g[:3] for g in got] == ["250", "250", "550", "250", "354"], got
    # the message, then more commands in the same write: answered in order after it
    c.send(msg("pipelined") + b".\r\n" + b"NOOP\r\n" * 40 + b"RSET\r\nQUIT\r\n")
    got = [c.reply() for _ in range(43)]
    assert got[0].startswith("250 2.0.0 Ok: queued"), got[0]
    assert all(g.startswith("250 2.0.0 Ok") for g in got[1:42]), got
    assert got[42].startswith("221 "), got[42]
    m = wait_subject(relay.sink, "pipelined")
    assert sorted(m.rcpts) == ["bob@dest.test", "carol@dest.test"]
    # commands pipelined after STARTTLS are thrown away (CVE-2011-0411): the relay
    # answers the 220 and then nothing of the injected text
    c = Client(relay.inbound_port)
    assert c.cmd("EHLO client.test").startswith("250 ")
    c.send(b"STARTTLS\r\nRSET\r\nNOOP\r\n")
    assert c.reply().startswith("220 2.0.0")
    ctx = ssl.create_default_context(cafile=str(relay.tls.ca))
    ctx.check_hostname = False
    assert c.buf == b""
    t = ctx.wrap_socket(c.s, server_hostname="relay.test")
    t.settimeout(5)
    t.sendall(b"NOOP\r\n")
    assert t.recv(512).startswith(b"250 2.0.0"), "the injected commands were answered"
    t.close()


def test_oversized_messages(relay):
    c = Client(relay.inbound_port)
    assert c.cmd("EHLO client.test").startswith("250 ")
    # SIZE= over the limit: refused at MAIL
    assert c.cmd("MAIL FROM:<a@x.test> SIZE=999999") == "552 5.3.4 Message size exceeds " \
        "fixed limit"
    # no SIZE=, too much text: read to the end, then refused
    assert c.cmd("MAIL FROM:<a@x.test>").startswith("250 ")
    assert c.cmd("RCPT TO:<bob@dest.test>").startswith("250 ")
    assert c.cmd("DATA").startswith("354 ")
    c.send(msg("too big", body=("z" * 70 + "\r\n") * 200) + b".\r\n")  # 14 kB > 4 kB
    assert c.reply() == "552 5.3.4 Message size exceeds fixed limit"
    # the session goes on
    c.transaction()
    c.send(msg("small enough") + b".\r\n")
    assert c.reply().startswith("250 ")
    wait_subject(relay.sink, "small enough")
    assert "too big" not in subjects(relay.sink)


@pytest.mark.parametrize("case", ["bare-lf", "bare-cr", "long-line", "no-colon",
                                  "leading-continuation", "no-name"])
def test_malformed_text(relay, case):
    good = msg(case)
    data = {
        "bare-lf": good.replace(b"body line\r\n", b"body\nline\r\n"),
        "bare-cr": good.replace(b"body line\r\n", b"body\rline\r\n"),
        "long-line": good + b"x" * 1200 + b"\r\n",
        "no-colon": b"This header line has no colon\r\n" + good,
        "leading-continuation": b"  starts with a blank\r\n" + good,
        "no-name": b": no name\r\n" + good,
    }[case]
    want = {
        "bare-lf": "550 5.6.0 Message contains bare CR or LF (RFC 5321 2.3.8)",
        "bare-cr": "550 5.6.0 Message contains bare CR or LF (RFC 5321 2.3.8)",
        "long-line": "550 5.6.0 Message has a line longer than 1000 octets",
        "no-colon": "550 5.6.0 Cannot parse the message: a header line has no colon",
        "leading-continuation": "550 5.6.0 Cannot parse the message: a continuation line "
                                "has no header field before it",
        "no-name": "550 5.6.0 Cannot parse the message: a header field has no name",
    }[case]
    c = Client(relay.inbound_port)
    c.transaction()
    c.send(data + b".\r\n")
    assert c.reply() == want
    # the transaction is over; the next one in the session works
    assert c.cmd("MAIL FROM:<a@x.test>").startswith("250 ")
    assert c.cmd("QUIT").startswith("221 ")
    time.sleep(0.3)
    assert relay.sink.messages() == []


def test_malformed_dkim_signatures(relay):
    """Each broken DKIM-Signature gets its own permerror; the message is delivered and
    nothing a sender put in the fields escapes into our Authentication-Results."""
    bh = "bh=" + "A" * 43 + "="  # a well-formed SHA-256 body hash (of nothing real)
    ok = f"d=sender.example; s=sel; h=from; {bh}; b=AAAA"
    cases = [  # (field value, what the reason must name)
        ("this is not a tag list", "'='"),
        ("", "empty"),
        ("v=1; a=rsa-sha256; d=sender.example; s=sel", "b= is missing"),
        (f"v=1; v=1; a=rsa-sha256; {ok}", "twice"),
        (f"v=2; a=rsa-sha256; {ok}", "v="),
        (f"v=1; a=rsa-md5; {ok}", "rsa-md5"),
        (f"v=1; a=rsa-sha256; d=sender.example; s=sel; h=subject; {bh}; b=AAAA", "From"),
        (f"v=1; a=rsa-sha256; i=x@other.example; {ok}", "within"),
        ("v=1; a=ed25519-sha256; d=sender.example; s=sel; h=from; bh=!!!!; b=AAAA", "base64"),
        (f"v=1; a=rsa-sha256; {ok}; l=99999999999999999999999", "tag l"),
        (f"v=1; a=rsa-sha256; {ok}; t=5; x=4", "x= is before t="),
        (f"v=1; a=rsa-sha256; {ok}; c=odd/relaxed", "canonicalisation"),
        (f"v=1; a=rsa-sha256; {ok}; q=http", "q="),
        (f"v=1; a=rsa-sha256; {ok}; x=1000", "expired"),
        ('v=1; a=rsa-sha256; d="x\\"; dkim=pass; s=sel; h=from; bh=A; b=A', ""),
    ]
    c = Client(relay.inbound_port)
    c.transaction()
    c.send(msg("broken signatures", extra=[f"DKIM-Signature: {v}" for v, _ in cases]) +
           b".\r\n")
    assert c.reply().startswith("250 "), "a broken signature is no reason to refuse"
    c.cmd("QUIT")
    m = wait_subject(relay.sink, "broken signatures")
    got, ar = our_dkim(m)
    assert got == ["permerror"] * len(cases), ar
    reasons = re.findall(r'dkim=permerror reason="((?:[^"\\]|\\.)*)"', ar)
    assert len(reasons) == len(cases), ar
    for (value, word), reason in zip(cases, reasons):
        assert word in reason, (value, reason)
    # nothing of the sender's text became a result of its own
    assert "dkim=pass" not in ar and len(re.findall(r";\s*dkim=", ar)) == len(cases), ar
    # 8-bit garbage in a tag is quoted and replaced, never copied raw
    c = Client(relay.inbound_port)
    c.transaction()
    c.send(b"DKIM-Signature: v=1; a=rsa-sha256; d=\xe9\xff.example; s=\x80; h=from; "
           b"bh=AAAA; b=AAAA\r\n" + msg("eight bit") + b".\r\n")
    assert c.reply().startswith("250 ")
    c.cmd("QUIT")
    m = wait_subject(relay.sink, "eight bit")
    got, ar = our_dkim(m)
    assert got in (["permerror"], ["temperror"]), ar
    head = m.data.split(b"\r\n\r\n")[0]
    ours = head[head.index(b"Authentication-Results: relay.test"):].split(b"\r\nX-Anchor")[0]
    assert all(b < 0x80 for b in ours), ours


def test_keyserver_timeouts_and_garbage(world, relay):
    proxy = world.proxy
    key = world.slow_key

    def third_party(subject):
        """Signed by SLOW, From a legacy address: never refused, whatever the key server."""
        data = msg(subject)
        return rx.dkimpy_sign(data, key) + data

    def send(data):
        c = Client(relay.inbound_port)
        c.transaction()
        c.send(data + b".\r\n")
        t0 = time.monotonic()
        r = c.reply()
        c.cmd("QUIT")
        c.close()
        return r, time.monotonic() - t0

    proxy.mode = "pass"
    r, _ = send(third_party("through"))
    assert r.startswith("250 "), r
    got, ar = our_dkim(wait_subject(relay.sink, "through"))
    assert got == ["pass"] and "(anchored key)" in ar, ar

    for mode in ("stall", "junk", "json", "error"):
        proxy.mode = mode  # key_cache_ttl = 0: the key is fetched for every message
        n = len(proxy.hits)
        r, took = send(third_party(f"key server {mode}"))
        assert r.startswith("250 "), (mode, r)
        assert any("/dkim/s1" in p for p in proxy.hits[n:]), proxy.hits[n:]
        if mode == "stall":
            assert took < proxy.stall, "the relay waited for the stalled key server"
        got, ar = our_dkim(wait_subject(relay.sink, f"key server {mode}"))
        assert got == ["temperror"], (mode, ar)
        assert f"header.d={SLOW}" in ar

    # a client that hangs up while its message is being verified: nothing breaks
    proxy.mode = "stall"
    c = Client(relay.inbound_port)
    c.transaction()
    c.send(third_party("client gone") + b".\r\nQUIT\r\n")
    c.close()
    time.sleep(1.5)

    # From the enforce-mode domain itself: a temporary failure is deferred (4xx), not a
    # refusal; once the key server is back, the same message goes through
    proxy.mode = "junk"
    data = msg("own domain", sender=f"ceo@{SLOW}")
    data = rx.dkimpy_sign(data, key) + data
    r, _ = send(data)
    assert r.startswith("451 4.7.5"), r
    proxy.mode = "pass"
    r, _ = send(data)
    assert r.startswith("250 "), r
    got, ar = our_dkim(wait_subject(relay.sink, "own domain"))
    assert got == ["pass"], ar
    # unsigned From the enforce-mode domain stays refused for good
    r, _ = send(msg("unsigned own domain", sender=f"ceo@{SLOW}"))
    assert r.startswith("550 5.7.1"), r
    assert_healthy(relay)


@pytest.mark.serial  # measures when an idle client is dropped
def test_idle_clients_and_recipient_limit(make_relay, py_sink):
    """A silent client is told why it is dropped (421 4.4.2), whatever it was doing,
    plain or under TLS; recipients beyond max_rcpts get 452."""
    sink = py_sink()
    relay = make_relay(inbound_next_hop=sink.hop, idle_timeout="1s", max_rcpts=3)
    idle = "421 4.4.2 Idle too long, closing connection"
    c = Client(relay.inbound_port)                  # after the greeting
    t0 = time.monotonic()
    assert c.reply() == idle
    assert 0.8 < time.monotonic() - t0 < 5
    assert c.closed()
    c = Client(relay.inbound_port)                  # in the middle of a message
    c.transaction()
    c.send(b"Subject: half a message\r\n")
    assert c.reply() == idle
    assert c.closed()
    c = Client(relay.inbound_port)                  # under TLS
    assert c.cmd("EHLO client.test").startswith("250 ")
    assert c.cmd("STARTTLS").startswith("220 ")
    ctx = ssl.create_default_context(cafile=str(relay.tls.ca))
    ctx.check_hostname = False
    t = ctx.wrap_socket(c.s, server_hostname="relay.test")
    t.settimeout(5)
    assert t.recv(512).decode().rstrip("\r\n") == idle
    t.close()
    # a TLS handshake that is garbage: dropped, nothing else
    c = Client(relay.inbound_port)
    assert c.cmd("EHLO client.test").startswith("250 ")
    assert c.cmd("STARTTLS").startswith("220 ")
    c.send(b"this is no ClientHello\r\n" * 4)
    assert c.closed()

    c = Client(relay.inbound_port)
    assert c.cmd("EHLO client.test").startswith("250 ")
    assert c.cmd("MAIL FROM:<a@x.test>").startswith("250 ")
    got = [c.cmd(f"RCPT TO:<r{i}@dest.test>") for i in range(5)]
    assert got[:3] == ["250 2.1.5 Ok"] * 3 and got[3:] == ["452 4.5.3 Too many recipients"] * 2
    assert c.cmd("DATA").startswith("354 ")
    c.send(msg("three recipients") + b".\r\n")
    assert c.reply().startswith("250 ")
    c.cmd("QUIT")
    m = wait_subject(sink, "three recipients")
    assert sorted(m.rcpts) == [f"r{i}@dest.test" for i in range(3)]
    assert_healthy(relay)


# --------------------------------------------------------------------------
# the greeting: early talkers and reputation

def blackhole():
    """A listener that never answers (nor accepts): TLS clients hang until they give up."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def test_early_talker(world, make_relay, py_sink):
    hole = blackhole()
    try:
        sink = py_sink()
        relay = make_relay(inbound_next_hop=sink.hop,
                           reputation_url=f"https://127.0.0.1:{hole.getsockname()[1]}",
                           reputation_cacert=world.tls.ca, reputation_timeout_ms=1500,
                           reputation_on_error="open")
        # the greeting waits for the reputation answer; this client does not wait
        c = Client(relay.inbound_port, greet=False)
        c.send(b"EHLO early.test\r\nMAIL FROM:<a@x.test>\r\n")
        assert c.reply() == "554 5.5.0 SMTP protocol violation, input before greeting"
        assert c.closed()
        assert "early.test" not in relay.text()
    finally:
        hole.close()
    assert_healthy(relay)


def test_reputation_block_and_outage(world, make_relay, py_sink):
    sink = py_sink()
    relay = make_relay(inbound_next_hop=sink.hop, reputation_url=world.rep.base_url,
                       reputation_cacert=world.tls.ca, reputation_timeout_ms=5000,
                       dns_server=world.nsd.resolver, keyserver_cacert=world.tls.ca)
    c = Client(relay.inbound_port, src=BLOCKED_IP)
    assert c.greeting.startswith("554 5.7.1 Refused by reputation service"), c.greeting
    assert c.closed()
    c = Client(relay.inbound_port)  # 127.0.0.1: not listed
    assert c.greeting.startswith("220 relay.test"), c.greeting
    c.transaction()
    c.send(msg("from a clean address") + b".\r\n")
    assert c.reply().startswith("250 ")
    c.cmd("QUIT")
    wait_subject(sink, "from a clean address")
    assert f"{BLOCKED_IP} blocked by reputation" in relay.text()
    # with a reputation service, its verdict on a verified domain decides the standing
    # (relay/tier.c): r1 (anchored, its own key, no verdict against it) is known, r4
    # (anchored too, but listed by three reporters) is not
    for label, want in (("r1", "known (verified news@{d} in good standing (anchored, "
                                "reputation unknown))"),
                        ("r4", "unknown (verified news@{d} not in good standing "
                                "(reputation block))")):
        d = rp.zname(label)
        key = _ed25519_key(d, "reports", world.work / "domains" / f"reports.{d}.signing.key")
        data = msg(f"signed by {label}", sender=f"news@{d}")
        c = Client(relay.inbound_port)
        c.transaction()
        c.send(rx.dkimpy_sign(data, key) + data + b".\r\n")
        assert c.reply().startswith("250 ")
        c.cmd("QUIT")
        m = wait_subject(sink, f"signed by {label}")
        got, ar = our_dkim(m)
        assert got == ["pass"] and "(anchored key)" in ar, ar
        assert m.header("X-Anchor-Tier") == [want.format(d=d)], m.header("X-Anchor-Tier")

    # the service down: a port where nothing listens
    down = f"https://127.0.0.1:{dx.closed_port()}"
    opened = make_relay(inbound_next_hop=sink.hop, reputation_url=down,
                        reputation_cacert=world.tls.ca, reputation_on_error="open")
    c = Client(opened.inbound_port, src=BLOCKED_IP)
    assert c.greeting.startswith("220 "), c.greeting
    c.transaction()
    c.send(msg("service down, fail open") + b".\r\n")
    assert c.reply().startswith("250 ")
    c.cmd("QUIT")
    wait_subject(sink, "service down, fail open")

    closed = make_relay(inbound_next_hop=sink.hop, reputation_url=down,
                        reputation_cacert=world.tls.ca, reputation_on_error="closed")
    c = Client(closed.inbound_port)
    assert c.greeting == "421 4.3.0 Reputation service unavailable, try again later", \
        c.greeting
    assert c.closed()
    assert_healthy(relay)
    assert_healthy(opened)
    assert anchorlib.sanitizer_report(closed.text()) is None
