"""anchor-relay's inbound side end to end, driven by real clients (swaks, Postfix's
smtp-sink as the next hop, SMTP and LMTP) against a real key server and NSD:

    - trace fields: Received, Authentication-Results (our authserv-id) and the tier
      header on every delivered message; forged copies of ours in the incoming message
      are removed, other verifiers' results kept; STARTTLS and plain;
    - who may send: recipients outside local_domains (550 5.7.1), connections per
      client address (421);
    - tiers (relay/tier.c): unsigned -> unknown (and into the unknown_folder); a legacy
      domain's DKIM signature (key in NSD) -> dkim=pass but unknown without a reputation
      verdict; trust, subscribe and block lists set with `anchorctl relay`; a hashcash
      stamp lifts unknown -> known once;
    - anchored domains (PROTOCOL.md §3.5, §8.1): a signature with the key of a `signing`
      server certificate passes with the key from the key server; once the certificate
      is revoked it no longer does; unsigned mail From an enforce-mode domain is refused,
      from a testing-mode one delivered as unknown; a user's own signature (s=anchor-user,
      i=the address, the user's enrolled key) identifies the user.

The world (module scope): one key server hosting anch.rin.test (enforce; signing hosts
s1. and rev.; user alice) and trial.rin.test (mode=testing), a legacy domain
legacy.rin.test with rsa and ed25519 DKIM keys as TXT records, all served by NSD.
"""

import base64
import json
import re
import shutil
import socket
import subprocess
import time
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import relayfixtures as rx
from relayfixtures import make_relay, py_sink, smtp_sink  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built"),
]

PARENT = "rin.test"
KS = f"keys.{PARENT}"
ANCH = f"anch.{PARENT}"      # anchored, mode=enforce
TRIAL = f"trial.{PARENT}"    # anchored, mode=testing
LEGACY = f"legacy.{PARENT}"  # no anchor: DKIM keys in DNS
ALICE = f"alice@{ANCH}"
LOCAL = "dest.test"
BOB = f"bob@{LOCAL}"
AUTHSERV = "mx.dest.test"
HASHCASH = shutil.which("hashcash")


# --------------------------------------------------------------------------
# the world

def register(ks, base, name, token, mode=None):
    """`anchorctl domain init` + `domain register [--mode]`: a kf.Domain."""
    r = kf.ctl_ok(ks, "domain", "init", name, cwd=base)
    pin = re.search(r"^pin: (sha256:\S+)$", r.out, re.M).group(1)
    args = ["domain", "register", name] + (["--mode", mode] if mode else [])
    kf.ctl_ok(ks, *args, cwd=base, env={"ANCHOR_OPERATOR_TOKEN": token})
    admin = (base / name / "admin.token").read_text().strip()
    return kf.Domain(name, base, base / name, admin, pin)


