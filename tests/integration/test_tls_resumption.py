"""TLS session resumption in the HTTP layer every HTTPS daemon shares (lib/http/http_tls.c,
PROTOCOL.md §1.1 "TLS"), driven with `openssl s_client` through anchor-keyserver and
anchor-reputation:

    - TLS 1.3: a session saved with -sess_out (its PSK ticket) resumes with -sess_in;
    - TLS 1.2: `s_client -reconnect` resumes every reconnection (RFC 5077 ticket);
    - TLS 1.0 and 1.1, and CBC suites, are refused;
    - across a ticket-key rotation (tls_ticket_rotation = 3s): a ticket still resumes
      while its key is the previous one, and no longer one period after that (a full
      handshake, not an error).

Before resumption was built, every reconnection was "New".
"""

import re
import subprocess
import time

import pytest

import repfixtures as rx

ROTATION = 3  # seconds; short so that the rotation test is quick
# GnuTLS derives the key that seals a ticket from ours and a time window of three
# ticket lifetimes (two rotation periods each); a ticket does not outlive its window.
GNUTLS_WINDOW = 3 * 2 * ROTATION


class Target:
    def __init__(self, name, port, ca):
        self.name, self.port, self.ca = name, port, ca


@pytest.fixture(scope="module")
def keyserver(make_keyserver):
    ks = make_keyserver(extra={"tls_ticket_rotation": f"{ROTATION}s"})
    return Target("keyserver", ks.port, ks.tls.ca)


@pytest.fixture(scope="module")
def reputation(pg, db, operator_token, request):
    w = rx.build_world(pg, db, operator_token, request, [])
    rep = rx.Reputation(w, w.work / "rep", db).start()
    return Target("reputation", rep.port, w.tls.ca)


@pytest.fixture(params=["keyserver", "reputation"])
def target(request):
    return request.getfixturevalue(request.param)


def s_client(t, *args, request=True):
    """openssl s_client against t; one GET /healthz (so that TLS 1.3 tickets, which come
    after the handshake, are read) unless request is False.  Returns its output."""
    data = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{t.port}",
                        "-CAfile", str(t.ca), "-verify_return_error", "-ign_eof", *args],
                       input=data if request else b"", capture_output=True, timeout=20)
    return p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")


def handshakes(out):
    """["New"|"Reused", ...] in the order s_client printed them."""
    return re.findall(r"^(New|Reused), ", out, re.M)


def ticket_name(sess_file):
    """The first 16 bytes of the session's ticket (GnuTLS's key name), hex."""
    out = subprocess.run(["openssl", "sess_id", "-in", str(sess_file), "-noout", "-text"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"TLS session ticket:\n((?:\s+[0-9a-f]{4} - .*\n)+)", out)
    assert m, out
    hexes = re.findall(r"\b[0-9a-f]{2}\b", " ".join(line.split(" - ", 1)[1][:48]
                                                   for line in m.group(1).splitlines()))
    return "".join(hexes[:16])


def new_session(t, path, version="-tls1_3"):
    out = s_client(t, version, "-sess_out", str(path))
    assert handshakes(out) == ["New"], out
    assert "200 OK" in out, out
    assert path.exists(), f"no session to save: the server sent no ticket\n{out}"
    return path


def resumes(t, path, version="-tls1_3"):
    out = s_client(t, version, "-sess_in", str(path))
    assert "200 OK" in out, out
    return handshakes(out) == ["Reused"]


def test_tls13_ticket_resumes(target, tmp_path):
    sess = new_session(target, tmp_path / "s13.pem")
    assert resumes(target, sess)
    assert resumes(target, sess)  # a ticket is not single-use across clients' retries


def test_tls12_reconnect_resumes(target):
    out = s_client(target, "-tls1_2", "-reconnect", request=False)
    hs = handshakes(out)
    assert hs[0] == "New" and hs[1:] == ["Reused"] * 5, out


def test_old_protocols_and_cbc_refused(target):
    out = s_client(target, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", request=False)
    assert "Cipher is (NONE)" in out and "200 OK" not in out, out
    out = s_client(target, "-tls1_2", "-cipher",
                   "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA")
    assert "Cipher is (NONE)" in out and "200 OK" not in out, out


@pytest.mark.serial  # ticket keys rotate every 3 s: a ticket's fate depends on the clock
def test_resumption_across_rotation(keyserver, tmp_path):
    t = keyserver
    # Start right after a GnuTLS window opens, so that the whole test lies in one.
    wait = (-time.time()) % GNUTLS_WINDOW
    time.sleep(wait + 0.3 if wait < GNUTLS_WINDOW - 1 else 0)
    start = time.time()
    # A rotation shows as a ticket under a new key name; the first ticket after it is
    # sealed under a key that has just become current.
    first = ticket_name(new_session(t, tmp_path / "s0.pem"))
    for i in range(4 * ROTATION * 5):
        sess = new_session(t, tmp_path / f"s{i + 1}.pem")
        if ticket_name(sess) != first:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the ticket key never rotated")
    rotated_at = time.time()
    assert rotated_at - start < GNUTLS_WINDOW - 2 * ROTATION - 1, "too slow to stay in the window"
    assert resumes(t, sess), "a ticket under the current key"

    # One period on, its key is the previous one: still accepted, and what is issued now
    # is under another key.
    time.sleep(max(0.0, rotated_at + ROTATION + 0.4 - time.time()))
    assert ticket_name(new_session(t, tmp_path / "later.pem")) != ticket_name(sess)
    assert resumes(t, sess), "a ticket under the previous key (one rotation ago)"

    # Two periods on, the key is gone: a full handshake, and the connection still works.
    time.sleep(max(0.0, rotated_at + 2 * ROTATION + 0.6 - time.time()))
    assert not resumes(t, sess), "a ticket whose key was retired"
