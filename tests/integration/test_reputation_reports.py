"""anchor-reputation report intake (PROTOCOL.md §11.3-11.4): signed reports
accepted from anchored reporter domains and refused otherwise, idempotent by id, bad input
refused with precise errors that change nothing, a flood from one reporter rate limited
and capped in effect, ARF reports from registered reporters.

Reporters are real anchored domains (key server + NSD, repfixtures.build_world); reports
are signed with python3-jwcrypto by the signing key that `anchorctl server issue` made."""

import datetime
import email.utils
import secrets
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

import repfixtures as rx
import routefixtures as rf


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rx.build_world(pg, db, operator_token, request, ["r1", "r2", "r3", "flood"])
    w.rep = rx.Reputation(w, w.work / "rep", db).start()
    return w


def test_signed_report_is_accepted_and_counted(world):
    r1 = world.reporters["r1"]
    p, text = rx.signed_report(r1, ["ip:192.0.2.44", "helo:MX.Spam.Example"],
                               evidence="Message-ID: <a1@spam.example>")
    r = rx.post_report(world.rep, text, src=r1.src)
    assert r.status == 201, r.body
    doc = r.json()
    assert doc["accepted"] is True and doc["duplicate"] is False
    assert doc["reporter"] == r1.name and doc["id"] == p["id"]
    assert sorted(doc["subjects"]) == ["helo:mx.spam.example", "ip:192.0.2.44"]
    a = rx.query(world.rep, ip="192.0.2.44")
    s = rx.subject_of(a, "ip:192.0.2.44")
    assert s["reports"] == 1 and s["reporters"] == 1
    assert s["verdict"] == "unknown"  # one domain never lists anything
    assert s["bad"] == pytest.approx(1.0, abs=0.01)
    why = {x["code"]: x for x in s["reasons"]}
    assert "too_few_reporters" in why, s["reasons"]
    assert why["too_few_reporters"]["evidence"] == [doc["evidence_id"]]  # opaque, not r1's
    # The reporter's networks, from its DNS (its key server at 127.0.0.1, its MX at
    # 127.0.1.1), kept with the report.
    net = rx.psql(world.pg, world.rep.params["db_conninfo"],
                  f"SELECT reporter_net FROM rep_reports WHERE report_id = '{p['id']}'")
    assert net == "127.0.0.0/24 127.0.1.0/24"


def test_duplicate_id_counted_once(world):
    r2 = world.reporters["r2"]
    p, text = rx.signed_report(r2, ["ip:192.0.2.55"], id="dup-1")
    assert rx.post_report(world.rep, text, src=r2.src).status == 201
    before = rx.rep_snapshot(world.pg, world.rep.params["db_conninfo"])
    # The same id again, even with a different body, is the same report.
    for body in (text, rx.sign(r2, dict(p, subjects=["ip:192.0.2.56"]))):
        r = rx.post_report(world.rep, body, src=r2.src)
        assert r.status == 200, r.body
        assert r.json() == {"duplicate": True, "reporter": r2.name, "id": "dup-1"}
    assert rx.rep_snapshot(world.pg, world.rep.params["db_conninfo"]) == before
    s = rx.subject_of(rx.query(world.rep, ip="192.0.2.55"), "ip:192.0.2.55")
    assert s["reports"] == 1
    assert rx.subject_of(rx.query(world.rep, ip="192.0.2.56"), "ip:192.0.2.56")["reports"] == 0
    # Another reporter may use the same id: ids are per reporter.
    r3 = world.reporters["r3"]
    assert rx.post_report(world.rep, rx.signed_report(r3, ["ip:192.0.2.55"], id="dup-1")[1],
                          src=r3.src).status == 201


def refused(world, body, status, code, src="127.0.0.1"):
    before = rx.rep_snapshot(world.pg, world.rep.params["db_conninfo"])
    r = rx.post_report(world.rep, body, src=src)
    assert r.status == status, (r.status, r.body)
    assert r.error_code() == code, r.body
    assert rx.rep_snapshot(world.pg, world.rep.params["db_conninfo"]) == before
    return r


def test_unsigned_report_refused(world):
    payload = rx.report_payload(world.reporters["r1"], ["ip:192.0.2.66"])
    refused(world, payload, 400, "bad_jws")
    refused(world, {"protected": "e30", "payload": "e30"}, 400, "bad_jws")


