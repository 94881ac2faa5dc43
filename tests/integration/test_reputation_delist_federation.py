"""anchor-reputation delisting (PROTOCOL.md §11.6) and federation (§11.7):
a subject's owner proves ownership by an anchored signature or by CSA, the operator
decides, the audit trail is public; a second anchor-reputation imports the first one's
signed feed with its own weight, capped like a reporter.

The feed is checked here independently: python3-jwcrypto verifies the signature with the
first x5c certificate and the x5c root's SPKI digest must be the provider's pin."""

import base64
import json
import time

import pytest
from jwcrypto import jwk, jws

import dnsfixtures as dx
import ksfixtures as kf
import repfixtures as rx
import routefixtures as rf

REPORTERS = ["r1", "r2", "r3", "r4"]
ZONE = "rep.example"
DELIST_TABLES = ("rep_delist_requests", "rep_delist_events")


def csa_records(label):
    if label != "good":
        return ""
    return ("_client._smtp.mx1 IN SRV 1 2 0 mx1.good.rep.test.\nmx1 IN A 127.0.0.1\n"
            "_client._smtp.mx2 IN SRV 1 1 0 mx2.good.rep.test.\nmx2 IN A 127.0.0.1\n")


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rx.build_world(pg, db, operator_token, request, REPORTERS + ["good", "prov1", "prov2"],
                       extra_zone=csa_records)
    prov = w.reporters["prov1"]
    fed_cert = w.work / "prov1-federation.pem"
    fed_cert.write_text("".join(prov.chain))
    w.dns_port = dx.free_port()
    w.rep = rx.Reputation(w, w.work / "rep-a", db, {
        "signed_evidence": "no",  # domains listed on the word (see test_reputation_scoring)
        "dns_listen": f"127.0.0.1:{w.dns_port}", "dns_zone": ZONE,
        "provider_domain": prov.name,
        "federation_key": str(w.work / "domains" / f"{prov.host}.signing.key"),
        "federation_cert": str(fed_cert),
    }).start()
    w.db = db
    return w


def delist_request(world, signer, subject, domain=None, issued=None, **extra):
    payload = {"type": "anchor-delist-request", "domain": domain or signer.name,
               "subject": subject, "reason": "the open relay is closed",
               "contact": "postmaster@example.org",
               "issued": rx.rfc3339(issued if issued is not None else time.time())}
    payload.update(extra)
    return {"request": rf.sign(signer.key, signer.chain, payload, "anchor-delist-request+jws")}


def delist_snapshot(world):
    dbname = kf.dbname_of(world.db)
    return {t: world.pg.psql(f"SELECT count(*) || '|' || md5(coalesce(string_agg(x::text, '' "
                             f"ORDER BY x::text), '')) FROM {t} x", dbname=dbname).strip()
            for t in DELIST_TABLES}


def list_subject(world, subject):
    for r in [world.reporters[n] for n in REPORTERS]:
        rx.report_ok(world.rep, r, [subject])
    kind, value = subject.split(":", 1)
    s = rx.subject_of(rx.query(world.rep, **{kind: value}), subject)
    assert s["verdict"] == "block", s
    return s


def test_delisting_by_anchored_signature(world):
    rep, op = world.rep, world.operator_token.token
    good = world.reporters["good"]
    subject = "domain:good.rep.test"
    list_subject(world, subject)
    # the DNS zone answers the listing (and keeps the verdict in its cache)
    assert dx.kdig_short(world.dns_port, f"good.rep.test.{ZONE}") == ["127.0.0.2"]
    r = rx.request(rep, "POST", "/v1/delist", delist_request(world, good, subject))
    assert r.status == 201, r.body
    doc = r.json()
    assert doc["status"] == "pending" and doc["method"] == "signature"
    assert doc["proven_by"] == good.host
    rid = doc["id"]
    assert r.headers["location"] == f"/v1/delist/{rid}"

    trail = rx.request(rep, "GET", f"/v1/delist/{rid}").json()
    assert trail["subject"] == subject and trail["status"] == "pending"
    assert trail["score_at_request"]["verdict"] == "block"
    assert trail["reason"] == "the open relay is closed"
    assert "contact" not in trail  # kept for the operator, not published
    assert [e["event"] for e in trail["events"]] == ["requested"]
    listing = rx.request(rep, "GET", f"/v1/delist?subject={subject}").json()["requests"]
    assert [x["id"] for x in listing] == [rid]

    path = f"/v1/delist/{rid}/decision"
    assert rx.request(rep, "POST", path, {"outcome": "delisted"}).status == 401
    r = rx.request(rep, "POST", path, {"outcome": "maybe"}, token=op)
    assert r.status == 400
    r = rx.request(rep, "POST", path, {"outcome": "delisted", "note": "relay fixed, verified"},
                   token=op)
    assert r.status == 200, r.body
    done = r.json()
    assert done["status"] == "delisted" and done["decision_note"] == "relay fixed, verified"
    assert [e["event"] for e in done["events"]] == ["requested", "delisted"]
    s = rx.subject_of(rx.query(rep, domain="good.rep.test"), subject)
    assert s["verdict"] != "block" and s["bad"] == 0
    assert "delisted" in rx.codes(s["reasons"])
    # ... and the zone follows the delisting at once, as HTTPS does (not after its cache
    # time): no A record, NXDOMAIN
    assert dx.kdig_short(world.dns_port, f"good.rep.test.{ZONE}") == []
    r = rx.request(rep, "POST", path, {"outcome": "rejected"}, token=op)
    assert r.status == 409 and r.error_code() == "already_decided"
    # Reports after the delisting count again.
    rx.report_ok(rep, world.reporters["r1"], [subject])
    s = rx.subject_of(rx.query(rep, domain="good.rep.test"), subject)
    assert s["bad"] == pytest.approx(1.0, abs=0.01)
    # Everybody can read the outcome.
    assert rx.request(rep, "GET", "/v1/delist?status=delisted").json()["requests"][0]["id"] == rid


