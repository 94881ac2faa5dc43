"""anchorctl as a reporter (PROTOCOL.md §11.3, §11.4, §11.6): `anchorctl report` signs a
report with a user's or a host's key of the reporter's anchored domain, or imports an ARF
message, and shows what the service accepted; `anchorctl delist request|show` asks for a
review and follows its public trail.  Everything runs against the real anchor-reputation,
whose reporter domains are anchored through a real key server and NSD (repfixtures)."""

import email.utils
import json
import re
import secrets
import time
from types import SimpleNamespace

import pytest

import anchorlib
import ksfixtures as kf
import repfixtures as rx
import routefixtures as rf

REPORTERS = ["r1", "r2", "r3", "r4"]


def csa_records(label):
    return "" if label != "good" else (
        "_client._smtp.mx1 IN SRV 1 2 0 mx1.good.rep.test.\nmx1 IN A 127.0.0.1\n")


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rx.build_world(pg, db, operator_token, request, REPORTERS + ["good", "users"],
                       extra_zone=csa_records)
    # domains listed on the reporters' word (verified evidence: test_reputation_scoring)
    w.rep = rx.Reputation(w, w.work / "rep", db, {"signed_evidence": "no"}).start()
    w.db = db
    w.base = w.work / "domains"
    # the service as anchorctl's -s/--cacert see it
    w.svc = SimpleNamespace(base_url=w.rep.base_url, tls=w.tls)
    return w


def ctl(world, *args, env=None):
    return kf.run_ctl(world.svc, *args, cwd=world.base, env=env)


def signing_key(world, label):
    return str(world.base / f"{world.reporters[label].host}.signing.key")


def stored_report(world, reporter, rid):
    return rx.psql(world.pg, world.db,
                   f"SELECT count(*) FROM rep_reports WHERE reporter = '{reporter}' "
                   f"AND report_id = '{rid}'")


def test_report_signed_with_a_host_key(world):
    r1 = world.reporters["r1"]
    r = ctl(world, "report", "ip:192.0.2.81", "helo:MX.Spam.Example", "--key",
            signing_key(world, "r1"), "--evidence", "Message-ID: <x1@spam.example>")
    assert r.rc == 0, r.err
    m = re.search(r"^accepted: report (\S+)/(anchorctl-[0-9a-f]{24}) \(spam\)$", r.out, re.M)
    assert m and m.group(1) == r1.name, r.out
    assert re.search(r"^subjects: ip:192\.0\.2\.81 helo:mx\.spam\.example$", r.out, re.M), r.out
    assert stored_report(world, r1.name, m.group(2)) == "1"
    s = rx.subject_of(rx.query(world.rep, ip="192.0.2.81"), "ip:192.0.2.81")
    assert s["reports"] == 1 and s["reporters"] == 1


def test_report_id_repeats_once_and_json(world):
    key = signing_key(world, "r2")
    args = ["report", "domain:spam.example", "--key", key, "--id", "case-7",
            "--category", "phishing"]
    assert ctl(world, *args).rc == 0
    r = ctl(world, *args)
    assert r.rc == 0, r.err
    assert "duplicate: report r2.rep.test/case-7 was received before; nothing changed" in r.out
    r = ctl(world, "--json", *args)
    assert r.rc == 0 and json.loads(r.out)["duplicate"] is True


def test_report_signed_with_a_user_key(world):
    """A user enrolled with anchorctl reports with its own key; the reporter is its domain."""
    dom = world.doms["users"].name
    addr = f"alice@{dom}"
    users = world.base / "users"
    tok = kf.ctl_ok(world.ks, "token", "issue", addr, cwd=world.base).out.strip()
    assert kf.run_ctl(world.ks, "key", "new", addr, "--dir", str(users), cwd=world.base).rc == 0
    r = kf.run_ctl(world.ks, "key", "enroll", addr, "--token", tok, "--dir", str(users),
                   cwd=world.base)
    assert r.rc == 0, r.err
    r = ctl(world, "report", "ip:192.0.2.82", "--key", str(users / f"{addr}.key"))
    assert r.rc == 0, r.err
    assert f"accepted: report {dom}/" in r.out


def test_report_refused_shows_the_service_reason(world):
    """r1's key cannot speak for r2: the service's code and sentence reach the user, and
    nothing is stored."""
    before = rx.rep_snapshot(world.pg, world.db)
    r = ctl(world, "report", "ip:192.0.2.83", "--key", signing_key(world, "r1"),
            "--reporter", world.reporters["r2"].name)
    assert r.rc == 1
    assert re.search(r"anchorctl: (pin_mismatch|signer_outside_domain): ", r.err), r.err
    r = ctl(world, "report", "ip:not-an-ip", "--key", signing_key(world, "r1"))
    assert r.rc == 1 and "bad_subject" in r.err, r.err
    assert rx.rep_snapshot(world.pg, world.db) == before


