"""Direct endpoints (PROTOCOL.md §6.5): a user's own daemon as the first hop of their
address, registered with a request signed by their current key.

A real key server and NSD serve d1.direct.test, whose route names mx.d1 (a second
anchor-relay with d1's `mta` certificate: "the domain's servers"); carol@d1 runs her own
daemon (another anchor-relay with a certificate of its own, pinned by the registration).
The sender is an anchor-relay resolving carol's route as every sender does.

    delivery    registered -> the daemon gets carol's mail, bob's still goes to mx.d1
    its end     the key superseded, the key revoked, the time up, removed: the very next
                message goes to mx.d1 (no cache on the sender or the key server keeps it)
    impostor    a daemon without the pinned key, or nothing listening: mx.d1, and the
                impostor never sees an envelope; a relay without direct_allow_private
                never connects to a loopback daemon
    refusals    signed by another address's key, by a revoked key, replayed, a private
                host where the key server does not allow it, malformed members
"""

import json
import re
import time
from pathlib import Path

import pytest

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import logfixtures as lf
import relayfixtures as rx
import routefixtures as rf
from relayfixtures import make_relay, smtp_sink  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

PARENT = "direct.test"
KS_HOST = f"keys.{PARENT}"
D1 = f"d1.{PARENT}"
SENDER = "alice@x.test"


def message(subject, to):
    return (f"From: Alice <{SENDER}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{time.time_ns()}@x.test>\r\n"
            f"\r\n{subject}\r\n").encode()


def direct_path(address):
    return f"/v1/direct/{address}"


def direct_request(key, chain, address, host, port, pin, expires=None, issued=None,
                   typ="anchor-direct-request", **extra):
    now = int(time.time())
    payload = {"type": typ, "address": address, "issued": now if issued is None else issued}
    if typ == "anchor-direct-request":
        payload.update({"host": host, "port": port, "pin": pin,
                        "expires": now + 3600 if expires is None else expires})
    payload.update(extra)
    return rf.sign(key, chain, payload, typ + "+jws")


def put_direct(client, address, body):
    return client.put(direct_path(address), body, headers={"Content-Type": "application/json"})


class User:
    """An enrolled address: its key, the chain PEMs [user, issuer, root], files for anchorctl."""

    def __init__(self, world, address):
        cert, self.key = kf.enroll_new(world.ks.client(), world.dom, address)
        self.key_id = cert["key_id"]
        self.chain = [cert["certificate"], world.dom.issuer_pem, world.dom.root_pem]
        self.address = address
        d = world.work / f"user-{time.time_ns()}"
        d.mkdir()
        self.key_file = d / f"{address}.key"
        self.key_file.write_text(kf.key_pem(self.key))
        self.key_file.chmod(0o600)
        (d / f"{address}.pem").write_text("".join(self.chain))


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    work = anchorlib.mktemp_dir("anchor-direct-")
    tls = dx.make_tls(work / "tls", [KS_HOST])
    ks = anchorlib.Keyserver(work / "ks", db, tls, operator_token.hash,
                             extra={"direct_allow_private": "yes"})
    w = type("World", (), {})()
    w.work, w.tls, w.ks = work, tls, ks
    request.addfinalizer(lambda: (ks.stop(), anchorlib.remove_tree(work)))
    ks.start()
    base = work / "domains"
    w.dom = kf.register_domain(ks, base, D1, operator_token.token)
    host = f"mx.{D1}"
    kf.ctl_ok(ks, "server", "issue", host, "--purpose", "mta", cwd=base)
    w.mta_chain = work / "mx-fullchain.pem"
    w.mta_chain.write_text((base / f"{host}.mta.pem").read_text() +
                           (base / f"{host}.mta.chain.pem").read_text())
    w.mta_key = base / f"{host}.mta.key"
    # two more certificates of no domain: the daemon's and an impostor's
    w.daemon_tls = dx.make_tls(work / "daemon-tls", ["daemon.carol.test"])
    w.imp_tls = dx.make_tls(work / "imp-tls", ["daemon.carol.test"])
    w.daemon_pin = kf.spki_pin(Path(w.daemon_tls.cert))

    zdir = work / "zones"
    zdir.mkdir()
    w.zones = {PARENT: zdir / f"{PARENT}.zone"}
    w.zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
    r = dx.anchor_dns("records", D1, "-s", ks.base_url, "--cacert", tls.ca,
                      "--keyserver", f"{KS_HOST}:{ks.port}:10:10")
    assert r.rc == 0, r.err
    w.zones[D1] = zdir / "d1.zone"
    w.zones[D1].write_text(dx.zone_text(D1, r.out + "mx IN A 127.0.0.1\n", mx=False))
    w.zdir = zdir
    return w


