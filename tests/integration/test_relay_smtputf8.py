"""SMTPUTF8 (RFC 6531/6532) in anchor-relay, with raw sockets and real peers.

    - the server: SMTPUTF8 advertised; a UTF-8 envelope with MAIL ... SMTPUTF8 is
      accepted (domain written in A-labels) and goes on with SMTPUTF8 to a peer that
      offers it; without SMTPUTF8 a UTF-8 address gets 553 5.6.7; a path that is not
      well-formed UTF-8 gets 501 under SMTPUTF8 and without; a UTF-8 From is read under
      SMTPUTF8 and refused without it (the text of today), a header value that is not
      well-formed UTF-8 is refused under SMTPUTF8;
    - the client: toward a Postfix with smtputf8_enable = no the message is not
      downgraded (553 5.6.7 in the relay's log, nothing delivered); toward one with
      smtputf8_enable = yes it is delivered with its UTF-8 recipient and headers.
"""

import re
import time

import pytest

import anchorlib
import relayfixtures as rx
from relayfixtures import make_relay, postfix_instance, py_sink  # noqa: F401
from test_relay_badinput import Client, assert_healthy

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

JORG = "j\u00f6rg"
ASA = "\u00e5sa"


def utf8_msg(subject, sender=f"{JORG}@b\u00fccher.test"):
    return (f"From: J\u00f6rg <{sender}>\r\nTo: {ASA}@dest.test\r\nSubject: {subject} "
            f"\u00e4\u00f6\u00fc\r\n\r\nGr\u00fc\u00dfe\r\n").encode()


def send_bytes(c, line):
    c.send(line + b"\r\n")
    return c.reply()


def poll(fn, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def test_server_envelope_and_headers(make_relay, py_sink):
    sink = py_sink()
    relay = make_relay(inbound_next_hop=sink.hop)
    c = Client(relay.inbound_port)
    c.send(b"EHLO client.test\r\n")
    lines = []
    while True:
        line = c.line()
        lines.append(line)
        if line[3] == " ":
            break
    assert "250-SMTPUTF8" in lines, lines

    # without SMTPUTF8: a UTF-8 sender or recipient is refused with 553 5.6.7
    assert send_bytes(c, f"MAIL FROM:<{JORG}@x.test>".encode()).startswith("553 5.6.7 ")
    assert c.cmd("MAIL FROM:<a@x.test>").startswith("250 ")
    assert send_bytes(c, f"RCPT TO:<{ASA}@dest.test>".encode()).startswith("553 5.6.7 ")
    assert c.cmd("RSET").startswith("250 ")
    # not well-formed UTF-8: 501, with SMTPUTF8 and without
    for line in (b"MAIL FROM:<j\xc3rg@x.test> SMTPUTF8", b"MAIL FROM:<j\xed\xa0\x80rg@x.test>",
                 b"MAIL FROM:<j\xc0\xafrg@x.test> SMTPUTF8"):
        got = send_bytes(c, line)
        assert got == ("501 5.1.7 Bad sender address syntax: the address is not "
                       "well-formed UTF-8"), (line, got)
    # a control character (U+0085) or a bidi override in a UTF-8 address
    got = send_bytes(c, "MAIL FROM:<j\u0085rg@x.test> SMTPUTF8".encode())
    assert got.startswith("501 5.1.7 Bad sender address syntax: the address is not a valid"), got
    got = send_bytes(c, "MAIL FROM:<j\u202erg@x.test> SMTPUTF8".encode())
    assert got.startswith("501 5.1.7 "), got
    # 8-bit anywhere but a path is still an invalid character
    assert send_bytes(c, "NOOP caf\u00e9".encode()) == "500 5.5.2 Syntax error, invalid character"

    # with SMTPUTF8: accepted, the U-label domain written as its A-label
    assert send_bytes(c, f"MAIL FROM:<{JORG}@b\u00fccher.test> SMTPUTF8".encode()).startswith(
        "250 ")
    assert send_bytes(c, f"RCPT TO:<{ASA}@dest.test>".encode()).startswith("250 ")
    assert c.cmd("DATA").startswith("354 ")
    c.send(utf8_msg("accepted") + b".\r\n")
    assert c.reply().startswith("250 "), relay.text()
    m = poll(lambda: next((m for m in sink.messages() if b"accepted" in m.data), None))
    assert m is not None, relay.text()
    assert m.mail_from == f"{JORG}@xn--bcher-kva.test"
    assert m.rcpts == [f"{ASA}@dest.test"]
    assert "SMTPUTF8" in m.mail_args.upper()
    assert "Subject: accepted \u00e4\u00f6\u00fc" in m.text

    # a UTF-8 From without SMTPUTF8: refused as before, with the same words
    assert c.cmd("MAIL FROM:<a@x.test>").startswith("250 ")
    assert c.cmd("RCPT TO:<bob@dest.test>").startswith("250 ")
    assert c.cmd("DATA").startswith("354 ")
    c.send(utf8_msg("legacy") + b".\r\n")
    got = c.reply()
    assert got.startswith("550 5.7.1 Cannot tell the author"), got
    assert "SMTPUTF8 is not offered" in got, got

    # under SMTPUTF8, a header value that is not well-formed UTF-8
    assert c.cmd("MAIL FROM:<a@x.test> SMTPUTF8").startswith("250 ")
    assert c.cmd("RCPT TO:<bob@dest.test>").startswith("250 ")
    assert c.cmd("DATA").startswith("354 ")
    c.send(b"From: a@x.test\r\nSubject: caf\xc3\r\n\r\nbody\r\n.\r\n")
    got = c.reply()
    assert got.startswith("550 5.7.1 ") and "not well-formed UTF-8" in got, got
    c.cmd("QUIT")
    assert not any(b"legacy" in m.data or b"caf\xc3\r" in m.data for m in sink.messages())
    assert_healthy(relay)


@pytest.mark.parametrize("smtputf8", ["no", "yes"])
def test_client_never_downgrades(make_relay, postfix_instance, smtputf8):
    back = postfix_instance(name=f"back{smtputf8}", mailbox_domains=["dest.test"],
                            main={"smtputf8_enable": smtputf8})
    relay = make_relay(inbound_next_hop=f"smtp:127.0.0.1:{back.port}")
    c = Client(relay.inbound_port)
    assert c.cmd("EHLO client.test").startswith("250 ")
    assert send_bytes(c, f"MAIL FROM:<{JORG}@x.test> SMTPUTF8".encode()).startswith("250 ")
    assert send_bytes(c, f"RCPT TO:<{ASA}@dest.test>".encode()).startswith("250 ")
    assert c.cmd("DATA").startswith("354 ")
    c.send(utf8_msg(f"to postfix {smtputf8}", sender=f"{JORG}@x.test") + b".\r\n")
    assert c.reply().startswith("250 "), relay.text()
    c.cmd("QUIT")
    if smtputf8 == "no":
        log = poll(lambda: re.search(r"553 5\.6\.7 the envelope has a UTF-8 address.*"
                                     r"not downgraded", relay.text()))
        assert log, relay.text()
        assert back.queue_empty()
        assert back.mailbox(f"{ASA}@dest.test") == []
    else:
        text = back.wait_mailbox(f"{ASA}@dest.test", 1)[0].decode("utf-8")
        assert "to postfix yes \u00e4\u00f6\u00fc" in text, text
    assert anchorlib.sanitizer_report(relay.text()) is None
