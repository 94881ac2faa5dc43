"""The HTTP layer every HTTPS daemon shares (lib/http.c, PROTOCOL.md §1.1 "HTTP
conventions"), driven through the three real daemons that use it: anchor-keyserver,
anchor-reputation and the relay's control API.

    - one client address cannot take a daemon down: connections past
      max_connections_per_ip are closed at once, a connection that sends no request
      is closed after request_timeout (TLS handshake or not), and an honest client's
      /healthz is answered while one address floods;
    - %00 in a path or a query argument is refused (400 nul_byte) before any handler
      can read a name cut at the NUL;
    - invalid UTF-8 in a path or a query argument is 400 invalid_utf8 (not 500), and
      the log shows it escaped, never as raw bytes;
    - ambiguous framing (RFC 9112 §6.3) is refused and the connection closed, so that
      a request hidden in a body is never answered.
"""

import json
import re
import select
import socket
import ssl
import time

import pytest

import anchorlib
import ksfixtures as kf
import repfixtures as rx
import relayfixtures as rf

DOMAIN = "demo.example"
FLOOD_SRC = "127.0.0.2"  # the flooding address; honest clients come from 127.0.0.1
PER_IP = 4
REQUEST_TIMEOUT = 2  # seconds; short so that the test is quick
LIMITS = {"max_connections_per_ip": str(PER_IP), "request_timeout": f"{REQUEST_TIMEOUT}s",
          "conn_timeout": "30s", "rate_limit": "0"}


class Target:
    """One daemon's HTTPS door: where it listens, its CA, its log, an admin token."""

    def __init__(self, name, port, ca, log, token=None, max_connections=None):
        self.name, self.port, self.ca, self.log = name, port, ca, log
        self.token = token
        self.max_connections = max_connections

    def client(self):
        return anchorlib.Client(f"https://127.0.0.1:{self.port}", self.ca, timeout=10)

    def get(self, path, **kw):
        if self.token is not None:
            kw.setdefault("token", self.token)
        return self.client().get(path, **kw)

    def log_bytes(self):
        return self.log.read_bytes()


@pytest.fixture(scope="module")
def keyserver(make_keyserver, operator_token):
    ks = make_keyserver(extra=dict(LIMITS, max_connections="24"))
    kf.register_domain(ks, ks.workdir / "domains", DOMAIN, operator_token.token)
    return Target("keyserver", ks.port, ks.tls.ca, ks.log, max_connections=24)


@pytest.fixture(scope="module")
def reputation(pg, db, operator_token, request):
    w = rx.build_world(pg, db, operator_token, request, [])
    rep = rx.Reputation(w, w.work / "rep", db, dict(LIMITS, max_connections="24")).start()
    return Target("reputation", rep.port, w.tls.ca, rep.log, max_connections=24)


@pytest.fixture(scope="module")
def relay_control(tls, request):
    """One relay for the module, its control API on (make_relay is per test)."""
    if not rf.relay_available():
        pytest.skip(f"{anchorlib.BIN}/anchor-relay is not built")
    token = anchorlib.make_token()
    own = rf._Owned(request, "anchor-relay-")
    request.addfinalizer(own.finish)
    relay = own.add(rf.Relay(own.workdir(), tls=tls, control=True, local_domains=DOMAIN,
                             control_token_hash=token.hash,
                             control_max_connections_per_ip=str(PER_IP),
                             control_request_timeout=f"{REQUEST_TIMEOUT}s")).start()
    return Target("relay", relay.ports["control"], tls.ca, relay.log, token=token.token,
                  max_connections=64)


@pytest.fixture(params=["keyserver", "reputation", "relay_control"])
def target(request):
    return request.getfixturevalue(request.param)


# --------------------------------------------------------------------------
# raw exchanges

def tls_socket(t, src=None, timeout=5.0):
    ctx = ssl.create_default_context(cafile=str(t.ca))
    raw = socket.create_connection(("127.0.0.1", t.port), timeout=timeout,
                                   source_address=(src, 0) if src else None)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def exchange(t, data, wait=3.0):
    """Send data on a fresh TLS connection; (bytes received, closed by the server)."""
    s = tls_socket(t, timeout=wait)
    out, closed = b"", False
    try:
        s.sendall(data)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, ssl.SSLError):
                closed = True
                break
            if not chunk:
                closed = True
                break
            out += chunk
    finally:
        s.close()
    return out, closed


