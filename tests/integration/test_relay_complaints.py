"""A recipient's "this is spam" becomes a signed report to the reputation service
(PROTOCOL.md §12.6 POST /v1/complaints, §12.7, §11.3), end to end with real processes:

    - the reporter is the relay's own domain r1.rep.test, anchored on a real key server
      (repfixtures.build_world: `anchorctl domain init/register`, NSD serving its
      `anchor-dns records`); the relay's report_key/report_chain are the key and the
      certificate + issuer + root of the `signing` server certificate `anchorctl server
      issue` made for reports.r1.rep.test;
    - anchor-reputation (repfixtures.Reputation) discovers r1.rep.test through that NSD
      and the key server's CA, so it accepts reports signed by the relay's signer;
    - a spammer (its own loopback source address, HELO spam.example, a legacy DKIM
      signature of spam.example whose key is in the relay's NSD, or unsigned) sends to
      bob@r1.rep.test; the relay delivers to a sink; bob complains with
      `anchorctl relay complain bob@... --spam|--not-spam FILE` about the delivered copy,
      as the relay's admin (--token-file) or as bob himself (--key: a request signed by
      his enrolled key);
    - checked on the reputation side: the stored report (reporter, category, subjects,
      verified flag, evidence; its JWS verified here with python3-jwcrypto against the
      report certificate), and GET /v1/query counting it;
    - the From domain is reported only when a passing signature is aligned with it;
    - subjects come only from our own trace fields: a sender's forged Authentication-Results
      in our name is removed, its forged Received below ours ignored; a message that
      never passed through the relay (foreign trace fields, or none) is refused with
      400 no_subjects and nothing reaches the service;
    - the service unreachable, failing (5xx, 429) or refusing (403) gives a clear error:
      503 for the temporary ones, the service's own code kept;
    - a message a local user sent through the submission port and the relay delivered
      back to itself over loopback names none of our own hops (ip:127.0.0.1, our HELO,
      our domain as signer): the complaint is refused as "never left our own servers",
      or reports only the foreign signer it carries; anchorctl prints what it reported;
    - a peer that greets the relay's delivery with 554 and hangs up is logged with its
      reply, not as "Connection reset by peer".
"""

import base64
import email.utils
import http.server
import json
import re
import smtplib
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from jwcrypto import jwk, jws

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import relayfixtures as rx
import repfixtures as rp
from relayfixtures import make_relay, py_sink  # noqa: F401

pytestmark = [
    pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built"),
    pytest.mark.skipif(not rp.bin_available(), reason="anchor-reputation is not built"),
]

R1 = rp.zname("r1")            # the relay's own domain and the reports' reporter
MX = f"mx.{R1}"                # the relay's hostname, hence its authserv-id
BOB = f"bob@{R1}"
SPAM = "spam.example"          # a legacy domain: its DKIM key is a TXT record
SPAMMER = f"offers@{SPAM}"


# --------------------------------------------------------------------------
# the world

