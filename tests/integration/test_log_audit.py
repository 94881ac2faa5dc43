"""`anchorctl audit <domain>`: the owner's audit of their log.  A clean log audits OK
and lists every change with its time and name; a change the owner did not approve is
reported; a log truncated or rewritten behind the key server's back (psql on its
database) is detected, and each of these exits non-zero."""

import hashlib
import json
import re

import pytest

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import routefixtures as rf


@pytest.fixture(scope="module")
def keyserver(make_keyserver):
    # The audit reads every older head (?size=N); with the response cache on, the key
    # server answers those with the newest head (reported to the lead), so the audit
    # would see problems that are not in the log.  test_log_proofs.py covers the cache.
    return make_keyserver(extra={"cache_max_age": "0"})


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-au-")
    yield d
    anchorlib.remove_tree(d)


def populate(keyserver, client, dom, work):
    """Enrollments, a re-enrollment, a revocation, routes; returns the approved records."""
    approved = []
    for name in ("ann", "ben", "cat"):
        kid, fpr, _ = lf.enroll_cli(keyserver, client, dom, f"{name}@{dom.name}", work)
        approved.append({"key_id": kid} if name != "ben" else {"fingerprint": fpr})
    # ann re-enrolls (new key: superseded + issued), approved by key id
    _, _ = kf.enroll_new(client, dom, f"ann@{dom.name}")
    ann = client.get(f"/v1/addresses/ann@{dom.name}").json()["certificates"][0]
    approved.append({"key_id": ann["key_id"]})
    r = lf.ctl_ok(keyserver, "key", "revoke", approved[2]["key_id"], cwd=work)
    pin = rf.pin_of_key(kf.make_key())
    lf.ctl_ok(keyserver, "route", "set", f"ben@{dom.name}", "--server",
              f"mx1.{dom.name}:25:10:5={pin}", "--ttl", "900", cwd=work)
    content = {"servers": [{"host": f"mx1.{dom.name}", "port": 25, "priority": 10,
                            "weight": 5, "pin": pin}], "ttl": 900}
    digest = hashlib.sha256(json.dumps(content, separators=(",", ":"),
                                       sort_keys=True).encode()).hexdigest()
    approved.append({"type": "route_set", "name": f"ben@{dom.name}", "route_sha256": digest})
    return approved


def write_approved(work, name, records, lines=True):
    p = work / name
    p.write_text("\n".join(json.dumps(r) for r in records) + "\n" if lines
                 else json.dumps(records))
    return p


@pytest.fixture(scope="module")
def clean(keyserver, client, work, operator_token):
    d = kf.register_domain(keyserver, work, kf.new_domain_name("au"), operator_token.token)
    return d, populate(keyserver, client, d, work)


def test_a_clean_log_audits_ok(keyserver, client, clean, work, pg, db):
    dom, approved = clean
    es = lf.entries(client, dom)
    f = write_approved(work, "approved.jsonl", approved)
    r = lf.ctl(keyserver, "audit", dom.name, "--approved", f, cwd=work)
    assert r.rc == 0, r.out + r.err
    assert re.search(rf"^entries:\s+{len(es)}$", r.out, re.M), r.out
    # Every stored head is checked; a head may cover several entries (a group commit).
    did = domain_id(pg, db, dom)
    heads = int(psql(pg, db, f"SELECT count(*) FROM tree_heads WHERE domain_id = {did}"))
    assert re.search(rf"^heads:\s+{heads} signed heads checked", r.out, re.M), r.out
    assert "not approved: none" in r.out and r.out.rstrip().endswith("result:   OK")
    # Every change, with its time and name (the admin sees names).
    for e in es:
        leaf = json.loads(e["leaf"])
        line = next((x for x in r.out.splitlines() if re.match(rf"\s+{e['seq']} ", x)), None)
        assert line is not None, (e["seq"], r.out)
        assert leaf["time"] in line and e["type"] in line
        if e.get("name"):
            assert e["name"] in line
    assert f"ben@{dom.name}" in r.out and "route_set" in r.out and "revoked" in r.out
    # --json, and the approvals as one JSON array.
    f2 = write_approved(work, "approved.json", approved, lines=False)
    r = lf.ctl(keyserver, "audit", dom.name, "--approved", f2, "--json", cwd=work)
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    assert doc["ok"] is True and doc["problems"] == [] and doc["unapproved"] == 0
    assert doc["entries"] == len(es) == doc["head"]["size"]
    assert [c["seq"] for c in doc["changes"]] == list(range(len(es)))
    # Without --approved: the log is checked, nothing is judged unapproved.
    r = lf.ctl(keyserver, "audit", dom.name, cwd=work)
    assert r.rc == 0 and "not approved" not in r.out, r.out