def ed25519_dkim_key(domain, selector, pem_path):
    """A relayfixtures.DkimKey for a PEM ed25519 key anchorctl wrote (dkimpy wants the seed)."""
    key = serialization.load_pem_private_key(pem_path.read_bytes(), None)
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    return rx.DkimKey(domain, selector, "ed25519", pem_path, "", base64.b64encode(seed))


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    work = anchorlib.mktemp_dir("anchor-rin-")
    tls = dx.make_tls(work / "tls", [KS])
    ks = anchorlib.Keyserver(work / "ks", db, tls, operator_token.hash)
    w = SimpleNamespace(work=work, tls=tls, ks=ks, nsd=None, admin=anchorlib.make_token())

    def finish():
        if w.nsd:
            w.nsd.stop()
        ks.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks.start()
    base = w.base = work / "domains"
    base.mkdir()
    w.anch = register(ks, base, ANCH, operator_token.token)
    w.trial = register(ks, base, TRIAL, operator_token.token, mode="testing")
    # signing certificates: selector = first label of the host (PROTOCOL.md §8.1)
    w.signing = {}
    for sel in ("s1", "rev"):
        host = f"{sel}.{ANCH}"
        r = kf.ctl_ok(ks, "server", "issue", host, "--purpose", "signing", "--alg", "ed25519",
                      cwd=base)
        w.signing[sel] = ed25519_dkim_key(ANCH, sel, base / f"{host}.signing.key")
        m = re.search(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})", r.out)
        assert m, r.out
        w.signing[sel].key_id = m.group(1)
    kf.ctl_ok(ks, "server", "issue", f"t1.{TRIAL}", "--purpose", "signing", "--alg", "ed25519",
              cwd=base)
    w.trial_key = ed25519_dkim_key(TRIAL, "t1", base / f"t1.{TRIAL}.signing.key")
    # alice's own key (S/MIME certificate, ed25519: DKIM can use it)
    w.users = work / "users"
    w.users.mkdir()
    kf.ctl_ok(ks, "key", "new", ALICE, "--alg", "ed25519", "--dir", w.users, cwd=base)
    tok = kf.issue_token(ks.client(), w.anch, ALICE)
    kf.ctl_ok(ks, "key", "enroll", ALICE, "--token", tok, "--dir", w.users, cwd=base)
    w.alice_key = ed25519_dkim_key(ANCH, "anchor-user", w.users / f"{ALICE}.key")
    # a legacy domain: plain DKIM keys in DNS
    w.legacy_rsa = rx.dkim_keys(work / "legacy", LEGACY, "lrsa", "rsa")
    w.legacy_ed = rx.dkim_keys(work / "legacy", LEGACY, "led", "ed25519")

    zdir = work / "zones"
    zdir.mkdir()
    zones = {PARENT: zdir / "parent.zone"}
    zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
    for name in (ANCH, TRIAL):
        r = dx.anchor_dns("records", name, "-s", ks.base_url, "--cacert", tls.ca,
                          "--keyserver", f"{KS}:{ks.port}:10:10")
        assert r.rc == 0, r.err
        zones[name] = zdir / f"{name}.zone"
        zones[name].write_text(dx.zone_text(name, r.out, mx=False))
    assert "mode=testing" in zones[TRIAL].read_text()
    zones[LEGACY] = zdir / "legacy.zone"
    zones[LEGACY].write_text(dx.zone_text(LEGACY, rx.dns_zone_for(
        rx.records_of([w.legacy_rsa, w.legacy_ed]), LEGACY)))
    w.nsd = dx.Nsd(work / "nsd", zones).start()
    w.token_file = work / "relay.token"
    w.token_file.write_text(w.admin.token + "\n")
    return w


def relay_for(world, make_relay, hop, **kw):
    """A relay verifying through the world's NSD and key server, control API on."""
    settings = dict(local_domains=f"{LOCAL},other.test", dns_server=world.nsd.resolver,
                    keyserver_cacert=world.tls.ca, authserv_id=AUTHSERV,
                    control_token_hash=world.admin.hash, inbound_next_hop=hop)
    settings.update(kw)
    return make_relay(control=True, **settings)


# --------------------------------------------------------------------------
# messages and what arrives

_seq = iter(range(1, 10**6))


