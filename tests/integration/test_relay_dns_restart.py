"""The relay's first DNS queries after a start, in a burst, are all answered.

After a restart the relay finds its whole queue due at once, and its delivery workers
route every message together: hundreds of first queries a second to one authoritative
server.  NSD (as most authoritative servers) limits its answers per client prefix
(response rate limiting: 200 a second by default in Debian's NSD, made explicit here;
past it every second answer is dropped, the other truncated).  Before the fix the
resolver sent each query once over UDP: a dropped answer was a message deferred
`4.4.3 routing: no answer for ... within N ms` and delivered a backoff later, although
the server answered the next query at once.  Now an unanswered query is sent again
over UDP, then over TCP (which RRL does not limit), within the same timeout.

Setup: 300 messages to 300 domains (a wildcard MX under far.test) are queued while the
relay's DNS server refuses far.test (each attempt deferred at once).  The relay is
stopped, pointed at the NSD serving far.test, and started once every message is due.
"""

import re
import smtplib
import time
from collections import Counter

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx
from relayfixtures import make_relay, smtp_sink  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

DOMAINS = 300
RRL = ["rrl-ratelimit: 200", "rrl-slip: 2"]


@pytest.fixture
def nsds(request):
    """(refusing, serving): an NSD without far.test (REFUSED) and one serving it."""
    work = anchorlib.mktemp_dir("anchor-dnsrestart-")
    other = work / "other.test.zone"
    other.write_text(dx.zone_text("other.test", ""))
    far = work / "far.test.zone"
    far.write_text(dx.zone_text("far.test", "* IN MX 10 mx1.far.test.\n"))
    refusing = dx.Nsd(work / "nsd-refusing", {"other.test": other}, root=False).start()
    serving = dx.Nsd(work / "nsd-serving", {"far.test": far}, options=RRL).start()

    def finish():
        refusing.stop()
        serving.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    return refusing, serving


def rcpt(i):
    return f"user@d{i}.far.test"


def submit_all(port):
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("client.test")
        for i in range(DOMAINS):
            msg = (f"From: <alice@x.test>\r\nTo: <{rcpt(i)}>\r\nSubject: burst {i}\r\n"
                   f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
                   f"Message-ID: <burst{i}.{time.time_ns()}@x.test>\r\n\r\nbody {i}\r\n")
            s.sendmail("alice@x.test", [rcpt(i)], msg.encode())


def test_first_queries_after_a_start_are_all_answered(make_relay, smtp_sink, nsds):
    refusing, serving = nsds
    sink = smtp_sink(backlog=256)
    relay = make_relay(sign_domains={"x.test": ["ed25519"]}, dns_server=refusing.resolver,
                       smtp_port=sink.port, workers=16, max_connections_per_ip=100,
                       backoff_base="1s", backoff_max="3s", lookup_timeout_ms="3000")
    submit_all(relay.submission_port)
    queued = [p for p in relay.spool_files("out") if p.name.startswith("m.")]
    assert len(queued) == DOMAINS
    relay.stop()
    assert sink.count() == 0

    time.sleep(3.5)  # every message is due at the start: the burst
    relay.params["dns_server"] = serving.resolver
    start = len(relay.text())
    relay.start()
    want = {rcpt(i) for i in range(DOMAINS)}
    deadline = time.monotonic() + 90
    while True:
        counts = Counter(r for m in sink.messages() for r in m.rcpts)
        if want <= set(counts):
            break
        assert time.monotonic() < deadline, \
            f"{len(want - set(counts))} not delivered\n{relay.text()[-3000:]}"
        time.sleep(0.2)
    after = relay.text()[start:]
    lost = re.findall(r"to=<[^>]+> status=deferred 4\.4\.3 routing: [^\n]*", after)
    assert not lost, f"{len(lost)} messages deferred for want of a DNS answer after the " \
        f"start, e.g. {lost[:3]}"
    sink.wait_for(DOMAINS)
    counts = Counter(r for m in sink.messages() for r in m.rcpts)
    assert set(counts) == want and all(n == 1 for n in counts.values()), \
        {r: n for r, n in counts.items() if n != 1}
    relay.stop()
