"""The relay tests' own fixtures (relayfixtures.py), checked against each other: a
throwaway Postfix relays into smtp-sink and delivers into Maildirs, OpenDKIM as its milter
signs mail that python3-dkim accepts and verifies python3-dkim's signatures with keys
served by NSD, smtp-source's counts arrive, two instances do not see each other.

None of this needs anchor-relay; these tests pass on their own.
"""

import re

import pytest

import ksfixtures as kf
import relayfixtures as rx
from relayfixtures import make_relay, opendkim_milter, postfix_instance, py_sink, smtp_sink  # noqa: F401


def signed_message(key, body="Hello from the fixtures.\r\n", sender="alice@x.test"):
    msg = (f"From: Alice <{sender}>\r\nTo: Bob <bob@dest.test>\r\n"
           f"Subject: fixture check {key.alg}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
           f"Message-ID: <{key.alg}.{key.selector}@x.test>\r\n\r\n{body}").encode()
    return rx.dkimpy_sign(msg, key) + msg


def test_postfix_relays_into_smtp_sink(smtp_sink, postfix_instance):
    sink = smtp_sink()
    pf = postfix_instance(relayhost=f"[127.0.0.1]:{sink.port}")
    r = rx.swaks(pf.port, sender="alice@x.test", to=["bob@far.test", "carol@far.test"],
                 body="line one\n.leading dot\nlast line")
    assert r.last_code() == 250, r.out
    [m] = sink.wait_for(1)
    assert m.mail_from == "alice@x.test"
    assert sorted(m.rcpts) == ["bob@far.test", "carol@far.test"]
    assert m.client == "127.0.0.1" and m.proto == "ESMTP"
    assert m.header("From") == ["alice@x.test"]
    received = m.header("Received")
    assert received and pf.hostname in received[0], received
    assert m.body.startswith(b"line one\r\n.leading dot\r\nlast line"), m.body
    pf.wait_log(r"status=sent \(250")
    pf.wait_queue_empty()


def test_postfix_delivers_to_maildir(postfix_instance):
    pf = postfix_instance(mailbox_domains=["dest.test"])
    for who in ("bob@dest.test", "bob+Junk@dest.test"):
        r = rx.swaks(pf.port, to=who, headers=[f"X-Case: {who}"])
        assert r.last_code() == 250, r.out
    [plain] = pf.wait_mailbox("bob@dest.test", 1)
    [junk] = pf.wait_mailbox("bob+Junk@dest.test", 1)
    assert b"X-Case: bob@dest.test" in plain and b"X-Case: bob+Junk@dest.test" in junk
    assert pf.mailbox("carol@dest.test") == []
    # a domain that is neither local nor routed: 450 at RCPT, nothing looked up
    r = rx.swaks(pf.port, to="x@nowhere.test")
    assert r.last_code() == 450, r.out


def test_postfix_in_front_of_postfix_and_lmtp(postfix_instance, py_sink):
    """Two instances chained (independent queues and logs), the second delivering
    over LMTP into aiosmtpd."""
    lmtp = py_sink(lmtp=True)
    back = postfix_instance(name="back", transports={"dest.test": f"lmtp:[127.0.0.1]:{lmtp.port}"})
    front = postfix_instance(name="front", relayhost=f"[127.0.0.1]:{back.port}")
    r = rx.swaks(front.port, to="bob@dest.test", body="through two instances")
    assert r.last_code() == 250, r.out
    [m] = lmtp.wait_for(1)
    assert m.rcpts == ["bob@dest.test"] and m.proto == "LMTP"
    assert b"through two instances" in m.data
    assert len(m.header("Received")) >= 2
    front.wait_queue_empty()
    back.wait_queue_empty()
    assert f"postfix-front-{front.port}" in front.text()
    assert f"postfix-back-{back.port}" not in front.text()
    assert f"postfix-front-{front.port}" not in back.text()


