"""CHUNKING/BDAT (RFC 3030) on both sides of anchor-relay, with real daemons:

    - server (lib/mail/smtp_text.c): a raw-socket client sends BDAT chunks split
      anywhere (a CRLF across two chunks, a chunk boundary inside a line that starts
      with a dot), and the hostile cases: a size that says more than is sent (the
      client hangs up: nothing delivered), a size that says less (the rest is read as
      commands: 500s, the message ends where the size said), BDAT mixed with DATA
      (503 5.5.1), BDAT without MAIL/RCPT (503, the chunk is read and not run as
      commands), a chunk over max_message_size (552 5.3.4, the transaction is over),
      a size that cannot be read (501 and close);
    - client (relay/deliver.c): the relay hands the message to a real Postfix smtpd,
      which offers CHUNKING: Postfix's own log says the session used BDAT
      ("bdat=1" in its disconnect line) and the stored message is byte-exact (a
      leading dot kept once, 8-bit text intact); with CHUNKING hidden from the relay
      (smtpd_discard_ehlo_keywords) the same message goes with DATA ("data=1").
"""

import re
import time

import pytest

import relayfixtures as rx
from relayfixtures import make_relay, postfix_instance, py_sink  # noqa: F401
from smtpclient import SmtpClient

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

LOCAL = "dest.test"
BOB = f"bob@{LOCAL}"


class Client(SmtpClient):
    def envelope(self, rcpt=BOB, body8=False):
        assert self.cmd("MAIL FROM:<a@x.test>" + (" BODY=8BITMIME" if body8 else "")) \
            .startswith("250 ")
        assert self.cmd(f"RCPT TO:<{rcpt}>").startswith("250 ")

    def bdat(self, chunk, last=False):
        self.send(f"BDAT {len(chunk)}{' LAST' if last else ''}\r\n".encode() + chunk)
        return self.reply()