def test_report_usage_errors(world):
    key = signing_key(world, "r1")
    for args, text in ((["report", "ip:192.0.2.1"], "give --key FILE"),
                       (["report", "--key", key], "name at least one subject"),
                       (["report", "ip:192.0.2.1", "--key", key, "--arf", "x.eml"],
                        "--arf gives the subjects")):
        r = ctl(world, *args)
        assert r.rc == 2 and text in r.err, (args, r.err)
    r = anchorlib.run_program([anchorlib.binary("anchorctl"), "report", "ip:192.0.2.1",
                               "--key", key], env={"ANCHOR_SERVER": "", "ANCHOR_REPUTATION_URL": ""})
    assert r.rc == 2 and "ANCHOR_REPUTATION_URL" in r.err, r.err


def test_report_url_from_the_environment(world):
    """ANCHOR_REPUTATION_URL names the service; it wins over ANCHOR_SERVER (the key
    server's)."""
    env = {"ANCHOR_REPUTATION_URL": world.rep.base_url, "ANCHOR_SERVER": world.ks.base_url,
           "ANCHOR_CACERT": str(world.tls.ca)}
    r = anchorlib.run_program([anchorlib.binary("anchorctl"), "report", "ip:192.0.2.84",
                               "--key", signing_key(world, "r3")], env=env)
    assert r.rc == 0, r.err
    assert "accepted: report r3.rep.test/" in r.out


def test_sign_only_is_a_report_the_service_takes(world):
    r = ctl(world, "report", "ip:192.0.2.85", "--key", signing_key(world, "r4"),
            "--sign-only", "--id", "offline-1", "--verified", "--category", "not-spam")
    assert r.rc == 0, r.err
    jws_text = r.out.strip()
    assert json.loads(jws_text)["protected"]
    assert stored_report(world, "r4.rep.test", "offline-1") == "0"  # nothing was sent
    a = rx.post_report(world.rep, jws_text, src=world.reporters["r4"].src)
    assert a.status == 201, a.body
    assert a.json()["category"] == "not-spam"


def arf_message(source_ip, arrival):
    date = email.utils.formatdate(arrival)
    return (f"From: <abuse@reports.example>\r\nDate: {date}\r\n"
            f"Message-ID: <{secrets.token_hex(6)}@reports.example>\r\n"
            f"Subject: FW: spam\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=feedback-report;\r\n"
            f"    boundary=\"b1\"\r\n\r\n"
            f"--b1\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
            f"--b1\r\nContent-Type: message/feedback-report\r\n\r\n"
            f"Feedback-Type: fraud\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n"
            f"Source-IP: {source_ip}\r\nArrival-Date: {date}\r\n"
            f"Original-Mail-From: <Bounce@Spam.Example>\r\n"
            f"Reported-Domain: Spam.Example.\r\n\r\n"
            f"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: <x@spam.example>\r\nSubject: buy\r\n"
            f"DKIM-Signature: v=1; a=rsa-sha256; d=bad..example; s=s; i=@x; b=x\r\n\r\n"
            f"--b1--\r\n")


def test_report_from_arf_matches_the_services_arf_door(world):
    """`report --arf` signs what the ARF message says, read exactly as the service's own
    ARF intake reads it: same subjects, category, id and time."""
    arrival = int(time.time()) - 600
    msg = arf_message("::ffff:198.51.100.23", arrival)
    path = world.work / "fbl.eml"
    path.write_text(msg, newline="")
    r = ctl(world, "--json", "report", "--arf", str(path), "--key", signing_key(world, "r3"))
    assert r.rc == 0, r.err
    mine = json.loads(r.out)
    tok = rx.request(world.rep, "POST", "/v1/reporters", {"domain": "arfdoor.example"},
                     token=world.operator_token.token).json()["arf_token"]
    door = rx.request(world.rep, "POST", "/v1/reports/arf", {"message": msg}, token=tok)
    assert door.status == 201, door.body
    theirs = door.json()
    assert mine["category"] == theirs["category"] == "phishing"
    assert mine["id"] == theirs["id"]
    assert sorted(mine["subjects"]) == sorted(theirs["subjects"]) == [
        "address:bounce@spam.example", "address:x@spam.example", "domain:spam.example",
        "ip:198.51.100.23"]
    dbname = kf.dbname_of(world.db)
    times = world.pg.psql("SELECT extract(epoch FROM observed)::bigint FROM rep_reports "
                          f"WHERE report_id = '{mine['id']}' ORDER BY reporter",
                          dbname=dbname).split()
    assert times == [str(arrival), str(arrival)]


def test_report_from_a_broken_arf_changes_nothing(world):
    before = rx.rep_snapshot(world.pg, world.db)
    path = world.work / "broken.eml"
    path.write_text(arf_message("not-an-ip", int(time.time())), newline="")
    r = ctl(world, "report", "--arf", str(path), "--key", signing_key(world, "r3"))
    assert r.rc == 1 and "arf_bad_source_ip" in r.err, r.err
    assert rx.rep_snapshot(world.pg, world.db) == before


