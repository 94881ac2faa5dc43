"""ANCHOR-DEFER, deferred disposition between anchored relays (PROTOCOL.md §12.10), on the
receiving relay: a real anchor-relay, a peer driven from here over STARTTLS with its client
certificate, and the control API deciding.

One relay, one next-hop sink and two peer certificates for the whole module:
  legacy clients         no ANCHOR-DEFER (nor ANCHOR-PARTIAL), DEFER-STATUS is 500, held@
                         is delivered as always; a client certificate whose key is not in
                         anchored_peers changes nothing
  peer, accepted         a per-recipient "DEFERRED <token> <min> <max>" line, PENDING, then the
                         operator's accept delivers it and the status says ACCEPTED
  peer, refused          REFUSED <reason>, never delivered, no bounce message anywhere
  peer, withdrawn        WITHDRAWN; a replayed withdrawal 554 5.7.1; the operator gets 409
  bad tokens             forged MAC, unknown id: 554 5.7.1; another peer's token: 554 5.7.1
                         "issued to another peer"; a malformed one 501 5.5.4
  two relays             a sending relay (front) in front of it: accepted, refused, and
                         withdrawn by the sender (anchorctl relay withdraw: DEFER-WITHDRAW at
                         once, WITHDRAWN at both ends, no bounce; 404/409 refusals)
  hold time over         the periodic sweep deletes the held message (record EXPIRED)
                         without anyone asking, and /metrics counts it
  accept and crash       a crash after the decision was recorded, before the message was
                         queued: finished at start, delivered once; a crash after it was
                         queued, before the record said so: the accept again finds the
                         queued copy (its id is the record's), delivered once
  hostile receiver       a server whose certificate key the sending relay does not list
                         offers ANCHOR-DEFER and ANCHOR-PARTIAL and answers every message
                         with a DEFERRED line: the sender ignores both, sends the whole
                         message and records it delivered (nothing kept pending)
"""
import base64
import hashlib
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

import anchorlib
import relayfixtures as rx
from smtpclient import SmtpClient

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

OFFER = re.compile(r"^250-2\.1\.5 <([^>]+)> DEFERRED ([0-9a-f]{32}\.[0-9a-f]{64}) (\d+) (\d+)$")


class Smtp(SmtpClient):
    def ehlo(self):
        lines = []
        assert self.cmd("EHLO peer.test", lines).startswith("250 ")
        return lines

    def send(self, subject, rcpts, lines=None):
        assert self.cmd("MAIL FROM:<alice@x.test>").startswith("250 ")
        for r in rcpts:
            assert self.cmd(f"RCPT TO:<{r}>").startswith("250 ")
        assert self.cmd("DATA").startswith("354 ")
        self.s.sendall(f"From: <alice@x.test>\r\nTo: <{rcpts[0]}>\r\nSubject: {subject}\r\n"
                       f"Message-ID: <{time.time_ns()}@x.test>\r\n\r\nbody\r\n.\r\n".encode())
        return self.reply(lines)