def test_an_unapproved_change_is_reported(keyserver, client, clean, work):
    dom, approved = clean
    mkid, _, _ = lf.enroll_cli(keyserver, client, dom, f"mallory@{dom.name}", work)
    lf.ctl_ok(keyserver, "route", "alias", f"cat@{dom.name}", f"mallory@{dom.name}", cwd=work)
    f = write_approved(work, "approved2.jsonl", approved)
    r = lf.ctl(keyserver, "audit", dom.name, "--approved", f, cwd=work)
    assert r.rc == 1, r.out
    tail = r.out.split("not approved:")[1]
    assert f"mallory@{dom.name}" in tail and mkid in tail, r.out
    assert re.search(rf"route_set\s+cat@{re.escape(dom.name)}", tail), r.out
    assert "2 change(s) not approved" in r.out and "0 problem(s)" in r.out
    # ann's and ben's keys stay approved (by key id and by fingerprint).
    assert f"ann@{dom.name}" not in tail and f"ben@{dom.name} key" not in tail
    r = lf.ctl(keyserver, "audit", dom.name, "--approved", f, "--json", cwd=work)
    doc = json.loads(r.out)
    assert r.rc == 1 and doc["ok"] is False and doc["unapproved"] == 2
    bad = [c for c in doc["changes"] if not c["approved"]]
    assert {c["name"] for c in bad} == {f"mallory@{dom.name}", f"cat@{dom.name}"}
    # A malformed approvals file is an error of its own.
    (work / "broken.jsonl").write_text('{"key_id": "x"}\nnot json\n')
    r = lf.ctl(keyserver, "audit", dom.name, "--approved", work / "broken.jsonl", cwd=work)
    assert r.rc == 1 and "bad_approved" in r.err


def psql(pg, db, sql):
    return pg.psql(sql, dbname=kf.dbname_of(db))


def domain_id(pg, db, dom):
    return psql(pg, db, f"SELECT id FROM domains WHERE name = '{dom.name}'").strip()


@pytest.fixture()
def victim(keyserver, client, work, operator_token):
    d = kf.register_domain(keyserver, work, kf.new_domain_name("av"), operator_token.token)
    populate(keyserver, client, d, work)
    r = lf.ctl(keyserver, "audit", d.name, cwd=work, state=work / f"{d.name}.state")
    assert r.rc == 0, r.out + r.err
    return d


def test_a_truncated_log_is_detected(keyserver, client, victim, work, pg, db):
    n = len(lf.entries(client, victim))
    did = domain_id(pg, db, victim)
    psql(pg, db, f"DELETE FROM log_entries WHERE domain_id = {did} AND seq >= {n - 2}")
    r = lf.ctl(keyserver, "audit", victim.name, cwd=work, state=work / f"{victim.name}.state")
    assert r.rc == 1, r.out
    assert re.search(rf"the log is truncated: the newest signed head has size {n} but the "
                     rf"log serves only {n - 2} entries", r.out), r.out
    # the head remembered from the first audit says so too
    assert re.search(rf"the log is truncated: the head remembered from earlier \(size {n} ",
                     r.out), r.out
    assert "result:   FAILED" in r.out


def test_a_rewritten_leaf_is_detected(keyserver, client, victim, work, pg, db):
    es = lf.entries(client, victim)
    did = domain_id(pg, db, victim)
    k = next(e["seq"] for e in es if e["type"] == "issued")
    psql(pg, db, f"UPDATE log_entries SET leaf = replace(leaf, '\"issued\"', '\"revoked\"') "
                 f"WHERE domain_id = {did} AND seq = {k}")
    r = lf.ctl(keyserver, "audit", victim.name, cwd=work)
    assert r.rc == 1, r.out
    assert f"entry {k} was rewritten: its leaf does not hash to its leaf_hash" in r.out
    assert re.search(rf"the log was rewritten: the first {len(es)} entries hash to \S+, the "
                     rf"newest signed head signed", r.out), r.out


