"""The relay's DKIM verifier against signers nobody here wrote, end to end: messages go
into anchor-relay's inbound port and the verdict is read from the Authentication-Results
field of what reaches the next hop.

    - python3-dkim (dkimpy) signs with rsa-sha256 and ed25519-sha256 (RFC 8463), every
      pairing of simple and relaxed canonicalisation: dkim=pass; a changed body or
      changed signed header field: dkim=fail; a whitespace change that relaxed
      canonicalisation forgives passes under relaxed and fails under simple (so the
      relay really applies the c= the signer chose);
    - OpenDKIM, as the milter of a real Postfix that relays into anchor-relay, signs with
      rsa-sha256 and ed25519-sha256 (two milters: OpenDKIM's algorithm is global): both
      pass; copies of the delivered message with a changed body or header fail.

Every public key is a TXT record served by NSD, the relay's dns_server (the signing
domain has no _anchor records: legacy DKIM).
"""

import re
import time
from types import SimpleNamespace

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx
from relayfixtures import make_relay, opendkim_milter, postfix_instance, py_sink  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built"),
]
pytest.importorskip("dkim")

DOMAIN = "interop.test"
AUTHSERV = "relay.test"
CANONS = ["relaxed/relaxed", "simple/simple", "relaxed/simple", "simple/relaxed"]

MESSAGE = ("From: Alice <alice@interop.test>\r\n"
           "To: Bob <bob@dest.test>\r\n"
           "Subject: Quarterly  figures\r\n"
           "\tand a folded line\r\n"
           "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           "Message-ID: <{mid}@interop.test>\r\n"
           "MIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n"
           "\r\n"
           "Hello Bob,   \r\n"
           "\r\n"
           "the numbers\tare  attached.\r\n"
           "\r\n")


@pytest.fixture(scope="module")
def keys(request):
    """dkimpy's and OpenDKIM's keys, all published in NSD."""
    work = anchorlib.mktemp_dir("anchor-rvi-")
    work.chmod(0o755)
    k = SimpleNamespace(work=work, nsd=None)

    def finish():
        if k.nsd:
            k.nsd.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    k.py = {alg: rx.dkim_keys(work / "py", DOMAIN, f"py{alg}", alg) for alg in ("rsa", "ed25519")}
    k.od = {alg: rx.dkim_keys(work / "od", DOMAIN, f"od{alg}", alg)
            for alg in ("rsa", "ed25519")}
    records = rx.records_of([*k.py.values(), *k.od.values()])
    k.nsd = rx.start_nsd(work / "dns", {DOMAIN: records})
    return k


_seq = iter(range(1, 10**6))


def make_message():
    return MESSAGE.format(mid=f"{next(_seq)}.{time.time_ns()}").encode()


