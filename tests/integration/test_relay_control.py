"""The relay's control API (PROTOCOL.md §12) and proof-of-work, end to end:

    - `anchorctl relay ...` as the relay's admin (bearer token) and as the recipient
      itself (--key: a request signed by its own enrolled key, which the relay checks
      against the pins its domain publishes in DNS: a real key server, NSD on loopback);
    - lists survive a SIGKILL of the relay (written and fsync'd before the answer);
    - signed requests cannot be replayed, redirected or signed by another user (requests
      built here with python3-jwcrypto, independently of anchorctl);
    - stamps made by the Debian `hashcash` tool lift a message from unknown to known
      exactly once.
"""

import base64
import json
import re
import shutil
import smtplib
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import anchorlib
import dnsfixtures as dx
import doccmds
import ksfixtures as kf
import routefixtures as rf
from relayfixtures import make_relay, py_sink, swaks  # noqa: F401

PARENT = "rctl.test"
KS = f"keys.{PARENT}"
DOMAIN = f"mail.{PARENT}"
BOB, CAROL = f"bob@{DOMAIN}", f"carol@{DOMAIN}"
HASHCASH = shutil.which("hashcash")


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    """A key server hosting DOMAIN, its zone in NSD, and bob and carol enrolled."""
    work = anchorlib.mktemp_dir("anchor-rctl-")
    tls = dx.make_tls(work / "tls", [KS])
    ks = anchorlib.Keyserver(work / "ks", db, tls, operator_token.hash)
    w = SimpleNamespace(work=work, ks_tls=tls, ks=ks, nsd=None, token=anchorlib.make_token())

    def finish():
        if w.nsd:
            w.nsd.stop()
        ks.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks.start()
    base = work / "domains"
    w.dom = kf.register_domain(ks, base, DOMAIN, operator_token.token)
    r = dx.anchor_dns("records", DOMAIN, "-s", ks.base_url, "--cacert", tls.ca,
                      "--keyserver", f"{KS}:{ks.port}:10:10")
    assert r.rc == 0, r.err
    zdir = work / "zones"
    zdir.mkdir()
    zones = {PARENT: zdir / "parent.zone", DOMAIN: zdir / "mail.zone"}
    zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
    zones[DOMAIN].write_text(dx.zone_text(DOMAIN, r.out, mx=False))
    w.nsd = dx.Nsd(work / "nsd", zones).start()

    w.users = work / "users"
    w.users.mkdir()
    for addr in (BOB, CAROL):
        kf.ctl_ok(ks, "key", "new", addr, "--dir", w.users, cwd=base)
        tok = kf.issue_token(ks.client(), w.dom, addr)
        kf.ctl_ok(ks, "key", "enroll", addr, "--token", tok, "--dir", w.users, cwd=base)
    w.token_file = work / "relay.token"
    w.token_file.write_text(w.token.token + "\n")
    return w


def start_relay(world, make_relay, **kw):
    return make_relay(control=True, local_domains=DOMAIN, dns_server=world.nsd.resolver,
                      keyserver_cacert=world.ks_tls.ca, control_token_hash=world.token.hash,
                      **kw)


def ctl(world, relay, tls, *args):
    """anchorctl against the relay's control API, without inherited ANCHOR_* settings."""
    env = dx.clean_env()
    argv = [anchorlib.binary("anchorctl"), "-s",
            f"https://127.0.0.1:{relay.ports['control']}", "--cacert", tls.ca, *args]
    return anchorlib.run_program(argv, env=env, timeout=60)


def key_of(world, addr):
    return ["--key", str(world.users / f"{addr}.key")]


def lists(world, relay, tls, rcpt, *auth):
    r = ctl(world, relay, tls, "relay", "list", rcpt, "--json", *auth)
    assert r.rc == 0, r.err
    return json.loads(r.out)


