"""anchor-relay's authenticated submission (submission_auth = required): SMTP AUTH
(RFC 4954) with PLAIN (RFC 4616) and LOGIN, after STARTTLS only, driven by swaks and
Python's smtplib.

    good        swaks --tls --auth PLAIN / LOGIN with the right password: 250, the
                message is signed (x.test's key) and reaches an MX (NSD + smtp-sink),
                with "with ESMTPSA" in the relay's Received field
    hashes      $y$ yescrypt, $2b$ bcrypt and $6$ sha512-crypt entries all log in
    refusals    a wrong password or unknown user (535), AUTH in clear text (538, and not
                advertised), MAIL without AUTH (530), another envelope sender or the null
                sender (553), another From: (550), three failures (421 and close)
    the file    a users file group or others may read: the relay does not start
    secrets     no password, in clear or base64, ever reaches the relay's log
"""

import base64
import ctypes
import ctypes.util
import smtplib
import ssl
import subprocess
import time

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx
from relayfixtures import make_relay, smtp_sink  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

ALICE, ALICE_PW = "alice@x.test", "Corr3ct-Horse-Battery"
CAROL, CAROL_PW = "Carol@x.test", "carols-sha512-pw"
DAVE, DAVE_PW = "dave@x.test", "daves-bcrypt-pw"
BAD_PW = "Wr0ng-Pa55word-Guess"


# --------------------------------------------------------------------------
# helpers

def _libcrypt():
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    return lib


def crypt_hash(password, prefix):
    """crypt(3) of password with a fresh salt: "$y$" (yescrypt), "$2b$" (bcrypt) through
    libcrypt, "$6$" (sha512-crypt) through `openssl passwd -6`."""
    if prefix == "$6$":
        r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode(),
                           capture_output=True, check=True)
        return r.stdout.decode().strip()
    lib = _libcrypt()
    setting = lib.crypt_gensalt(prefix.encode(), 0, None, 0)
    assert setting, f"libcrypt cannot make a {prefix} salt"
    out = lib.crypt(password.encode(), setting).decode()
    assert out.startswith(prefix), out
    return out


def write_users(path, mode=0o600):
    path.write_text("# submission users: address:crypt-hash\n"
                    f"{ALICE}:{crypt_hash(ALICE_PW, '$y$')}\n"
                    "\n"
                    f"  {CAROL}:{crypt_hash(CAROL_PW, '$6$')}\n"
                    f"{DAVE}:{crypt_hash(DAVE_PW, '$2b$')}\n"
                    f"locked@x.test:!{crypt_hash('locked-pw', '$6$')}\n")
    path.chmod(mode)
    return path


@pytest.fixture
def nsd(request):
    """Factory: nsd(mx_domains=[...]) -> a started dnsfixtures.Nsd serving an MX for each
    domain (stopped at the end)."""
    started = []

    def factory(mx_domains=()):
        work = anchorlib.mktemp_dir("anchor-ansd-")
        zdir = work / "zones"
        zdir.mkdir()
        zones = {}
        for origin in mx_domains:
            path = zdir / f"{origin}.zone"
            path.write_text(dx.zone_text(origin, rx.dns_zone_for({}, origin), mx=True))
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


@pytest.fixture
def auth_relay(make_relay, nsd, smtp_sink):
    """(relay, sink): submission_auth = required, x.test signed (ed25519), far.test's MX
    being smtp-sink."""
    sink = smtp_sink()
    dns = nsd(mx_domains=["far.test"])
    relay = make_relay(start=False, sign_domains={"x.test": ["ed25519"]},
                       dns_server=dns.resolver, smtp_port=sink.port,
                       submission_auth="required")
    users = write_users(relay.dir / "users")
    relay.params["submission_users"] = str(users)
    relay.start()
    return relay, sink


def message(subject, sender=ALICE, to="bob@far.test"):
    return (f"From: Alice <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{time.time_ns()}@x.test>\r\n\r\nhello\r\n").encode()


def swaks_auth(relay, mech="PLAIN", user=ALICE, password=ALICE_PW, sender=ALICE, data=None,
               tls=True, subject="auth"):
    extra = ["--auth", mech, "--auth-user", user, "--auth-password", password]
    return rx.swaks(relay.submission_port, sender=sender, to="bob@far.test", tls=tls,
                    data=data if data is not None else message(subject, sender=sender),
                    extra=extra)


