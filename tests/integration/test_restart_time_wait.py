"""A daemon killed after serving comes back on its configured port (issue: `make run` moved
the key server to another port after a kill -9).  The connections it closed are left in
TIME_WAIT on that port; the port probe of `make run` (deploy/port-free.py) must call the
port free, and each daemon's listener (SO_REUSEADDR) must bind it again: the key server,
anchor-reputation (HTTPS and the DNS zone's TCP port), anchor-policyd and anchor-relay."""

import http.client
import signal
import socket
import ssl
import subprocess
import sys
import time

import anchorlib
import ksfixtures as kf

PROBE = anchorlib.SRC / "deploy" / "port-free.py"


def time_wait_on(port):
    """Sockets in TIME_WAIT whose local port is port (ss -tan)."""
    r = subprocess.run(["ss", "-Htan", "state", "time-wait", f"( sport = :{port} )"],
                       capture_output=True, text=True, check=True)
    return [line for line in r.stdout.splitlines() if line.strip()]


def ss_established(port):
    r = subprocess.run(["ss", "-Htan", "state", "established", f"( sport = :{port} )"],
                       capture_output=True, text=True, check=True)
    return [line for line in r.stdout.splitlines() if line.strip()]


def wait_for(fn, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def probe(port):
    return subprocess.run([sys.executable, str(PROBE), str(port)], timeout=30).returncode


def kill_while_serving(ks, n=20):
    """kill -9 the key server while n keep-alive connections it has answered are open: the
    kernel closes its side first, so once the clients close theirs, its side of each sits
    in TIME_WAIT on the port (as after a crash under load)."""
    ctx = ssl.create_default_context(cafile=str(ks.tls.ca))
    conns = []
    for _ in range(n):
        c = http.client.HTTPSConnection("127.0.0.1", ks.port, context=ctx, timeout=30)
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200
        conns.append(c)
    port = ks.port
    kf.kill9(ks)
    for c in conns:
        c.close()
    assert wait_for(lambda: time_wait_on(port)), \
        "the test needs connections in TIME_WAIT on the port"


def test_probe_tells_listening_from_time_wait(make_keyserver):
    ks = make_keyserver()
    port = ks.port
    assert probe(port) == 1, "a port a daemon listens on is taken"
    kill_while_serving(ks)
    assert probe(port) == 0, "TIME_WAIT alone made the port look taken"


def test_keyserver_restarts_on_its_port_with_time_wait(make_keyserver):
    ks = make_keyserver()
    port = ks.port
    kill_while_serving(ks)
    ks.params["listen_port"] = str(port)
    ks.start()
    assert ks.port == port
    assert ks.client().get("/healthz").status == 200


def test_reputation_restarts_on_its_ports_with_time_wait(pg, db, operator_token, request):
    """The same for anchor-reputation's HTTPS port and its DNS zone's TCP port."""
    import dnsfixtures as dx
    import repfixtures as rx

    w = rx.build_world(pg, db, operator_token, request, ["tw"])
    dns_port = dx.free_port()
    rep = rx.Reputation(w, w.work / "rep", db, {
        "dns_listen": f"127.0.0.1:{dns_port}", "dns_zone": "rep.example"}).start()
    port = rep.port
    ctx = ssl.create_default_context(cafile=str(rep.tls.ca))
    conns = []
    for _ in range(10):
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
        c.request("GET", "/healthz")
        r = c.getresponse()
        r.read()
        assert r.status == 200
        conns.append(c)
    socks = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", dns_port), timeout=10)
        socks.append(s)
    assert wait_for(lambda: len(ss_established(dns_port)) >= 5), "DNS TCP connections"
    rep.proc.kill()
    rep.proc.wait(timeout=20)
    rep.proc = None
    rep._fh.close()
    for c in conns:
        c.close()
    for s in socks:
        s.close()
    assert wait_for(lambda: time_wait_on(port) and time_wait_on(dns_port)), \
        "the test needs connections in TIME_WAIT on both ports"
    assert probe(port) == 0 and probe(dns_port) == 0
    rep.params["listen_port"] = str(port)
    rep.start()
    assert rep.port == port
    assert rep.client().get("/healthz").status == 200
    s = socket.create_connection(("127.0.0.1", dns_port), timeout=10)  # the zone is back
    s.close()


def test_policyd_restarts_on_its_port_with_time_wait(tls):
    """anchor-policyd's listener (libevent, LEV_OPT_REUSEABLE) the same way."""
    import policyfixtures as px

    fake = px.FakeReputation(tls)
    work = anchorlib.mktemp_dir("anchor-policyd-")
    pd = px.Policyd(work, {"reputation_url": fake.url, "cacert": str(tls.ca),
                           "timeout_ms": "5000"})
    try:
        pd.start()
        clients = [pd.connect() for _ in range(5)]
        for c in clients:
            assert c.ask(px.request_attrs(client_address="192.0.2.7")) == "action=DUNNO"
        pd.proc.kill()
        pd.proc.wait(timeout=20)
        pd.proc = None
        for c in clients:
            c.close()
        assert wait_for(lambda: time_wait_on(pd.port)), \
            "the test needs connections in TIME_WAIT on the port"
        assert probe(pd.port) == 0
        pd.start()  # the same listen address and port
        assert pd.connect().ask(px.request_attrs(client_address="192.0.2.8")) == \
            "action=DUNNO"
        pd.stop()
    finally:
        if pd.proc is not None:
            pd.proc.kill()
            pd.proc.wait()
        fake.stop()
        anchorlib.remove_tree(work)


def test_relay_restarts_on_its_ports_with_time_wait():
    """anchor-relay's SMTP listeners (libevent, LEV_OPT_REUSEABLE) the same way."""
    import relayfixtures as rf

    work = anchorlib.mktemp_dir("anchor-relay-tw-")
    relay = rf.Relay(work)
    try:
        relay.start()
        port = relay.ports["inbound"]
        socks = []
        for _ in range(5):
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            assert s.recv(512).startswith(b"220"), "greeting"
            socks.append(s)
        relay.kill(signal.SIGKILL)
        for s in socks:
            s.close()
        assert wait_for(lambda: time_wait_on(port)), \
            "the test needs connections in TIME_WAIT on the port"
        assert probe(port) == 0
        relay.start()  # the same inbound_listen and submission_listen
        assert relay.ports["inbound"] == port
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        assert s.recv(512).startswith(b"220")
        s.close()
        relay.stop()
    finally:
        if relay.proc is not None:
            relay.kill(signal.SIGKILL)
        anchorlib.remove_tree(work)