def message(sender, to=BOB, subject=None, body="Hello Bob.\r\n\r\nSee you.\r\n", extra=()):
    """A message (bytes, CRLF) with a unique Message-ID; extra: header lines put on top."""
    n = next(_seq)
    mid = f"<{n}.{time.time_ns()}@{sender.split('@')[-1]}>"
    head = list(extra) + [f"From: <{sender}>", f"To: <{to}>",
                          f"Subject: {subject or f'inbound test {n}'}",
                          "Date: Mon, 23 Nov 2026 10:00:00 +0000", f"Message-ID: {mid}",
                          "MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode(), mid


def signed(msg, key, identity=None):
    return rx.dkimpy_sign(msg, key, identity=identity) + msg


def arrived(sink, mid, n=1, timeout=30.0):
    """The n deliveries of the message with Message-ID mid (one per tier part)."""
    deadline = time.monotonic() + timeout
    while True:
        got = [m for m in sink.messages() if mid in m.header("Message-ID")]
        if len(got) >= n:
            assert len(got) == n, f"{mid}: {len(got)} deliveries, expected {n}"
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{mid}: {len(got)} deliveries within {timeout}s, expected {n}")
        time.sleep(0.05)


def send(relay, data, to=BOB, sender=None, **kw):
    return rx.swaks(relay.inbound_port, sender=sender or "env@sender.example", to=to,
                    data=data, **kw)


def deliver(relay, sink, data, mid, to=BOB, n=1, **kw):
    r = send(relay, data, to=to, **kw)
    assert r.last_code() == 250, r.out
    return arrived(sink, mid, n)


def split_resinfo(value):
    """An Authentication-Results value -> [authserv-id, resinfo, ...] (splits at ';'
    outside quoted strings and comments)."""
    parts, cur, q, depth, esc = [], "", False, 0, False
    for ch in value:
        if esc:
            esc = False
        elif ch == "\\" and (q or depth):
            esc = True
        elif ch == '"' and not depth:
            q = not q
        elif ch == "(" and not q:
            depth += 1
        elif ch == ")" and not q and depth:
            depth -= 1
        elif ch == ";" and not q and not depth:
            parts.append(cur.strip())
            cur = ""
            continue
        cur += ch
    parts.append(cur.strip())
    return parts


def our_ar(m):
    """Our Authentication-Results field (exactly one) as [authserv-id, resinfo...]."""
    ours = [split_resinfo(v) for v in m.header("Authentication-Results")
            if split_resinfo(v)[0] == AUTHSERV]
    assert len(ours) == 1, m.text
    return ours[0]


def dkim_results(m):
    return [r for r in our_ar(m)[1:] if r.startswith("dkim=")]


def tier(m):
    values = m.header("X-Anchor-Tier")
    assert len(values) == 1, m.text
    return values[0]


def ctl(world, relay, *args):
    argv = [anchorlib.binary("anchorctl"), "-s", relay.control_url, "--cacert", relay.tls.ca,
            *args, "--token-file", str(world.token_file)]
    r = anchorlib.run_program(argv, env=dx.clean_env(), timeout=60)
    assert r.rc == 0, (args, r.out, r.err)
    return r


# --------------------------------------------------------------------------
# 1. swaks in, smtp-sink out

@pytest.mark.parametrize("starttls", [False, True], ids=["plain", "starttls"])
def test_trace_fields_and_forgeries(world, make_relay, smtp_sink, starttls):
    sink = smtp_sink()
    relay = relay_for(world, make_relay, sink.hop)
    forged = [f"Authentication-Results: {AUTHSERV}; dkim=pass header.d=bank.example",
              "Authentication-Results: MX.Dest.Test;\r\n\tdkim=pass header.d=folded.example",
              "Authentication-Results: other.example; spf=pass smtp.mailfrom=x.example",
              "X-Anchor-Tier: trusted (forged by the sender)"]
    body = "Hello Bob.\r\n.a line with a leading dot\r\n..and two\r\n.\r\nSee you.\r\n"
    data, mid = message("stranger@nowhere.example", extra=forged, body=body)
    r = send(relay, data, tls=starttls)
    assert r.last_code() == 250, r.out
    assert ("TLS started" in r.out) == starttls, r.out
    [m] = arrived(sink, mid)
    assert m.mail_from == "env@sender.example" and m.rcpts == [BOB] and m.proto == "ESMTP"
    assert m.helo == "relay.test", m.helo

    received = m.header("Received")
    assert len(received) == 1, m.text
    assert re.search(r"from client\.test \(client\.test \[127\.0\.0\.1\]\)\s+by relay\.test "
                     rf"\(anchor-relay\) with {'ESMTPS' if starttls else 'ESMTP'};", received[0]), \
        received[0]
    # ours: exactly one A-R with our authserv-id; the other verifier's kept, forgeries gone
    ars = m.header("Authentication-Results")
    assert len(ars) == 2, ars
    assert [split_resinfo(v)[0] for v in ars] == [AUTHSERV, "other.example"], ars
    assert dkim_results(m) == ["dkim=none"], our_ar(m)
    assert b"bank.example" not in m.data and b"folded.example" not in m.data
    assert tier(m).startswith("unknown (unverified sender)"), tier(m)
    assert b"forged by the sender" not in m.data
    # our fields come first, in order: Received, Authentication-Results, tier
    names = [n.lower() for n, _ in m.headers()][:3]
    assert names == ["received", "authentication-results", "x-anchor-tier"], m.headers()
    assert m.body == body.encode(), m.body  # dot-stuffing undone and redone


def test_lmtp_next_hop_and_unknown_folder(world, make_relay, smtp_sink):
    sink = smtp_sink(lmtp=True)
    relay = relay_for(world, make_relay, sink.hop, unknown_folder="Junk",
                      recipient_delimiter="+")
    carol = f"carol@{LOCAL}"
    data, mid = message("stranger@nowhere.example", to=BOB)
    [m] = deliver(relay, sink, data, mid, to=[BOB, carol, "dave@other.test"])
    assert m.proto == "LMTP", m.proto
    assert sorted(m.rcpts) == sorted([f"bob+Junk@{LOCAL}", f"carol+Junk@{LOCAL}",
                                      "dave+Junk@other.test"]), m.rcpts
    assert tier(m).startswith("unknown")
    assert our_ar(m)[0] == AUTHSERV


def test_relaying_denied_and_per_ip_limit(world, make_relay, smtp_sink):
    sink = smtp_sink()
    relay = relay_for(world, make_relay, sink.hop, max_connections_per_ip=2)
    r = send(relay, message("a@nowhere.example")[0], to="victim@elsewhere.example")
    assert "550 5.7.1" in r.out and r.last_code() == 550, r.out
    # one good and one foreign recipient: only the good one is accepted and delivered
    data, mid = message("a@nowhere.example")
    [m] = deliver(relay, sink, data, mid, to=[BOB, "victim@elsewhere.example"])
    assert m.rcpts == [BOB]

    held = []
    try:
        deadline = time.monotonic() + 10
        while len(held) < 2:
            # the slots of the swaks sessions above are released just after they end
            s = socket.create_connection(("127.0.0.1", relay.inbound_port), timeout=10)
            line = s.recv(512)
            if line.startswith(b"220 relay.test"):
                held.append(s)
                continue
            s.close()
            assert line.startswith(b"421 4.7.0") and time.monotonic() < deadline, line
            time.sleep(0.05)
        third = socket.create_connection(("127.0.0.1", relay.inbound_port), timeout=10)
        line = third.recv(512)
        assert line.startswith(b"421 4.7.0"), line
        assert third.recv(512) == b"", "the refused connection stays open"
        third.close()
        # the limit is per address: another client address is still welcome
        other = socket.create_connection(("127.0.0.1", relay.inbound_port), timeout=10,
                                         source_address=("127.0.0.2", 0))
        assert other.recv(512).startswith(b"220 relay.test")
        other.close()
    finally:
        for s in held:
            s.close()
    # the slots come back once the clients are gone
    deadline = time.monotonic() + 10
    while True:
        r = send(relay, message("a@nowhere.example")[0])
        if r.last_code() == 250 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.last_code() == 250, r.out


# --------------------------------------------------------------------------
# 2. tiers

def test_legacy_dkim_tiers_and_lists(world, make_relay, py_sink):
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop, unknown_folder="Junk")
    sender = f"news@{LEGACY}"

    def one(key=world.legacy_rsa, to=BOB, sender=sender):
        data, mid = message(sender, to=to)
        return deliver(relay, sink, signed(data, key), mid, to=to)[0]

    # legacy DKIM passes with the key from DNS, but a DNS key is no standing: unknown
    for key in (world.legacy_rsa, world.legacy_ed):
        m = one(key)
        [res] = dkim_results(m)
        assert res.startswith("dkim=pass header.d=legacy.rin.test"), res
        assert f"header.s={key.selector}" in res and "anchored" not in res, res
        assert f"header.a={key.alg}-sha256" in res, res
        assert tier(m) == (f"unknown (verified {sender} not in good standing "
                           "(not anchored, no reputation verdict))"), tier(m)
        assert m.rcpts == [f"bob+Junk@{LOCAL}"], m.rcpts

    # the recipient subscribes to the domain: known; trusts the address: trusted
    ctl(world, relay, "relay", "subscribe", "add", BOB, f"@{LEGACY}")
    m = one()
    assert tier(m).startswith(f"known (verified {sender} on subscribe list"), tier(m)
    assert m.rcpts == [BOB]
    ctl(world, relay, "relay", "trust", "add", BOB, sender)
    m = one()
    assert tier(m) == f"trusted (verified {sender} on trust list)", tier(m)
    # lists are per recipient: carol has none
    carol = f"carol@{LOCAL}"
    m = one(to=carol)
    assert tier(m).startswith("unknown") and m.rcpts == [f"carol+Junk@{LOCAL}"]
    # a list names verified senders only: the same From, unsigned, is not trusted
    data, mid = message(sender)
    [m] = deliver(relay, sink, data, mid)
    assert tier(m) == "unknown (unverified sender)", tier(m)
    # ... nor signed with a key DNS does not publish for it
    other = rx.dkim_keys(world.work / "rogue", LEGACY, "lrsa", "rsa")
    data, mid = message(sender)
    [m] = deliver(relay, sink, signed(data, other), mid)
    [res] = dkim_results(m)
    assert res.startswith("dkim=fail"), res
    assert tier(m) == "unknown (unverified sender)", tier(m)
    # the block list wins over everything, and the message is still delivered (aside)
    ctl(world, relay, "relay", "block", "add", BOB, LEGACY)
    m = one()
    assert tier(m).startswith("unknown") and "block list" in tier(m), tier(m)
    assert m.rcpts == [f"bob+Junk@{LOCAL}"]