def client(relay, tls=True):
    """smtplib, after EHLO (and STARTTLS + EHLO when tls)."""
    s = smtplib.SMTP("127.0.0.1", relay.submission_port, timeout=30)
    s.ehlo("client.test")
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s.starttls(context=ctx)
        s.ehlo("client.test")
    return s


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def codes(r):
    return [int(x[:3]) for x in r.replies() if x[:3].isdigit()]


# --------------------------------------------------------------------------
# 1. the good path

@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
def test_authenticated_mail_is_signed_and_delivered(mech, auth_relay):
    relay, sink = auth_relay
    r = swaks_auth(relay, mech=mech, subject=f"auth {mech}")
    assert 235 in codes(r) and r.last_code() == 250, r.out
    [m] = sink.wait_for(1)
    assert m.mail_from == ALICE and m.rcpts == ["bob@far.test"]
    [sig] = m.header("DKIM-Signature")
    assert "d=x.test" in sig.replace(" ", ""), sig
    assert any("ESMTPSA" in v for v in m.header("Received")), m.text
    assert rx.dkimpy_verify(m.data, relay.records()), m.text


def test_every_hash_kind_logs_in_and_addresses_ignore_case(auth_relay):
    relay, _ = auth_relay
    for user, pw in ((ALICE, ALICE_PW), (CAROL.lower(), CAROL_PW), (DAVE.upper(), DAVE_PW)):
        s = client(relay)
        code, text = s.docmd("AUTH", f"PLAIN {plain(user, pw)}")
        assert code == 235, (user, code, text)
        # the sender must be the authenticated address, in any case
        assert s.mail(user.swapcase())[0] == 250
        s.quit()


# --------------------------------------------------------------------------
# 2. refusals

def test_wrong_password_unknown_and_locked_users_get_535(auth_relay):
    relay, sink = auth_relay
    r = swaks_auth(relay, password=BAD_PW)
    assert r.last_code() == 535, r.out
    r = swaks_auth(relay, mech="LOGIN", user="nobody@x.test", sender="nobody@x.test")
    assert 535 in codes(r), r.out
    r = swaks_auth(relay, user="locked@x.test", password="locked-pw", sender="locked@x.test")
    assert 535 in codes(r), r.out
    assert sink.count() == 0
    rx_ = relay.text()
    assert "AUTH PLAIN failed for <alice@x.test>" in rx_
    assert "AUTH LOGIN failed for <nobody@x.test> (no such user)" in rx_


def test_three_failures_close_the_connection(auth_relay):
    relay, _ = auth_relay
    s = client(relay)
    for _ in range(2):
        assert s.docmd("AUTH", f"PLAIN {plain(ALICE, BAD_PW)}")[0] == 535
    code, _ = s.docmd("AUTH", f"PLAIN {plain(ALICE, BAD_PW)}")
    assert code == 535
    assert s.getreply()[0] == 421  # then the relay hangs up
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        s.docmd("NOOP")
        s.docmd("NOOP")


def test_auth_needs_tls(auth_relay):
    relay, _ = auth_relay
    s = client(relay, tls=False)
    assert not s.has_extn("auth"), s.esmtp_features
    assert s.has_extn("starttls")
    code, text = s.docmd("AUTH", f"PLAIN {plain(ALICE, ALICE_PW)}")
    assert code == 538 and b"5.7.11" in text, (code, text)
    s.quit()
    s = client(relay)
    assert "PLAIN" in s.esmtp_features["auth"] and "LOGIN" in s.esmtp_features["auth"]
    s.quit()
    # swaks refuses to send the password in clear on its own
    r = swaks_auth(relay, tls=False)
    assert 235 not in codes(r) and "MAIL FROM" not in r.out, r.out


def test_mail_without_auth_gets_530(auth_relay):
    relay, sink = auth_relay
    r = rx.swaks(relay.submission_port, sender=ALICE, to="bob@far.test", tls=True,
                 data=message("no auth"))
    assert r.last_code() == 530, r.out
    assert "5.7.0 Authentication required" in r.out
    assert sink.count() == 0


def test_sender_not_owned_gets_553(auth_relay):
    relay, sink = auth_relay
    r = swaks_auth(relay, sender="bob@x.test", data=message("theirs", sender=ALICE))
    assert 235 in codes(r) and r.last_code() == 553, r.out
    assert f"5.7.1 Sender address not owned by <{ALICE}>" in r.out
    # the null sender is nobody's
    s = client(relay)
    assert s.docmd("AUTH", f"PLAIN {plain(ALICE, ALICE_PW)}")[0] == 235
    assert s.docmd("MAIL", "FROM:<>")[0] == 553
    s.quit()
    assert sink.count() == 0