def pin_of(key):
    spki = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                          check=True, capture_output=True).stdout
    return "sha256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def client_cert(directory, name):
    """A self-signed P-256 client certificate; (cert, key, pin of its key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", f"/CN={name}"], check=True, capture_output=True)
    return cert, key, pin_of(key)


@pytest.fixture(scope="module")
def stack(tls):
    work = anchorlib.mktemp_dir("anchor-defer-")
    sink = rx.PySink().start()
    a = client_cert(work, "peer-a")
    b = client_cert(work, "peer-b")
    stranger = client_cert(work, "stranger")  # a certificate whose key is not listed
    token = anchorlib.make_token()
    relay = rx.Relay(work / "relay", tls=tls, control=True, control_token_hash=token.hash,
                     hostname="relay.test", inbound_next_hop=f"smtp:127.0.0.1:{sink.port}",
                     anchored_peers=f"peer-a={a[2]}, peer-b={b[2]}, relay-a={pin_of(tls.key)}",
                     defer_recipients="held@dest.test", defer_min_interval="2s",
                     defer_max_interval="30s", held_sweep_interval="1s").start()
    # the sending relay: its inbound side hands dest.test on to the receiving relay, with
    # its certificate (tls_cert_file) as the TLS client certificate
    front = rx.Relay(work / "front", tls=tls, hostname="front.test", anchored_client="yes",
                     control=True, control_token_hash=token.hash,
                     inbound_next_hop=f"smtp:127.0.0.1:{relay.inbound_port}",
                     anchored_peers=f"relay-b={pin_of(tls.key)}", partial_keep_time="0",
                     backoff_base="1s", backoff_max="1s").start()
    api = anchorlib.Client(f"https://127.0.0.1:{relay.control_port}", tls.ca)
    try:
        yield relay, sink, a, b, api, token.token, tls, front, stranger
    finally:
        front.stop()
        relay.stop()
        sink.stop()
        anchorlib.remove_tree(work)


def peer(stack, which="a"):
    relay, _, a, b, _, _, tls, _, _ = stack
    c = Smtp(relay.inbound_port)
    c.ehlo()
    c.starttls(tls.ca, a if which == "a" else b)
    lines = c.ehlo()
    assert "250-ANCHOR-DEFER" in lines and "250-ANCHOR-PARTIAL" in lines, lines
    return c


def hold(c, subject, extra=()):
    """Send to held@ (and extra recipients): the offer's token, checked for shape."""
    lines = []
    final = c.send(subject, ["held@dest.test", *extra], lines)
    assert final.startswith("250 2.0.0 "), lines
    offers = [OFFER.match(x) for x in lines if x.startswith("250-")]
    assert len(offers) == 1 and offers[0], lines
    assert offers[0].group(1) == "held@dest.test"
    assert (offers[0].group(3), offers[0].group(4)) == ("2", "30")
    if not extra:
        assert final == "250 2.0.0 Ok: held for decision", final
    return offers[0].group(2)


def decide(stack, tok, decision, reason=None):
    _, _, _, _, api, admin, _, _, _ = stack
    body = {"decision": decision} if reason is None else {"decision": decision, "reason": reason}
    return api.post(f"/v1/decisions/{tok}", body, token=admin)


def subjects_for(sink, rcpt):
    return [m.header("Subject")[0] for m in sink.messages() if rcpt in m.rcpts]


def no_peer_extension(lines):
    return not any("ANCHOR" in line for line in lines)


def test_legacy_clients_see_nothing_new(stack):
    relay, sink, _, _, _, _, tls, _, stranger = stack
    c = Smtp(relay.inbound_port)
    assert no_peer_extension(c.ehlo())
    c.starttls(tls.ca)  # TLS without a client certificate: still no peer
    assert no_peer_extension(c.ehlo())
    assert c.cmd("DEFER-STATUS " + "0" * 32 + "." + "0" * 64) \
        == "500 5.5.2 Syntax error, command unrecognized"
    assert c.cmd("FETCH " + "0" * 64) == "500 5.5.2 Syntax error, command unrecognized"
    # a client certificate whose key is not in anchored_peers: no peer either
    s = Smtp(relay.inbound_port)
    s.ehlo()
    s.starttls(tls.ca, stranger)
    assert no_peer_extension(s.ehlo())
    assert s.cmd("DEFER-STATUS " + "0" * 32 + "." + "0" * 64).startswith("500 5.5.2")
    s.cmd("QUIT")
    lines = []
    assert c.send("legacy to held", ["held@dest.test"], lines).startswith("250 2.0.0 Ok: queued")
    assert len(lines) == 1, lines
    c.cmd("QUIT")
    deadline = time.monotonic() + 20
    while "legacy to held" not in subjects_for(sink, "held@dest.test"):
        assert time.monotonic() < deadline, relay.text()[-2000:]
        time.sleep(0.05)