@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rp.build_world(pg, db, operator_token, request, ["r1"])
    base = w.work / "domains"

    # the relay's report key: the signing certificate anchorctl issued for reports.<R1>
    stem = base / f"reports.{R1}.signing"
    w.report_key = Path(f"{stem}.key")
    assert w.report_key.stat().st_mode & 0o777 == 0o600, oct(w.report_key.stat().st_mode)
    # report_chain as docs/relay-postfix.md makes it: the certificate, then the .chain.pem
    # anchorctl wrote (issuer, root): anchor-reputation wants x5c to end in the pinned root
    leaf = Path(f"{stem}.pem").read_text()
    w.report_cert = leaf
    w.report_chain = w.work / "report-chain.pem"
    w.report_chain.write_text(leaf + Path(f"{stem}.chain.pem").read_text())

    # bob, enrolled in R1 with his own key (for complaints signed by himself)
    w.users = w.work / "users"
    w.users.mkdir()
    kf.ctl_ok(w.ks, "key", "new", BOB, "--dir", w.users, cwd=base)
    tok = kf.issue_token(w.ks.client(), w.doms["r1"], BOB)
    kf.ctl_ok(w.ks, "key", "enroll", BOB, "--token", tok, "--dir", w.users, cwd=base)

    # the spammer's DKIM key, in a zone of the relay's NSD (which also serves the world's
    # zones: the relay discovers R1's pins there to check bob's signed requests)
    w.spam_key = rx.dkim_keys(w.work / "spam", SPAM, "s1", "rsa")
    zone = w.work / "spam.zone"
    zone.write_text(dx.zone_text(SPAM, rx.dns_zone_for(rx.records_of([w.spam_key]), SPAM)))
    w.relay_nsd = dx.Nsd(w.work / "relay-nsd", {**w.nsd.zones, SPAM: zone}).start()
    request.addfinalizer(w.relay_nsd.stop)
    # the service verifies the quoted signatures itself: it sees the spammer's key too
    # the relay's domain is the operator's own: vetted, so that its not-spam about an IP
    # (which has no evidence the service can verify) counts
    w.rep = rp.Reputation(w, w.work / "rep", db, {"resolver": w.relay_nsd.resolver,
                                                  "vetted_reporters": f"{R1} 1"}).start()

    w.admin = anchorlib.make_token()
    w.token_file = w.work / "relay.token"
    w.token_file.write_text(w.admin.token + "\n")
    return w


def start_relay(world, make_relay, py_sink, **kw):
    sink = py_sink()
    settings = dict(control=True, hostname=MX, local_domains=R1, inbound_next_hop=sink.hop,
                    dns_server=world.relay_nsd.resolver, keyserver_cacert=world.tls.ca,
                    reputation_url=world.rep.base_url, reputation_cacert=world.tls.ca,
                    reputation_timeout_ms=5000, reporter_domain=R1,
                    report_key=world.report_key, report_chain=world.report_chain,
                    control_token_hash=world.admin.hash)
    settings.update(kw)
    relay = make_relay(**settings)
    relay.sink = sink
    return relay


# --------------------------------------------------------------------------
# mail and complaints

def spam_message(subject, extra=(), signed=False, world=None, sender=f"Offers <{SPAMMER}>"):
    """A spammer's message (CRLF), DKIM-signed by spam.example's key when signed."""
    mid = f"<{subject.replace(' ', '-')}.{time.time_ns()}@{SPAM}>"
    head = list(extra) + [f"From: {sender}", f"To: <{BOB}>", f"Subject: {subject}",
                          f"Date: {email.utils.formatdate()}", f"Message-ID: {mid}"]
    data = ("\r\n".join(head) + "\r\n\r\nBuy now, cheap.\r\n").encode()
    if signed:
        data = rx.dkimpy_sign(data, world.spam_key) + data
    return data, mid


def deliver(relay, data, src, helo=SPAM):
    """Send data from source address src with HELO helo; the copy the sink received."""
    before = len(relay.sink.messages())
    with smtplib.SMTP("127.0.0.1", relay.inbound_port, local_hostname=helo, timeout=30,
                      source_address=(src, 0)) as s:
        s.sendmail(SPAMMER, [BOB], data)
    return relay.sink.wait_for(before + 1)[before]


def our_authres(m):
    ar = [v for v in m.header("Authentication-Results") if v.split(";")[0].strip() == MX]
    assert len(ar) == 1, m.text
    return ar[0]


def ctl(world, relay, tls, *args):
    """anchorctl against the relay's control API, no inherited ANCHOR_* settings."""
    argv = [anchorlib.binary("anchorctl"), "-s", relay.control_url, "--cacert", tls.ca, *args]
    return anchorlib.run_program(argv, env=dx.clean_env(), timeout=60)


def complain(world, relay, tls, path, category="spam", as_user=False):
    auth = (["--key", str(world.users / f"{BOB}.key")] if as_user
            else ["--token-file", str(world.token_file)])
    return ctl(world, relay, tls, "relay", "complain", BOB, f"--{category}", str(path), *auth)


