"""anchor-relay's outbound side, end to end, against tools nobody here wrote.

    signing     swaks -> the relay's submission port -> signed -> MX (NSD) -> a Postfix
                with OpenDKIM verifying as its milter -> smtp-sink; python3-dkim checks the
                delivered copy too.  rsa-sha256 and ed25519-sha256, with the user's own key
                (second signature, i=<sender>, s=anchor-user); a tampered copy fails both.
    anchored    a recipient domain anchored on a real key server (DNS by NSD, routes signed
                by the key server): delivered over TLS to a second anchor-relay presenting
                an `mta` certificate of that domain; a server whose certificate chains to
                another root is never given the message; an address alias is followed.
    queue       per-recipient outcomes (250 / 450 then retried after backoff_base / 550 ->
                an RFC 3464 bounce to the sender), queue_lifetime expiry -> bounce, and a
                restart resuming delivery.

Every name is served by NSD on a loopback port; the relay's MX deliveries go to smtp_port.
"""

import email
import email.policy
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import relayfixtures as rx
import routefixtures as rf
from relayfixtures import make_relay, opendkim_milter, postfix_instance, smtp_sink  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

SENDER = "alice@x.test"


# --------------------------------------------------------------------------
# helpers

@pytest.fixture
def nsd(request):
    """Factory: nsd({origin: {name: txt}}, mx_domains=[...], extra={origin: zone lines})
    -> a started dnsfixtures.Nsd (stopped at the end)."""
    started = []

    def factory(records=None, mx_domains=(), extra=None):
        work = anchorlib.mktemp_dir("anchor-onsd-")
        zdir = work / "zones"
        zdir.mkdir()
        records = dict(records or {})
        extra = dict(extra or {})
        zones = {}
        for origin in set(records) | set(mx_domains) | set(extra):
            body = rx.dns_zone_for(records.get(origin, {}), origin) + extra.get(origin, "")
            path = zdir / f"{origin}.zone"
            path.write_text(dx.zone_text(origin, body, mx=origin in mx_domains))
            zones[origin] = path
        n = dx.Nsd(work / "nsd", zones).start()
        started.append((n, work))
        return n

    def finish():
        for n, work in started:
            n.stop()
            anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    return factory


def user_key(relay, address, alg):
    """A user's own DKIM key in relay's user_keys_dir (<address>.key, 0600); the DkimKey
    whose record is published at anchor-user._domainkey.<domain>."""
    k = rx.dkim_keys(relay.dir / "ukeys-src", address.split("@")[1], "anchor-user", alg)
    udir = relay.dir / "ukeys"
    udir.mkdir(mode=0o700, exist_ok=True)
    dest = udir / f"{address}.key"
    shutil.copyfile(k.key_file, dest)
    dest.chmod(0o600)
    return k


def message(subject, body, sender=SENDER, to="bob@far.test", msgid=None):
    msgid = msgid or f"<{time.time_ns()}.{abs(hash(subject)) % 10**6}@x.test>"
    return (f"From: Alice <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: {msgid}\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"{body}").encode()


def tag(sig, name):
    m = re.search(rf"(?:^|;)\s*{name}=([^;]*)", sig)
    return re.sub(r"\s+", "", m.group(1)) if m else None


def ar_dkim(m, authserv):
    """The dkim= results ("pass", "fail", ...) in the Authentication-Results fields of
    authserv-id authserv in sink message m (comments may hold ';': no splitting)."""
    out = []
    for v in m.header("Authentication-Results"):
        if v.startswith(authserv):
            out += re.findall(r"\bdkim=(\w+)", v)
    return out


def wait_log(relay, pattern, timeout=30.0, start=0):
    rx_ = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        m = rx_.search(relay.text(), start)
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not in the relay's log after {timeout}s:\n"
                                 f"{relay.text()[-6000:]}")
        time.sleep(0.1)


def queued(relay, side="out"):
    """The committed messages in the relay's spool (not the temporaries of a rewrite)."""
    return [p for p in relay.spool_files(side) if p.name.startswith("m.")]


def wait_spool_empty(relay, timeout=30.0):
    deadline = time.monotonic() + timeout
    while relay.spool_files("out"):
        if time.monotonic() > deadline:
            raise AssertionError(f"spool/out not empty after {timeout}s: "
                                 f"{relay.spool_files('out')}\n{relay.text()[-6000:]}")
        time.sleep(0.1)


# --------------------------------------------------------------------------
# 1. Signing interop: python3-dkim and OpenDKIM verify what the relay signs