def test_admin_lists(world, make_relay, tls):
    relay = start_relay(world, make_relay)
    admin = ["--token-file", str(world.token_file)]

    r = ctl(world, relay, tls, "relay", "trust", "add", BOB, "Alice@Example.ORG", *admin)
    assert r.rc == 0, r.err
    assert "added to the trust list" in r.out
    assert ctl(world, relay, tls, "relay", "block", "add", BOB, "Spam.Example", *admin).rc == 0
    assert ctl(world, relay, tls, "relay", "subscribe", "add", BOB, "@news.example",
               *admin).rc == 0
    got = lists(world, relay, tls, BOB, *admin)
    assert got == {"address": BOB, "trust": ["alice@example.org"], "block": ["@spam.example"],
                   "subscribe": ["@news.example"]}
    r = ctl(world, relay, tls, "relay", "list", BOB, *admin)
    assert r.rc == 0 and "trust:" in r.out and "alice@example.org" in r.out

    # durable before acknowledged: a SIGKILL right after loses nothing
    relay.restart(sig=9)
    assert lists(world, relay, tls, BOB, *admin)["block"] == ["@spam.example"]

    assert ctl(world, relay, tls, "relay", "block", "remove", BOB, "spam.example",
               *admin).rc == 0
    r = ctl(world, relay, tls, "relay", "block", "remove", BOB, "spam.example", *admin)
    assert r.rc == 1 and "not_listed" in r.err
    r = ctl(world, relay, tls, "relay", "trust", "add", BOB, "not an entry", *admin)
    assert r.rc == 1 and "bad_entry" in r.err
    r = ctl(world, relay, tls, "relay", "list", "x@elsewhere.example", *admin)
    assert r.rc == 1 and "unknown_domain" in r.err
    bad = world.work / "bad.token"
    bad.write_text("not-the-token\n")
    r = ctl(world, relay, tls, "relay", "list", BOB, "--token-file", str(bad))
    assert r.rc == 1 and "unauthorized" in r.err
    r = ctl(world, relay, tls, "relay", "list", BOB)  # no credentials at all
    assert r.rc == 1 and "no_token" in r.err


def test_user_signed(world, make_relay, tls):
    relay = start_relay(world, make_relay)

    r = ctl(world, relay, tls, "relay", "trust", "add", BOB, "friend@example.org",
            *key_of(world, BOB))
    assert r.rc == 0, r.err
    assert lists(world, relay, tls, BOB, *key_of(world, BOB))["trust"] == ["friend@example.org"]
    # two requests within the same second are both fine (not replays)
    for entry in ("a@example.org", "b@example.org"):
        r = ctl(world, relay, tls, "relay", "block", "add", BOB, entry, *key_of(world, BOB))
        assert r.rc == 0, r.err
    # carol cannot act for bob, even with a valid key of bob's domain
    r = ctl(world, relay, tls, "relay", "trust", "add", BOB, "x@example.org",
            *key_of(world, CAROL))
    assert r.rc == 1 and "wrong_signer" in r.err
    # a complaint by the recipient, with no reputation service configured
    msg = world.work / "spam.eml"
    msg.write_text("From: s@spam.example\nSubject: buy\n\nnow\n")
    r = ctl(world, relay, tls, "relay", "complain", BOB, "--spam", str(msg), *key_of(world, BOB))
    assert r.rc == 1 and "reputation_disabled" in r.err
    assert lists(world, relay, tls, CAROL, *key_of(world, CAROL))["trust"] == []


def signed(world, addr, method, path, issued=None, body=None, signer=None):
    """A request as PROTOCOL.md §12 describes it, signed with python3-jwcrypto."""
    from cryptography.hazmat.primitives import serialization
    who = signer or addr
    key = serialization.load_pem_private_key((world.users / f"{who}.key").read_bytes(), None)
    text = (world.users / f"{who}.pem").read_text() + \
        (world.users / f"{who}.chain.pem").read_text()
    end = "-----END CERTIFICATE-----"
    pems = [p.strip() + f"\n{end}\n" for p in text.split(end) if p.strip()]
    when = time.time() if issued is None else issued
    payload = {"type": "anchor-relay-request", "address": addr, "method": method,
               "path": path, "body": body,
               "issued": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))}
    return rf.sign(key, pems, payload, "anchor-relay-request+jws")