def test_one_message_split_by_tier(world, make_relay, py_sink):
    """Recipients of one message in different tiers get their own copies, each with its
    own tier header and envelope."""
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop, unknown_folder="Spam")
    sender = f"news@{LEGACY}"
    carol, dave = f"carol@{LOCAL}", f"dave@{LOCAL}"
    ctl(world, relay, "relay", "trust", "add", BOB, sender)
    ctl(world, relay, "relay", "subscribe", "add", carol, LEGACY)
    data, mid = message(sender)
    parts = deliver(relay, sink, signed(data, world.legacy_ed), mid, to=[BOB, carol, dave], n=3)
    got = {tier(m).split()[0]: m.rcpts for m in parts}
    assert got == {"trusted": [BOB], "known": [carol], "unknown": [f"dave+Spam@{LOCAL}"]}, got
    assert len(sink.messages()) == 3


def test_hashcash_lifts_unknown_once(world, make_relay, py_sink):
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop, pow_bits=12, unknown_folder="Junk")

    def stamp(resource, bits=12):
        r = subprocess.run([HASHCASH, "-m", "-b", str(bits), "-X", resource],
                           capture_output=True, text=True, timeout=60, check=True)
        assert r.stdout.startswith("X-Hashcash: 1:"), r.stdout
        return r.stdout.strip()

    good = stamp(BOB)
    results = []
    for header in (good, good, stamp(f"carol@{LOCAL}"), stamp(BOB, bits=6)):
        data, mid = message("stranger@nowhere.example", extra=[header])
        [m] = deliver(relay, sink, data, mid)
        results.append((tier(m), m.rcpts))
    assert results[0] == ("known (valid proof-of-work stamp)", [BOB]), results[0]
    for t, rcpts in results[1:]:
        assert t == "unknown (unverified sender)" and rcpts == [f"bob+Junk@{LOCAL}"], results
    # the spent stamp stays spent across a restart (durable)
    relay.restart()
    data, mid = message("stranger@nowhere.example", extra=[good])
    [m] = deliver(relay, sink, data, mid)
    assert tier(m).startswith("unknown"), tier(m)