def test_accepted_decision_is_delivered(stack):
    relay, sink, _, _, api, admin, _, _, _ = stack
    c = peer(stack)
    tok = hold(c, "to be accepted", extra=["bob@dest.test"])
    assert c.cmd(f"DEFER-STATUS {tok}") == "250 2.0.0 PENDING 2 30"
    listed = api.get("/v1/decisions", token=admin).json()["held"]
    assert any(h["id"] == tok[:32] and h["state"] == "PENDING" and h["peer"] == "peer-a"
               and h["rcpt"] == "held@dest.test" for h in listed), listed
    # bob was not held: delivered at once; held@ waits for the decision
    deadline = time.monotonic() + 20
    while "to be accepted" not in subjects_for(sink, "bob@dest.test"):
        assert time.monotonic() < deadline, relay.text()[-2000:]
        time.sleep(0.05)
    assert "to be accepted" not in subjects_for(sink, "held@dest.test")
    r = decide(stack, tok, "accept")
    assert r.status == 200 and r.json()["state"] == "ACCEPTED", r.text
    while "to be accepted" not in subjects_for(sink, "held@dest.test"):
        assert time.monotonic() < deadline, relay.text()[-2000:]
        time.sleep(0.05)
    assert c.cmd(f"DEFER-STATUS {tok}") == "250 2.0.0 ACCEPTED"
    assert c.cmd(f"DEFER-WITHDRAW {tok}") == "550 5.5.1 No longer pending: ACCEPTED"
    assert decide(stack, tok, "refuse").status == 409
    c.cmd("QUIT")


def test_refused_decision_is_never_delivered_nor_bounced(stack):
    relay, sink, _, _, _, _, _, _, _ = stack
    c = peer(stack)
    tok = hold(c, "to be refused")
    r = decide(stack, tok, "refuse", "the recipient does not know you")
    assert r.status == 200 and r.json()["state"] == "REFUSED", r.text
    assert c.cmd(f"DEFER-STATUS {tok}") == "250 2.0.0 REFUSED the recipient does not know you"
    c.cmd("QUIT")
    assert "to be refused" not in subjects_for(sink, "held@dest.test")
    assert not any(m.mail_from in ("", "<>") for m in sink.messages())
    assert not list((relay.state_dir / "spool" / "out").glob("m.*"))


def test_withdrawn_and_replayed_withdrawal(stack):
    relay, sink, _, _, _, _, _, _, _ = stack
    c = peer(stack)
    tok = hold(c, "to be withdrawn")
    assert c.cmd(f"DEFER-WITHDRAW {tok}") == "250 2.0.0 WITHDRAWN"
    assert c.cmd(f"DEFER-WITHDRAW {tok}") == "554 5.7.1 Defer token already withdrawn"
    assert c.cmd(f"DEFER-STATUS {tok}") == "250 2.0.0 WITHDRAWN"
    r = decide(stack, tok, "accept")
    assert r.status == 409 and r.error_code() == "withdrawn", r.text
    c.cmd("QUIT")
    # the message itself is gone from the store, only the tombstone's header is left
    rec = (relay.state_dir / "defer" / tok[:32]).read_bytes()
    assert b"to be withdrawn" not in rec and b"state WITHDRAWN" in rec
    assert "to be withdrawn" not in subjects_for(sink, "held@dest.test")


def test_forged_and_foreign_tokens(stack):
    c = peer(stack)
    tok = hold(c, "whose token")
    forged = tok[:-1] + ("0" if tok[-1] != "0" else "1")
    assert c.cmd(f"DEFER-STATUS {forged}") == "554 5.7.1 Unknown or invalid defer token"
    assert c.cmd(f"DEFER-WITHDRAW {forged}") == "554 5.7.1 Unknown or invalid defer token"
    unknown = "f" * 32 + tok[32:]
    assert c.cmd(f"DEFER-STATUS {unknown}") == "554 5.7.1 Unknown or invalid defer token"
    assert c.cmd("DEFER-STATUS ../secret") == "501 5.5.4 Syntax: DEFER-STATUS <token>"
    assert c.cmd("DEFER-WITHDRAW") == "501 5.5.4 Syntax: DEFER-WITHDRAW <token>"
    c.cmd("QUIT")
    other = peer(stack, "b")
    assert other.cmd(f"DEFER-STATUS {tok}") == "554 5.7.1 Defer token was issued to another peer"
    assert other.cmd(f"DEFER-WITHDRAW {tok}") \
        == "554 5.7.1 Defer token was issued to another peer"
    other.cmd("QUIT")
    c = peer(stack)
    assert c.cmd(f"DEFER-STATUS {tok}") == "250 2.0.0 PENDING 2 30"  # nothing changed
    c.cmd("QUIT")
    assert decide(stack, forged, "accept").status == 404


