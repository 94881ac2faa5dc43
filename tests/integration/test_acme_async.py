"""ACME validation off the request workers (RFC 8555 §7.5.1, PROTOCOL.md §5.4): a challenge
POST answers `processing` at once and the key server's validation threads fetch the answer,
so challenges aimed at a host that accepts and never answers (a black hole) hold none of the
HTTP workers: lookups on the same key server keep being answered, the challenges end
`invalid` with a connection problem, one account cannot queue more than its share, and a
validation cut short by a crash is taken up again after the restart.
"""

import socket
import threading
import time

import pytest

import acmefixtures as af
import dnsfixtures as df
import ksfixtures as kf

HOSTS = ["hole1", "hole2", "hole3", "hole4", "hole5", "hole6"]


class BlackHole:
    """A loopback TCP listener that accepts connections and never answers on them."""

    def __init__(self):
        self.port = df.free_port()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture(scope="module")
def stack(make_keyserver, operator_token, tmp_path_factory):
    base = tmp_path_factory.mktemp("acmeasync")
    name = kf.new_domain_name("acmeasync")
    knot = af.Knot(base / "knot", name,
                   "".join(f"{h} IN A 127.0.0.1\n" for h in HOSTS)).start()
    hole = BlackHole()
    # Two HTTP workers (the default): before validation left them, two black-holed
    # challenges held both for the whole fetch timeout and nothing else was answered.
    ks = make_keyserver(extra={"acme": "yes", "acme_http01_port": str(hole.port),
                               "acme_resolver": knot.resolver, "http_threads": "2",
                               "listen_port": str(df.free_port()),
                               "acme_validation_timeout": "3s",
                               "acme_validation_workers": "2",
                               "acme_validations_per_account": "2"})
    dom = kf.register_domain(ks, base / "ctl", name, operator_token.token)
    yield {"ks": ks, "dom": dom}
    hole.close()
    knot.stop()


def challenge(c, host):
    """Order host and return (its authorization URL, its http-01 challenge URL)."""
    r = c.order(host)
    assert r.status == 201, (r.status, r.body)
    authz_url = r.json["authorizations"][0]
    authz = c.post(authz_url, None).json
    chall = next(ch for ch in authz["challenges"] if ch["type"] == "http-01")
    return authz_url, chall["url"]


def lookup(ks, dom):
    """A lookup with a per-request timeout: answered, or the test fails."""
    client = ks.client()
    client.timeout = 8
    r = client.get(f"/v1/domains/{dom.name}")
    assert r.status == 200, (r.status, r.body)


def check_failed(c, authz_url, chall_url):
    r = c.poll(chall_url)
    assert r.json["status"] == "invalid", r.body
    err = r.json["error"]
    assert err["type"] == "urn:ietf:params:acme:error:connection", err
    assert "http://" in err["detail"] and "/.well-known/acme-challenge/" in err["detail"], err
    assert c.post(authz_url, None).json["status"] == "invalid"


def test_blackholed_challenges_do_not_starve_lookups(stack):
    ks, dom = stack["ks"], stack["dom"]
    first, second = af.AcmeClient(ks, dom.name), af.AcmeClient(ks, dom.name)
    first.register()
    second.register()
    queued = [(c, *challenge(c, f"{h}.{dom.name}"))
              for c, h in ((first, HOSTS[0]), (first, HOSTS[1]), (second, HOSTS[2]),
                           (second, HOSTS[3]))]
    # The four challenge POSTs at once, each on its own connection (as four clients).
    bodies = [(c, c.signed(chall_url, {})) for c, _, chall_url in queued]
    replies = [None] * len(queued)

    def answer(i):
        c, body = bodies[i]
        replies[i] = c.send(queued[i][2], body)

    posters = [threading.Thread(target=answer, args=(i,)) for i in range(len(queued))]
    for t in posters:
        t.start()
    # Meanwhile lookups on the same key server are answered.
    failures = []
    try:
        for _ in range(3):
            lookup(ks, dom)
    except Exception as e:  # noqa: BLE001 - reported once the posters are joined
        failures.append(repr(e))
    for t in posters:
        t.join()
    assert not failures, failures
    for r in replies:
        assert r.status == 200 and r.json["status"] == "processing", (r.status, r.body)
        assert r.headers.get("retry-after"), r.headers
    # first has two validations outstanding (each waits acme_validation_timeout on the
    # black hole): a third is refused, and stays pending.
    _, chall_url = challenge(first, f"{HOSTS[4]}.{dom.name}")
    r = first.post(chall_url, {})
    assert r.status == 429 and r.type == "rateLimited", (r.status, r.body)
    assert r.headers.get("retry-after"), r.headers
    assert first.post(chall_url, None).json["status"] == "pending"
    # Lookups keep being answered while the validations wait on the black hole.
    stop = threading.Event()

    # Paced (about ten a second): a loop without pause from one address meets the
    # key server's per-address rate limit (429), which is not what is tested here.
    def keep_looking():
        while not stop.is_set():
            try:
                lookup(ks, dom)
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                failures.append(repr(e))
                return
            stop.wait(0.1)

    looker = threading.Thread(target=keep_looking)
    looker.start()
    try:
        for c, authz_url, chall_url in queued:
            check_failed(c, authz_url, chall_url)
    finally:
        stop.set()
        looker.join()
    assert not failures, failures


def test_validation_interrupted_by_crash_is_retried(stack):
    """The key server dies while a validation runs: after the restart the challenge is
    validated again (here: fails again on the black hole), never left processing."""
    ks, dom = stack["ks"], stack["dom"]
    c = af.AcmeClient(ks, dom.name)
    c.register()
    authz_url, chall_url = challenge(c, f"{HOSTS[5]}.{dom.name}")
    r = c.post(chall_url, {})
    assert r.status == 200 and r.json["status"] == "processing", r.body
    kf.kill9(ks)
    ks.start()
    c.http = ks.client()  # same port (listen_port is fixed above)
    check_failed(c, authz_url, chall_url)