@pytest.mark.parametrize("alg", ["ed25519", "rsa"])
def test_signed_mail_verifies_with_dkimpy_and_opendkim(alg, make_relay, nsd, smtp_sink,
                                                       postfix_instance, opendkim_milter):
    relay = make_relay(start=False, sign_domains={"x.test": [alg]})
    ukey = user_key(relay, SENDER, alg)
    records = {**relay.records(), ukey.name: ukey.record}
    od = opendkim_milter(mode="v", internal_hosts="192.0.2.1", records=records, dns="nsd")
    sink = smtp_sink()
    pf = postfix_instance(relayhost=f"[127.0.0.1]:{sink.port}", milters=[od.milter])
    dns = nsd(mx_domains=["far.test"])
    relay.params.update({"dns_server": dns.resolver, "smtp_port": str(pf.port),
                         "user_keys_dir": str(relay.dir / "ukeys")})
    relay.start()

    body = "Signed by anchor-relay.\r\n\r\nSecond  paragraph,\twith blanks.   \r\n"
    r = rx.swaks(relay.submission_port, sender=SENDER, to="bob@far.test",
                 data=message(f"interop {alg}", body))
    assert r.last_code() == 250, r.out
    [m] = sink.wait_for(1)
    assert m.rcpts == ["bob@far.test"] and m.mail_from == SENDER

    sigs = m.header("DKIM-Signature")
    assert len(sigs) == 2, m.text
    by_sel = {tag(s, "s"): s for s in sigs}
    assert set(by_sel) == {f"{alg}sel", "anchor-user"}, sigs
    want_a = "ed25519-sha256" if alg == "ed25519" else "rsa-sha256"
    assert all(tag(s, "a") == want_a and tag(s, "d") == "x.test" for s in sigs), sigs
    assert tag(by_sel["anchor-user"], "i") == SENDER
    assert tag(by_sel[f"{alg}sel"], "i") in (None, "@x.test")

    # python3-dkim: every signature passes, with the relay's and the user's records
    assert rx.dkimpy_verify(m.data, records), m.text
    for i in range(2):
        assert rx.dkimpy_verify(m.data, records, index=i)
    # OpenDKIM (the milter in the Postfix the relay delivered to) says pass for both
    verdicts = ar_dkim(m, od.authserv_id)
    assert verdicts == ["pass", "pass"], (verdicts, m.text)

    # a tampered copy: python3-dkim fails both; re-sent through the same Postfix,
    # OpenDKIM fails both
    bad = m.data.replace(b"Second  paragraph", b"Second  paragraf")
    assert bad != m.data
    for i in range(2):
        assert not rx.dkimpy_verify(bad, records, index=i)
    bad = bad[bad.index(b"DKIM-Signature:"):]  # without what Postfix added on its way
    r = rx.swaks(pf.port, sender=SENDER, to="bob@far.test", data=bad)
    assert r.last_code() == 250, r.out
    msgs = sink.wait_for(2)
    [t] = [x for x in msgs if b"paragraf" in x.data]
    verdicts = ar_dkim(t, od.authserv_id)
    assert verdicts == ["fail", "fail"], (verdicts, t.text)
    pf.wait_queue_empty()
    wait_spool_empty(relay)


def test_unknown_domain_is_relayed_unsigned_and_user_key_alone_is_not_used(
        make_relay, nsd, smtp_sink):
    """Mail From a domain the signer has no key for goes out unsigned (as OpenDKIM does
    outside its signing table), even when a user key exists for that address."""
    sink = smtp_sink()
    dns = nsd(mx_domains=["far.test"])
    relay = make_relay(start=False, sign_domains={"x.test": ["ed25519"]},
                       dns_server=dns.resolver, smtp_port=sink.port)
    user_key(relay, "carol@other.test", "ed25519")
    relay.params["user_keys_dir"] = str(relay.dir / "ukeys")
    relay.start()
    r = rx.swaks(relay.submission_port, sender="carol@other.test", to="bob@far.test",
                 data=message("unsigned", "no key here\r\n", sender="carol@other.test"))
    assert r.last_code() == 250, r.out
    [m] = sink.wait_for(1)
    assert m.header("DKIM-Signature") == [], m.text
    assert any("relay.test" in v for v in m.header("Received")), m.text
    wait_log(relay, r"no signing key for 'other.test'")


# --------------------------------------------------------------------------
# 2. Anchored routing: TLS pinned to the recipient domain's root

PARENT = "arelay.test"
KS_HOST = f"keys.{PARENT}"


def zname(label):
    return f"{label}.{PARENT}"