def swept(control, store):
    """anchor_relay_held_swept_total{store=...} from the control API's /metrics."""
    text = control.get("/metrics").text
    m = re.search(r'^anchor_relay_held_swept_total\{store="%s"\} (\d+)$' % store, text, re.M)
    assert m, text
    return int(m.group(1))


def test_expired_hold_is_swept_unasked(stack):
    relay, sink, _, _, api, _, _, _, _ = stack
    before = swept(api, "defer")
    c = peer(stack)
    tok = hold(c, "hold runs out")
    c.cmd("QUIT")
    rec = relay.state_dir / "defer" / tok[:32]
    text = rec.read_bytes()
    assert b"hold runs out" in text and b"state PENDING" in text
    # its hold time over (ten seconds ago); nobody asks about it
    past = re.sub(rb"\nexpires \d+\n", b"\nexpires %d\n" % (int(time.time()) - 10), text)
    tmp = rec.with_name("edit.tmp")
    tmp.write_bytes(past)
    tmp.rename(rec)
    poll(lambda: b"state EXPIRED" in rec.read_bytes(), lambda: relay.text()[-3000:])
    assert b"hold runs out" not in rec.read_bytes()
    assert swept(api, "defer") >= before + 1
    assert "hold runs out" not in subjects_for(sink, "held@dest.test")


def rewrite(path, data):
    tmp = path.with_name("edit.tmp")
    tmp.write_bytes(data)
    tmp.rename(path)


def delivered(sink, subject):
    return subjects_for(sink, "held@dest.test").count(subject)


def test_accept_interrupted_by_a_crash_delivers_once(stack):
    relay, sink, _, _, _, _, _, _, _ = stack
    c = peer(stack)
    tok_a = hold(c, "accept crash A")
    tok_b = hold(c, "accept crash B")
    c.cmd("QUIT")
    rec_a, rec_b = (relay.state_dir / "defer" / t[:32] for t in (tok_a, tok_b))
    held_b = rec_b.read_bytes()
    # B: accepted and queued; its next hop defers it, so the queued copy stays
    sink.reply = "451 4.3.0 try later"
    try:
        assert decide(stack, tok_b, "accept").status == 200
        poll(lambda: (relay.state_dir / "spool" / "in" / f"m.{tok_b[:32]}").exists(),
             lambda: relay.text()[-3000:])
        relay.kill()
        # A: killed after its decision was recorded, before anything was queued
        rewrite(rec_a, rec_a.read_bytes().replace(b"\nstate PENDING\n", b"\nstate ACCEPTED\n"))
        # B: killed after queueing, before the record changed (it still says PENDING)
        rewrite(rec_b, held_b)
        relay.start()
        r = decide(stack, tok_b, "accept")  # the operator accepts again
        assert r.status == 200 and r.json()["state"] == "ACCEPTED", r.text
    finally:
        sink.reply = None
    poll(lambda: delivered(sink, "accept crash A") == 1 and delivered(sink, "accept crash B") == 1,
         lambda: relay.text()[-3000:])
    poll(lambda: not list((relay.state_dir / "spool" / "in").glob("m.*")),
         lambda: relay.text()[-3000:])
    assert delivered(sink, "accept crash A") == 1 and delivered(sink, "accept crash B") == 1
    for rec in (rec_a, rec_b):  # decided and queued: only the header is left
        text = rec.read_bytes()
        assert b"state ACCEPTED" in text and b"accept crash" not in text, text
    c = peer(stack)
    assert c.cmd(f"DEFER-STATUS {tok_a}") == "250 2.0.0 ACCEPTED"
    c.cmd("QUIT")


def test_decisions_are_the_admins(stack):
    _, _, _, _, api, admin, _, _, _ = stack
    assert api.post("/v1/decisions/" + "0" * 32 + "." + "0" * 64, {"decision": "accept"}).status \
        == 401
    assert api.get("/v1/decisions", token="wrong").status == 401
    r = api.post("/v1/decisions/" + "0" * 32 + "." + "0" * 64, {"decision": "maybe"},
                 token=admin)
    assert r.status == 400 and r.error_code() == "bad_decision", r.text
    assert api.get("/v1/decisions/x", token=admin).status == 405
    r = api.post("/v1/decisions/not-a-token", {"decision": "accept"}, token=admin)
    assert r.status == 404 and r.error_code() == "bad_token", r.text