def test_wrongly_signed_reports_refused(world):
    r1, r2 = world.reporters["r1"], world.reporters["r2"]
    p, text = rx.signed_report(r1, ["ip:192.0.2.77"])
    # The payload changed after signing.
    refused(world, rf.tamper_payload(text, subjects=["ip:192.0.2.78"]), 422, "jws_signature")
    # Signed by r2's key but claiming to be r1: r2's chain does not end in r1's pin.
    refused(world, rx.sign(r2, p), 422, "pin_mismatch")
    # A key and chain made up here, not issued under r1's anchored root.
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, r1.host)])
    now = time.time()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime.utcfromtimestamp(now - 60))
            .not_valid_after(datetime.datetime.utcfromtimestamp(now + 86400))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(r1.host)]), False)
            .sign(key, None))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    refused(world, rx.sign(r1, p, key=key, chain=[pem]), 422, "pin_mismatch")
    # The right chain with somebody else's key in front of it.
    refused(world, rx.sign(r1, p, key=key), 422, "jws_signature")


def test_reporter_outside_any_anchored_domain(world):
    r1 = world.reporters["r1"]
    for claimed in (rx.zname("legacy"), rx.zname("nowhere")):
        p = rx.report_payload(claimed, ["ip:192.0.2.88"])
        refused(world, rx.sign(r1, p), 403, "reporter_not_anchored")


@pytest.mark.parametrize("subjects", [
    ["ip:999.1.1.1"], ["ip:192.0.2.1/24"], ["bogus:x"], ["helo:-bad-.example"],
    ["domain:a..example"], ["key:sha256:1234"], ["address:no-at-sign"], ["192.0.2.1"],
    [], [f"ip:192.0.2.{i}" for i in range(9)], [42], "ip:192.0.2.1",
])
def test_malformed_subjects_refused(world, subjects):
    r1 = world.reporters["r1"]
    p = rx.report_payload(r1, subjects)
    r = refused(world, rx.sign(r1, p), 400, "bad_subject")
    assert r.json()["message"]


@pytest.mark.parametrize("change,code", [
    ({"category": "annoying"}, "bad_category"),
    ({"id": "has space"}, "bad_report_id"),
    ({"id": "x" * 128}, "bad_report_id"),
    ({"observed": "yesterday"}, "bad_time"),
    ({"observed": rx.rfc3339(time.time() + 86400)}, "bad_time"),
    ({"observed": rx.rfc3339(time.time() - 200 * 86400)}, "report_too_old"),
    ({"type": "anchor-route"}, "bad_request"),
    ({"verified_identity": "yes"}, "bad_request"),
    ({"evidence": "x" * 600}, "bad_request"),
])
def test_malformed_fields_refused(world, change, code):
    r1 = world.reporters["r1"]
    p = rx.report_payload(r1, ["ip:192.0.2.99"])
    p.update(change)
    refused(world, rx.sign(r1, p), 400, code)


@pytest.mark.serial  # counts what a rate limit lets through in the elapsed time
def test_flood_from_one_reporter_is_rate_limited_and_capped(world, db):
    rep = rx.Reputation(world, world.work / "rep-flood", db,
                        {"report_rate": "1", "report_burst": "20"}).start()
    try:
        flood = world.reporters["flood"]
        subject = "ip:198.51.100.200"
        conn = rep.connection(flood.src)
        statuses = []
        t0 = time.monotonic()
        for i in range(60):
            _, text = rx.signed_report(flood, [subject], id=f"flood-{i}")
            r = rx.post_report(rep, text, conn=conn)
            statuses.append(r.status)
            if r.status == 429:
                assert r.error_code() == "rate_limited"
                assert int(r.headers["retry-after"]) >= 1
        elapsed = time.monotonic() - t0
        conn.close()
        accepted = statuses.count(201)
        # The burst, plus what refilled at 1/s meanwhile.
        assert 20 <= accepted <= 20 + int(elapsed) + 1, (elapsed, statuses)
        assert accepted < 60
        assert statuses.count(429) == 60 - accepted
        # Another reporter is not held back by the flood.
        r1 = world.reporters["r1"]
        assert rx.post_report(rep, rx.signed_report(r1, [subject])[1], src=r1.src).status == 201
        s = rx.subject_of(rx.query(rep, ip="198.51.100.200"), subject)
        assert s["reports"] == accepted + 1
        # However many got through, one domain adds at most reporter_cap (1) of weight.
        assert s["bad"] <= 2.0 + 1e-6
        assert s["verdict"] == "unknown"
        assert "reporter_capped" in rx.codes(s["reasons"])
    finally:
        rep.stop()
        world.reps.remove(rep)