def impostor_chain(directory, host):
    """A root of our own and a server certificate for host under it: (chain file, key)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    kf.openssl("req", "-x509", *ec, "-keyout", d / "root.key", "-out", d / "root.pem",
               "-days", "30", "-subj", f"/CN=Impostor root for {host}",
               "-addext", "basicConstraints=critical,CA:TRUE",
               "-addext", "keyUsage=critical,keyCertSign,cRLSign", check=True)
    kf.openssl("req", "-new", *ec, "-keyout", d / "leaf.key", "-out", d / "leaf.csr",
               "-subj", f"/CN={host}", check=True)
    (d / "leaf.ext").write_text("basicConstraints=critical,CA:FALSE\n"
                                "keyUsage=critical,digitalSignature\n"
                                "extendedKeyUsage=serverAuth,clientAuth\n"
                                f"subjectAltName=DNS:{host}\n")
    kf.openssl("x509", "-req", "-in", d / "leaf.csr", "-CA", d / "root.pem", "-CAkey",
               d / "root.key", "-CAcreateserial", "-out", d / "leaf.pem", "-days", "30",
               "-extfile", d / "leaf.ext", check=True)
    chain = d / "chain.pem"
    chain.write_text((d / "leaf.pem").read_text() + (d / "root.pem").read_text())
    (d / "leaf.key").chmod(0o600)
    return chain, d / "leaf.key"


@pytest.fixture(scope="module")
def anchored(pg, db, operator_token, request):
    """A key server (keys.arelay.test) holding three anchored domains, NSD serving their
    anchor records and host names, and x.test (the sender's domain) with an MX:

        a1  the recipient domain; mx.a1 holds an `mta` certificate issued by a1's key server
        a2  the target of an address alias in a1
        aw  its route names mx.aw, which will present a certificate of another root
    """
    work = anchorlib.mktemp_dir("anchor-oanc-")
    tls = dx.make_tls(work / "tls", [KS_HOST])
    ks = anchorlib.Keyserver(work / "ks", db, tls, operator_token.hash)
    w = type("World", (), {})()
    w.work, w.tls, w.ks, w.nsd, w.doms = work, tls, ks, None, {}

    def finish():
        if w.nsd:
            w.nsd.stop()
        ks.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks.start()
    base = work / "domains"
    for label in ("a1", "a2", "aw"):
        w.doms[label] = kf.register_domain(ks, base, zname(label), operator_token.token)
    # the mta certificate of mx.a1, its chain up to a1's root, as a receiving MTA must send it
    host = f"mx.{zname('a1')}"
    kf.ctl_ok(ks, "server", "issue", host, "--purpose", "mta", cwd=base)
    w.mta_chain = work / "mx-a1-fullchain.pem"
    w.mta_chain.write_text((base / f"{host}.mta.pem").read_text() +
                           (base / f"{host}.mta.chain.pem").read_text())
    w.mta_key = base / f"{host}.mta.key"
    w.imp_chain, w.imp_key = impostor_chain(work / "impostor", f"mx.{zname('aw')}")

    zdir = work / "zones"
    zdir.mkdir()
    zones = {PARENT: zdir / f"{PARENT}.zone"}
    zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
    for label in w.doms:
        r = dx.anchor_dns("records", zname(label), "-s", ks.base_url, "--cacert", tls.ca,
                          "--keyserver", f"{KS_HOST}:{ks.port}:10:10")
        assert r.rc == 0, r.err
        zones[zname(label)] = zdir / f"{label}.zone"
        zones[zname(label)].write_text(dx.zone_text(zname(label),
                                                    r.out + "mx IN A 127.0.0.1\n", mx=False))
    w.zdir = zdir
    w.zones = zones
    return w


def anchored_dns(anchored, sender_records):
    """NSD for the anchored world plus x.test (sender's keys, MX); stopped by the caller."""
    zones = dict(anchored.zones)
    path = anchored.zdir / f"x.test.{time.time_ns()}.zone"
    path.write_text(dx.zone_text("x.test", rx.dns_zone_for(sender_records, "x.test")))
    zones["x.test"] = path
    return dx.Nsd(anchored.work / f"nsd-{time.time_ns()}", zones).start()


def put_route(anchored, name, body):
    label = name.split("@")[-1].split(".")[0]
    r = rf.route_put(anchored.ks.client(), name, body,
                     token=anchored.doms[label].admin_token)
    assert r.status == 200, (name, body, r.status, r.body)


def server(host, port, pin):
    return {"servers": [{"host": host, "port": port, "priority": 10, "weight": 1,
                         "pin": pin}], "ttl": 60}


@pytest.fixture
def anchored_dns_server(anchored, request):
    holder = {}

    def start(records):
        holder["nsd"] = anchored_dns(anchored, records)
        return holder["nsd"]

    request.addfinalizer(lambda: holder.get("nsd") and holder["nsd"].stop())
    return start


def test_anchored_domain_gets_mail_over_pinned_tls(anchored, anchored_dns_server, make_relay,
                                                    smtp_sink, tls):
    a1, a2 = zname("a1"), zname("a2")
    inner = smtp_sink()
    legacy = smtp_sink()
    # the receiving side: a second anchor-relay, inbound, with mx.a1's mta certificate
    recv = make_relay(start=False, hostname=f"mx.{a1}", local_domains=f"{a1},{a2}",
                      inbound_next_hop=inner.hop, tls_cert_file=anchored.mta_chain,
                      tls_key_file=anchored.mta_key)
    sender = make_relay(start=False, sign_domains={"x.test": ["ed25519"]},
                        keyserver_cacert=anchored.tls.ca, smtp_port=legacy.port, control=True,
                        connection_idle_time="0")  # each delivery its own session: resumed
    dns = anchored_dns_server(sender.records())
    for r in (recv, sender):
        r.params["dns_server"] = dns.resolver
        r.start()
    pin = anchored.doms["a1"].pin
    put_route(anchored, a1, server(f"mx.{a1}", recv.inbound_port, pin))
    put_route(anchored, a2, server(f"mx.{a1}", recv.inbound_port, pin))
    put_route(anchored, f"alias@{a1}", {"alias": f"target@{a2}", "ttl": 60})

    r = rx.swaks(sender.submission_port, to=f"bob@{a1}",
                 data=message("anchored", "over pinned TLS\r\n", to=f"bob@{a1}"))
    assert r.last_code() == 250, r.out
    [m] = inner.wait_for(1)
    assert m.rcpts == [f"bob@{a1}"] and m.mail_from == SENDER
    # the receiving relay took it over TLS and verified the sender's signature
    received = " ".join(m.header("Received"))
    assert re.search(rf"by mx\.{re.escape(a1)} \(anchor-relay\) with ESMTPS", received), received
    ar = " ".join(m.header("Authentication-Results"))
    assert ar.startswith(f"mx.{a1}") and "dkim=pass" in ar, ar
    wait_log(sender, rf"to=<bob@{re.escape(a1)}> status=delivered")

    # an address alias to another anchored domain: RCPT TO names the alias target
    r = rx.swaks(sender.submission_port, to=f"alias@{a1}",
                 data=message("aliased", "follow the alias\r\n", to=f"alias@{a1}"))
    assert r.last_code() == 250, r.out
    msgs = inner.wait_for(2)
    [al] = [x for x in msgs if b"follow the alias" in x.data]
    assert al.rcpts == [f"target@{a2}"], al.rcpts
    wait_spool_empty(sender)
    assert legacy.count() == 0
    # the second delivery to the same pinned hop resumed the first one's TLS session, and
    # the pin was checked on it (on the chain the session recorded)
    client = anchorlib.Client(sender.control_url, tls.ca)
    metrics = client.get("/metrics").text
    assert re.search(r"^anchor_relay_outbound_tls_resumed_total 1$", metrics, re.M), metrics


def test_wrong_pin_defers_and_never_sends_in_clear(anchored, anchored_dns_server, make_relay,
                                                   smtp_sink):
    aw = zname("aw")
    inner = smtp_sink()
    legacy = smtp_sink()
    # mx.aw presents a valid-looking chain for its name, but from a root that is not aw's
    impostor = make_relay(start=False, hostname=f"mx.{aw}", local_domains=aw,
                          inbound_next_hop=inner.hop, tls_cert_file=anchored.imp_chain,
                          tls_key_file=anchored.imp_key)
    sender = make_relay(start=False, sign_domains={"x.test": ["ed25519"]},
                        keyserver_cacert=anchored.tls.ca, smtp_port=legacy.port)
    dns = anchored_dns_server(sender.records())
    for r in (impostor, sender):
        r.params["dns_server"] = dns.resolver
        r.start()
    put_route(anchored, aw, server(f"mx.{aw}", impostor.inbound_port, anchored.doms["aw"].pin))

    r = rx.swaks(sender.submission_port, to=f"bob@{aw}",
                 data=message("wrong pin", "must not leave\r\n", to=f"bob@{aw}"))
    assert r.last_code() == 250, r.out
    m = wait_log(sender, rf"to=<bob@{re.escape(aw)}> status=deferred ([^\n]*)")
    assert "pin" in m.group(1).lower(), m.group(0)
    # retried after the backoff, still refused
    wait_log(sender, rf"to=<bob@{re.escape(aw)}> status=deferred", start=m.end())
    assert len(queued(sender)) == 1
    # the impostor saw a TLS handshake and nothing else: no envelope, no message
    time.sleep(0.5)
    assert inner.count() == 0 and legacy.count() == 0
    log = impostor.text()
    conns = re.findall(r"conn (\d+): 127\.0\.0\.1 connected \(inbound\)", log)
    tls_conns = re.findall(r"conn (\d+): TLS TLSv1", log)
    assert len(conns) >= 2 and conns == tls_conns, log[-4000:]  # no plain-text session
    assert "from=<" not in log, log[-4000:]
    assert impostor.spool_files("in") == []


def test_tls_required_no_ignores_the_anchored_policy(anchored, anchored_dns_server, make_relay,
                                                     smtp_sink):
    """RFC 8689 §5: a message with "TLS-Required: No" (and no REQUIRETLS) goes even where
    the recipient domain's TLS policy fails (here the pin, as in the test above); the same
    message without the field is deferred there."""
    aw = zname("aw")
    inner = smtp_sink()
    impostor = make_relay(start=False, hostname=f"mx.{aw}", local_domains=aw,
                          inbound_next_hop=inner.hop, tls_cert_file=anchored.imp_chain,
                          tls_key_file=anchored.imp_key)
    sender = make_relay(start=False, sign_domains={"x.test": ["ed25519"]},
                        keyserver_cacert=anchored.tls.ca, smtp_port=smtp_sink().port)
    dns = anchored_dns_server(sender.records())
    for r in (impostor, sender):
        r.params["dns_server"] = dns.resolver
        r.start()
    put_route(anchored, aw, server(f"mx.{aw}", impostor.inbound_port, anchored.doms["aw"].pin))

    plain = message("policy holds", "stays\r\n", to=f"carol@{aw}")
    r = rx.swaks(sender.submission_port, to=f"carol@{aw}", data=plain)
    assert r.last_code() == 250, r.out
    r = rx.swaks(sender.submission_port, to=f"bob@{aw}",
                 data=b"TLS-Required: No\r\n" + message("no tls needed", "goes\r\n",
                                                        to=f"bob@{aw}"))
    assert r.last_code() == 250, r.out
    [m] = inner.wait_for(1)
    assert m.rcpts == [f"bob@{aw}"] and b"no tls needed" in m.data
    wait_log(sender, rf"to=<bob@{re.escape(aw)}> status=delivered")
    wait_log(sender, rf"to=<carol@{re.escape(aw)}> status=deferred")
    assert inner.count() == 1


# --------------------------------------------------------------------------
# 3. Queue semantics: per-recipient outcomes, retries, bounces, expiry, restart

class RuleSink:
    """An SMTP server (aiosmtpd, in this process) answering RCPT by the local part:
    ok* 250, soft* 450 the first `soft_times` times then 250, hard* 550 5.1.1,
    never* always 450; anything else 250.  Records every RCPT answer and every message
    (rx.SinkMessage with .when).  A small fixture of this file: relayfixtures' sinks answer
    every recipient alike."""

    def __init__(self, port=None, soft_times=1):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP

        self.port = port or rx.free_port()
        self.soft_times = soft_times
        self.rcpt_log = []   # (time, address, code)
        self.msgs = []
        self.cond = threading.Condition()
        self.ctl = None
        sink = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, options):
                local = address.split("@")[0].lower()
                with sink.cond:
                    tries = sum(1 for _, a, _ in sink.rcpt_log if a == address)
                    if local.startswith("hard"):
                        code, text = 550, "550 5.1.1 <%s>: no such user here" % address
                    elif local.startswith("never") or (local.startswith("soft")
                                                       and tries < sink.soft_times):
                        code, text = 450, "450 4.2.1 <%s>: mailbox busy, try later" % address
                    else:
                        code, text = 250, "250 2.1.5 Ok"
                    sink.rcpt_log.append((time.monotonic(), address, code))
                if code == 250:
                    envelope.rcpt_tos.append(address)
                return text

            async def handle_DATA(self, server, session, envelope):
                sender = envelope.mail_from or ""
                m = rx.SinkMessage(mail_from="" if sender == "<>" else sender,
                                   rcpts=list(envelope.rcpt_tos),
                                   data=envelope.original_content or envelope.content)
                m.when = time.monotonic()
                with sink.cond:
                    sink.msgs.append(m)
                    sink.cond.notify_all()
                return "250 2.0.0 Ok: kept"

        class Ctl(Controller):
            def factory(self):
                return SMTP(self.handler, decode_data=False, hostname="rules.test")

        self._make = lambda: Ctl(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self):
        self.ctl = self._make()
        self.ctl.start()
        return self

    def stop(self):
        if self.ctl is not None:
            try:
                self.ctl.stop()
            except (AssertionError, RuntimeError):
                pass
            self.ctl = None

    def messages(self):
        with self.cond:
            return list(self.msgs)

    def wait(self, pred, what, timeout=30.0):
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.msgs), timeout=timeout):
                raise AssertionError(f"sink: no {what} within {timeout}s; got "
                                     f"{[(m.mail_from, m.rcpts) for m in self.msgs]}")
            return list(self.msgs)

    def to(self, address):
        return [m for m in self.messages() if address in m.rcpts]