def test_from_not_owned_gets_550(auth_relay):
    relay, sink = auth_relay
    r = swaks_auth(relay, data=message("not mine", sender="carol@x.test"))
    assert 235 in codes(r) and r.last_code() == 550, r.out
    assert f"5.7.1 From address not owned by <{ALICE}>" in r.out
    # no From: at all is not owned either
    r = swaks_auth(relay, data=b"Subject: no from\r\n\r\nhi\r\n")
    assert r.last_code() == 550, r.out
    assert sink.count() == 0
    assert not rx_queued(relay)


def rx_queued(relay):
    return [p for p in relay.spool_files("out") if p.name.startswith("m.")]


# --------------------------------------------------------------------------
# 3. the users file and the log

def test_users_file_readable_by_others_stops_the_start(make_relay):
    relay = make_relay(start=False, submission_auth="required")
    users = write_users(relay.dir / "users", mode=0o644)
    relay.params["submission_users"] = str(users)
    with pytest.raises(AssertionError) as ex:
        relay.start()
    assert "accessible by group or others (mode 0644): chmod 600 it" in str(ex.value)
    # and a line that is not address:hash names its line
    users.write_text(f"{ALICE}:{crypt_hash(ALICE_PW, '$6$')}\nnot a user line\n")
    users.chmod(0o600)
    with pytest.raises(AssertionError) as ex:
        relay.start()
    assert "line 2" in str(ex.value)


def test_passwords_never_reach_the_log(auth_relay):
    relay, sink = auth_relay
    swaks_auth(relay, mech="LOGIN")
    swaks_auth(relay, password=BAD_PW)
    swaks_auth(relay, mech="LOGIN", password=BAD_PW)
    s = client(relay)
    s.docmd("AUTH", f"PLAIN {plain('nobody@x.test', BAD_PW)}")
    s.quit()
    sink.wait_for(1)
    log = relay.text()
    assert "authenticated as <alice@x.test> (LOGIN)" in log
    for pw in (ALICE_PW, BAD_PW):
        for secret in (pw, base64.b64encode(pw.encode()).decode(), plain(ALICE, pw),
                       plain("nobody@x.test", pw)):
            assert secret not in log, secret


def check_only(relay):
    relay.write_config()
    return anchorlib.run_program([anchorlib.binary("anchor-relay"), "-n", "-c", relay.conf],
                                 env=dx.clean_env())


def test_check_fails_where_the_start_fails(make_relay):
    """anchor-relay -n reads submission_users as the start does: an inline comment after
    the path (a '#' is a comment only at the start of a line), a loose mode and a bad
    line fail -n exactly as they fail the start, with the same words."""
    relay = make_relay(start=False, submission_auth="required")
    users = write_users(relay.dir / "users")
    bad_line = write_users(relay.dir / "users-bad")
    bad_line.write_text(bad_line.read_text() + "not a user line\n")
    loose = write_users(relay.dir / "users-loose", mode=0o640)
    for value, text in (
            (f"{users}   # address:crypt-hash, mode 0600",
             "('#' starts a comment only at the start of a line: the comment is part of "
             "the path)"),
            (str(loose), "accessible by group or others (mode 0640): chmod 600 it"),
            (str(bad_line), "line 7"),
            (str(relay.dir / "nonexistent"), "No such file or directory")):
        relay.params["submission_users"] = value
        r = check_only(relay)
        assert r.rc == 1 and text in r.err, (value, r.err)
        with pytest.raises(AssertionError) as ex:
            relay.start()
        assert text in str(ex.value), value
    relay.params["submission_users"] = str(users)
    r = check_only(relay)
    assert r.rc == 0 and f"submission_users = {users}" in r.out, r.err
    relay.start()
    relay.stop()


def test_empty_means_unset_for_check_and_start(make_relay):
    """relay.conf.sample and anchor-relay(8): an empty reputation_url or tls_cert_file is
    unset (no reputation service, no STARTTLS), for -n and the start alike."""
    relay = make_relay(start=False, reputation_url="", tls_cert_file="", tls_key_file="",
                       control_listen="")
    r = check_only(relay)
    assert r.rc == 0, r.err
    assert "reputation_url = \n" in r.out + "\n" or "reputation_url =\n" in r.out + "\n", r.out
    relay.start()
    c = smtplib.SMTP("127.0.0.1", relay.submission_port, timeout=10)
    try:
        c.ehlo("client.test")
        assert not c.has_extn("starttls")
    finally:
        c.close()
    relay.stop()
