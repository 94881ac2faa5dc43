"""REQUIRETLS (RFC 8689) through anchor-relay, with real daemons:

    - the submission listener offers REQUIRETLS only on a TLS session; MAIL FROM ...
      REQUIRETLS in clear text gets 530 5.7.10 and nothing is queued;
    - over STARTTLS the message is taken, queued with its flag, and toward a legacy
      domain's MX (NSD) that is an SMTP server without TLS it is returned, never sent:
      the recipient fails with 5.7.30 "REQUIRETLS support required", the next hop sees
      no transaction, and the sender gets a bounce saying so (x.test's MX is the same
      server);
    - the same message without REQUIRETLS goes to the same server in clear as before.
"""

import re
import time

import pytest

import anchorlib
import relayfixtures as rx
from relayfixtures import make_relay, py_sink  # noqa: F401
from smtpclient import SmtpClient as Client

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")


def message(subject):
    return (f"From: <alice@x.test>\r\nTo: <bob@far.test>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}@x.test>\r\n\r\nbody\r\n").encode()


def send(c, subject, requiretls):
    r = c.cmd("MAIL FROM:<alice@x.test>" + (" REQUIRETLS" if requiretls else ""))
    assert r.startswith("250 "), r
    assert c.cmd("RCPT TO:<bob@far.test>").startswith("250 ")
    assert c.cmd("DATA").startswith("354 ")
    c.s.sendall(message(subject) + b".\r\n")
    r = c.reply()
    assert r.startswith("250 2.0.0 Ok: queued"), r


def test_requiretls_is_never_downgraded(make_relay, py_sink):
    far = py_sink()
    work = anchorlib.mktemp_dir("anchor-rtls-")
    # far.test and x.test have MX 127.0.0.1 and smtp_port is the sink: it answers for both
    nsd = rx.start_nsd(work, {}, mx_domains=["far.test", "x.test"])
    try:
        relay = make_relay(dns_server=nsd.resolver, smtp_port=far.port, hostname="relay.test")
        c = Client(relay.submission_port)
        lines = []
        c.cmd("EHLO client.test", lines)
        assert "250-REQUIRETLS" not in lines, lines
        assert c.cmd("MAIL FROM:<alice@x.test> REQUIRETLS") \
            == "530 5.7.10 REQUIRETLS needs a TLS session: STARTTLS first"
        c.starttls(relay.tls.ca)
        lines = []
        c.cmd("EHLO client.test", lines)
        assert "250-REQUIRETLS" in lines, lines
        send(c, "must stay encrypted", requiretls=True)
        send(c, "may go in clear", requiretls=False)
        c.cmd("QUIT")

        # the plain one arrives; the REQUIRETLS one is never sent, its sender gets a bounce
        deadline = time.monotonic() + 30
        while True:
            subjects = [m.header("Subject")[0] for m in far.messages()]
            bounces = [m for m in far.messages() if m.mail_from in ("", "<>")]
            if "may go in clear" in subjects and bounces:
                break
            assert time.monotonic() < deadline, (subjects, relay.text()[-3000:])
            time.sleep(0.1)
        assert "must stay encrypted" not in subjects, subjects
        [b] = bounces
        assert b.rcpts == ["alice@x.test"], b.rcpts
        text = b.data.decode(errors="replace")
        assert "5.7.30" in text and "REQUIRETLS support required" in text, text
        assert re.search(r"Status: 5\.7\.30", text), text
        assert re.search(r"status=failed .*5\.7\.30 REQUIRETLS support required",
                         relay.text()), relay.text()[-3000:]
    finally:
        nsd.stop()
        anchorlib.remove_tree(work)