@pytest.fixture
def rule_sink(request):
    sinks = []

    def factory(start=True, **kw):
        s = RuleSink(**kw)
        sinks.append(s)
        return s.start() if start else s

    request.addfinalizer(lambda: [s.stop() for s in sinks])
    return factory


def dsn_parts(data):
    """(human text, [per-recipient {field: value}], original header text) of an RFC 3464
    report, parsed by Python's email package."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status", msg["Content-Type"]
    parts = msg.get_payload()
    assert [p.get_content_type() for p in parts] == \
        ["text/plain", "message/delivery-status", "text/rfc822-headers"], \
        [p.get_content_type() for p in parts]
    # message/delivery-status: the per-message block, then one block per recipient
    blocks = parts[1].get_payload()
    assert blocks and "Reporting-MTA" in blocks[0], blocks
    fields = [{k.lower(): re.sub(r"\s+", " ", v).strip() for k, v in b.items()}
              for b in blocks[1:]]
    return parts[0].get_payload(decode=True).decode(), fields, parts[2].get_payload()


def queue_relay(make_relay, nsd, sink, **settings):
    dns = nsd(mx_domains=["far.test", "x.test"])
    return make_relay(sign_domains={"x.test": ["ed25519"]}, dns_server=dns.resolver,
                      smtp_port=sink.port, **settings)


def test_per_recipient_status_retry_and_bounce(make_relay, nsd, rule_sink):
    sink = rule_sink(soft_times=1)
    relay = queue_relay(make_relay, nsd, sink, backoff_base="2s", backoff_max="5s")
    rcpts = ["ok@far.test", "soft@far.test", "hard@far.test"]
    r = rx.swaks(relay.submission_port, to=rcpts,
                 data=message("three fates", "one of each\r\n", to="ok@far.test"))
    assert r.last_code() == 250, r.out

    sink.wait(lambda ms: any("soft@far.test" in m.rcpts for m in ms), "retried delivery")
    [first] = sink.to("ok@far.test")
    [second] = sink.to("soft@far.test")
    assert first.rcpts == ["ok@far.test"] and second.rcpts == ["soft@far.test"]
    assert first.mail_from == SENDER == second.mail_from
    # the deferred recipient waited backoff_base (2s) before its retry
    soft = [(t, c) for t, a, c in sink.rcpt_log if a == "soft@far.test"]
    assert [c for _, c in soft] == [450, 250], soft
    assert 1.8 <= soft[1][0] - soft[0][0] <= 8.0, soft
    # the failed one: asked once, never retried
    assert [c for _, a, c in sink.rcpt_log if a == "hard@far.test"] == [550]

    # the bounce: to the sender, null reverse-path, RFC 3464, naming only hard@
    msgs = sink.wait(lambda ms: any(m.mail_from == "" for m in ms), "bounce")
    [dsn] = [m for m in msgs if m.mail_from == ""]
    assert dsn.rcpts == [SENDER]
    human, rcpt_fields, orig = dsn_parts(dsn.data)
    assert "hard@far.test" in human and "ok@far.test" not in human
    assert len(rcpt_fields) == 1, rcpt_fields
    f = rcpt_fields[0]
    assert f["final-recipient"].lower().replace(" ", "") == "rfc822;hard@far.test", f
    assert f["action"] == "failed" and f["status"].startswith("5."), f
    assert "550 5.1.1 <hard@far.test>" in f["diagnostic-code"], f
    assert "Subject: three fates" in orig and "one of each" not in orig

    wait_log(relay, r"to=<soft@far\.test> status=delivered")
    log = relay.text()
    assert re.search(r"to=<ok@far\.test> status=delivered", log)
    assert re.search(r"to=<soft@far\.test> status=deferred .*450", log)
    assert re.search(r"to=<hard@far\.test> status=failed .*550", log)
    wait_spool_empty(relay)
    time.sleep(1.5)  # nothing is sent again
    assert len(sink.messages()) == 3, [(m.mail_from, m.rcpts) for m in sink.messages()]


def test_bounce_is_signed_by_our_domain(make_relay, nsd, rule_sink):
    """A DSN from MAILER-DAEMON@<hostname> is signed when the signer holds a key for the
    host's domain (a parent of it), so the sender's verifier sees a signed bounce."""
    sink = rule_sink()
    relay = queue_relay(make_relay, nsd, sink, hostname="mx.x.test")
    r = rx.swaks(relay.submission_port, to="hard@far.test",
                 data=message("signed bounce", "x\r\n", to="hard@far.test"))
    assert r.last_code() == 250, r.out
    msgs = sink.wait(lambda ms: any(m.mail_from == "" for m in ms), "bounce")
    [dsn] = [m for m in msgs if m.mail_from == ""]
    assert b"MAILER-DAEMON@mx.x.test" in dsn.data, dsn.data[:400]
    assert re.search(rb"DKIM-Signature:[^\n]*d=x\.test", dsn.data.replace(b"\r\n\t", b" ")), \
        dsn.data[:400]
    assert rx.dkimpy_verify(dsn.data, rx.records_of(relay.keys)), "dkimpy rejects the bounce"


def rewrite_arrival(relay, seconds_ago):
    """Make every message in spool/out look as if it arrived seconds_ago (the relay is
    stopped): the record's "arrival" line, written back whole under a new name and renamed,
    as the queue itself writes."""
    files = queued(relay)
    assert files, relay.spool_files("out")
    for p in files:
        raw = p.read_bytes()
        new, n = re.subn(rb"^arrival \d+$", b"arrival %d" % int(time.time() - seconds_ago),
                         raw, count=1, flags=re.M)
        assert n == 1, raw[:300]
        tmp = p.with_name("x" + p.name)
        tmp.write_bytes(new)
        tmp.chmod(p.stat().st_mode & 0o777)
        tmp.rename(p)
    return files


def test_queue_lifetime_expiry_bounces(make_relay, nsd, rule_sink):
    """A recipient still deferred after queue_lifetime fails with 4.4.7 and is bounced.
    queue_lifetime is at least 60s, so the test ages the message instead of waiting: with
    the relay stopped, the spool record's arrival time is moved back past the lifetime."""
    sink = rule_sink()
    relay = queue_relay(make_relay, nsd, sink, queue_lifetime="60s", backoff_base="1s")
    r = rx.swaks(relay.submission_port, to=["never@far.test", "ok@far.test"],
                 data=message("too late", "keeps failing\r\n", to="never@far.test"))
    assert r.last_code() == 250, r.out
    wait_log(relay, r"to=<never@far\.test> status=deferred")
    sink.wait(lambda ms: any("ok@far.test" in m.rcpts for m in ms), "delivery to ok@")
    relay.stop()
    tries_before = sum(1 for _, a, _ in sink.rcpt_log if a == "never@far.test")
    rewrite_arrival(relay, 120)
    relay.start()

    msgs = sink.wait(lambda ms: any(m.mail_from == "" for m in ms), "bounce")
    [dsn] = [m for m in msgs if m.mail_from == ""]
    assert dsn.rcpts == [SENDER]
    human, rcpt_fields, orig = dsn_parts(dsn.data)
    assert len(rcpt_fields) == 1, rcpt_fields
    f = rcpt_fields[0]
    assert f["final-recipient"].lower().replace(" ", "") == "rfc822;never@far.test", f
    assert f["action"] == "failed" and f["status"] == "4.4.7", f
    assert "450" in f.get("diagnostic-code", "") or "450" in human, (f, human)
    assert "Subject: too late" in orig
    wait_spool_empty(relay)
    # expired: failed without another attempt, and ok@ (delivered) got it once only
    assert sum(1 for _, a, _ in sink.rcpt_log if a == "never@far.test") <= tries_before + 1
    assert len(sink.to("ok@far.test")) == 1