# --------------------------------------------------------------------------
# ARF

def arf_message(source_ip, feedback_type="abuse", message_id=None, arrival=None):
    arrival = email.utils.formatdate(arrival or time.time() - 300)
    mid = message_id or f"{secrets.token_hex(6)}@reports.example"
    return (f"From: <abuse@reports.example>\r\n"
            f"Date: {arrival}\r\n"
            f"Message-ID: <{mid}>\r\n"
            f"Subject: FW: spam\r\n"
            f"MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=feedback-report;\r\n"
            f"    boundary=\"b1\"\r\n\r\n"
            f"--b1\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n"
            f"--b1\r\nContent-Type: message/feedback-report\r\n\r\n"
            f"Feedback-Type: {feedback_type}\r\nUser-Agent: test/1.0\r\nVersion: 1\r\n"
            f"Source-IP: {source_ip}\r\nArrival-Date: {arrival}\r\n"
            f"Reported-Domain: spam.example\r\n\r\n"
            f"--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: <x@spam.example>\r\nSubject: buy\r\n\r\n"
            f"--b1--\r\n")


def test_arf_from_registered_reporter(world):
    rep, op = world.rep, world.operator_token.token
    # Registration is the operator's.
    r = rx.request(rep, "POST", "/v1/reporters", {"domain": "arf.example"})
    assert r.status == 401 and r.error_code() == "unauthorized"
    r = rx.request(rep, "POST", "/v1/reporters", {"domain": "arf.example"}, token=op)
    assert r.status == 201, r.body
    token = r.json()["arf_token"]
    msg = arf_message("203.0.113.9")
    r = rx.request(rep, "POST", "/v1/reports/arf", {"message": msg}, token=token)
    assert r.status == 201, r.body
    assert r.json()["reporter"] == "arf.example"
    assert "ip:203.0.113.9" in r.json()["subjects"]
    # The same message again is the same report (its Message-ID is the id).
    r = rx.request(rep, "POST", "/v1/reports/arf", {"message": msg}, token=token)
    assert r.status == 200 and r.json()["duplicate"] is True
    s = rx.subject_of(rx.query(rep, ip="203.0.113.9"), "ip:203.0.113.9")
    assert s["reports"] == 1
    info = rx.request(rep, "GET", "/v1/reporters/arf.example").json()
    assert info["arf"] is True and info["reports"] == 1


def test_arf_refused(world):
    rep = world.rep
    before = rx.rep_snapshot(world.pg, rep.params["db_conninfo"])
    r = rx.request(rep, "POST", "/v1/reports/arf", {"message": arf_message("203.0.113.10")},
                   token="not-a-token")
    assert r.status == 401 and r.error_code() == "unauthorized"
    assert rx.rep_snapshot(world.pg, rep.params["db_conninfo"]) == before
    tok = rx.request(rep, "POST", "/v1/reporters", {"domain": "arf2.example"},
                     token=world.operator_token.token).json()["arf_token"]
    before = rx.rep_snapshot(world.pg, rep.params["db_conninfo"])
    for msg, code in ((arf_message("203.0.113.10").replace("report-type=feedback-report",
                                                           "report-type=delivery-status"),
                       "arf_not_feedback_report"),
                      (arf_message("not-an-ip"), "arf_bad_source_ip"),
                      (arf_message("203.0.113.10", feedback_type="weird"),
                       "arf_bad_feedback_type"),
                      ("hello", None),
                      (arf_message("203.0.113.10", arrival=time.time() - 400 * 86400),
                       "report_too_old")):
        r = rx.request(rep, "POST", "/v1/reports/arf", {"message": msg}, token=tok)
        assert r.status == 400, (code, r.status, r.body)
        if code:
            assert r.error_code() == code, r.body
    r = rx.request(rep, "POST", "/v1/reports/arf", {"msg": "x"}, token=tok)
    assert r.status == 400 and r.error_code() == "bad_request"
    assert rx.rep_snapshot(world.pg, rep.params["db_conninfo"]) == before


def test_metrics_count_reports(world):
    r = world.rep.client().get("/metrics")
    assert r.status == 200
    assert 'anchor_rep_reports_total{outcome="accepted"}' in r.text
    assert 'anchor_rep_reports_total{outcome="refused"}' in r.text