# --------------------------------------------------------------------------
# 3. anchored domains

def test_anchored_signature_and_revocation(world, make_relay, py_sink):
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop, key_cache_ttl=0)  # keys never reused
    key = world.signing["rev"]

    data, mid = message(f"team@{ANCH}")
    [m] = deliver(relay, sink, signed(data, key), mid)
    [res] = dkim_results(m)
    assert res.startswith(f"dkim=pass (anchored key) header.d={ANCH} "), res
    assert "header.s=rev header.a=ed25519-sha256" in res, res
    assert tier(m) == (f"known (verified team@{ANCH} in good standing (anchored, no "
                       "reputation verdict))"), tier(m)

    # the domain admin revokes the certificate: the very next message no longer passes
    r = kf.ctl_ok(world.ks, "key", "revoke", key.key_id, "--reason", "keyCompromise",
                  cwd=world.base)
    assert "revoked" in r.out
    data, mid = message(f"team@{ANCH}")
    r = send(relay, signed(data, key))
    assert r.last_code() == 550 and "5.7.1" in r.out, r.out
    assert "enforce" in r.out, r.out
    # signed by the revoked key From another domain: delivered, the verdict says why
    data, mid = message("someone@nowhere.example")
    [m] = deliver(relay, sink, signed(data, key), mid)
    [res] = dkim_results(m)
    assert res.startswith("dkim=permerror") and "revoked" in res, res
    assert f"header.d={ANCH}" in res and key.key_id in res, res