def next_delivery(sink, before, timeout=30.0):
    """The message that arrives after the sink held `before` (sends are sequential)."""
    deadline = time.monotonic() + timeout
    while True:
        msgs = sink.messages()
        if len(msgs) > before:
            assert len(msgs) == before + 1, f"{len(msgs) - before} deliveries, expected 1"
            return msgs[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing delivered within {timeout}s")
        time.sleep(0.05)


def verdicts(m):
    """[(result, selector, algorithm, reason)] of our Authentication-Results field."""
    ours = [v for v in m.header("Authentication-Results") if v.startswith(AUTHSERV + ";")]
    assert len(ours) == 1, m.text
    out = []
    for res in re.findall(r"dkim=[^;]*", ours[0]):
        sel = re.search(r"header\.s=(\S+)", res)
        alg = re.search(r"header\.a=([\w-]+)", res)
        why = re.search(r'reason="([^"]*)"', res)
        out.append((res.split()[0].split("=")[1], sel and sel.group(1), alg and alg.group(1),
                    why.group(1) if why else ""))
    return out


def send(relay, sink, data):
    """data into the relay; the delivered message (Message-IDs repeat in tampered copies,
    so deliveries are matched by order)."""
    before = len(sink.messages())
    r = rx.swaks(relay.inbound_port, sender="alice@interop.test", to="bob@dest.test", data=data)
    assert r.last_code() == 250, r.out
    return next_delivery(sink, before)


def through_relay(relay, sink, data):
    return verdicts(send(relay, sink, data))


def tampered_copies(data):
    """(name, message) for the changes every signature must notice."""
    return [("body", data.replace(b"attached.", b"attacked.")),
            ("header", data.replace(b"Subject: Quarterly", b"Subject: Annual"))]


def corrupt_b(field):
    """A DKIM-Signature field with a few characters of its b= value changed."""
    i = field.rfind(b"b=") + 2
    m = re.compile(rb"[A-Za-z]{6}").search(field, i)
    return field[:m.start()] + m.group(0).swapcase() + field[m.end():]


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
def test_dkimpy_signatures(keys, make_relay, py_sink, alg):
    sink = py_sink()
    relay = make_relay(dns_server=keys.nsd.resolver, inbound_next_hop=sink.hop)
    key = keys.py[alg]
    a = f"{alg}-sha256"
    for canon in CANONS:
        h, b = (c.encode() for c in canon.split("/"))
        msg = make_message()
        data = rx.dkimpy_sign(msg, key, canon=(h, b)) + msg
        assert f"c={canon};".encode() in data.replace(b"\r\n ", b" "), data[:200]
        assert rx.dkimpy_verify(data, rx.records_of([key])), "dkimpy rejects its own signature"

        got = through_relay(relay, sink, data)
        assert got == [("pass", key.selector, a, "")], (canon, got)

        for name, bad in tampered_copies(data):
            got = through_relay(relay, sink, bad)
            assert len(got) == 1 and got[0][0] == "fail", (canon, name, got)
            if name == "body":
                assert "body" in got[0][3], got  # the body hash, not the signature

        # whitespace only: relaxed forgives it, simple does not, per part
        ws_head = data.replace(b"Quarterly  figures", b"Quarterly figures")
        got = through_relay(relay, sink, ws_head)
        assert got[0][0] == ("pass" if canon.startswith("relaxed") else "fail"), (canon, got)
        ws_body = data.replace(b"Hello Bob,   \r\n", b"Hello Bob,\r\n")
        got = through_relay(relay, sink, ws_body)
        assert got[0][0] == ("pass" if canon.endswith("relaxed") else "fail"), (canon, got)


def test_dkimpy_both_algorithms_on_one_message(keys, make_relay, py_sink):
    """RFC 8463 §5: a signer may add an ed25519 and an rsa signature; each gets its own
    verdict, top to bottom, and a tampered body fails both."""
    sink = py_sink()
    relay = make_relay(dns_server=keys.nsd.resolver, inbound_next_hop=sink.hop)
    msg = make_message()
    inner = rx.dkimpy_sign(msg, keys.py["rsa"], canon=(b"simple", b"simple")) + msg
    data = rx.dkimpy_sign(inner, keys.py["ed25519"]) + inner
    assert through_relay(relay, sink, data) == [
        ("pass", "pyed25519", "ed25519-sha256", ""), ("pass", "pyrsa", "rsa-sha256", "")]
    name, bad = tampered_copies(data)[0]
    assert [v[0] for v in through_relay(relay, sink, bad)] == ["fail", "fail"]
    # the rsa signature's b= damaged before the ed25519 one was added: one fails, one passes
    rsa_field = corrupt_b(rx.dkimpy_sign(msg, keys.py["rsa"]))
    data = rx.dkimpy_sign(rsa_field + msg, keys.py["ed25519"]) + rsa_field + msg
    got = through_relay(relay, sink, data)
    assert [v[0] for v in got] == ["pass", "fail"], got


def test_opendkim_signatures_through_postfix(keys, make_relay, py_sink, postfix_instance,
                                             opendkim_milter):
    """A real Postfix in front of the relay: OpenDKIM signs as its milter (rsa, then
    ed25519), Postfix relays to anchor-relay, which verifies both."""
    sink = py_sink()
    relay = make_relay(dns_server=keys.nsd.resolver, inbound_next_hop=sink.hop)
    # signing only: no verification keys needed (records={} starts no DNS for it)
    od_rsa = opendkim_milter(keys=[keys.od["rsa"]], mode="s", records={})
    od_ed = opendkim_milter(keys=[keys.od["ed25519"]], mode="s", records={})
    pf = postfix_instance(relayhost=f"[127.0.0.1]:{relay.inbound_port}",
                          milters=[od_rsa.milter, od_ed.milter])
    msg = make_message()
    r = rx.swaks(pf.port, sender="alice@interop.test", to="bob@dest.test", data=msg)
    assert r.last_code() == 250, r.out
    m = next_delivery(sink, 0)
    assert len(m.header("DKIM-Signature")) == 2, m.text
    got = sorted(verdicts(m), key=lambda v: v[1])
    assert got == [("pass", "oded25519", "ed25519-sha256", ""),
                   ("pass", "odrsa", "rsa-sha256", "")], (got, m.text)
    received = m.header("Received")
    assert "by relay.test (anchor-relay)" in received[0] and pf.hostname in received[1], received
    pf.wait_queue_empty()

    # the delivered message as OpenDKIM signed it, sent again with a change: both fail
    for name, bad in tampered_copies(m.data):
        got = through_relay(relay, sink, bad)
        assert [v[0] for v in got] == ["fail", "fail"], (name, got)
    # unchanged, sent again directly: still two passes (our own fields are not signed)
    got = through_relay(relay, sink, m.data)
    assert [v[0] for v in got] == ["pass", "pass"], got


def test_partial_body_signature_verifies_no_sender(keys, make_relay, py_sink):
    """A signature with l= (dkimpy length=True) still passes when text is appended after
    the signed length, but it vouches for none of it: the sender is not verified
    (RFC 6376 §8.2), so the tier says "unverified sender"."""
    import dkim

    sink = py_sink()
    relay = make_relay(dns_server=keys.nsd.resolver, inbound_next_hop=sink.hop)
    key = keys.py["ed25519"]
    msg = make_message()
    sig = dkim.sign(msg, key.selector.encode(), key.domain.encode(), key.dkimpy_private(),
                    signature_algorithm=b"ed25519-sha256", length=True)
    whole = send(relay, sink, sig + msg)
    assert verdicts(whole)[0][0] == "pass"
    assert "unverified" not in whole.header("X-Anchor-Tier")[0], whole.text

    appended = send(relay, sink, sig + msg + b"P.S. Wire the money today.\r\n")
    assert verdicts(appended)[0][0] == "pass", appended.text
    assert "unverified sender" in appended.header("X-Anchor-Tier")[0], appended.text