@pytest.fixture
def stack(world, make_relay, smtp_sink, request):
    """The domain's server (mx.d1 -> inner), carol's daemon (-> mine), an impostor daemon
    (-> stolen) and the sender, on one NSD; the domain's route set to mx.d1."""
    s = type("Stack", (), {})()
    s.inner, s.mine, s.stolen, legacy = smtp_sink(), smtp_sink(), smtp_sink(), smtp_sink()
    s.recv = make_relay(start=False, hostname=f"mx.{D1}", local_domains=D1,
                        inbound_next_hop=s.inner.hop, tls_cert_file=world.mta_chain,
                        tls_key_file=world.mta_key)
    s.daemon = make_relay(start=False, hostname="daemon.carol.test", local_domains=D1,
                          inbound_next_hop=s.mine.hop, tls_cert_file=world.daemon_tls.cert,
                          tls_key_file=world.daemon_tls.key)
    s.impostor = make_relay(start=False, hostname="daemon.carol.test", local_domains=D1,
                            inbound_next_hop=s.stolen.hop, tls_cert_file=world.imp_tls.cert,
                            tls_key_file=world.imp_tls.key)
    s.sender = make_relay(start=False, sign_domains={"x.test": ["ed25519"]},
                          keyserver_cacert=world.tls.ca, smtp_port=legacy.port,
                          direct_allow_private="yes")
    zones = dict(world.zones)
    path = world.zdir / f"x.test.{time.time_ns()}.zone"
    path.write_text(dx.zone_text("x.test", rx.dns_zone_for(s.sender.records(), "x.test")))
    zones["x.test"] = path
    nsd = dx.Nsd(world.work / f"nsd-{time.time_ns()}", zones).start()
    request.addfinalizer(nsd.stop)
    s.nsd = nsd
    for r in (s.recv, s.daemon, s.impostor, s.sender):
        r.params["dns_server"] = nsd.resolver
        r.start()
    body = {"servers": [{"host": f"mx.{D1}", "port": s.recv.inbound_port, "priority": 10,
                         "weight": 1, "pin": world.dom.pin}], "ttl": 3600}
    r = rf.route_put(world.ks.client(), D1, body, token=world.dom.admin_token)
    assert r.status == 200, r.body
    s.sent = 0

    def send(to, expect):
        """One message to `to`; returns once `expect` (a sink) holds it, and checks that
        no other sink got it."""
        s.sent += 1
        subject = f"direct-{s.sent}-{time.time_ns()}"
        r = rx.swaks(s.sender.submission_port, to=to, data=message(subject, to))
        assert r.last_code() == 250, r.out
        deadline = time.monotonic() + 30
        while not any(subject.encode() in m.data for m in expect.wait_for(1, timeout=30)):
            assert time.monotonic() < deadline, f"{subject} never reached the expected sink"
            time.sleep(0.05)
        [m] = [m for m in expect.wait_for(1) if subject.encode() in m.data]
        assert m.rcpts == [to], m.rcpts
        for other in (s.inner, s.mine, s.stolen):
            if other is not expect:
                assert not any(subject.encode() in x.data for x in other.messages()), other
        return m

    s.send = send
    return s


def ctl(world, *args):
    return kf.run_ctl(world.ks, *args, cwd=world.work)


def register(world, user, port, pin, ttl="1h"):
    # anchorctl signs with milliseconds, so registering again at once is no replay.
    r = ctl(world, "direct", "register", user.address, "--host", "127.0.0.1", "--port",
            str(port), "--pin", pin, "--ttl", ttl, "--key", str(user.key_file))
    assert r.rc == 0, r.out + r.err
    return r