def test_anchored_enforce_and_testing_modes(world, make_relay, py_sink):
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop)
    # enforce: unsigned mail From the domain is refused at the end of DATA
    data, _ = message(f"ceo@{ANCH}")
    r = send(relay, data)
    assert r.last_code() == 550, r.out
    assert re.search(rf"550 5\.7\.1 {re.escape(ANCH)} publishes an anchor in enforce mode",
                     r.out), r.out
    # ... and so is mail signed with a key the key server does not vouch for
    rogue = rx.dkim_keys(world.work / "rogue2", ANCH, "s1", "ed25519")
    r = send(relay, signed(message(f"ceo@{ANCH}")[0], rogue))
    assert r.last_code() == 550, r.out
    # ... and with a selector it has no key for
    rogue = rx.dkim_keys(world.work / "rogue3", ANCH, "nosuch", "rsa", bits=1024)
    r = send(relay, signed(message(f"ceo@{ANCH}")[0], rogue))
    assert r.last_code() == 550, r.out
    # the DNS TXT the zone carries does not matter for an anchored domain: the s1 key
    # signs, the key server vouches for it
    data, mid = message(f"ceo@{ANCH}")
    [m] = deliver(relay, sink, signed(data, world.signing["s1"]), mid)
    [res] = dkim_results(m)
    assert res.startswith("dkim=pass (anchored key)") and "header.s=s1" in res, res
    # testing mode: verified and reported, never refused
    data, mid = message(f"ceo@{TRIAL}")
    [m] = deliver(relay, sink, data, mid)
    assert tier(m) == "unknown (unverified sender)", tier(m)
    assert dkim_results(m) == ["dkim=none"]
    data, mid = message(f"ceo@{TRIAL}")
    [m] = deliver(relay, sink, signed(data, rogue), mid)  # a wrong d=/key: delivered anyway
    assert tier(m).startswith("unknown"), tier(m)
    data, mid = message(f"ceo@{TRIAL}")
    [m] = deliver(relay, sink, signed(data, world.trial_key), mid)
    [res] = dkim_results(m)
    assert res.startswith(f"dkim=pass (anchored key) header.d={TRIAL}"), res
    assert sink.messages() and len(sink.messages()) == 4


