"""Outbound TLS session resumption: the relay's delivery client keeps the session a
destination gave it (a TLS 1.3 ticket) and offers it on its next connection there, so the
second delivery to the same host costs a resumed handshake, not a full one.

Two messages go one after the other through the relay to a STARTTLS sink (aiosmtpd on
Python's OpenSSL, which issues tickets).  The sink reports, per message, whether its
handshake resumed a session; the relay's /metrics counts its resumed outbound handshakes
(anchor_relay_outbound_tls_resumed_total).  Before resumption every delivery was a full
handshake: the second message arrived on a new session and the counter did not exist.
"""

import re
import ssl
import threading

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx
from relayfixtures import make_relay, mx_dns  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")


class TlsSink:
    """aiosmtpd with STARTTLS; .reused[i]: did message i's handshake resume a session."""

    def __init__(self, tls):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP

        self.port = dx.free_port()
        self.reused = []
        self.cond = threading.Condition()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        sink = self

        class Handler:
            async def handle_MAIL(self, server, session, envelope, address, options):
                if session.ssl is None:
                    return "530 5.7.0 STARTTLS first"
                envelope.mail_from = address
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):
                with sink.cond:
                    sink.reused.append(session.ssl["ssl_object"].session_reused)
                    sink.cond.notify_all()
                return "250 2.0.0 OK"

        class Ctl(Controller):
            def factory(self):
                return SMTP(self.handler, decode_data=False, hostname="sink.test",
                            tls_context=ctx, require_starttls=False)

        self.ctl = Ctl(Handler(), hostname="127.0.0.1", port=self.port)

    def wait_for(self, n, timeout=30.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.reused) >= n, timeout=timeout), \
                f"the sink got {len(self.reused)} of {n} messages"
            return list(self.reused)


@pytest.fixture
def tls_sink(tls):
    s = TlsSink(tls)
    s.ctl.start()
    yield s
    s.ctl.stop()


def resumed_total(client):
    r = client.get("/metrics")
    assert r.status == 200, r.body
    m = re.search(r"^anchor_relay_outbound_tls_resumed_total (\d+)$", r.text, re.M)
    assert m, f"anchor_relay_outbound_tls_resumed_total not in /metrics:\n{r.text}"
    return int(m.group(1))


def test_second_delivery_resumes_the_tls_session(make_relay, tls, tls_sink, mx_dns):
    relay = make_relay(sign_domains={"x.test": ["ed25519"]}, dns_server=mx_dns.resolver,
                       smtp_port=tls_sink.port, outbound_tls="encrypt", control=True,
                       connection_idle_time="0")  # a new session per message: no reuse
    client = anchorlib.Client(relay.control_url, tls.ca)
    assert resumed_total(client) == 0

    for i in (1, 2):
        r = rx.smtp_source(relay.submission_port, count=1, sessions=1,
                           sender="alice@x.test", rcpt="bob@far.test")
        assert r.rc == 0, (r.out, r.err)
        reused = tls_sink.wait_for(i)

    # the first delivery is a full handshake, the second resumes its ticket
    assert reused == [False, True], reused
    assert resumed_total(client) == 1