def test_restart_resumes_delivery(make_relay, nsd, rule_sink):
    sink = rule_sink(start=False)  # its port is closed: every attempt is deferred
    relay = queue_relay(make_relay, nsd, sink)
    ids = [f"<resume-{i}-{time.time_ns()}@x.test>" for i in range(3)]
    for i, mid in enumerate(ids):
        r = rx.swaks(relay.submission_port, to=f"r{i}@far.test",
                     data=message(f"resume {i}", "after the restart\r\n", to=f"r{i}@far.test",
                                  msgid=mid))
        assert r.last_code() == 250, r.out
    for i in range(3):
        wait_log(relay, rf"to=<r{i}@far\.test> status=deferred")
    assert len(queued(relay)) == 3
    relay.kill()   # SIGKILL: no clean shutdown
    sink.start()
    relay.start()
    msgs = sink.wait(lambda ms: len(ms) >= 3, "the 3 queued messages")
    wait_spool_empty(relay)
    time.sleep(1.0)
    msgs = sink.messages()
    got = sorted(m.header("Message-ID")[0] for m in msgs)
    assert got == sorted(ids), got


def test_bounce_status_is_the_remote_enhanced_code(make_relay, nsd, rule_sink):
    sink = rule_sink()
    relay = queue_relay(make_relay, nsd, sink)
    r = rx.swaks(relay.submission_port, to="hard@far.test",
                 data=message("bounce status", "x\r\n", to="hard@far.test"))
    assert r.last_code() == 250, r.out
    msgs = sink.wait(lambda ms: any(m.mail_from == "" for m in ms), "bounce")
    [dsn] = [m for m in msgs if m.mail_from == ""]
    _, [f], _ = dsn_parts(dsn.data)
    assert f["status"] == "5.1.1", f  # RFC 3464 §2.3.4: the remote's enhanced code
    assert f["diagnostic-code"].lower().replace(" ", "").startswith("smtp;550"), f
    assert f["remote-mta"].lower().replace(" ", "") == "dns;127.0.0.1", f