def save(world, name, data):
    p = world.work / name
    p.write_bytes(data)
    return p


def stored_reports(world, evidence):
    """The reports of R1 stored by anchor-reputation whose evidence is evidence, oldest
    first, as dicts (rep_reports rows)."""
    sql = (f"SELECT row_to_json(r) FROM (SELECT report_id, public_id, category, subjects, "
           f"verified, evidence, source, raw FROM rep_reports WHERE reporter = '{R1}' "
           f"AND evidence = '{evidence}' ORDER BY id) r")
    out = rp.psql(world.pg, world.rep.params["db_conninfo"], sql)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def check_jws(world, raw, report):
    """The stored JWS is the relay signer's: typ, x5c starting with the report certificate,
    a signature that verifies with its key, the payload the service stored."""
    obj = json.loads(raw)
    header = json.loads(base64.urlsafe_b64decode(obj["protected"] + "==="))
    assert header["typ"] == "anchor-report+jws", header
    leaf = kf.load_cert(world.report_cert)
    der = base64.b64decode(header["x5c"][0])
    assert x509.load_der_x509_certificate(der) == leaf
    assert len(header["x5c"]) == 3  # the report certificate, its issuer, the root
    token = jws.JWS()
    token.deserialize(raw)
    token.verify(jwk.JWK.from_pyca(leaf.public_key()))  # raises when it does not verify
    payload = json.loads(token.payload)
    assert payload["type"] == "anchor-report" and payload["reporter"] == R1
    assert payload["id"] == report["report_id"]
    assert re.fullmatch(r"relay-[0-9a-f]{24}", payload["id"]), payload["id"]
    assert payload["category"] == report["category"]
    assert sorted(payload["subjects"]) == sorted(report["subjects"])
    assert payload["verified_identity"] is report["verified"]
    assert payload["evidence"] == report["evidence"]
    observed = time.mktime(time.strptime(payload["observed"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(observed - time.mktime(time.gmtime())) < 120, payload["observed"]
    return payload


def one_report(world, mid, category):
    reps = [r for r in stored_reports(world, f"Message-ID: {mid}") if r["category"] == category]
    assert len(reps) == 1, reps
    r = reps[0]
    assert r["source"] == "jws"
    check_jws(world, r["raw"], r)
    return r


# --------------------------------------------------------------------------
# the tests

def test_spam_complaint_becomes_signed_report(world, make_relay, py_sink, tls):
    src = "127.0.9.1"
    relay = start_relay(world, make_relay, py_sink)
    data, mid = spam_message("cheap watches", signed=True, world=world)
    m = deliver(relay, data, src)
    ar = our_authres(m)
    assert re.search(rf"dkim=pass header\.d={re.escape(SPAM)}", ar), ar
    assert m.header("Received")[0].startswith(f"from {SPAM} ({SPAM} [{src}]) by {MX} "), \
        m.header("Received")
    copy = save(world, "spam1.eml", m.data)

    r = complain(world, relay, tls, copy)
    assert r.rc == 0, r.err
    assert f"spam complaint about {copy} reported for {BOB}" in r.out
    # anchorctl shows what it reported
    for subject in (f"ip:{src}", f"helo:{SPAM}", f"signer:{SPAM}", f"domain:{SPAM}"):
        assert f"reported: {subject}\n" in r.out, r.out
    assert "no hop outside" not in r.out

    rep = one_report(world, mid, "spam")
    assert sorted(rep["subjects"]) == sorted([f"ip:{src}", f"helo:{SPAM}", f"signer:{SPAM}",
                                              f"domain:{SPAM}"])
    assert rep["verified"] is True  # our A-R has the dkim=pass

    a = rp.query(world.rep, ip=src, helo=SPAM, signer=SPAM, domain=SPAM)
    ip = rp.subject_of(a, f"ip:{src}")
    assert ip["reports"] == 1 and ip["reporters"] == 1, ip
    assert ip["bad"] > 0 and ip["score"] > 0, ip
    evidence = [e for x in ip["reasons"] for e in x["evidence"]]
    assert rep["public_id"] in evidence, ip["reasons"]  # cited, without naming R1
    assert not any(R1 in e or rep["report_id"] in e for e in evidence), evidence
    for s in (f"helo:{SPAM}", f"signer:{SPAM}", f"domain:{SPAM}"):
        assert rp.subject_of(a, s)["reports"] >= 1, a
    # the report quotes the header fields (never the body), and the service verified the
    # spammer's signature in them itself: the signer and domain subjects carry weight
    payload = check_jws(world, rep["raw"], rep)
    assert "DKIM-Signature:" in payload["message"] and "cheap watches" in payload["message"]
    assert "Buy now" not in payload["message"]
    for s in (f"signer:{SPAM}", f"domain:{SPAM}"):
        assert rp.subject_of(a, s)["bad"] > 0, a
    assert a["verdict"] != "block"  # one reporter lists nothing
    r = rp.request(world.rep, "GET", f"/v1/reporters/{R1}")
    assert r.status == 200 and r.json()["reports"] >= 1, r.body

    # "not spam" about the same message goes through too, as its own report
    r = complain(world, relay, tls, copy, category="not-spam")
    assert r.rc == 0, r.err
    assert "not-spam complaint" in r.out
    good = one_report(world, mid, "not-spam")
    assert good["report_id"] != rep["report_id"]
    assert sorted(good["subjects"]) == sorted(rep["subjects"]) and good["verified"] is True
    ip = rp.subject_of(rp.query(world.rep, ip=src), f"ip:{src}")
    assert ip["reports"] == 2, ip
    assert ip["good"] > 0, ip  # verified: a not-spam report earns positive weight
    assert "control: spam complaint (admin," in relay.text()


def test_unaligned_from_domain_not_reported(world, make_relay, py_sink, tls):
    """spam.example signs a message From a bank: the signer is reported, the From domain
    (which no passing signature vouches for) is not."""
    src = "127.0.9.6"
    relay = start_relay(world, make_relay, py_sink)
    data, mid = spam_message("your account", signed=True, world=world,
                             sender="Bank <security@bank.example>")
    m = deliver(relay, data, src)
    assert f"dkim=pass header.d={SPAM}" in our_authres(m)
    r = complain(world, relay, tls, save(world, "bank.eml", m.data), as_user=True)
    assert r.rc == 0, r.err
    rep = one_report(world, mid, "spam")
    assert sorted(rep["subjects"]) == sorted([f"ip:{src}", f"helo:{SPAM}", f"signer:{SPAM}"])
    assert rep["verified"] is True
    assert rp.subject_of(rp.query(world.rep, domain="bank.example"),
                         "domain:bank.example")["reports"] == 0


def test_user_signed_complaint_ignores_forged_trace_fields(world, make_relay, py_sink, tls):
    """Unsigned spam carrying an Authentication-Results in the relay's name and a Received
    'by' the relay: the first is removed at the door, the second is below ours; the report
    names only what the relay saw."""
    src = "127.0.9.2"
    relay = start_relay(world, make_relay, py_sink)
    forged = [f"Authentication-Results: {MX}; dkim=pass header.d=victim.example "
              "header.s=x; csa=pass smtp.helo=victim.example",
              f"Received: from mx.victim.example (mx.victim.example [192.0.2.9]) by {MX} "
              f"(anchor-relay) with ESMTP; {email.utils.formatdate()}"]
    data, mid = spam_message("forged trace", extra=forged)
    m = deliver(relay, data, src)
    ar = our_authres(m)
    assert "victim" not in ar and "dkim=none" in ar, ar
    received = m.header("Received")
    assert received[0].startswith(f"from {SPAM} ({SPAM} [{src}]) by {MX} "), received
    assert any("192.0.2.9" in v for v in received[1:]), received  # the forgery, kept below
    copy = save(world, "forged.eml", m.data)

    r = complain(world, relay, tls, copy, as_user=True)
    assert r.rc == 0, r.err
    rep = one_report(world, mid, "spam")
    assert sorted(rep["subjects"]) == sorted([f"ip:{src}", f"helo:{SPAM}"]), rep
    assert rep["verified"] is False
    ip = rp.subject_of(rp.query(world.rep, ip=src, helo=SPAM), f"ip:{src}")
    assert ip["reports"] == 1, ip
    assert rp.subject_of(rp.query(world.rep, ip="192.0.2.9"), "ip:192.0.2.9")["reports"] == 0
    assert rp.subject_of(rp.query(world.rep, signer="victim.example"),
                         "signer:victim.example")["reports"] == 0
    assert "control: spam complaint (user," in relay.text()


def test_foreign_message_refused(world, make_relay, py_sink, tls):
    """Trace fields another host wrote (or none at all) give no subjects: 400 no_subjects,
    and nothing reaches anchor-reputation."""
    relay = start_relay(world, make_relay, py_sink)
    date = email.utils.formatdate()
    foreign, _ = spam_message("foreign", extra=[
        "Received: from spam.example (spam.example [127.0.9.3]) by mx.elsewhere.example "
        f"(anchor-relay) with ESMTP; {date}",
        "Authentication-Results: mx.elsewhere.example; dkim=pass header.d=spam.example"])
    bare, _ = spam_message("no trace fields at all")
    before = rp.rep_snapshot(world.pg, world.rep.params["db_conninfo"])
    for name, data in (("foreign.eml", foreign), ("bare.eml", bare)):
        r = complain(world, relay, tls, save(world, name, data))
        assert r.rc == 1, (name, r.out, r.err)
        assert "no_subjects" in r.err and MX in r.err, r.err
    r = complain(world, relay, tls, world.work / "foreign.eml", as_user=True)
    assert r.rc == 1 and "no_subjects" in r.err, r.err
    c = anchorlib.Client(relay.control_url, tls.ca)
    body = {"category": "spam", "message": base64.b64encode(foreign).decode()}
    r = c.post("/v1/complaints", body, token=world.admin.token)
    assert (r.status, r.error_code()) == (400, "no_subjects"), r.body
    assert rp.rep_snapshot(world.pg, world.rep.params["db_conninfo"]) == before


# --------------------------------------------------------------------------
# the service down, failing or refusing

class Stub:
    """An HTTPS service (the world's certificate) answering every POST with .status and
    a §1.1 error body of .code."""

    def __init__(self, tls):
        self.status, self.code, self.hits = 500, "internal", 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.hits += 1
                body = json.dumps({"error": outer.code, "message": "stub says no"}).encode()
                self.send_response(outer.status)
                if outer.status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def traced_message(src, subject):
    """A message as the relay delivers it: our Received and Authentication-Results on top
    (these tests are about the service, not about the door)."""
    data, mid = spam_message(subject, extra=[
        f"Received: from {SPAM} ({SPAM} [{src}])\r\n\tby {MX} (anchor-relay) with ESMTP;"
        f"\r\n\t{email.utils.formatdate()}",
        f"Authentication-Results: {MX};\r\n\tdkim=none"])
    return data, mid


def test_reputation_service_down_or_refusing(world, make_relay, py_sink, tls, request):
    data, mid = traced_message("127.0.9.4", "while the service is down")
    path = save(world, "down.eml", data)
    body = {"category": "spam", "message": base64.b64encode(data).decode()}

    # nothing listens: 503 unreachable
    down = start_relay(world, make_relay, py_sink,
                       reputation_url=f"https://127.0.0.1:{dx.closed_port()}",
                       reputation_timeout_ms=2000, reputation_on_error="open")
    r = complain(world, down, tls, path)
    assert r.rc == 1 and "unreachable" in r.err and "anchor-reputation" in r.err, r.err
    c = anchorlib.Client(down.control_url, tls.ca)
    r = c.post("/v1/complaints", body, token=world.admin.token)
    assert (r.status, r.error_code()) == (503, "unreachable"), r.body

    # a service that fails or refuses: 5xx and 429 become 503, its code kept; a 4xx stays
    stub = Stub(world.tls)
    request.addfinalizer(stub.stop)
    failing = start_relay(world, make_relay, py_sink,
                          reputation_url=f"https://127.0.0.1:{stub.port}",
                          reputation_on_error="open")
    c = anchorlib.Client(failing.control_url, tls.ca)
    for status, code, want in ((500, "internal", 503), (503, "db_unavailable", 503),
                               (429, "rate_limited", 503),
                               (403, "reporter_not_anchored", 403)):
        stub.status, stub.code = status, code
        hits = stub.hits
        r = c.post("/v1/complaints", body, token=world.admin.token)
        assert (r.status, r.error_code()) == (want, code), (status, r.body)
        assert f"HTTP {status}" in r.json()["message"], r.body
        assert stub.hits == hits + 1  # the report was really sent
    stub.status, stub.code = 503, "db_unavailable"
    r = complain(world, failing, tls, path, as_user=True)
    assert r.rc == 1 and "db_unavailable" in r.err, r.err
    assert stored_reports(world, f"Message-ID: {mid}") == []


def test_complaints_misconfigured(world, make_relay, py_sink, tls):
    """What a complaint gets from a relay that cannot report (§12.6's error table)."""
    data, mid = traced_message("127.0.9.5", "misconfigured")
    body = {"category": "spam", "message": base64.b64encode(data).decode()}
    cases = [
        # a reporter domain with no anchor: the service refuses the report (403)
        (dict(reporter_domain=rp.zname("legacy")), 403, "reporter_not_anchored"),
        (dict(report_key=None, report_chain=None), 404, "no_report_key"),
        (dict(reputation_url=None), 503, "reputation_disabled"),
    ]
    for kw, status, code in cases:
        relay = start_relay(world, make_relay, py_sink, **kw)
        c = anchorlib.Client(relay.control_url, tls.ca)
        r = c.post("/v1/complaints", body, token=world.admin.token)
        assert (r.status, r.error_code()) == (status, code), (kw, r.body)
        relay.stop()
    relay = start_relay(world, make_relay, py_sink)
    c = anchorlib.Client(relay.control_url, tls.ca)
    for bad, code in (({"category": "phishing", "message": body["message"]}, "bad_category"),
                      ({"category": "spam", "message": "%%% not base64"}, "bad_message"),
                      ({"category": "spam"}, "bad_request")):
        r = c.post("/v1/complaints", bad, token=world.admin.token)
        assert (r.status, r.error_code()) == (400, code), (bad, r.body)
    r = c.post("/v1/complaints", body)  # no credentials
    assert (r.status, r.error_code()) == (401, "unauthorized"), r.body
    assert stored_reports(world, f"Message-ID: {mid}") == []


# --------------------------------------------------------------------------
# our own hops (local submission delivered back to us)

def submit(relay, data, rcpt, sender=f"alice@{R1}"):
    """Hand data to the relay's submission port as the local MTA does (from 127.0.0.1)."""
    with smtplib.SMTP("127.0.0.1", relay.ports["submission"], local_hostname=f"mail.{R1}",
                      timeout=30) as s:
        s.sendmail(sender, [rcpt], data)


def looped_copy(world, relay, out, data):
    """data sent by a local user through the submission port (the relay delivers it to the
    MX of spam.example, which is the sink out), then handed to the relay's own inbound from
    127.0.0.1 with our own HELO, exactly as the relay's outbound would when the recipient's
    MX is the relay itself: the copy bob's mailbox gets."""
    before = len(out.messages())
    submit(relay, data, f"friend@{SPAM}")
    sent = out.wait_for(before + 1)[before]
    top = sent.header("Received")[0]
    assert top.startswith(f"from mail.{R1} ([127.0.0.1]) by {MX} (anchor-relay)"), top
    m = deliver(relay, sent.data, "127.0.0.1", helo=MX)
    assert m.header("Received")[0].startswith(f"from {MX} ({MX} [127.0.0.1]) by {MX} "), \
        m.header("Received")
    return m


def test_complaint_never_names_our_own_hops(world, make_relay, py_sink, tls):
    out = py_sink()
    relay = start_relay(world, make_relay, py_sink, smtp_port=out.port)

    # a purely local message: nothing foreign in it, so nothing is reported, and said so
    # (From a domain of ours without an anchor: the relay has no key of R1 to sign with
    # here, and R1's enforce mode would refuse it unsigned)
    mid = f"<local.{time.time_ns()}@{R1}>"
    data = (f"From: Alice <alice@{rp.zname('legacy')}>\r\nTo: <friend@{SPAM}>\r\nSubject: lunch\r\n"
            f"Date: {email.utils.formatdate()}\r\nMessage-ID: {mid}\r\n\r\nat noon\r\n"
            ).encode()
    copy = save(world, "looped.eml", looped_copy(world, relay, out, data).data)
    r = complain(world, relay, tls, copy)
    assert r.rc == 1, r.out
    assert "no_subjects" in r.err and "never left our own servers" in r.err, r.err
    assert stored_reports(world, f"Message-ID: {mid}") == []

    # a local user passes on a message spam.example signed: only spam.example is named,
    # never 127.0.0.1, our HELO or our domain, and anchorctl says no hop was reported
    spam, mid = spam_message("forwarded offer", signed=True, world=world)
    copy = save(world, "looped-spam.eml", looped_copy(world, relay, out, spam).data)
    r = complain(world, relay, tls, copy)
    assert r.rc == 0, r.err
    rep = one_report(world, mid, "spam")
    assert sorted(rep["subjects"]) == sorted([f"signer:{SPAM}", f"domain:{SPAM}"]), rep
    assert rep["verified"] is True  # the foreign signature passed
    assert f"reported: signer:{SPAM}" in r.out and "127.0.0.1" not in r.out, r.out
    assert "no hop outside our own servers (local submission)" in r.out, r.out
    assert not any(R1 in x or "127.0.0.1" in x for x in rep["subjects"]), rep

    # the relay's own address stops being ours when own_networks leaves it out: the same
    # looped copy then names 127.0.0.1 as the source (the setting is what decides), but
    # never our name, even as the HELO a client claims
    relay.stop()
    relay2 = start_relay(world, make_relay, py_sink, smtp_port=out.port,
                         own_networks="192.0.2.1")
    spam, mid = spam_message("forwarded offer again", signed=True, world=world)
    copy = save(world, "looped-spam2.eml", looped_copy(world, relay2, out, spam).data)
    r = complain(world, relay2, tls, copy)
    assert r.rc == 0, r.err
    rep = one_report(world, mid, "spam")
    assert sorted(rep["subjects"]) == sorted(["ip:127.0.0.1", f"signer:{SPAM}",
                                              f"domain:{SPAM}"]), rep


class RefusingPeer:
    """An SMTP server that greets with 554, as a relay refusing a listed client does, and
    hangs up at once."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"554 5.7.1 Refused by reputation service: listed (test)\r\n")
            conn.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


def test_refused_delivery_logs_the_reply(world, make_relay, py_sink, tls, request):
    peer = RefusingPeer()
    request.addfinalizer(peer.stop)
    relay = start_relay(world, make_relay, py_sink, smtp_port=peer.port)
    data = (f"From: <alice@{R1}>\r\nTo: <friend@{SPAM}>\r\nSubject: hi\r\n"
            f"Date: {email.utils.formatdate()}\r\n\r\nhello\r\n").encode()
    submit(relay, data, f"friend@{SPAM}")
    pattern = re.compile(rf"to=<friend@{re.escape(SPAM)}> status=deferred ([^\n]*)")
    deadline = time.monotonic() + 30
    while (m := pattern.search(relay.text())) is None:
        assert time.monotonic() < deadline, relay.text()[-4000:]
        time.sleep(0.1)
    why = m.group(1)
    assert "greeting refused" in why and "554 5.7.1 Refused by reputation service: listed" \
        in why, why
    assert "reset" not in why and "closed" not in why, why
