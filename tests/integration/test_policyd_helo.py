"""The SMTP client's own text must never turn a block into fail-open: a real Postfix
with check_policy_service -> anchor-policyd -> anchor-reputation (repfixtures' world,
three reporter domains listing 127.0.0.1 and the sender domain listed-sender.test).

    - a listed client (127.0.0.1) is rejected at RCPT whatever it says at HELO: one
      label, address literals (good and broken), a bare address, a trailing dot, upper
      case, over-long labels and names (beyond policyd's 511-octet field too), "_",
      spaces, ";", 8-bit and UTF-8 (smtputf8 on), NUL, no HELO at all; and whatever its
      MAIL FROM holds (an address literal, one label, a U-label, "_", a local part
      longer than policyd's field);
    - an unlisted client (127.0.0.2) with such a HELO is judged, not an error: its RCPT
      is accepted (unknown_action = dunno) and policyd logs a verdict, not on_error;
    - right after it, the listed client is rejected again: a refused question is no
      outage, so nothing backs off;
    - the HTTPS API: GET /v1/query judges such a HELO (csa fail, fail_helo; the ip still
      blocks), refuses an argument that is not UTF-8 text (400 bad_subject naming it).

Before the fix, anchor-reputation answered "400 bad_subject" for the whole query of
"HELO vm", anchor-policyd took it for an outage (on_error = dunno, then 2 s backoff for
everybody) and Postfix accepted the listed client.
"""

import socket
import time
import urllib.parse

import pytest

import policyfixtures as px
import relayfixtures as rx
import repfixtures as rp

pytestmark = [
    pytest.mark.skipif(not rp.bin_available(), reason="anchor-reputation is not built"),
]

LISTED = "127.0.0.1"
UNLISTED = "127.0.0.2"
LISTED_DOMAIN = "listed-sender.test"
RCPT = "bob@dest.test"

# HELO arguments as bytes on the wire; Postfix passes them on as helo_name (or refuses
# the command, and the client goes on without a HELO: still judged).
BAD_HELOS = [
    b"vm",
    b"localhost",
    b"[127.0.0.1]",
    b"[IPv6:::1]",
    b"127.0.0.1",
    b"mail.ext.test.",
    b"MAIL.EXT.TEST",
    b"[127.0.0.1",
    b"[IPv6:127.0.0.1]",
    b"[300.1.1.1]",
    b"a" * 64 + b".ext.test",
    (b"a" * 60 + b".") * 5 + b"test",
    b"a." * 300 + b"test",
    b"mail_1.ext.test",
    b"mail.ext.test;x",
    b"mail..ext.test",
    b"-mail.ext.test",
    b"mail.ext.test extra words",
    "m\u00fcller.ext.test".encode(),
    b"mail.ext.test\xff",
    b"mail\x00.ext.test",
    b"",
]
BAD_SENDERS = [
    b"a@[127.0.0.1]",
    b"a@vm",
    b"a@x_y.test",
    "a@b\u00fccher.test".encode(),
    b"x" * 600 + b"@ext.test",
]


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rp.build_world(pg, db, operator_token, request, ["r1", "r2", "r3"])
    # domains listed on the reporters' word (verified evidence: test_reputation_scoring)
    w.rep = rp.Reputation(w, w.work / "rep", db, {"signed_evidence": "no", "min_reporters": "3",
                                                   "list_weight": "2"}).start()
    for label in ("r1", "r2", "r3"):
        rp.report_ok(w.rep, w.reporters[label], [f"ip:{LISTED}", f"domain:{LISTED_DOMAIN}"],
                     evidence=f"spam run seen by {label}")
    assert rp.query(w.rep, ip=LISTED)["verdict"] == "block"
    assert rp.query(w.rep, ip=UNLISTED)["verdict"] == "unknown"

    w.pd = px.Policyd(w.work / "policyd", {
        "reputation_url": w.rep.base_url, "cacert": str(w.tls.ca),
        "cache_ttl": "0",        # every RCPT asks the service
        "timeout_ms": "5000",    # sanitizer builds and CSA lookups are slow; no timeouts
        "backoff": "30s",        # a backoff, if one happened, would cover the whole test
        "on_error": "dunno"}).start()

    def stop_pd():
        w.pd.stop()
    request.addfinalizer(stop_pd)

    w.pf = rx.Postfix(rx._workdir("anchor-pfpol-"), name="pol", mailbox_domains=["dest.test"],
                      main={"smtpd_recipient_restrictions":
                            f"check_policy_service inet:127.0.0.1:{w.pd.port}",
                            "smtputf8_enable": "yes",
                            "smtpd_policy_service_max_idle": "5s"})
    request.addfinalizer(w.pf.stop)
    w.pf.start()
    return w


