"""Outbound connection reuse (relay/deliver_cache.c): after a delivery the relay says
RSET and keeps the session for the next message to the same next hop, up to
connection_reuse_limit messages, idle at most connection_idle_time.

Asserted on the peer's side: a small ESMTP server here counts the connections it accepts,
the messages, RSETs and the MAILs it refused.  Messages go in one at a time through the
submission port (signed, MX far.test -> 127.0.0.1 from NSD, smtp_port the server's) and
each is awaited at the server before the next is sent, so that one kept session is
always idle when the next message leaves.

    - several messages to one hop travel over one connection; the per-session cap opens
      a new one after connection_reuse_limit messages; connection_idle_time = 0 keeps
      the old one-session-per-message behaviour;
    - a kept session the peer closed meanwhile (after its RSET reply), or one the peer
      refuses with 421 at the next MAIL (its own idle timeout), neither loses nor
      defers the message: it goes again at once on a new connection.
"""

import re
import socketserver
import threading
import time

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx
from relayfixtures import make_relay, mx_dns  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")


class CountingSink:
    """ESMTP with PIPELINING on 127.0.0.1, one thread per connection.  mode:
    None, "close_after_rset" (answer RSET, then hang up) or "421_second_mail" (answer a
    connection's second MAIL with 421 and hang up)."""

    def __init__(self, mode=None):
        self.mode = mode
        self.lock = threading.Lock()
        self.connections = 0
        self.rsets = 0
        self.refused = 0
        self.rcpts = []  # one list per message
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def say(self, line):
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self):
                with sink.lock:
                    sink.connections += 1
                mails, rcpts = 0, []
                self.say("220 sink.test ESMTP")
                while True:
                    raw = self.rfile.readline()
                    if not raw:
                        return
                    verb = raw[:4].upper()
                    if verb in (b"EHLO", b"LHLO"):
                        self.say("250-sink.test")
                        self.say("250 PIPELINING")
                    elif verb == b"MAIL":
                        mails += 1
                        if sink.mode == "421_second_mail" and mails == 2:
                            with sink.lock:
                                sink.refused += 1
                            self.say("421 4.4.2 sink.test idle too long, closing")
                            return
                        rcpts = []
                        self.say("250 2.1.0 OK")
                    elif verb == b"RCPT":
                        rcpts.append(re.search(rb"<([^>]*)>", raw).group(1).decode())
                        self.say("250 2.1.5 OK")
                    elif verb == b"DATA":
                        self.say("354 go ahead")
                        while self.rfile.readline() not in (b".\r\n", b""):
                            pass
                        with sink.lock:
                            sink.rcpts.append(rcpts)
                        self.say("250 2.0.0 OK")
                    elif verb == b"RSET":
                        with sink.lock:
                            sink.rsets += 1
                        self.say("250 2.0.0 OK")
                        if sink.mode == "close_after_rset":
                            return
                    elif verb == b"QUIT":
                        self.say("221 2.0.0 bye")
                        return
                    else:
                        self.say("502 5.5.2 not here")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.port = dx.free_port()
        self.server = Server(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def messages(self):
        with self.lock:
            return list(self.rcpts)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink_factory(request):
    sinks = []

    def factory(mode=None):
        sinks.append(CountingSink(mode))
        return sinks[-1]

    yield factory
    for s in sinks:
        s.stop()


def send_one_by_one(relay, sink, n, tag):
    """n messages, each awaited at the sink before the next; their recipients."""
    want = []
    for i in range(n):
        rcpt = f"{tag}{i}@far.test"
        r = rx.smtp_source(relay.submission_port, sender="alice@x.test", rcpt=rcpt)
        assert r.rc == 0, (r.out, r.err)
        want.append(rcpt)
        deadline = time.monotonic() + 30
        while [rcpt] not in sink.messages():
            assert time.monotonic() < deadline, \
                f"{rcpt} did not arrive\n{relay.text()[-3000:]}"
            time.sleep(0.02)
    return want


def start_relay(make_relay, mx_dns, sink, **settings):  # noqa: F811
    params = {"connection_idle_time": "60s"}  # no expiry while a test runs
    params.update(settings)
    return make_relay(sign_domains={"x.test": ["ed25519"]}, dns_server=mx_dns.resolver,
                      smtp_port=sink.port, **params)


def deferred(relay):
    return re.findall(r"to=<[^>]+> status=deferred.*", relay.text())


def test_messages_to_one_hop_share_one_connection(make_relay, mx_dns, sink_factory,  # noqa: F811
                                                   tls):
    sink = sink_factory()
    relay = start_relay(make_relay, mx_dns, sink, control=True)
    want = send_one_by_one(relay, sink, 5, "share")
    assert sink.messages() == [[r] for r in want]
    # one connection for all five, RSET after each
    assert sink.connections == 1, sink.connections
    assert sink.rsets == 5
    assert not deferred(relay)
    metrics = anchorlib.Client(relay.control_url, tls.ca).get("/metrics").text
    assert re.search(r"^anchor_relay_outbound_reused_total 4$", metrics, re.M), metrics
    relay.stop()


def test_reuse_limit_and_reuse_off(make_relay, mx_dns, sink_factory):  # noqa: F811
    sink = sink_factory()
    relay = start_relay(make_relay, mx_dns, sink, connection_reuse_limit=2)
    send_one_by_one(relay, sink, 4, "cap")
    assert sink.connections == 2, sink.connections  # two messages per session
    relay.stop()

    sink2 = sink_factory()
    relay2 = start_relay(make_relay, mx_dns, sink2, connection_idle_time="0")
    send_one_by_one(relay2, sink2, 3, "off")
    assert sink2.connections == 3 and sink2.rsets == 0
    relay2.stop()


def test_peer_closed_kept_session_loses_nothing(make_relay, mx_dns, sink_factory):  # noqa: F811
    sink = sink_factory("close_after_rset")
    relay = start_relay(make_relay, mx_dns, sink)
    want = send_one_by_one(relay, sink, 3, "closed")
    assert sink.messages() == [[r] for r in want]
    assert sink.rsets >= 2  # the sessions were kept, and found closed
    assert sink.connections == 3
    assert not deferred(relay), deferred(relay)
    relay.stop()


def test_peer_refusing_kept_session_with_421_loses_nothing(make_relay, mx_dns,  # noqa: F811
                                                           sink_factory):
    sink = sink_factory("421_second_mail")
    relay = start_relay(make_relay, mx_dns, sink)
    want = send_one_by_one(relay, sink, 3, "refused")
    assert sink.messages() == [[r] for r in want]
    # each later message first went on the kept session, was refused there, and went
    # again at once on a new one: never deferred
    assert sink.refused == 2, sink.refused
    assert sink.connections == 3, sink.connections
    assert not deferred(relay), deferred(relay)
    relay.stop()