def test_user_signature(world, make_relay, py_sink):
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop)
    data, mid = message(ALICE)
    user_field = rx.dkimpy_sign(data, world.alice_key, identity=ALICE)
    assert b"s=anchor-user" in user_field and f"i={ALICE}".encode() in user_field
    both = rx.dkimpy_sign(user_field + data, world.signing["s1"]) + user_field + data
    [m] = deliver(relay, sink, both, mid)
    res = dkim_results(m)
    assert len(res) == 2, res
    assert res[0].startswith("dkim=pass (anchored key)") and "header.s=s1" in res[0], res
    assert res[1].startswith("dkim=pass (user key)"), res
    assert f"header.i={ALICE}" in res[1] and "header.s=anchor-user" in res[1], res
    assert tier(m).startswith(f"known (verified {ALICE} in good standing"), tier(m)
    assert "user verified" in relay.text()

    # the user signature alone is enough for the enforce-mode domain, and names the user
    data, mid = message(ALICE)
    [m] = deliver(relay, sink, signed(data, world.alice_key, identity=ALICE), mid)
    [res] = dkim_results(m)
    assert res.startswith("dkim=pass (user key)"), res
    # the trust list can name the person
    ctl(world, relay, "relay", "trust", "add", BOB, ALICE)
    data, mid = message(ALICE)
    [m] = deliver(relay, sink, signed(data, world.alice_key, identity=ALICE), mid)
    assert tier(m) == f"trusted (verified {ALICE} on trust list)", tier(m)

    # alice's key claiming to be bob's: no key of bob's, no pass, refused (enforce)
    bob = f"bob@{ANCH}"
    data, _ = message(bob)
    r = send(relay, signed(data, world.alice_key, identity=bob))
    assert r.last_code() == 550, r.out
    # alice's signature on mail From someone else of the domain: the domain is verified
    # (her key is one of its keys) but she is not the From address
    carol = f"carol@{ANCH}"
    data, mid = message(carol)
    [m] = deliver(relay, sink, signed(data, world.alice_key, identity=ALICE), mid)
    [res] = dkim_results(m)
    assert res.startswith("dkim=pass (user key)"), res
    assert tier(m).startswith(f"known (verified {carol} in good standing"), tier(m)
    assert f"{carol}: domain verified, anchored" in relay.text()
    assert f"{carol}: user verified" not in relay.text()


def test_log_heads_survive_a_restart(world, make_relay, py_sink):
    """The newest log head seen per anchored domain is kept in state_dir/log-heads.json:
    after a restart, a head of the same size with another root (a fork the key server
    shows to a relay that forgot) is refused instead of believed."""
    import base64

    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop, key_cache_ttl=0)
    data, mid = message(f"team@{ANCH}")
    [m] = deliver(relay, sink, signed(data, world.signing["s1"]), mid)
    assert dkim_results(m)[0].startswith("dkim=pass (anchored key)"), dkim_results(m)

    heads_file = relay.state_dir / "log-heads.json"
    state = json.loads(heads_file.read_text())
    assert ANCH in state["heads"], state
    assert heads_file.stat().st_mode & 0o077 == 0, oct(heads_file.stat().st_mode)
    relay.stop()

    # what the relay remembers now disagrees with the log at the same size
    head = state["heads"][ANCH]
    root = bytearray(base64.b64decode(head["root_hash"]))
    root[0] ^= 0xFF
    head["root_hash"] = base64.b64encode(bytes(root)).decode()
    heads_file.write_text(json.dumps(state))
    relay.start()

    data, mid = message("someone@nowhere.example")
    [m] = deliver(relay, sink, signed(data, world.signing["s1"]), mid)
    [res] = dkim_results(m)
    assert res.startswith("dkim=permerror") and "fork" in res, res