@pytest.mark.parametrize("dns", ["nsd", "file"])
def test_opendkim_milter_signs_and_dkimpy_accepts(smtp_sink, postfix_instance, opendkim_milter,
                                                   dns):
    rsa = opendkim_milter.make_keys("x.test", "rsa")
    ed = opendkim_milter.make_keys("x.test", "ed25519")
    # one OpenDKIM signs with one algorithm: two milters in a row
    od_rsa = opendkim_milter(keys=[rsa], dns=dns)
    od_ed = opendkim_milter(keys=[ed], dns=dns)
    sink = smtp_sink()
    pf = postfix_instance(relayhost=f"[127.0.0.1]:{sink.port}",
                          milters=[od_rsa.milter, od_ed.milter])
    r = rx.swaks(pf.port, sender="alice@x.test", to="bob@far.test",
                 body="Signed by OpenDKIM.\n\nTwo paragraphs.")
    assert r.last_code() == 250, r.out
    [m] = sink.wait_for(1)
    sigs = m.header("DKIM-Signature")
    assert len(sigs) == 2, m.text
    algs = sorted(re.search(r"a=([\w-]+)", s).group(1) for s in sigs)
    assert algs == ["ed25519-sha256", "rsa-sha256"]
    records = rx.records_of([rsa, ed])
    assert rx.dkimpy_verify(m.data, records), m.text
    # each signature on its own, then a tampered body fails both
    assert rx.dkimpy_verify(m.data, records, index=0)
    assert rx.dkimpy_verify(m.data, records, index=1)
    bad = m.data.replace(b"Two paragraphs.", b"Two paragraphz.")
    assert not rx.dkimpy_verify(bad, records, index=0)
    assert not rx.dkimpy_verify(bad, records, index=1)
    # and with the wrong key published, no pass
    other = opendkim_milter.make_keys("x.test", "rsa", selector=rsa.selector)
    assert not rx.dkimpy_verify(m.data, {rsa.name: other.record, ed.name: ed.record})


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
def test_opendkim_verifies_dkimpy_signatures_through_nsd(smtp_sink, postfix_instance,
                                                         opendkim_milter, alg, tmp_path):
    key = rx.dkim_keys(tmp_path, "x.test", f"py{alg}", alg)
    # verify only: no host is internal, the keys come from NSD through Unbound
    od = opendkim_milter(mode="v", internal_hosts="192.0.2.1", records=key and
                         rx.records_of([key]), dns="nsd")
    sink = smtp_sink()
    pf = postfix_instance(relayhost=f"[127.0.0.1]:{sink.port}", milters=[od.milter])
    good = signed_message(key, body="Intact body.\r\n")
    bad = signed_message(key, body="Intact body.\r\n").replace(b"Intact body.", b"Tampered.")
    for data in (good, bad):
        r = rx.swaks(pf.port, sender="alice@x.test", to="bob@far.test", data=data)
        assert r.last_code() == 250, r.out
    msgs = sink.wait_for(2)
    verdicts = {}
    for m in msgs:
        ar = " ".join(m.header("Authentication-Results"))
        assert ar.startswith(od.authserv_id), m.text
        verdicts[b"Tampered" in m.data] = re.search(r"dkim=(\w+)", ar).group(1)
    assert verdicts == {False: "pass", True: "fail"}, verdicts


def test_smtp_source_counts_through_postfix(smtp_sink, postfix_instance, tmp_path):
    sink = smtp_sink()
    pf = postfix_instance(relayhost=f"[127.0.0.1]:{sink.port}")
    r = rx.smtp_source(pf.port, count=60, sessions=6, size=2048, sender="from@x.test",
                       rcpt="to@far.test")
    assert r.rc == 0, (r.argv, r.out, r.err)
    msgs = sink.wait_for(60, exact=True)
    ids = {m.header("Message-Id")[0] for m in msgs}
    assert len(ids) == 60  # each message once
    assert all(m.mail_from == "from@x.test" and m.rcpts == ["to@far.test"] for m in msgs)
    pf.wait_queue_empty()
    # a pre-formatted message (-F), as the benchmark sends
    f = rx.message_file(tmp_path / "msg.txt", sender="from@x.test", to="to@far.test",
                        size=4096)
    r = rx.smtp_source(pf.port, count=5, sessions=1, file=f)
    assert r.rc == 0, r.err
    msgs = sink.wait_for(65, exact=True)
    assert sum(1 for m in msgs if m.header("Subject") == ["bench"]) == 5


def test_smtp_sink_soft_reject_keeps_mail_queued(smtp_sink, postfix_instance):
    """smtp-sink answering 4xx to RCPT: Postfix defers, and delivers once the sink accepts."""
    sink = smtp_sink(args=["-r", "RCPT"])
    pf = postfix_instance(relayhost=f"[127.0.0.1]:{sink.port}")
    assert rx.swaks(pf.port, to="bob@far.test").last_code() == 250
    pf.wait_log(r"to=<bob@far.test>.*status=deferred")
    # smtp-sink opens its dump file at RCPT, refused or not, and removes it when the
    # transaction ends (RSET or QUIT), which Postfix sends after logging the deferral.
    assert kf.poll(lambda: sink.count() == 0, timeout=20), sink.files()
    assert not pf.queue_empty()
    sink.args = []
    sink.restart()
    pf.flush()
    sink.wait_for(1)
    pf.wait_queue_empty()


@pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")
def test_make_relay_contract(make_relay, smtp_sink, tmp_path, request):
    """make_relay as the relay tests use it: generated keys, the port file, outbound
    through the MX that NSD names, SIGKILL and a restart on the same ports."""
    sink = smtp_sink()
    nsd = rx.start_nsd(tmp_path / "dns", {}, mx_domains=["far.test"])
    request.addfinalizer(nsd.stop)
    relay = make_relay(sign_domains={"x.test": "rsa", "y.test": "ed25519"}, dns_server=nsd.resolver,
                       smtp_port=sink.port, inbound_next_hop=sink.hop)
    assert relay.inbound_port and relay.submission_port
    assert rx.swaks(relay.submission_port, sender="alice@x.test",
                    to="bob@far.test").last_code() == 250
    [m] = sink.wait_for(1)
    assert len(m.header("DKIM-Signature")) == 1 and "a=rsa-sha256" in m.text
    assert rx.dkimpy_verify(m.data, relay.records()), m.text
    ports = dict(relay.ports)
    assert relay.kill() == -9
    relay.start()
    assert relay.ports == ports
    assert rx.swaks(relay.submission_port, sender="carol@y.test",
                    to="dave@far.test").last_code() == 250
    msgs = sink.wait_for(2)
    assert msgs[-1].rcpts == ["dave@far.test"] and "a=ed25519-sha256" in msgs[-1].text
    assert rx.dkimpy_verify(msgs[-1].data, relay.records()), msgs[-1].text