def test_rejected_request_changes_nothing_but_the_trail(world):
    rep, op = world.rep, world.operator_token.token
    subject = "signer:good.rep.test"
    before = list_subject(world, subject)
    r = rx.request(rep, "POST", "/v1/delist",
                   delist_request(world, world.reporters["good"], subject))
    rid = r.json()["id"]
    r = rx.request(rep, "POST", f"/v1/delist/{rid}/decision",
                   {"outcome": "rejected", "note": "still spamming"}, token=op)
    assert r.status == 200 and r.json()["status"] == "rejected"
    after = rx.subject_of(rx.query(rep, signer="good.rep.test"), subject)
    assert after["verdict"] == "block" and after["bad"] == pytest.approx(before["bad"], rel=0.01)


@pytest.mark.parametrize("case", ["other_domain", "ip_by_signature", "stale", "tampered",
                                  "wrong_type", "unsigned", "empty"])
def test_delisting_refused(world, case):
    rep, good, r1 = world.rep, world.reporters["good"], world.reporters["r1"]
    subject = "domain:good.rep.test"
    body, status, code = {
        "other_domain": (delist_request(world, r1, subject), 403, "ownership_not_proven"),
        "ip_by_signature": (delist_request(world, good, "ip:192.0.2.1"), 403,
                            "ownership_not_proven"),
        "stale": (delist_request(world, good, subject, issued=time.time() - 3 * 86400), 400,
                  "stale_request"),
        "tampered": ({"request": rf.tamper_payload(
            delist_request(world, r1, "domain:r1.rep.test")["request"],
            subject=subject)}, 422, "jws_signature"),
        "wrong_type": (delist_request(world, good, subject, type="anchor-report"), 400,
                       "bad_request"),
        "unsigned": ({"subject": subject}, 400, "bad_request"),
        "empty": ({}, 400, "bad_request"),
    }[case]
    before = delist_snapshot(world)
    r = rx.request(rep, "POST", "/v1/delist", body)
    assert r.status == status, (r.status, r.body)
    assert r.error_code() == code, r.body
    assert delist_snapshot(world) == before


def test_delisting_by_csa(world):
    rep = world.rep
    r = rx.request(rep, "POST", "/v1/delist",
                   {"subject": "helo:mx1.good.rep.test", "helo": "mx1.good.rep.test",
                    "reason": "not us"}, src="127.0.0.1")
    assert r.status == 201, r.body
    assert r.json()["method"] == "csa"
    assert r.json()["proven_by"] == "HELO mx1.good.rep.test from 127.0.0.1"
    r = rx.request(rep, "POST", "/v1/delist",
                   {"subject": "ip:127.0.0.1", "helo": "mx1.good.rep.test"}, src="127.0.0.1")
    assert r.status == 201, r.body
    trail = rx.request(rep, "GET", f"/v1/delist/{r.json()['id']}").json()
    assert trail["method"] == "csa" and trail["status"] == "pending"
    before = delist_snapshot(world)
    for body in ({"subject": "ip:127.0.0.1", "helo": "mx2.good.rep.test"},   # CSA fail
                 {"subject": "ip:127.0.0.1", "helo": "nocsa.good.rep.test"},  # no record
                 {"subject": "ip:192.0.2.1", "helo": "mx1.good.rep.test"}):   # not this IP
        r = rx.request(rep, "POST", "/v1/delist", body, src="127.0.0.1")
        assert r.status == 403 and r.error_code() == "ownership_not_proven", (body, r.body)
    assert delist_snapshot(world) == before
    assert rx.request(rep, "GET", "/v1/delist/999999").status == 404
    assert rx.request(rep, "GET", "/v1/delist/abc").status == 404