def message(subject, body="body line\r\n"):
    head = ["From: <a@x.test>", f"To: <{BOB}>", f"Subject: {subject}",
            f"Message-ID: <{subject.replace(' ', '-')}.{time.time_ns()}@x>"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def connect(relay):
    c = Client(relay.inbound_port)
    ehlo = c.cmd("EHLO client.test")
    assert ehlo.startswith("250 "), ehlo
    return c


def send_chunked(c, data, cuts):
    """data in BDAT chunks cut at the given offsets, the last one with LAST."""
    edges = [0, *cuts, len(data)]
    for a, b in zip(edges, edges[1:-1]):
        assert c.bdat(data[a:b]) == f"250 2.0.0 {b - a} octets received"
    return c.bdat(data[edges[-2]:], last=True)


def subjects(sink):
    return [m.header("Subject")[0] for m in sink.messages()]


def wait_subject(sink, subject, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        got = [m for m in sink.messages() if m.header("Subject") == [subject]]
        if got:
            return got[0]
        assert time.monotonic() < deadline, f"{subject!r} not delivered; got {subjects(sink)}"
        time.sleep(0.05)


def body_of(data):
    return data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]


@pytest.fixture
def relay(make_relay, py_sink):
    sink = py_sink()
    r = make_relay(inbound_next_hop=sink.hop, max_message_size="64k")
    r.sink = sink
    return r


def test_ehlo_offers_chunking(relay):
    c = Client(relay.inbound_port)
    c.send(b"EHLO client.test\r\n")
    lines = []
    while True:
        while b"\r\n" not in c.buf:
            c.buf += c.s.recv(4096)
        line, c.buf = c.buf.split(b"\r\n", 1)
        lines.append(line.decode())
        if line[3:4] == b" ":
            break
    assert "250-CHUNKING" in lines, lines
    assert not any("BINARYMIME" in ln for ln in lines), lines


def test_chunks_split_anywhere(relay):
    body = "first line\r\n.a line with a leading dot\r\n..two\r\nlast\r\n"
    data = message("split anywhere", body)
    crlf = data.index(b"\r\n")
    dot = data.index(b"\r\n.a line") + 2
    c = connect(relay)
    c.envelope()
    # a CR in one chunk and its LF in the next; a chunk starting on the dot; one-octet chunks
    cuts = [3, crlf + 1, dot, dot + 1, dot + 2, len(data) - 1]
    assert send_chunked(c, data, cuts).startswith("250 2.0.0 Ok: queued")
    # a second transaction on the same connection, a message in one chunk
    c.envelope()
    assert c.bdat(message("one chunk"), last=True).startswith("250 2.0.0 Ok: queued")
    assert c.cmd("QUIT").startswith("221 ")
    m = wait_subject(relay.sink, "split anywhere")
    assert body_of(m.data) == body.replace("\r\n", "\n").encode()  # no dot-unstuffing
    wait_subject(relay.sink, "one chunk")


def test_sizes_that_lie(relay):
    # says more than it sends, then hangs up: nothing delivered
    c = connect(relay)
    c.envelope()
    data = message("never complete")
    c.send(f"BDAT {len(data) + 100} LAST\r\n".encode() + data)
    c.s.close()
    # says less than it sends: the message ends where the size said, the rest is commands
    c = connect(relay)
    c.envelope()
    data = message("cut short")
    extra = b"X-Smuggled: yes\r\nMAIL FROM:<evil@x.test>\r\n"
    c.send(f"BDAT {len(data)} LAST\r\n".encode() + data + extra)
    assert c.reply().startswith("250 2.0.0 Ok: queued")
    assert c.reply() == "500 5.5.2 Syntax error, command unrecognized"
    assert c.reply() == "250 2.1.0 Ok"  # the client's own (lying) bytes: its next command
    assert c.cmd("RSET").startswith("250 ")
    # a size that cannot be read: the octets after it cannot be delimited, so 501 and close
    c2 = connect(relay)
    c2.envelope()
    assert c2.cmd("BDAT 12x LAST") == "501 5.5.4 Syntax: BDAT chunk-size [LAST]"
    assert c2.closed()
    m = wait_subject(relay.sink, "cut short")
    assert b"X-Smuggled" not in m.data
    c.envelope()
    assert c.bdat(message("after the liars"), last=True).startswith("250 2.0.0 Ok: queued")
    c.cmd("QUIT")
    wait_subject(relay.sink, "after the liars")
    assert sorted(subjects(relay.sink)) == ["after the liars", "cut short"]


def test_refused_chunks_are_read_not_run(relay):
    c = connect(relay)
    # without MAIL: 503, and the chunk's octets (an SMTP command) are never a command
    inner = b"MAIL FROM:<evil@x.test>\r\n"
    assert c.bdat(inner) == "503 5.5.1 Need MAIL before BDAT"
    assert c.cmd("RCPT TO:<bob@dest.test>") == "503 5.5.1 Need MAIL before RCPT"
    assert c.cmd("MAIL FROM:<a@x.test>").startswith("250 ")
    assert c.bdat(b"x", last=True) == "503 5.5.1 Need RCPT before BDAT"
    assert c.cmd("RCPT TO:<bob@dest.test>").startswith("250 ")
    # BDAT then DATA in one transaction: DATA refused, the BDAT transaction goes on
    data = message("bdat then data")
    assert c.bdat(data[:10]) == "250 2.0.0 10 octets received"
    assert c.cmd("DATA") == "503 5.5.1 DATA not allowed after BDAT in a transaction"
    assert c.bdat(data[10:], last=True).startswith("250 2.0.0 Ok: queued")
    # DATA then BDAT: the DATA transaction is over at its dot; BDAT alone is out of order
    c.envelope()
    assert c.cmd("DATA").startswith("354 ")
    c.send(message("data then bdat") + b".\r\n")
    assert c.reply().startswith("250 2.0.0 Ok: queued")
    assert c.bdat(b"more", last=True) == "503 5.5.1 Need MAIL before BDAT"
    # over max_message_size (64k): 552 once the chunk is read, the transaction is over
    c.envelope()
    assert c.bdat(b"Subject: big\r\n\r\n" + b"y" * 998 + b"\r\n") \
        == "250 2.0.0 1016 octets received"
    big = (b"z" * 998 + b"\r\n") * 70
    assert c.bdat(big, last=True) == "552 5.3.4 Message size exceeds fixed limit"
    assert c.bdat(b"tail", last=True) == "503 5.5.1 Need MAIL before BDAT"
    # a bare LF in a chunk: 550 at LAST, as DATA after its dot
    c.envelope()
    assert c.bdat(message("bare lf", "a\nb\r\n"), last=True) \
        == "550 5.6.0 Message contains bare CR or LF (RFC 5321 2.3.8)"
    c.envelope()
    assert c.bdat(message("the last one"), last=True).startswith("250 2.0.0 Ok: queued")
    c.cmd("QUIT")
    wait_subject(relay.sink, "the last one")
    assert sorted(subjects(relay.sink)) == ["bdat then data", "data then bdat", "the last one"]
    assert all(m.mail_from == "a@x.test" for m in relay.sink.messages())


BODY8 = "ÄÖÜ 8-bit text\r\n.leading dot\r\n..two dots\r\nend\r\n".encode()


def through_postfix(make_relay, postfix_instance, main=None):
    back = postfix_instance(name="back", mailbox_domains=[LOCAL], main=main or {})
    relay = make_relay(inbound_next_hop=f"smtp:127.0.0.1:{back.port}")
    c = connect(relay)
    c.envelope(body8=True)
    data = message("to postfix", BODY8.decode())
    assert send_chunked(c, data, [7]).startswith("250 2.0.0 Ok: queued")
    c.cmd("QUIT")
    [stored] = back.wait_mailbox(BOB, 1)
    assert body_of(stored) == BODY8.replace(b"\r\n", b"\n")
    back.wait_queue_empty()
    return back


def test_client_uses_bdat_with_postfix(make_relay, postfix_instance):
    back = through_postfix(make_relay, postfix_instance)
    line = back.wait_log(r"disconnect from \S+ ehlo=1 mail=1 rcpt=1 .*").group(0)
    assert " bdat=1 " in line and "data=" not in line, line


def test_client_falls_back_to_data(make_relay, postfix_instance):
    back = through_postfix(make_relay, postfix_instance,
                           main={"smtpd_discard_ehlo_keywords": "chunking"})
    line = back.wait_log(r"disconnect from \S+ ehlo=1 mail=1 rcpt=1 .*").group(0)
    assert " data=1 " in line and "bdat=" not in line, line
