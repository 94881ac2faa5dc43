"""anchor-relay beside a real Postfix, in front of it and behind it.

    outbound   swaks -> Postfix "front" (relayhost = the relay's submission port) ->
               anchor-relay signs -> MX (NSD) -> Postfix "back" with OpenDKIM verifying as
               its milter -> virtual(8) Maildir.  The stored message carries OpenDKIM's
               dkim=pass and passes python3-dkim.
    inbound    the same front, then a second anchor-relay as the recipient domain's MX
               (inbound: verify, tier) handing over to Postfix (inbound_next_hop =
               smtp:127.0.0.1:<port>) which stores into a Maildir: the relay's
               Authentication-Results say dkim=pass and the tier header is there; a
               tampered copy says dkim=fail and is still delivered, never dropped.
"""

import re
import time

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx
from relayfixtures import make_relay, opendkim_milter, postfix_instance  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")


@pytest.fixture
def nsd(request):
    """Factory: nsd({origin: {name: txt}}, mx_domains) -> a started NSD, stopped at the end."""
    started = []

    def factory(records=None, mx_domains=()):
        work = anchorlib.mktemp_dir("anchor-pnsd-")
        started.append(work)
        n = rx.start_nsd(work, records or {}, mx_domains=mx_domains)
        started.append(n)
        return n

    def finish():
        for x in reversed(started):
            if isinstance(x, dx.Nsd):
                x.stop()
            else:
                anchorlib.remove_tree(x)

    request.addfinalizer(finish)
    return factory


def body_text(tag):
    return f"Through Postfix and anchor-relay ({tag}).\n\nSecond paragraph.\n"


def header_values(data, name):
    head = data.split(b"\n\n", 1)[0].replace(b"\r\n", b"\n").decode(errors="replace")
    head = re.sub(r"\n[ \t]+", " ", head)
    return [ln.split(":", 1)[1].strip() for ln in head.split("\n")
            if ln.lower().startswith(name.lower() + ":")]


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_postfix_in_front_and_behind_with_opendkim(make_relay, postfix_instance,
                                                   opendkim_milter, nsd):
    relay = make_relay(start=False, sign_domains={"x.test": ["rsa"]})
    od = opendkim_milter(mode="v", internal_hosts="192.0.2.1", records=relay.records(),
                         dns="nsd")
    back = postfix_instance(name="back", mailbox_domains=["far.test"], milters=[od.milter])
    dns = nsd(mx_domains=["far.test"])
    relay.params.update({"dns_server": dns.resolver, "smtp_port": str(back.port)})
    relay.start()
    front = postfix_instance(name="front", relayhost=f"[127.0.0.1]:{relay.submission_port}")

    r = rx.swaks(front.port, sender="alice@x.test", to="bob@far.test",
                 headers=["Subject: postfix sandwich"], body=body_text("outbound"))
    assert r.last_code() == 250, r.out
    [data] = back.wait_mailbox("bob@far.test", 1)
    received = " ".join(header_values(data, "Received"))
    assert front.hostname in received and "relay.test (anchor-relay)" in received, received
    [sig] = header_values(data, "DKIM-Signature")
    assert "d=x.test" in sig and "a=rsa-sha256" in sig, sig
    ar = [v for v in header_values(data, "Authentication-Results")
          if v.startswith(od.authserv_id)]
    assert ar and re.search(r"dkim=pass .*?header\.d=x\.test", ar[0]), ar
    assert rx.dkimpy_verify(crlf(data), relay.records()), data.decode(errors="replace")
    assert not rx.dkimpy_verify(crlf(data).replace(b"Second paragraph", b"Second paragrapf"),
                                relay.records())
    front.wait_queue_empty()
    back.wait_queue_empty()
    front.wait_log(r"to=<bob@far\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent")


def test_relay_inbound_hands_verified_mail_to_postfix(make_relay, postfix_instance, nsd):
    back = postfix_instance(name="back", mailbox_domains=["dest.test"])
    # the recipient side: anchor-relay in front of Postfix
    receiver = make_relay(start=False, hostname="mx.dest.test", local_domains="dest.test",
                          inbound_next_hop=f"smtp:127.0.0.1:{back.port}")
    sender = make_relay(start=False, sign_domains={"x.test": ["ed25519"]},
                        smtp_port=receiver.inbound_port)
    dns = nsd({"x.test": sender.records()}, mx_domains=["dest.test"])
    for r in (receiver, sender):
        r.params["dns_server"] = dns.resolver
        r.start()
    front = postfix_instance(name="front", relayhost=f"[127.0.0.1]:{sender.submission_port}")

    r = rx.swaks(front.port, sender="alice@x.test", to="bob@dest.test",
                 headers=["Subject: both sides"], body=body_text("inbound"))
    assert r.last_code() == 250, r.out
    [data] = back.wait_mailbox("bob@dest.test", 1)
    ar = [v for v in header_values(data, "Authentication-Results")
          if v.startswith("mx.dest.test")]
    assert len(ar) == 1 and re.search(r"dkim=pass .*?header\.d=x\.test", ar[0]), ar
    [tier] = header_values(data, "X-Anchor-Tier")
    assert tier.split()[0] in ("unknown", "known", "trusted"), tier
    received = " ".join(header_values(data, "Received"))
    for hop in (front.hostname, "relay.test (anchor-relay)", "mx.dest.test (anchor-relay)",
                back.hostname):
        assert hop in received, (hop, received)

    # a tampered copy of what the sender relay signed, straight into the receiving relay:
    # verified as a failure, and still delivered (never silently dropped)
    signed = crlf(data)
    signed = signed[signed.index(b"DKIM-Signature:"):]  # what left the sending relay
    bad = signed.replace(b"Second paragraph", b"Second paragrapf")
    assert bad != signed
    r = rx.swaks(receiver.inbound_port, sender="alice@x.test", to="bob@dest.test", data=bad,
                 helo="mx.x.test")
    assert r.last_code() == 250, r.out
    msgs = back.wait_mailbox("bob@dest.test", 2)
    [t] = [m for m in msgs if b"paragrapf" in m]
    ar = [v for v in header_values(t, "Authentication-Results") if v.startswith("mx.dest.test")]
    assert len(ar) == 1 and re.search(r"dkim=fail", ar[0]) and "dkim=pass" not in ar[0], ar
    [tier] = header_values(t, "X-Anchor-Tier")
    assert tier.startswith("unknown"), tier
    front.wait_queue_empty()
    back.wait_queue_empty()
    deadline = time.monotonic() + 20
    while sender.spool_files("out") or receiver.spool_files("in"):
        assert time.monotonic() < deadline, (sender.spool_files("out"),
                                             receiver.spool_files("in"))
        time.sleep(0.1)