def test_direct_delivery_ends_with_its_key(world, stack):
    carol = User(world, f"carol@{D1}")
    register(world, carol, stack.daemon.inbound_port, world.daemon_pin)
    show = ctl(world, "direct", "show", carol.address, "--json")
    assert show.rc == 0, show.err
    doc = json.loads(show.out)
    assert doc["direct"]["port"] == stack.daemon.inbound_port
    assert doc["direct"]["pin"] == world.daemon_pin and doc["key_id"] == carol.key_id
    # the signed route answer publishes it
    answer = rf.route_get(world.ks.client(), carol.address)
    assert answer.status == 200
    payload = rf.jws_payload(answer.text)
    assert payload["direct"]["host"] == "127.0.0.1" and "servers" in payload
    assert payload["ttl"] <= 3600

    stack.send(carol.address, stack.mine)          # carol's own daemon
    stack.send(f"bob@{D1}", stack.inner)            # everybody else: the domain's server
    stack.send(carol.address, stack.mine)           # again (nothing cached that matters)

    # a new key for carol supersedes the one that registered: mx.d1 at once
    carol2 = User(world, carol.address)
    stack.send(carol.address, stack.inner)
    assert ctl(world, "direct", "show", carol.address).rc != 0

    # another user registers, then that key is revoked: mx.d1 at once (a sender that
    # cached an answer without an endpoint sees a new one only when that answer
    # expires, hence a fresh address here)
    henry = User(world, f"henry@{D1}")
    register(world, henry, stack.daemon.inbound_port, world.daemon_pin)
    stack.send(henry.address, stack.mine)
    r = world.ks.client().post(f"/v1/keys/{henry.key_id}/revoke",
                               {"reason": "keyCompromise"}, token=world.dom.admin_token)
    assert r.status == 200, r.body
    stack.send(henry.address, stack.inner)
    assert "direct" not in rf.jws_payload(rf.route_get(world.ks.client(), henry.address).text)

    # the log holds the registrations
    types = [json.loads(e["leaf"])["type"] for e in lf.entries(world.ks.client(), world.dom)]
    assert types.count("direct_set") >= 2 and "revoked" in types, types


def test_direct_expiry_and_removal(world, stack):
    dave = User(world, f"dave@{D1}")
    expires = int(time.time()) + 6
    r = put_direct(world.ks.client(), dave.address,
                   direct_request(dave.key, dave.chain, dave.address, "127.0.0.1",
                                  stack.daemon.inbound_port, world.daemon_pin, expires=expires))
    assert r.status == 200, r.body
    stack.send(dave.address, stack.mine)
    while time.time() < expires + 1:
        time.sleep(0.2)
    stack.send(dave.address, stack.inner)
    assert world.ks.client().get(direct_path(dave.address)).status == 404

    # registered, then removed by a request signed by the key: mx.d1 at once
    ivan = User(world, f"ivan@{D1}")
    register(world, ivan, stack.daemon.inbound_port, world.daemon_pin)
    stack.send(ivan.address, stack.mine)
    r = ctl(world, "direct", "remove", ivan.address, "--key", str(ivan.key_file))
    assert r.rc == 0, r.out + r.err
    stack.send(ivan.address, stack.inner)
    # and by the domain admin
    jack = User(world, f"jack@{D1}")
    register(world, jack, stack.daemon.inbound_port, world.daemon_pin)
    stack.send(jack.address, stack.mine)
    r = world.ks.client().delete(direct_path(jack.address), token=world.dom.admin_token)
    assert r.status == 200, r.body
    stack.send(jack.address, stack.inner)


def test_wrong_pin_or_no_daemon_falls_back(world, stack):
    erin = User(world, f"erin@{D1}")
    # the impostor listens where the registration points, without the pinned key
    register(world, erin, stack.impostor.inbound_port, world.daemon_pin)
    stack.send(erin.address, stack.inner)
    log = stack.impostor.text()
    assert "from=<" not in log and stack.stolen.count() == 0, log[-3000:]
    assert re.search(r"no certificate of the peer's chain matches the pin", stack.sender.text())
    # nothing listening at all
    register(world, erin, rx.free_port(), world.daemon_pin)
    stack.send(erin.address, stack.inner)
    # the right daemon after all
    register(world, erin, stack.daemon.inbound_port, world.daemon_pin)
    stack.send(erin.address, stack.mine)