# --------------------------------------------------------------------------
# Federation

def test_feed_is_signed_by_the_provider(world):
    subject = "ip:198.51.100.99"
    for r in [world.reporters[n] for n in REPORTERS]:
        rx.report_ok(world.rep, r, [subject])
    r = rx.request(world.rep, "GET", "/v1/federation/feed?since=0")
    assert r.status == 200, r.body
    _, header, payload = rf.jws_parts(r.text)
    assert header["typ"] == "anchor-reputation-feed+jws"
    leaf, issuer, root = (rf.der_to_pem(base64.b64decode(c)) for c in header["x5c"])
    assert kf.spki_pin(root) == world.doms["prov1"].pin
    key = jwk.JWK.from_pem(kf.load_cert(leaf).public_key().public_bytes(
        rf.serialization.Encoding.PEM, rf.serialization.PublicFormat.SubjectPublicKeyInfo))
    obj = jws.JWS()
    obj.deserialize(r.text)
    obj.verify(key)
    assert json.loads(obj.payload) == payload
    assert payload["type"] == "anchor-reputation-feed"
    assert payload["provider"] == "prov1.rep.test"
    ch = [c for c in payload["changes"] if c["subject"] == subject][-1]
    assert ch["verdict"] == "block" and ch["bad"] == pytest.approx(4.0, abs=0.01)
    assert ch["reporters"] == 4
    seqs = [c["seq"] for c in payload["changes"]]
    assert seqs == sorted(seqs) and payload["next"] == seqs[-1]
    r = rx.request(world.rep, "GET", f"/v1/federation/feed?since={payload['next']}")
    assert rf.jws_parts(r.text)[2]["changes"] == []
    assert rx.request(world.rep, "GET", "/v1/federation/feed?since=-1").status == 400


def test_federation_import(world, pg):
    name = f"t_rep_fed_b_{int(time.time() * 1000) % 10**9}"
    db_b = pg.create_database(name)
    a = world.rep
    peers = (f"{a.base_url} prov1.rep.test 0.5, "
             f"{a.base_url} prov2.rep.test 1")  # prov2's pins do not match A's key
    b = rx.Reputation(world, world.work / "rep-b", db_b,
                      {"federation_peers": peers, "federation_interval": "1s"}).start()
    try:
        subject = "ip:198.51.100.150"
        for r in [world.reporters[n] for n in REPORTERS]:
            rx.report_ok(a, r, [subject])
        # B knows two local reports only: not enough to list.
        for r in [world.reporters[n] for n in ("r1", "r2")]:
            rx.report_ok(b, r, [subject])
        deadline = time.time() + 30
        while time.time() < deadline:
            s = rx.subject_of(rx.query(b, ip="198.51.100.150"), subject)
            # B may import A's feed between two of A's reports (three of A's reports
            # already make B's score 3): wait until the import holds all four.
            got = rx.psql(pg, db_b, "SELECT coalesce(max(bad), 0) FROM rep_federation_imports "
                                    f"WHERE subject = '{subject}'")
            if ("imported" in rx.codes(s["reasons"]) and s["bad"] >= 2.99
                    and float(got or 0) >= 3.99):
                break
            time.sleep(0.3)
        imp = [x for x in s["reasons"] if x["code"] == "imported"]
        assert imp and "peer:prov1.rep.test" in imp[0]["text"], s
        # A's weight 4 times 0.5 is 2, capped like a reporter at 1; with B's two local
        # reporters that is three independent sources: listed.
        assert s["bad"] == pytest.approx(3.0, abs=0.01)
        assert s["reporters"] == 3
        assert s["verdict"] == "block"
        st = rx.psql(pg, db_b, "SELECT domain, cursor > 0, coalesce(last_error, '') "
                               "FROM rep_federation_peers ORDER BY domain").splitlines()
        assert st[0].startswith("prov1.rep.test|t|"), st
        assert st[1].startswith("prov2.rep.test|f|") and "pin" in st[1], st
        prov = rx.psql(pg, db_b, "SELECT peer, bad FROM rep_federation_imports "
                                 f"WHERE subject = '{subject}'")
        assert prov.split("|")[0] == "prov1.rep.test"
        assert float(prov.split("|")[1]) == pytest.approx(4.0, abs=0.01)
        # B does not pass A's evidence on: its own feed carries only local weight.
        r = rx.request(b, "GET", "/v1/federation/feed?since=0")
        assert r.status == 404 and r.error_code() == "federation_disabled"
    finally:
        b.stop()
        world.reps.remove(b)
        pg.drop_database(name)