def test_inbound_recipient_verification(make_relay, rule_sink):
    """verify_recipients: the inbound side asks its next hop at RCPT time (MAIL FROM:<>,
    RCPT, no DATA), so an unknown user is refused while the sender is connected (550 5.1.1
    with the next hop's words) instead of bounced later; answers are cached; a next hop
    that cannot be asked lets the recipient through."""
    sink = rule_sink()
    relay = make_relay(local_domains="far.test", inbound_next_hop=f"smtp:127.0.0.1:{sink.port}",
                       verify_recipients="yes", verify_cache_ttl="60s")
    r = rx.swaks(relay.inbound_port, to="hard@far.test",
                 data=message("unknown user", "x\r\n", to="hard@far.test"))
    assert "550 5.1.1" in r.out and "no such user" in r.out, r.out
    assert not any(m.rcpts for m in sink.messages() if "hard@far.test" in m.rcpts)

    r = rx.swaks(relay.inbound_port, to="ok@far.test",
                 data=message("known user", "x\r\n", to="ok@far.test"))
    assert r.last_code() == 250, r.out
    sink.wait(lambda ms: any("ok@far.test" in m.rcpts for m in ms), "delivery to ok@")

    # the refusal is remembered: asked once, refused twice
    r = rx.swaks(relay.inbound_port, to="hard@far.test",
                 data=message("unknown again", "x\r\n", to="hard@far.test"))
    assert "550 5.1.1" in r.out, r.out
    assert [a for _, a, _ in sink.rcpt_log].count("hard@far.test") == 1, sink.rcpt_log

    # a probe carries the null sender and no message
    assert all(m.mail_from != "" for m in sink.messages())

    # next hop down: accepted, the queue keeps it
    down = make_relay(local_domains="far.test", inbound_next_hop=f"smtp:127.0.0.1:{rx.free_port()}",
                      verify_recipients="yes", connect_timeout="2s")
    r = rx.swaks(down.inbound_port, to="someone@far.test",
                 data=message("hop down", "x\r\n", to="someone@far.test"))
    assert r.last_code() == 250, r.out
    assert "next hop cannot say now" in down.text()