def test_relay_skips_a_loopback_daemon_unless_allowed(world, stack, make_relay):
    """A production relay (direct_allow_private = no) never connects to a registered
    endpoint on a loopback address: the domain's servers get the mail."""
    kim = User(world, f"kim@{D1}")
    register(world, kim, stack.daemon.inbound_port, world.daemon_pin)
    strict = make_relay(start=False, keyserver_cacert=world.tls.ca)
    strict.params["dns_server"] = stack.nsd.resolver
    strict.start()
    subject = f"strict-{time.time_ns()}"
    r = rx.swaks(strict.submission_port, to=kim.address, data=message(subject, kim.address))
    assert r.last_code() == 250, r.out
    deadline = time.monotonic() + 30
    while not any(subject.encode() in m.data for m in stack.inner.messages()):
        assert time.monotonic() < deadline, strict.text()[-3000:]
        time.sleep(0.1)
    assert not any(subject.encode() in m.data for m in stack.mine.messages())
    assert "from=<" not in stack.daemon.text()  # never given an envelope


def test_registration_refusals(world, make_keyserver):
    client = world.ks.client()
    frank, gina = User(world, f"frank@{D1}"), User(world, f"gina@{D1}")
    pin = world.daemon_pin
    clock = [int(time.time()) - 100]

    def issued():
        """A fresh signing time for each request (a time used once is a replay)."""
        clock[0] += 1
        return clock[0]

    def put(user, address, **kw):
        kw.setdefault("issued", issued())
        return put_direct(client, address,
                          direct_request(user.key, user.chain, address, kw.pop("host",
                                         "127.0.0.1"), kw.pop("port", 2525), pin, **kw))

    # a request for one address sent to another's URL; one signed by another address's key
    r = put_direct(client, gina.address,
                   direct_request(frank.key, frank.chain, frank.address, "127.0.0.1", 2525,
                                  pin, issued=issued()))
    assert r.status == 400 and r.json()["error"] == "address_mismatch", r.body
    r = put_direct(client, frank.address,
                   direct_request(gina.key, gina.chain, frank.address, "127.0.0.1", 2525, pin,
                                  issued=issued()))
    assert r.status == 403 and r.json()["error"] == "not_current_key", r.body
    # malformed members: nothing stored
    for kw, code in [({"host": "bad host!"}, "bad_direct"), ({"port": 0}, "bad_direct"),
                     ({"expires": int(time.time()) + 8 * 86400}, "bad_direct"),
                     ({"expires": int(time.time()) - 10}, "bad_direct"),
                     ({"servers": []}, "bad_direct")]:
        r = put(frank, frank.address, **kw)
        assert r.status == 400 and r.json()["error"] == code, (kw, r.body)
    r = put_direct(client, frank.address,
                   direct_request(frank.key, frank.chain, frank.address, "127.0.0.1", 2525,
                                  "sha256:short", issued=issued()))
    assert r.status == 400 and r.json()["error"] == "bad_direct", r.body
    assert client.get(direct_path(frank.address)).status == 404
    # a replayed request
    body = direct_request(frank.key, frank.chain, frank.address, "127.0.0.1", 2525, pin,
                          issued=issued())
    assert put_direct(client, frank.address, body).status == 200
    r = put_direct(client, frank.address, body)
    assert r.status == 409 and r.json()["error"] == "replayed", r.body
    # a revoked key cannot register (nor does its registration stand)
    r = client.post(f"/v1/keys/{frank.key_id}/revoke", {"reason": "keyCompromise"},
                    token=world.dom.admin_token)
    assert r.status == 200, r.body
    assert client.get(direct_path(frank.address)).status == 404
    r = put(frank, frank.address)
    assert r.status == 403 and r.json()["error"] == "not_current_key", r.body
    # without the test setting, loopback and private hosts are refused
    ks2 = make_keyserver()
    for host in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "mail.localhost", "fd00::1", "::ffff:127.0.0.1"):
        r = put_direct(ks2.client(), gina.address,
                       direct_request(gina.key, gina.chain, gina.address, host, 2525, pin,
                                      issued=issued()))
        assert r.status == 400 and r.json()["error"] == "private_host", (host, r.body)
    assert ks2.client().get(direct_path(gina.address)).status == 404
