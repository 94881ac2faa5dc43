"""The other doors of a real anchor-reputation (PROTOCOL.md "Reputation: the DNS zone"
and "the policy adapter"): the RFC 5782 zone asked with kdig over UDP and TCP, and
anchor-policyd asking the daemon over HTTPS for a Postfix policy request, including
fail-open once the daemon is gone.

Three anchored reporter domains list ip:198.51.100.9 (spam) and domain:phish.example
(phishing) with min_reporters = 3."""

import socket
import struct
import subprocess
import threading
import time

import pytest

import anchorlib
import dnsfixtures as dx
import policyfixtures as px
import repfixtures as rx

ZONE = "rep.example"
LABELS = ["d1", "d2", "d3"]
# 236 characters: under the zone, a 248-character name whose TXT answer (with the
# reason, which names the domain) needs more than the 512 octets of a plain UDP answer
LONG = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 36, "example"])


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rx.build_world(pg, db, operator_token, request, LABELS)
    w.dns_port = dx.free_port()
    w.rep = rx.Reputation(w, w.work / "rep", db, {
        "signed_evidence": "no",  # domains listed on the word (see test_reputation_scoring)
        "min_reporters": "3", "list_weight": "2", "dns_listen": f"127.0.0.1:{w.dns_port}",
        "dns_zone": ZONE, "dns_ttl": "60s"}).start()
    for label in LABELS:
        r = w.reporters[label]
        rx.report_ok(w.rep, r, ["ip:198.51.100.9"], evidence=f"spam run seen by {label}")
        rx.report_ok(w.rep, r, ["domain:phish.example"], category="phishing")
        rx.report_ok(w.rep, r, [f"domain:{LONG}"])
    assert rx.query(w.rep, ip="198.51.100.9")["verdict"] == "block"
    return w


def kdig(world, name, rtype="A", tcp=False, opts=()):
    argv = ["kdig", "@127.0.0.1", "-p", str(world.dns_port), "+timeout=2", "+retry=0",
            *({True: ["+tcp"], False: ["+notcp"], None: []}[tcp]), *opts, rtype, name]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return r.stdout


def answers(out, rtype):
    """The rdata of the answer section's records of rtype."""
    got, section = [], None
    for line in out.splitlines():
        if line.startswith(";; ANSWER SECTION"):
            section = "answer"
            continue
        if line.startswith(";;"):
            section = None if line.strip() == ";;" or "SECTION" in line else section
            continue
        if section == "answer" and line.strip():
            parts = line.split(None, 4)
            if len(parts) == 5 and parts[3] == rtype:
                got.append(parts[4])
    return got


def status(out):
    for line in out.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(";")[0].strip()
    raise AssertionError(f"no status in {out}")


def test_listed_ip_and_domain(world):
    out = kdig(world, f"9.100.51.198.{ZONE}")
    assert status(out) == "NOERROR" and answers(out, "A") == ["127.0.0.2"], out
    out = kdig(world, f"9.100.51.198.{ZONE}", "TXT")
    txt = " ".join(answers(out, "TXT"))
    assert txt.startswith('"block: ') and "3" in txt, out
    out = kdig(world, f"phish.example.{ZONE}")
    assert answers(out, "A") == ["127.0.0.3"], out  # phishing among the evidence


def test_not_listed_is_nxdomain(world):
    out = kdig(world, f"10.100.51.198.{ZONE}")
    assert status(out) == "NXDOMAIN", out
    assert f"{ZONE}." in out and "SOA" in out  # negative answers carry the SOA
    out = kdig(world, f"clean.example.{ZONE}")
    assert status(out) == "NXDOMAIN", out


def test_zone_follows_a_listing_at_once(world):
    """The zone keeps verdicts for up to 30 s, but a report that changes a verdict
    forgets it there in the same step: the listing shows in the very next answer, not
    after the cache's time."""
    name = f"11.100.51.198.{ZONE}"
    assert status(kdig(world, name)) == "NXDOMAIN"  # "not listed" is now in the cache
    for label in LABELS:
        rx.report_ok(world.rep, world.reporters[label], ["ip:198.51.100.11"])
    out = kdig(world, name)
    assert status(out) == "NOERROR" and answers(out, "A") == ["127.0.0.2"], out


def test_rfc5782_test_entries(world):
    assert answers(kdig(world, f"2.0.0.127.{ZONE}"), "A") == ["127.0.0.2"]
    assert status(kdig(world, f"1.0.0.127.{ZONE}")) == "NXDOMAIN"
    v6 = ".".join(reversed("00000000000000000000ffff7f000002")) + "." + ZONE
    assert answers(kdig(world, v6), "A") == ["127.0.0.2"]
    assert answers(kdig(world, f"test.{ZONE}"), "A") == ["127.0.0.2"]
    assert status(kdig(world, f"invalid.{ZONE}")) == "NXDOMAIN"


def test_error_signals_outside_the_listing_range(world):
    out = kdig(world, f"100.51.198.{ZONE}")  # three octets: not an address
    assert answers(out, "A") == ["127.255.255.252"], out
    assert status(kdig(world, "9.100.51.198.other.example")) == "REFUSED"


def test_tcp_and_apex(world):
    out = kdig(world, f"9.100.51.198.{ZONE}", tcp=True)
    assert answers(out, "A") == ["127.0.0.2"], out
    out = kdig(world, ZONE, "SOA")
    assert status(out) == "NOERROR" and len(answers(out, "SOA")) == 1, out