def test_signed_requests_refused(world, make_relay, tls):
    relay = start_relay(world, make_relay)
    client = anchorlib.Client(f"https://127.0.0.1:{relay.ports['control']}", tls.ca)
    hdr = {"Content-Type": "application/json"}
    path = f"/v1/lists/{BOB}/trust/z@example.org"

    # issued a little ahead (a client clock may be): later requests now look older
    req = signed(world, BOB, "PUT", path, issued=time.time() + 30)
    r = client.put(path, req, headers=hdr)
    assert r.status == 200, r.body
    # the same request again: replayed
    r = client.put(path, req, headers=hdr)
    assert (r.status, r.error_code()) == (409, "replayed")
    # replayed against another path or method: refused as such
    other = f"/v1/lists/{BOB}/block/z@example.org"
    r = client.put(other, req, headers=hdr)
    assert (r.status, r.error_code()) == (400, "request_mismatch")
    r = client.delete(path, body=req, headers=hdr)
    assert (r.status, r.error_code()) == (400, "request_mismatch")
    # older than the newest accepted from this key
    r = client.put(other, signed(world, BOB, "PUT", other), headers=hdr)
    assert (r.status, r.error_code()) == (409, "replayed")
    # signed before the relay started (its replay memory is not on disk)
    r = client.put(other, signed(world, BOB, "PUT", other, issued=time.time() - 60),
                   headers=hdr)
    assert (r.status, r.error_code()) == (400, "stale_request")
    # out of the window
    r = client.put(other, signed(world, BOB, "PUT", other, issued=time.time() - 600),
                   headers=hdr)
    assert (r.status, r.error_code()) == (400, "stale_request")
    # for another recipient than the URL's
    carol_path = path.replace(BOB, CAROL)
    r = client.put(carol_path, signed(world, BOB, "PUT", carol_path, issued=time.time() + 40),
                   headers=hdr)
    assert (r.status, r.error_code()) == (400, "address_mismatch")
    # tampered payload
    text = json.loads(signed(world, BOB, "PUT", other))
    p = json.loads(rf.b64url_decode(text["payload"]))
    p["path"] = path
    text["payload"] = rf.b64url(json.dumps(p).encode())
    r = client.put(path, json.dumps(text), headers=hdr)
    assert (r.status, r.error_code()) == (422, "jws_signature")
    # nothing of it reached the lists but the one good request
    got = client.get(f"/v1/lists/{BOB}", token=world.token.token).json()
    assert "z@example.org" in got["trust"] and "z@example.org" not in got["block"]


def stamp(bits, resource, extra=()):
    r = subprocess.run([HASHCASH, "-m", "-b", str(bits), "-X", *extra, resource],
                       capture_output=True, text=True, timeout=120, check=True)
    line = r.stdout.strip()
    assert line.startswith("X-Hashcash: 1:"), line
    return line


def tier_of(msg):
    values = msg.header("X-Anchor-Tier")
    assert len(values) == 1, msg.text
    return values[0]


def test_hashcash_stamps(world, make_relay, py_sink):
    sink = py_sink()
    relay = start_relay(world, make_relay, inbound_next_hop=sink.hop, pow_bits=16)
    good = stamp(16, BOB)
    cases = [
        (good, "known"),                         # a real stamp lifts the stranger
        (good, "unknown"),                       # ... once
        (stamp(16, CAROL), "unknown"),           # carol's stamp is not bob's
        (stamp(8, BOB), "unknown"),              # too few bits
    ]
    for i, (header, _) in enumerate(cases):
        r = swaks(relay.ports["inbound"], sender="stranger@legacy.example", to=BOB,
                  headers=[header], body=f"message {i}")
        assert r.last_code() == 250, r.out
        sink.wait_for(i + 1)
    msgs = sink.messages()
    assert len(msgs) == len(cases)
    for (header, want), m in zip(cases, msgs):
        assert tier_of(m).startswith(want), (header, tier_of(m))
    assert "proof-of-work" in tier_of(msgs[0])