def responses(raw):
    """[(status, body)] of the HTTP/1.1 responses in raw (bodies framed by Content-Length)."""
    got = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
        assert m, f"not a response: {raw[:200]!r}"
        n = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        size = int(n.group(1)) if n else 0
        got.append((int(m.group(1)), rest[:size]))
        raw = rest[size:]
    return got


def error_of(body):
    doc = json.loads(body)
    assert isinstance(doc.get("error"), str) and isinstance(doc.get("message"), str), doc
    return doc["error"]


# --------------------------------------------------------------------------
# item: one address holding many idle connections

def open_idle(t, n, src):
    """n plain TCP connections from src that never start TLS."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((src, 0))
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", t.port))
        except OSError:
            s.close()
            continue
        socks.append(s)
    return socks


def closed_by_server(s):
    """True once the server closed s (what it sent first, a TLS alert, is read and dropped)."""
    while True:
        r, _, _ = select.select([s], [], [], 0)
        if not r:
            return False
        try:
            if s.recv(4096) == b"":
                return True
        except OSError:  # reset
            return True


def wait_all_closed(socks, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(closed_by_server(s) for s in socks):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.serial  # a request must be served within the request timeout
def test_one_address_cannot_hold_the_daemon(target):
    flood = open_idle(target, target.max_connections + 16, FLOOD_SRC)
    try:
        time.sleep(0.5)
        held = [s for s in flood if not closed_by_server(s)]
        # past max_connections_per_ip the daemon closes a connection as soon as it is made
        assert len(held) <= PER_IP, f"{target.name}: {len(held)} idle connections held"
        # an honest client is served meanwhile, from another address
        t0 = time.monotonic()
        r = target.get("/healthz")
        assert r.status == 200, r.body
        assert time.monotonic() - t0 < REQUEST_TIMEOUT, "served only once the flood was gone"
        # and the few that were kept, which never started TLS, go after request_timeout
        assert wait_all_closed(held, REQUEST_TIMEOUT + 3), \
            f"{target.name}: idle connections outlived request_timeout"
    finally:
        for s in flood:
            s.close()


@pytest.mark.serial  # measures when the idle connection is closed
def test_handshake_without_request_is_closed(target):
    s = tls_socket(target, src="127.0.0.3")
    try:
        t0 = time.monotonic()
        s.settimeout(REQUEST_TIMEOUT + 5)
        try:
            got = s.recv(1)
        except (ConnectionResetError, ssl.SSLError):
            got = b""
        elapsed = time.monotonic() - t0
        assert got == b"", got
        assert REQUEST_TIMEOUT - 0.5 <= elapsed <= REQUEST_TIMEOUT + 3, elapsed
    finally:
        s.close()


def test_kept_alive_connection_gets_conn_timeout(target):
    c = target.client().connection()
    try:
        hdrs = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        c.request("GET", "/healthz", headers=hdrs)
        assert c.getresponse().read() and True
        sock = c.sock
        time.sleep(REQUEST_TIMEOUT + 1.5)  # past request_timeout, well within conn_timeout
        c.request("GET", "/healthz", headers=hdrs)
        r = c.getresponse()
        r.read()
        assert r.status == 200 and c.sock is sock, "the kept-alive connection was dropped"
    finally:
        c.close()


# --------------------------------------------------------------------------
# item: NUL bytes

NUL_PATHS = {
    "keyserver": [f"/v1/domains/{DOMAIN}%00.evil.example", f"/v1/addresses/alice@{DOMAIN}%00junk",
                  f"/v1/domains/{DOMAIN}?x=a%00b", "/healthz?probe=%00"],
    "reputation": ["/v1/query?helo=ok.csa.test%00junk", "/v1/query?domain=phish.example%00x",
                   "/v1/query?ip%00=192.0.2.1"],
    "relay": [f"/v1/lists/bob@{DOMAIN}%00x", f"/v1/lists/bob@{DOMAIN}/trust%00"],
}


def test_nul_is_refused_before_any_handler(target):
    if target.name == "keyserver":  # the name that %00 would have cut to is served
        assert target.get(f"/v1/domains/{DOMAIN}").status == 200
    if target.name == "relay":
        assert target.get(f"/v1/lists/bob@{DOMAIN}").status == 200
    for path in NUL_PATHS[target.name]:
        r = target.get(path)
        assert r.status == 400, (path, r.status, r.body)
        assert r.error_code() == "nul_byte", (path, r.body)
    # a raw NUL on the request line (libmicrohttpd passes the target on as a C string)
    raw_path = NUL_PATHS[target.name][0].replace("%00", "\0").encode()
    auth = b"Authorization: Bearer %s\r\n" % target.token.encode() if target.token else b""
    raw, _ = exchange(target, b"GET " + raw_path + b" HTTP/1.1\r\nHost: x\r\n" + auth +
                      b"Connection: close\r\n\r\n")
    got = responses(raw)
    assert len(got) == 1 and got[0][0] == 400, raw[:400]
    assert error_of(got[0][1]) == "nul_byte", got


# --------------------------------------------------------------------------
# item: invalid UTF-8

BAD_UTF8 = ["/healthz/%ff%fe", f"/v1/domains/{DOMAIN}/%ff%fe", "/v1/x%c0%af",
            "/v1/query?domain=%ed%a0%80", "/v1/lists/%f4%90%80%80"]


def test_invalid_utf8_is_400_and_logged_escaped(target):
    for path in BAD_UTF8:
        r = target.get(path)
        assert r.status == 400, (path, r.status, r.body)
        assert r.error_code() == "invalid_utf8", (path, r.body)
    # a well-formed non-ASCII name is not refused by the layer
    r = target.get("/v1/caf%c3%a9")
    assert r.status != 400 or r.error_code() != "invalid_utf8", r.body
    # a malformed escape is refused as such
    r = target.get("/v1/domains/a%zzb")
    assert r.status == 400 and r.error_code() == "bad_percent_encoding", r.body
    time.sleep(0.2)
    log = target.log_bytes()
    assert b"/healthz/\\xff\\xfe" in log, "the refused path is not in the log, escaped"
    assert b"\xff" not in log and b"\xc0\xaf" not in log, "raw client bytes reached the log"


# --------------------------------------------------------------------------
# item: framing

SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
FRAMING = {
    "two_lengths": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
                    400, "bad_framing"),
    "same_length_twice": (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                          b"\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}" + SMUGGLED,
                          400, "bad_framing"),
    "length_and_chunked": (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                           b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                           + SMUGGLED, 400, "bad_framing"),
    "chunked_twice": (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\n\r\n" + SMUGGLED, 400, "bad_framing"),
    "unknown_coding": (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: gzip\r\n\r\n" + SMUGGLED,
                       501, "unsupported_transfer_coding"),
    "chunked_in_http10": (b"POST /healthz HTTP/1.0\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
                          400, "bad_framing"),
    "space_before_colon": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : %d\r\n\r\n"
                           % len(SMUGGLED) + SMUGGLED, 400, "bad_header"),
    "signed_length": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                      b"Content-Length: +%d\r\n\r\n" % len(SMUGGLED) + SMUGGLED,
                      400, "bad_framing"),
}


@pytest.mark.parametrize("case", sorted(FRAMING))
def test_ambiguous_framing_is_refused_and_closed(target, case):
    data, status, code = FRAMING[case]
    raw, closed = exchange(target, data)
    got = responses(raw)
    assert len(got) == 1, f"{case}: {len(got)} responses (a hidden request was answered?): " \
                          f"{raw[:600]!r}"
    assert got[0][0] == status, (case, raw[:400])
    assert error_of(got[0][1]) == code, (case, got[0][1])
    assert closed, f"{case}: the connection was kept open after a framing error"
    assert target.get("/healthz").status == 200  # and the daemon serves on
