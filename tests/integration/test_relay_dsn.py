"""DSN (RFC 3461) and its reports (RFC 3464) in anchor-relay, with real daemons:

    - the server side: EHLO offers DSN; malformed or repeated RET, ENVID, NOTIFY, ORCPT
      get 501 5.5.4 and nothing is queued;
    - the reports, read with Python's email module: a failure is a multipart/report
      (report-type=delivery-status) with Original-Envelope-Id (ENVID decoded),
      Original-Recipient (ORCPT decoded), Final-Recipient, Action, Status, Remote-MTA and
      Diagnostic-Code; RET=HDRS returns the header section only, RET=FULL the message;
      NOTIFY=NEVER gets no report; NOTIFY=DELAY a "delayed" one at the first deferral;
      NOTIFY=SUCCESS to a next hop without DSN (aiosmtpd) a "relayed" one;
    - the client side: towards a next hop that offers DSN (a real Postfix smtpd) the
      parameters go on: Postfix's own success report names our ENVID and ORCPT, and the
      relay sends none itself.

One relay, one DNS server and one rule sink serve the module (the reports come back to
the sink: x.test, the sender's domain, has the sink as MX).
"""

import email
import email.policy
import re
import time

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx
from relayfixtures import make_relay, postfix_instance, py_sink  # noqa: F401
from smtpclient import SmtpClient
from test_relay_outbound import RuleSink

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

SENDER = "alice@x.test"


class Client(SmtpClient):
    def close(self):
        try:
            self.cmd("QUIT")
        finally:
            self.s.close()


def message(subject, body="the body text\r\n", to="x@far.test", extra=""):
    return (f"From: Alice <{SENDER}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{time.time_ns()}.dsn@x.test>\r\n{extra}"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"{body}")


def send(port, mail_args, rcpts, data):
    """One transaction: rcpts are (address, parameters); the final reply."""
    c = Client(port)
    assert c.cmd("EHLO client.test").startswith("250 ")
    assert c.cmd(f"MAIL FROM:<{SENDER}>{mail_args}").startswith("250 "), c.lines
    for addr, args in rcpts:
        assert c.cmd(f"RCPT TO:<{addr}>{args}").startswith("250 "), c.lines
    assert c.cmd("DATA").startswith("354 ")
    r = c.cmd(data.replace("\r\n.", "\r\n..") + ".")
    c.close()
    return r


def wait_log(relay, pattern, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pattern, relay.text())
        if m:
            return m
        assert time.monotonic() < deadline, \
            f"{pattern!r} not in the relay's log:\n{relay.text()[-4000:]}"
        time.sleep(0.05)


def wait_spool_empty(relay, timeout=30.0):
    deadline = time.monotonic() + timeout
    while relay.spool_files("out"):
        assert time.monotonic() < deadline, relay.spool_files("out")
        time.sleep(0.05)


def reports(sink, subject):
    """The reports (null sender) whose attached message or headers carry subject."""
    return [m for m in sink.messages()
            if m.mail_from == "" and f"Subject: {subject}".encode() in m.data]