def name_only_cert(tls, directory, name):
    """A certificate from the test CA for name alone (no IP address), as a relay whose
    control API presents its mta certificate has."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key, csr, cert, ext = d / "named.key", d / "named.csr", d / "named.pem", d / "named.ext"
    anchorlib._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                       "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{name}\n")
    anchorlib._openssl("x509", "-req", "-in", str(csr), "-CA", str(tls.ca), "-CAkey",
                       str(tls.ca_key), "-CAcreateserial", "-out", str(cert), "-days", "2",
                       "-extfile", str(ext))
    return cert, key


def test_resolve_reaches_the_control_api_by_its_certificate_name(world, make_relay, tls):
    """--resolve HOST:PORT:ADDR: the URL names the certificate's host, the connection goes
    to ADDR, TLS still checks the name; no /etc/hosts entry (relay-postfix.md §8)."""
    name = "mx.control.test"  # resolves nowhere
    cert, key = name_only_cert(tls, world.work / "named-tls", name)
    relay = start_relay(world, make_relay, tls_cert_file=cert, tls_key_file=key)
    port = relay.ports["control"]
    admin = ["--token-file", str(world.token_file), "relay", "list", BOB]
    env = dx.clean_env()

    def run(url, *args):
        return anchorlib.run_program([anchorlib.binary("anchorctl"), "-s", url, "--cacert",
                                      tls.ca, *args], env=env, timeout=60)

    r = run(f"https://{name}:{port}", "--resolve", f"{name}:{port}:127.0.0.1", *admin)
    assert r.rc == 0, r.err
    assert r.out.startswith(f"lists of {BOB}"), r.out
    # also after the command, and with the IPv4 address bracketed
    r = run(f"https://{name}:{port}", *admin, "--resolve", f"{name}:{port}:[127.0.0.1]")
    assert r.rc == 0, r.err
    # what the option replaces: the address in the URL fails TLS's name check, the name
    # alone does not resolve
    r = run(f"https://127.0.0.1:{port}", *admin)
    assert r.rc == 1 and "anchorctl: tls:" in r.err, r.err
    r = run(f"https://{name}:{port}", *admin)
    assert r.rc == 1 and "anchorctl: network:" in r.err, r.err
    # the name is still checked: another name pointed at the relay is refused
    r = run(f"https://other.control.test:{port}", "--resolve",
            f"other.control.test:{port}:127.0.0.1", *admin)
    assert r.rc == 1 and "anchorctl: tls:" in r.err, r.err
    # an entry that would silently not apply, or is malformed, is a usage error
    for bad, text in ((f"{name}:{port + 1}:127.0.0.1", "it would not be used"),
                      (f"elsewhere.test:{port}:127.0.0.1", "it would not be used"),
                      (f"{name}:{port}:mx.example", "not an IPv4 or IPv6 address"),
                      (f"{name}:x:127.0.0.1", "is not a port"),
                      (f"{name}", "HOST:PORT:ADDR")):
        r = run(f"https://{name}:{port}", "--resolve", bad, *admin)
        assert r.rc == 2 and text in r.err, (bad, r.err)


def test_guide_resolve_command_runs_as_written(world, make_relay, tls):
    """docs/relay-postfix.md §8's --resolve command, run as the guide writes it with the
    test's names, port, CA and token in place of the example's."""
    name = "mx.control.test"
    cert, key = name_only_cert(tls, world.work / "guide-tls", name)
    relay = start_relay(world, make_relay, tls_cert_file=cert, tls_key_file=key)
    r = doccmds.run("relay-postfix.md", "relay-control-resolve", {
        "mx.example.com": name, "10443": relay.ports["control"],
        "example.com/root.pem": tls.ca, "/etc/anchor/relay.token": world.token_file,
        "bob@example.com": BOB})
    assert r.rc == 0, r.err
    assert r.out.startswith(f"lists of {BOB}"), r.out


def test_sender_sees_its_own_queued_message(world, make_relay, tls):
    """GET /v1/queue/{id} by the user who sent the message, signed by its key: its own
    message only (PROTOCOL.md §12.6); `anchorctl relay status --key`."""
    closed = dx.free_port()  # nothing listens: the message stays queued, deferred
    relay = start_relay(world, make_relay, inbound_next_hop=f"smtp:127.0.0.1:{closed}")
    with smtplib.SMTP("127.0.0.1", relay.inbound_port, timeout=30) as s:
        s.ehlo("sender.example")
        s.mail(BOB)
        s.rcpt(CAROL)
        code, text = s.data(b"From: <someone@legacy.example>\r\nTo: <" + CAROL.encode() +
                            b">\r\nSubject: held\r\n\r\nbody\r\n")
    assert code == 250, text
    qid = re.search(rb"queued as ([0-9a-f]+)", text).group(1).decode()
    r = ctl(world, relay, tls, "relay", "status", qid, "--json", *key_of(world, BOB))
    assert r.rc == 0, r.err
    got = json.loads(r.out)
    assert got["sender"] == BOB and [x["rcpt"] for x in got["rcpts"]] == [CAROL]
    # another user of the domain, with a valid key of its own: not its message
    r = ctl(world, relay, tls, "relay", "status", qid, *key_of(world, CAROL))
    assert r.rc == 1 and "not_queued" in r.err, r.err
    r = ctl(world, relay, tls, "relay", "withdraw", qid, CAROL, *key_of(world, CAROL))
    assert r.rc == 1 and "not_queued" in r.err, r.err
    # the owner may ask to withdraw, but only a recipient awaiting a decision
    r = ctl(world, relay, tls, "relay", "withdraw", qid, CAROL, *key_of(world, BOB))
    assert r.rc == 1 and "not_awaiting" in r.err, r.err
    # the admin sees it as before
    r = ctl(world, relay, tls, "relay", "status", qid, "--token-file", str(world.token_file))
    assert r.rc == 0 and qid in r.out, r.err