def flags(out):
    for line in out.splitlines():
        if "Flags:" in line:
            return line.split("Flags:")[1].split(";")[0].split()
    raise AssertionError(f"no flags in {out}")


def test_udp_answer_too_long_is_truncated_then_whole_over_tcp(world):
    name = f"{LONG}.{ZONE}"
    # plain UDP, no EDNS, no retry over TCP: the answer would exceed 512 octets, so it
    # comes truncated: TC set, the question kept, no records
    out = kdig(world, name, "TXT", opts=["+ignore", "+noedns"])
    assert status(out) == "NOERROR" and "tc" in flags(out), out
    assert answers(out, "TXT") == [] and "ANSWER: 0" in out, out
    # the same query asked as resolvers do (UDP first, TCP when truncated): the whole
    # answer, over TCP
    out = kdig(world, name, "TXT", tcp=None, opts=["+noedns"])
    assert "tc" not in flags(out) and "(TCP)" in out, out
    txt = " ".join(answers(out, "TXT"))
    assert txt.startswith('"block: ') and len(txt) > 200, out
    # EDNS with 1232 octets holds the whole answer over UDP
    out = kdig(world, name, "ANY", opts=["+ignore", "+edns", "+bufsize=1232"])
    assert "tc" not in flags(out), out
    assert answers(out, "A") == ["127.0.0.2"] and len(answers(out, "TXT")) == 1, out
    # a short answer for the same name fits 512 octets
    out = kdig(world, name, "A", opts=["+ignore", "+noedns"])
    assert "tc" not in flags(out) and answers(out, "A") == ["127.0.0.2"], out


def dns_query(qid, name, rtype=1):
    """A DNS query in wire form: RD set, one question of class IN."""
    qname = b"".join(bytes([len(lab)]) + lab.encode() for lab in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", rtype, 1)


def tcp_frame(msg):
    return struct.pack("!H", len(msg)) + msg


def read_tcp_answer(sock):
    """(id, rcode, ancount) of the next length-prefixed answer on sock."""
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            assert chunk, "the server closed the connection"
            buf += chunk
        return buf
    (n,) = struct.unpack("!H", exactly(2))
    msg = exactly(n)
    qid, flags, _, an = struct.unpack("!HHHH", msg[:8])
    assert flags & 0x8000  # a response
    return qid, flags & 0x0f, an


def test_tcp_serves_many_connections_at_once(world):
    """A client that holds its TCP connection open and sends a query one octet at a time
    must not keep the zone from answering others: several connections, opened together
    while it trickles, each pipelining two queries, all get their answers; then the
    trickling client gets its own.  (Served one connection at a time, the others would
    wait for the whole trickle, longer than their read timeout.)"""
    addr = ("127.0.0.1", world.dns_port)
    slow = socket.create_connection(addr, timeout=10)
    slow.sendall(tcp_frame(dns_query(1, f"9.100.51.198.{ZONE}")))
    assert read_tcp_answer(slow) == (1, 0, 1)  # the server is in this connection now
    trickle = tcp_frame(dns_query(2, f"10.100.51.198.{ZONE}"))
    stop = threading.Event()
    sent = []

    def dribble():
        for octet in trickle[:-1]:
            if stop.wait(0.3):
                return
            slow.sendall(bytes([octet]))
            sent.append(octet)

    t = threading.Thread(target=dribble)
    t.start()
    others = []
    try:
        time.sleep(0.5)  # the trickle has begun
        for k in range(6):
            c = socket.create_connection(addr, timeout=5)
            others.append(c)
        for k, c in enumerate(others):  # two queries in one write: pipelined
            c.sendall(tcp_frame(dns_query(100 + k, f"9.100.51.198.{ZONE}")) +
                      tcp_frame(dns_query(200 + k, f"10.100.51.198.{ZONE}")))
        for k, c in enumerate(others):
            assert read_tcp_answer(c) == (100 + k, 0, 1)  # listed: NOERROR, one A
            assert read_tcp_answer(c) == (200 + k, 3, 0)  # not listed: NXDOMAIN
        assert len(sent) < len(trickle) - 1  # all answered while the trickle went on
    finally:
        stop.set()
        t.join()
        for c in others:
            c.close()
    slow.sendall(trickle[len(sent):])
    assert read_tcp_answer(slow) == (2, 3, 0)
    slow.close()


@pytest.mark.serial  # measures the time a backed-off answer takes
def test_policyd_against_the_daemon(world):
    work = anchorlib.mktemp_dir("anchor-policyd-")
    pd = px.Policyd(work, {"reputation_url": world.rep.base_url, "cacert": str(world.tls.ca),
                           "timeout_ms": "2000", "backoff": "0"}).start()
    try:
        c = pd.connect()
        a = c.ask(px.request_attrs(client_address="198.51.100.9", helo_name="",
                                   sender=""))
        assert a.startswith("action=REJECT 5.7.1 client blocked by reputation: "), a
        assert c.ask(px.request_attrs(client_address="198.51.100.10", helo_name="",
                                      sender="")) == "action=DUNNO"
        # the daemon goes away: fail open, quickly
        world.rep.stop()
        t0 = time.monotonic()
        assert c.ask(px.request_attrs(client_address="198.51.100.11", helo_name="",
                                      sender="")) == "action=DUNNO"
        assert time.monotonic() - t0 < 2.5
        assert "anchor-reputation" in pd.text()
    finally:
        pd.stop()
        world.rep.start()
        anchorlib.remove_tree(work)