def wait_report(sink, subject, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        got = reports(sink, subject)
        if got:
            assert len(got) == 1, [g.data[:300] for g in got]
            return got[0]
        assert time.monotonic() < deadline, f"no report for {subject!r}"
        time.sleep(0.05)


def parse_report(data):
    """(message, per-message fields, [per-recipient fields], third part) of an RFC 3464
    report, every field name lower case, folding removed."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts[:2]] == ["text/plain",
                                                         "message/delivery-status"]
    blocks = parts[1].get_payload()

    def fields(b):
        return {k.lower(): re.sub(r";\s+", ";", re.sub(r"\s+", " ", v).strip())
                for k, v in b.items()}

    return msg, fields(blocks[0]), [fields(b) for b in blocks[1:]], parts[2]


@pytest.fixture(scope="module")
def world(request):
    """The rule sink (MX of far.test and x.test), NSD, and an outbound relay."""
    sink = RuleSink(soft_times=1).start()
    work = anchorlib.mktemp_dir("anchor-dsn-")
    zdir = work / "zones"
    zdir.mkdir()
    zones = {}
    for origin in ("far.test", "x.test"):
        zones[origin] = zdir / f"{origin}.zone"
        zones[origin].write_text(dx.zone_text(origin, "", mx=True))
    nsd = dx.Nsd(work / "nsd", zones).start()
    relay = rx.Relay(work / "relay", dns_server=nsd.resolver, smtp_port=sink.port,
                     backoff_base="1s", backoff_max="2s").start()

    def finish():
        failed = request.session.testsfailed
        try:
            relay.stop()
        finally:
            nsd.stop()
            sink.stop()
            if not failed:
                anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    w = type("World", (), {})()
    w.sink, w.relay = sink, relay
    return w


# --------------------------------------------------------------------------
# the server side

BAD = [
    ("MAIL", " RET=ALL", "RET"),
    ("MAIL", " RET=FULL RET=HDRS", "RET"),
    ("MAIL", " ENVID=a+2", "ENVID"),
    ("MAIL", " ENVID=" + "x" * 101, "ENVID"),
    ("MAIL", " ENVID=a ENVID=b", "ENVID"),
    ("RCPT", " NOTIFY=NEVER,SUCCESS", "NOTIFY"),
    ("RCPT", " NOTIFY=SUCCESS NOTIFY=DELAY", "NOTIFY"),
    ("RCPT", " NOTIFY=ALWAYS", "NOTIFY"),
    ("RCPT", " ORCPT=bob@far.test", "ORCPT"),
    ("RCPT", " ORCPT=rfc822;a+0Ab@far.test", "ORCPT"),
    ("RCPT", " ORCPT=rfc822;a ORCPT=rfc822;b", "ORCPT"),
]


def test_malformed_parameters_are_refused_and_nothing_queued(world):
    c = Client(world.relay.submission_port)
    assert c.cmd("EHLO client.test").startswith("250 ")
    assert "250-DSN" in c.lines, c.lines
    for verb, args, name in BAD:
        if verb == "MAIL":
            r = c.cmd(f"MAIL FROM:<{SENDER}>{args}")
        else:
            assert c.cmd(f"MAIL FROM:<{SENDER}>").startswith("250 ")
            r = c.cmd(f"RCPT TO:<hard-never@far.test>{args}")
        assert r.startswith("501 5.5.4 ") and name in r, (args, r)
        # the transaction has no such recipient: DATA finds none
        if verb == "RCPT":
            assert c.cmd("DATA").startswith("503 "), c.lines
        assert c.cmd("RSET").startswith("250 ")
    c.close()
    assert world.relay.spool_files("out") == []
    assert not any("hard-never" in " ".join(m.rcpts) for m in world.sink.messages())


# --------------------------------------------------------------------------
# the reports

def test_failure_report_fields_and_ret_hdrs(world):
    r = send(world.relay.submission_port, " RET=HDRS ENVID=QQ+2B314159",
             [("hard1@far.test", " NOTIFY=FAILURE ORCPT=rfc822;Hard1+2Bx@far.test"),
              ("ok1@far.test", "")],
             message("failure hdrs", "SECRET BODY LINE\r\n", to="hard1@far.test"))
    assert r.startswith("250 "), r
    rep = wait_report(world.sink, "failure hdrs")
    assert rep.rcpts == [SENDER]
    msg, top, rcpts, third = parse_report(rep.data)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert top["original-envelope-id"] == "QQ+314159", top
    assert top["reporting-mta"] == "dns;relay.test", top
    [f] = rcpts
    assert f["original-recipient"] == "rfc822;Hard1+x@far.test", f
    assert f["final-recipient"] == "rfc822;hard1@far.test", f
    assert f["action"] == "failed" and f["status"] == "5.1.1", f
    assert f["remote-mta"].startswith("dns;"), f
    assert f["diagnostic-code"].startswith("smtp;") and "550 5.1.1" in f["diagnostic-code"], f
    # RET=HDRS: the header section, no body
    assert third.get_content_type() == "text/rfc822-headers"
    assert b"Subject: failure hdrs" in rep.data and b"SECRET BODY LINE" not in rep.data


def test_ret_full_returns_the_message(world):
    r = send(world.relay.submission_port, " RET=FULL",
             [("hard2@far.test", "")],
             message("failure full", "the WHOLE body comes back\r\n", to="hard2@far.test"))
    assert r.startswith("250 "), r
    rep = wait_report(world.sink, "failure full")
    msg, top, [f], third = parse_report(rep.data)
    assert "original-envelope-id" not in top and "original-recipient" not in f
    assert f["action"] == "failed"
    assert third.get_content_type() == "message/rfc822"
    [orig] = third.get_payload()
    assert orig["Subject"] == "failure full"
    assert "the WHOLE body comes back" in orig.get_payload()


def test_notify_never_gets_no_report(world):
    r = send(world.relay.submission_port, "",
             [("hard3@far.test", " NOTIFY=NEVER"), ("hard4@far.test", " NOTIFY=SUCCESS")],
             message("never told"))
    assert r.startswith("250 "), r
    wait_log(world.relay, r"to=<hard3@far\.test> status=failed")
    wait_log(world.relay, r"to=<hard4@far\.test> status=failed")
    wait_log(world.relay, r"2 recipient\(s\) asked for no failure report")
    # a report would have been queued before the recipients were marked: it would be out
    wait_spool_empty(world.relay)
    assert reports(world.sink, "never told") == []


def test_notify_delay_reports_the_first_deferral(world):
    r = send(world.relay.submission_port, " ENVID=late",
             [("soft1@far.test", " NOTIFY=DELAY,FAILURE")], message("delayed one"))
    assert r.startswith("250 "), r
    rep = wait_report(world.sink, "delayed one")
    msg, top, [f], third = parse_report(rep.data)
    assert top["original-envelope-id"] == "late"
    assert f["action"] == "delayed" and f["status"] == "4.2.1", f
    assert third.get_content_type() == "text/rfc822-headers"
    # the retry delivers it; no second notice
    world.sink.wait(lambda ms: any("soft1@far.test" in m.rcpts for m in ms), "retry")
    wait_spool_empty(world.relay)
    assert len(reports(world.sink, "delayed one")) == 1


def test_success_to_a_hop_without_dsn_is_relayed(world):
    r = send(world.relay.submission_port, "",
             [("ok2@far.test", " NOTIFY=SUCCESS ORCPT=rfc822;ok2@far.test"),
              ("ok3@far.test", "")],
             message("relayed one"))
    assert r.startswith("250 "), r
    rep = wait_report(world.sink, "relayed one")
    msg, top, rcpts, third = parse_report(rep.data)
    assert [f["final-recipient"] for f in rcpts] == ["rfc822;ok2@far.test"]
    [f] = rcpts
    assert f["action"] == "relayed" and f["status"].startswith("2."), f
    assert f["original-recipient"] == "rfc822;ok2@far.test"
    # the sink (aiosmtpd) offers no DSN: the recipients went without the parameters
    delivered = [m for m in world.sink.messages() if b"Subject: relayed one" in m.data
                 and m.mail_from == SENDER]
    assert sorted(a for m in delivered for a in m.rcpts) == ["ok2@far.test", "ok3@far.test"]


# --------------------------------------------------------------------------
# the client side: a next hop that offers DSN

def test_parameters_go_on_to_postfix(make_relay, postfix_instance, py_sink):
    out = py_sink()
    back = postfix_instance(name="dsnback", mailbox_domains=["dest.test"],
                            relayhost=f"[127.0.0.1]:{out.port}")
    relay = make_relay(inbound_next_hop=f"smtp:127.0.0.1:{back.port}")
    r = send(relay.inbound_port, " RET=HDRS ENVID=PF+2B42",
             [("bob@dest.test", " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+2Bx@dest.test")],
             message("to postfix", to="bob@dest.test"))
    assert r.startswith("250 "), r
    back.wait_mailbox("bob@dest.test", 1)
    # Postfix delivered it and reports success itself, with our ENVID and ORCPT
    [rep] = out.wait_for(1)
    assert rep.mail_from in ("", "<>") and rep.rcpts == [SENDER]
    msg, top, [f], third = parse_report(rep.data)
    assert top["original-envelope-id"] == "PF+42", top
    assert f["original-recipient"].lower() == "rfc822;bob+x@dest.test", f
    assert f["action"] == "delivered", f
    assert top["reporting-mta"] == "dns;dsnback.mta.test", top
    # the relay gave the duty on and sends nothing of its own
    wait_log(relay, r"to=<bob@dest\.test> status=delivered")
    assert not re.search(r"dsn \w+ \(success\) queued", relay.text())
    assert relay.spool_files("out") == []