def test_a_rewrite_with_a_matching_leaf_hash_is_detected(keyserver, client, victim, work, pg,
                                                         db):
    """A careful forger updates leaf_hash too: the signed heads still give it away."""
    es = lf.entries(client, victim)
    did = domain_id(pg, db, victim)
    k = [e["seq"] for e in es if e["type"] == "issued"][1]
    leaf = json.loads(es[k]["leaf"])
    leaf["fingerprint"] = "sha256:" + "cd" * 32
    text = json.dumps(leaf, separators=(",", ":"), sort_keys=True)
    h = hashlib.sha256(b"\x00" + text.encode()).hexdigest()
    psql(pg, db, f"UPDATE log_entries SET leaf = '{text}', leaf_hash = decode('{h}', 'hex') "
                 f"WHERE domain_id = {did} AND seq = {k}")
    r = lf.ctl(keyserver, "audit", victim.name, "--json", cwd=work)
    assert r.rc == 1
    doc = json.loads(r.out)
    assert not any("leaf_hash" in p for p in doc["problems"]), doc["problems"]
    sizes = sorted(int(m.group(1)) for p in doc["problems"]
                   if (m := re.search(r"the first (\d+) entries hash to", p)))
    # every head from size k+1 on disagrees with the entries, and none before
    assert sizes[0] == k + 1 and len(sizes) >= len(es) - k, doc["problems"]


def test_audit_needs_the_admin_token(keyserver, clean, work, tmp_path):
    dom, _ = clean
    r = kf.run_ctl(keyserver, "audit", dom.name, cwd=tmp_path)
    assert r.rc == 1 and "no_token" in r.err, r.err
    (tmp_path / "t").write_text(kf.anchorlib.make_token().token)
    r = kf.run_ctl(keyserver, "audit", dom.name, "--token-file", tmp_path / "t", cwd=tmp_path)
    assert r.rc == 1 and ("unauthorized" in r.err or "forbidden" in r.err), r.err


def test_names_and_a_token_time_record(keyserver, client, work, operator_token):
    """auditing.md: the record appended when a token is issued ({"type": "issued",
    "name": address}; there is no key id yet) approves the enrollment; entries about the
    domain itself show the domain, and "(name erased)" means an erased name only."""
    dom = kf.register_domain(keyserver, work, kf.new_domain_name("an"), operator_token.token)
    amy, bo = f"amy@{dom.name}", f"bo@{dom.name}"
    lf.enroll_cli(keyserver, client, dom, amy, work)
    kid, _, _ = lf.enroll_cli(keyserver, client, dom, bo, work)
    f = write_approved(work, "tokens.jsonl", [{"type": "issued", "name": amy},
                                              {"type": "issued", "name": bo}])
    r = lf.ctl(keyserver, "audit", dom.name, "--approved", f, cwd=work)
    assert r.rc == 0 and "not approved: none" in r.out, r.out + r.err
    assert re.search(rf"^\s+0 \S+ registered\s+{re.escape(dom.name)} policy ", r.out, re.M), r.out
    assert "(name erased)" not in r.out
    # bo's key revoked and the address erased: its entries lose their name, and only
    # those read "(name erased)"; its issuance is then approved by key id alone.
    lf.ctl_ok(keyserver, "key", "revoke", kid, cwd=work)
    e = client.post(f"/v1/domains/{dom.name}/erase", {"address": bo}, token=dom.admin_token)
    assert e.status == 200, e.body
    r = lf.ctl(keyserver, "audit", dom.name, "--json", cwd=work)
    doc = json.loads(r.out)
    erased = [c for c in doc["changes"] if c.get("name_erased")]
    assert erased and all(c["name"] is None and c.get("key_id") in (kid, None)
                          for c in erased), erased
    assert doc["changes"][0]["name"] == dom.name and "name_erased" not in doc["changes"][0]
    r = lf.ctl(keyserver, "audit", dom.name, cwd=work)
    assert r.out.count("(name erased)") == len(erased), r.out