def poll(fn, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, what()
        time.sleep(0.05)


def through_front(stack, sender, subject):
    """A message to held@ and bob@ through the sending relay: the token the receiving relay
    gave it, once the sending relay keeps held@ awaiting the decision."""
    relay, sink, _, _, api, admin, _, front, _ = stack
    c = Smtp(front.inbound_port)
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{sender}>").startswith("250 ")
    for r in ("held@dest.test", "bob@dest.test"):
        assert c.cmd(f"RCPT TO:<{r}>").startswith("250 ")
    assert c.cmd("DATA").startswith("354 ")
    c.s.sendall(f"From: <{sender}>\r\nTo: <held@dest.test>\r\nSubject: {subject}\r\n"
                f"Message-ID: <{time.time_ns()}@x.test>\r\n\r\nbody\r\n.\r\n".encode())
    final = c.reply()
    assert final.startswith("250 2.0.0 Ok: queued as "), final
    qid = final.split()[-1]
    c.cmd("QUIT")

    def held():  # a 429 from the control API's rate limit: ask again
        r = api.get("/v1/decisions", token=admin)
        return [h for h in r.json()["held"] if h["sender"] == sender
                and h["peer"] == "relay-a"] if r.status == 200 else []
    [h] = poll(held, lambda: relay.text()[-3000:] + front.text()[-3000:])
    poll(lambda: re.search(r"to=<held@dest\.test> status=deferred ANCHOR-DEFER "
                           + h["id"], front.text()), lambda: front.text()[-3000:])
    poll(lambda: subject in subjects_for(sink, "bob@dest.test"), lambda: relay.text()[-3000:])
    spool = list((front.state_dir / "spool" / "in").glob("m.*"))
    tok = next(m.group(1) for f in spool
               for m in [re.search(r"ANCHOR-DEFER ([0-9a-f]{32}\.[0-9a-f]{64}) ",
                                   f.read_text(errors="replace"))] if m)
    assert tok.startswith(h["id"])
    return tok, qid


def relay_status(stack, qid):
    """anchorctl relay status against the sending relay's control API."""
    _, _, _, _, _, admin, tls, front, _ = stack
    return anchorlib.anchorctl("relay", "status", qid, server=f"https://127.0.0.1:"
                               f"{front.control_port}", cacert=tls.ca,
                               env={"ANCHOR_RELAY_TOKEN": admin, "PATH": "/usr/bin:/bin"})


def test_two_relays_accepted(stack):
    relay, sink, _, _, _, _, _, front, _ = stack
    tok, qid = through_front(stack, "acc@x.test", "relay to relay, accepted")
    assert "relay to relay, accepted" not in subjects_for(sink, "held@dest.test")
    # the sending user sees each recipient's state
    r = relay_status(stack, qid)
    assert r.rc == 0, r.err
    assert re.search(r"held@dest\.test +deferred-awaiting-decision \(asks every 2-30 s\)",
                     r.out), r.out
    assert re.search(r"bob@dest\.test +sent: .*250", r.out), r.out
    assert decide(stack, tok, "accept").status == 200
    poll(lambda: "relay to relay, accepted" in subjects_for(sink, "held@dest.test"),
         lambda: relay.text()[-3000:])
    # the sending relay asks, learns the decision and is done with the message
    poll(lambda: re.search(r"to=<held@dest\.test> status=delivered ANCHOR-DEFER accepted",
                           front.text()), lambda: front.text()[-3000:])
    poll(lambda: not list((front.state_dir / "spool" / "in").glob("m.*")),
         lambda: front.text()[-3000:])
    assert len([s for s in subjects_for(sink, "held@dest.test")
                if s == "relay to relay, accepted"]) == 1


def test_two_relays_refused_without_a_bounce(stack):
    relay, sink, _, _, _, _, _, front, _ = stack
    tok, qid = through_front(stack, "ref@x.test", "relay to relay, refused")
    assert decide(stack, tok, "refuse", "not wanted").status == 200
    poll(lambda: re.search(r"to=<held@dest\.test> status=failed ANCHOR-DEFER refused: "
                           r"not wanted", front.text()),
         lambda: relay.text()[-3000:] + front.text()[-3000:])
    poll(lambda: not list((front.state_dir / "spool" / "in").glob("m.*")),
         lambda: front.text()[-3000:])
    r = relay_status(stack, qid)  # every recipient done: the message has left the queue
    assert r.rc == 1 and "not_queued" in r.err, (r.out, r.err)
    assert not list((front.state_dir / "spool" / "out").glob("m.*"))
    assert "bounce" not in front.text()
    assert "relay to relay, refused" not in subjects_for(sink, "held@dest.test")


def relay_withdraw(stack, qid, rcpt):
    """anchorctl relay withdraw against the sending relay's control API."""
    _, _, _, _, _, admin, tls, front, _ = stack
    return anchorlib.anchorctl("relay", "withdraw", qid, rcpt, server=f"https://127.0.0.1:"
                               f"{front.control_port}", cacert=tls.ca,
                               env={"ANCHOR_RELAY_TOKEN": admin, "PATH": "/usr/bin:/bin"})


def test_two_relays_withdrawn_by_the_sender(stack):
    relay, sink, _, _, api, admin, tls, front, _ = stack
    tok, qid = through_front(stack, "wd@x.test", "relay to relay, withdrawn")
    front_api = anchorlib.Client(f"https://127.0.0.1:{front.control_port}", tls.ca)
    # refused cases first, while the message still awaits the decision
    r = front_api.post(f"/v1/queue/{qid}/withdraw", {"rcpt": "held@dest.test"})
    assert r.status == 401, r.text
    r = front_api.post(f"/v1/queue/{qid}/withdraw", {"rcpt": "nobody@dest.test"}, token=admin)
    assert r.status == 404 and r.error_code() == "no_such_rcpt", r.text
    r = front_api.post(f"/v1/queue/{qid}/withdraw", {"rcpt": "bob@dest.test"}, token=admin)
    assert r.status == 409 and r.error_code() == "not_awaiting", r.text  # sent already
    r = front_api.post("/v1/queue/" + "0" * 32 + "/withdraw", {"rcpt": "held@dest.test"},
                       token=admin)
    assert r.status == 404 and r.error_code() == "not_queued", r.text
    r = front_api.post(f"/v1/queue/{qid}/withdraw", {}, token=admin)
    assert r.status == 400, r.text
    r = relay_withdraw(stack, qid, "bob@dest.test")
    assert r.rc == 1 and "not_awaiting" in r.err, (r.out, r.err)
    # the withdrawal: DEFER-WITHDRAW at once, not after the window
    r = relay_withdraw(stack, qid, "held@dest.test")
    assert r.rc == 0 and "withdrawing" in r.out, (r.out, r.err)

    def state():  # the control API's rate limit may answer 429 to a fast poll: ask again
        r = api.get("/v1/decisions", token=admin)
        return [h["state"] for h in r.json()["held"] if h["id"] == tok[:32]] \
            if r.status == 200 else []
    poll(lambda: state() == ["WITHDRAWN"], lambda: relay.text()[-3000:] + front.text()[-3000:])
    poll(lambda: re.search(r"to=<held@dest\.test> status=failed ANCHOR-DEFER WITHDRAWN",
                           front.text()), lambda: front.text()[-3000:])
    poll(lambda: not list((front.state_dir / "spool" / "in").glob("m.*")),
         lambda: front.text()[-3000:])
    # done: the message has left the queue; a second withdrawal finds nothing
    r = relay_withdraw(stack, qid, "held@dest.test")
    assert r.rc == 1 and "not_queued" in r.err, (r.out, r.err)
    assert "bounce" not in front.text()
    assert not list((front.state_dir / "spool" / "out").glob("m.*"))
    assert not any(m.mail_from in ("", "<>") for m in sink.messages())
    assert "relay to relay, withdrawn" not in subjects_for(sink, "held@dest.test")


class HostileReceiver:
    """An SMTP server with STARTTLS (a self-signed certificate no relay lists) that offers
    ANCHOR-DEFER, ANCHOR-PARTIAL and CHUNKING as an anchored relay would, answers PARTIAL
    with a view request and every message with a DEFERRED line per recipient.  .commands:
    every command line it got; .messages: the bodies."""

    def __init__(self, cert):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(cert[0]), str(cert[1]))
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.commands, self.messages = [], []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(conn,), daemon=True).start()

    def session(self, conn):
        f = conn.makefile("rb")
        out = conn

        def say(*lines):
            out.sendall("".join(f"{x}\r\n" for x in lines).encode())
        say("220 hostile.test ESMTP")
        rcpts = []
        try:
            while (line := f.readline()):
                cmd = line.decode(errors="replace").rstrip("\r\n")
                self.commands.append(cmd)
                verb = cmd.split(" ")[0].upper()
                if verb == "EHLO":
                    say("250-hostile.test", "250-STARTTLS", "250-CHUNKING",
                        "250-ANCHOR-DEFER", "250-ANCHOR-PARTIAL", "250 8BITMIME")
                elif verb == "STARTTLS":
                    say("220 2.0.0 go ahead")
                    out = self.ctx.wrap_socket(conn, server_side=True)
                    f = out.makefile("rb")
                elif verb == "MAIL":
                    rcpts = []
                    say("250 2.1.0 Ok")
                elif verb == "RCPT":
                    rcpts.append(cmd[cmd.index("<") + 1:cmd.index(">")])
                    say("250 2.1.5 Ok")
                elif verb == "PARTIAL":
                    say("250 2.0.0 VIEW=text")
                elif verb in ("DATA", "BDAT"):
                    if verb == "DATA":
                        say("354 go on")
                        body = b""
                        while not body.endswith(b"\r\n.\r\n"):
                            body += f.readline()
                    else:
                        body = f.read(int(cmd.split()[1]))
                    self.messages.append(body)
                    say(*[f"250-2.1.5 <{r}> DEFERRED {'a' * 32}.{'b' * 64} 2 30" for r in rcpts],
                        "250 2.0.0 Ok: held for decision")
                elif verb.startswith("DEFER-"):
                    say("250 2.0.0 PENDING 2 30")
                elif verb == "QUIT":
                    say("221 2.0.0 Bye")
                    return
                else:
                    say("250 2.0.0 Ok")
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def stop(self):
        self.srv.close()