# --------------------------------------------------------------------------
# delisting

def list_subject(world, subject):
    for name in REPORTERS:
        rx.report_ok(world.rep, world.reporters[name], [subject])
    kind, value = subject.split(":", 1)
    assert rx.subject_of(rx.query(world.rep, **{kind: value}), subject)["verdict"] == "block"


def test_delist_request_and_trail(world):
    subject = "domain:good.rep.test"
    list_subject(world, subject)
    r = ctl(world, "delist", "request", subject, "--key", signing_key(world, "good"),
            "--reason", "the open relay is closed", "--contact", "postmaster@good.rep.test")
    assert r.rc == 0, r.err
    m = re.search(r"^delisting request (\d+): pending$", r.out, re.M)
    assert m, r.out
    rid = m.group(1)
    assert f"subject:   {subject}" in r.out
    assert "proven by: reports.good.rep.test (signature)" in r.out
    assert f"trail:     {world.rep.base_url}/v1/delist/{rid}" in r.out
    d = rx.request(world.rep, "POST", f"/v1/delist/{rid}/decision",
                   {"outcome": "delisted", "note": "fixed"}, token=world.operator_token.token)
    assert d.status == 200, d.body
    r = ctl(world, "delist", "show", rid)
    assert r.rc == 0, r.err
    assert f"delisting request {rid}: delisted" in r.out
    assert re.search(r"^decided:   \S+: fixed$", r.out, re.M), r.out
    assert "postmaster@good.rep.test" not in r.out  # the contact is never published


def test_delist_request_refused_is_shown(world):
    """good's key does not own r1's domain: 403 ownership_not_proven, printed as such."""
    r = ctl(world, "delist", "request", "domain:r1.rep.test", "--key",
            signing_key(world, "good"))
    assert r.rc == 1 and "ownership_not_proven" in r.err, r.err
    r = ctl(world, "delist", "request", "domain:r1.rep.test")
    assert r.rc == 2 and "--key FILE (a signature) or --helo NAME" in r.err
    r = ctl(world, "delist", "show", "0")
    assert r.rc == 2


def test_delist_by_csa_from_anchorctl(world):
    """--helo: the CSA proof; the test runs from 127.0.0.1, which mx1.good's CSA allows."""
    subject = "helo:mx1.good.rep.test"
    r = ctl(world, "delist", "request", subject, "--helo", "mx1.good.rep.test")
    assert r.rc == 0, r.err
    assert "(csa)" in r.out and "HELO mx1.good.rep.test from 127.0.0.1" in r.out, r.out


def test_delist_body_forms(world):
    """The request is a JWS string, compact or flattened; an object is refused with a
    message that shows the form."""
    good = world.reporters["good"]
    payload = {"type": "anchor-delist-request", "domain": good.name,
               "subject": "signer:good.rep.test", "reason": "r", "contact": "c",
               "issued": rx.rfc3339(time.time())}
    flat = json.loads(rf.sign(good.key, good.chain, payload, "anchor-delist-request+jws"))
    compact = f"{flat['protected']}.{flat['payload']}.{flat['signature']}"
    r = rx.request(world.rep, "POST", "/v1/delist", {"request": compact})
    assert r.status == 201, r.body
    assert r.json()["subject"] == "signer:good.rep.test"
    r = rx.request(world.rep, "POST", "/v1/delist", {"request": flat})
    assert r.status == 400 and r.json()["error"] == "bad_request"
    assert ('{"request": "<JWS compact or flattened, as a string>"}'
            in r.json()["message"]), r.body
    r = rx.request(world.rep, "POST", "/v1/delist", {"request": "a.b"})
    assert r.status == 400 and r.json()["error"] == "bad_jws", r.body


def test_list_weight_equal_to_min_reporters_times_cap_lists(world):
    """operator-reputation.md §5: list_weight = min_reporters · reporter_cap lists on
    min_reporters fresh reports (a fresh report has already decayed a little)."""
    rep = rx.Reputation(world, world.work / "rep-eq", world.db, {
        "min_reporters": "1", "reporter_cap": "1", "list_weight": "1",
        "answer_cache_ttl": "0"}).start()
    try:
        svc = SimpleNamespace(base_url=rep.base_url, tls=world.tls)
        r = kf.run_ctl(svc, "report", "ip:192.0.2.99", "--key", signing_key(world, "r1"),
                       "--observed", rx.rfc3339(time.time() - 120), cwd=world.base)
        assert r.rc == 0, r.err
        s = rx.subject_of(rx.query(rep, ip="192.0.2.99"), "ip:192.0.2.99")
        assert s["verdict"] == "block", s
        assert "listed" in rx.codes(s["reasons"])
    finally:
        rep.stop()
        world.reps.remove(rep)