# --------------------------------------------------------------------------
# The signer process dies: the relay restarts it and signing goes on

def _children(pid):
    kids = []
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/children") as fh:
            kids += [int(x) for x in fh.read().split()]
    return kids


def test_signer_killed_is_restarted_and_mail_stays_signed(make_relay, nsd, smtp_sink):
    relay = make_relay(start=False, sign_domains={"x.test": ["ed25519"]})
    sink = smtp_sink()
    dns = nsd(mx_domains=["far.test"])
    relay.params.update({"dns_server": dns.resolver, "smtp_port": str(sink.port)})
    relay.start()
    [old] = _children(relay.proc.pid)
    mark = len(relay.text())
    os.kill(old, signal.SIGKILL)
    wait_log(relay, r"the signer process exited \(signal 9\): restarting it", start=mark)
    deadline = time.monotonic() + 20
    while True:
        kids = [k for k in _children(relay.proc.pid) if k != old]
        if kids or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert kids, "no new signer process"
    # Mail submitted now (retried by the client while the signer comes back) is signed.
    deadline = time.monotonic() + 20
    while True:
        r = rx.swaks(relay.submission_port, sender=SENDER, to="bob@far.test",
                     data=message("after the signer's restart", "Still signed.\r\n"))
        if r.last_code() == 250 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.last_code() == 250, r.out
    [m] = sink.wait_for(1)
    [sig] = m.header("DKIM-Signature")
    assert tag(sig, "a") == "ed25519-sha256" and tag(sig, "d") == "x.test", sig
    assert rx.dkimpy_verify(m.data, relay.records()), m.text
    assert relay.proc.poll() is None
    wait_spool_empty(relay)