@pytest.fixture(scope="module")
def hostile(stack, tls):
    """A sending relay whose next hop is a HostileReceiver; it lists the real receiving
    relay's key (relay-b), not the hostile one's."""
    work = anchorlib.mktemp_dir("anchor-defer-hostile-")
    srv = HostileReceiver(client_cert(work, "hostile"))
    sender = rx.Relay(work / "sender", tls=tls, hostname="sender.test", anchored_client="yes",
                      anchored_peers=f"relay-b={pin_of(tls.key)}",
                      inbound_next_hop=f"smtp:127.0.0.1:{srv.port}",
                      backoff_base="1s", backoff_max="1s").start()
    try:
        yield srv, sender
    finally:
        sender.stop()
        srv.stop()
        anchorlib.remove_tree(work)


def test_offers_from_an_unlisted_receiver_are_ignored(hostile):
    srv, sender = hostile
    c = Smtp(sender.inbound_port)
    c.ehlo()
    lines = []
    assert c.send("to a hostile receiver", ["held@dest.test"], lines).startswith("250 "), lines
    c.cmd("QUIT")
    # an ordinary SMTP server's 2xx: delivered, and the message leaves the queue
    poll(lambda: re.search(r"to=<held@dest\.test> status=delivered", sender.text()),
         lambda: sender.text()[-3000:])
    poll(lambda: not list((sender.state_dir / "spool" / "in").glob("m.*")),
         lambda: sender.text()[-3000:])
    assert "status=deferred" not in sender.text()
    # the whole message went, no view was asked for, no token is ever asked about
    assert any(b"to a hostile receiver" in m and b"Anchor-Partial" not in m
               for m in srv.messages), srv.messages
    assert "STARTTLS" in srv.commands, srv.commands
    assert not any(x.startswith(("PARTIAL", "DEFER-")) for x in srv.commands), srv.commands