def _reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise AssertionError(f"Postfix closed the connection after {lines}")
        lines.append(line.decode(errors="replace").rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return int(lines[-1][:3]), "\n".join(lines)


def smtp_rcpt(port, src, helo, sender=b"a@ext.test"):
    """One session from src: EHLO helo (raw bytes), MAIL, RCPT; the RCPT reply."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(src, 0))
    f = s.makefile("rb")
    try:
        code, text = _reply(f)
        assert code == 220, text
        s.sendall(b"EHLO " + helo + b"\r\n")
        _reply(f)  # 250, or 501 for an empty one: the client goes on either way
        utf8 = b" SMTPUTF8" if any(c >= 0x80 for c in sender) else b""
        s.sendall(b"MAIL FROM:<" + sender + b">" + utf8 + b"\r\n")
        code, text = _reply(f)
        assert code == 250, (helo, sender, text)
        s.sendall(f"RCPT TO:<{RCPT}>\r\n".encode())
        code, text = _reply(f)
        s.sendall(b"QUIT\r\n")
        return code, text
    finally:
        f.close()
        s.close()


def assert_blocked(w, helo, sender=b"a@ext.test"):
    code, text = smtp_rcpt(w.pf.port, LISTED, helo, sender)
    assert code == 554 and "5.7.1" in text and "blocked by reputation" in text, \
        (helo, sender, code, text, w.pd.text()[-3000:])


def test_listed_client_rejected_with_every_helo(world):
    assert_blocked(world, b"mail.ext.test")
    for helo in BAD_HELOS:
        assert_blocked(world, helo)
    assert "answering on_error" not in world.pd.text()
    assert "not asking again" not in world.pd.text()


def test_listed_client_rejected_with_every_sender(world):
    for sender in BAD_SENDERS:
        assert_blocked(world, b"vm", sender)
    # a listed sender domain in any case, with the root dot: still the same subject
    code, text = smtp_rcpt(world.pf.port, UNLISTED, b"mail.ext.test",
                           b"a@LISTED-Sender.TEST.")
    assert code == 554 and "blocked by reputation" in text, text
    assert "answering on_error" not in world.pd.text()


def test_unlisted_judged_and_nothing_backs_off(world):
    for helo in BAD_HELOS:
        before = len(world.pd.text())
        code, text = smtp_rcpt(world.pf.port, UNLISTED, helo)
        assert code == 250, (helo, text)
        log = world.pd.text()[before:]
        # judged by the service (a verdict: DUNNO for unknown), not on_error
        assert "action=DUNNO (queried" in log, (helo, log)
        assert "answering on_error" not in log and "refused" not in log, (helo, log)
        # and the very next client is judged: no backoff
        assert_blocked(world, b"mail.ext.test")


def test_query_api_judges_helo_claims(world):
    rep = world.rep
    for helo in ("vm", "127.0.0.1.", "mail_1.ext.test", "a" * 300, "[127.0.0.1",
                 "m\u00fcller.ext.test", " ", "a\tb"):
        a = rp.query(rep, ip=LISTED, helo=helo)
        assert a["verdict"] == "block", (helo, a)
        assert a["csa"]["result"] == "fail" and a["csa"]["code"] == "fail_helo", (helo, a)
        assert a["csa"]["helo"] == helo
        assert [s["subject"] for s in a["subjects"]] == [f"ip:{LISTED}"], a
        a = rp.query(rep, ip=UNLISTED, helo=helo, domain="ext.test")
        assert a["verdict"] == "unknown", a
        assert a["reasons"][0]["code"] == "csa_fail", a
        assert "not a host name or an address literal" in a["reasons"][0]["text"], a
    # without an ip there is no CSA check; the reason says why the HELO was left out
    a = rp.query(rep, helo="vm", domain=LISTED_DOMAIN)
    assert a["verdict"] == "block" and "csa" not in a, a
    assert "bad_helo" in rp.codes(a["reasons"]), a
    # usable forms are subjects, canonical
    a = rp.query(rep, ip=UNLISTED, helo="MAIL.Ext.TEST.")
    assert "helo:mail.ext.test" in [s["subject"] for s in a["subjects"]], a
    a = rp.query(rep, ip=UNLISTED, helo="127.0.0.2")
    assert "helo:[127.0.0.2]" in [s["subject"] for s in a["subjects"]], a
    # batch: the same rule
    r = rp.request(rep, "POST", "/v1/query", {"queries": [{"ip": LISTED, "helo": "vm"}]})
    assert r.status == 200 and r.json()["answers"][0]["verdict"] == "block", r.body


@pytest.mark.parametrize("arg", ["helo", "ip", "domain"])
def test_query_api_refuses_what_is_not_text(world, arg):
    good = {"ip": LISTED, "helo": "mx.example.com", "domain": "example.com"}
    q = "&".join(f"{k}={urllib.parse.quote(v)}" for k, v in good.items() if k != arg)
    # bytes that are not UTF-8 are refused by the HTTP layer's gate, before the handler
    # (PROTOCOL.md §1.2), for every argument alike
    r = rp.request(world.rep, "GET", f"/v1/query?{q}&{arg}=mx.example.com%ff")
    assert r.status == 400, (r.status, r.body)
    assert r.json()["error"] == "invalid_utf8", r.body
    r = rp.request(world.rep, "GET", f"/v1/query?{q}&{arg}=")
    assert r.status == 400 and r.json()["error"] == "bad_subject", r.body


def test_policyd_refusal_is_no_outage(world, tls, tmp_path):
    """A stand-in service refusing every question with more than the address: policyd
    asks again about the address alone, logs the refusal once, and never backs off."""
    fake = px.FakeReputation(tls)
    fake.verdicts[LISTED] = ("block", "listed")
    refuse = {"n": 0}
    orig = fake.httpd.RequestHandlerClass.do_GET

    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if set(q) != {"ip"}:
            refuse["n"] += 1
            body = b'{"error": "bad_subject", "message": "helo \\"vm\\" refused\\u0007"}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        orig(self)

    fake.httpd.RequestHandlerClass.do_GET = do_GET
    # timeout_ms: the stand-in service is Python, on a machine that may be busy; a
    # timeout would turn the verdict into DUNNO.
    pd = px.Policyd(tmp_path / "pd", {"reputation_url": fake.url, "cacert": str(tls.ca),
                                      "cache_ttl": "0", "backoff": "30s",
                                      "timeout_ms": "5000"}).start()
    try:
        c = pd.connect()
        for _ in range(3):
            a = c.ask(px.request_attrs(client_address=LISTED, helo_name="vm"))
            assert a.startswith("action=REJECT 5.7.1"), a
            a = c.ask(px.request_attrs(client_address=UNLISTED, helo_name="vm"))
            assert a == "action=DUNNO", a
        c.close()
        assert refuse["n"] == 6
        log = pd.text()
        assert log.count("judged on the client address alone") == 6, log
        assert 'helo "vm" refused' in log and "\x07" not in log, log
        assert "not asking again" not in log and "answering on_error" not in log, log
    finally:
        pd.stop()
        fake.stop()
