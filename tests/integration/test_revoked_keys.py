"""A revoked or superseded key authenticates nothing (PROTOCOL.md §9.1), at every door
where a certificate of an anchored domain authenticates a request:

    - the relay's control API (a user-signed list change),
    - anchor-reputation: a signed report, a delisting request, a federation feed,
    - the key server: a user-signed alias (its own store is the authority).

Each is tried, against the real daemons, with a key revoked through the key server
(`anchorctl key revoke --secret-file`, or by the admin) and with a key superseded by a
newer enrollment of the same name, after showing that the same key was accepted while it
was current (so the refusal is the status check, nothing else).  Each is refused with
403 key_revoked / key_superseded and changes nothing; the current key still works.  And
when the signer's key server cannot be asked, a signed report is refused with 503
key_status_unavailable and Retry-After, not waved through.
"""

import json
import shutil
import time
from types import SimpleNamespace

import pytest

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import repfixtures as rx
import routefixtures as rf
from relayfixtures import make_relay  # noqa: F401

STATUS_TTL = 1  # seconds (key_status_ttl of the daemons under test)


def key_id_of(client, cert_pem):
    r = client.get(f"/v1/fingerprints/{kf.cert_fingerprint(cert_pem)}")
    assert r.status == 200, r.body
    return r.json()["key_id"], r.json()["status"]


def past_ttl():
    time.sleep(STATUS_TTL + 0.2)


# ==========================================================================
# The relay's control API, and user-signed aliases on the key server

PARENT = "rvk.test"
KS = f"keys.{PARENT}"
DOMAIN = f"mail.{PARENT}"
BOB, CAROL, DAVE = (f"{u}@{DOMAIN}" for u in ("bob", "carol", "dave"))


@pytest.fixture(scope="module")
def mail(pg, db, operator_token, request):
    """A key server hosting DOMAIN, its zone in NSD; bob, carol and dave enrolled."""
    work = anchorlib.mktemp_dir("anchor-rvk-")
    tls = dx.make_tls(work / "tls", [KS])
    ks = anchorlib.Keyserver(work / "ks", db, tls, operator_token.hash)
    w = SimpleNamespace(work=work, ks_tls=tls, ks=ks, nsd=None, db=db, pg=pg)

    def finish():
        if w.nsd:
            w.nsd.stop()
        ks.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks.start()
    w.base = work / "domains"
    w.dom = kf.register_domain(ks, w.base, DOMAIN, operator_token.token)
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
    for addr in (BOB, CAROL, DAVE):
        enroll(w, addr, w.users)
    return w


def enroll(w, addr, directory):
    kf.ctl_ok(w.ks, "key", "new", addr, "--dir", directory, cwd=w.base)
    tok = kf.issue_token(w.ks.client(), w.dom, addr)
    kf.ctl_ok(w.ks, "key", "enroll", addr, "--token", tok, "--dir", directory, cwd=w.base)


def user_key(directory, addr):
    """(private key, [cert, issuer, root] PEMs) as `anchorctl key enroll` wrote them."""
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key((directory / f"{addr}.key").read_bytes(), None)
    return key, [(directory / f"{addr}.pem").read_text()] + rx._split_pem(
        (directory / f"{addr}.chain.pem").read_text())


def relay_request(key, chain, addr, method, path):
    payload = {"type": "anchor-relay-request", "address": addr, "method": method,
               "path": path, "body": None,
               "issued": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return rf.sign(key, chain, payload, "anchor-relay-request+jws")


def test_control_api_refuses_revoked_and_superseded_keys(mail, make_relay, tls):
    relay = make_relay(control=True, local_domains=DOMAIN, dns_server=mail.nsd.resolver,
                       keyserver_cacert=mail.ks_tls.ca, key_status_ttl=f"{STATUS_TTL}s")
    client = anchorlib.Client(f"https://127.0.0.1:{relay.ports['control']}", tls.ca)
    ks = mail.ks.client()
    hdr = {"Content-Type": "application/json"}

    def put(addr, key, chain, entry):
        path = f"/v1/lists/{addr}/block/{entry}"
        return client.put(path, relay_request(key, chain, addr, "PUT", path), headers=hdr)

    def block_list(addr, key, chain):
        path = f"/v1/lists/{addr}"
        r = client.get(path, body=relay_request(key, chain, addr, "GET", path), headers=hdr)
        assert r.status == 200, r.body
        return r.json()["block"]

    bob_key, bob_chain = user_key(mail.users, BOB)
    carol_key, carol_chain = user_key(mail.users, CAROL)
    # While current, both keys change their own lists.
    assert put(BOB, bob_key, bob_chain, "first@example.org").status == 200
    assert put(CAROL, carol_key, carol_chain, "first@example.org").status == 200

    # bob's key is revoked with the revocation secret enrollment gave him
    kid, _ = key_id_of(ks, bob_chain[0])
    kf.ctl_ok(mail.ks, "key", "revoke", kid, "--secret-file", mail.users / f"{BOB}.revoke",
              "--reason", "keyCompromise", cwd=mail.base)
    assert key_id_of(ks, bob_chain[0])[1] == "revoked"
    # carol enrolls a new key: the old one is superseded
    new = mail.work / "carol-new"
    new.mkdir()
    enroll(mail, CAROL, new)
    assert key_id_of(ks, carol_chain[0])[1] == "superseded"
    past_ttl()

    r = put(BOB, bob_key, bob_chain, "second@example.org")
    assert (r.status, r.error_code()) == (403, "key_revoked"), r.body
    r = put(CAROL, carol_key, carol_chain, "second@example.org")
    assert (r.status, r.error_code()) == (403, "key_superseded"), r.body
    path = f"/v1/lists/{BOB}/block/first@example.org"
    r = client.delete(path, body=relay_request(bob_key, bob_chain, BOB, "DELETE", path),
                      headers=hdr)
    assert (r.status, r.error_code()) == (403, "key_revoked"), r.body
    # Nothing changed; carol's current key works and sees exactly that.
    new_key, new_chain = user_key(new, CAROL)
    assert block_list(CAROL, new_key, new_chain) == ["first@example.org"]
    assert put(CAROL, new_key, new_chain, "third@example.org").status == 200
    dave_key, dave_chain = user_key(mail.users, DAVE)
    assert put(DAVE, dave_key, dave_chain, "x@example.org").status == 200


def test_keyserver_alias_refuses_revoked_and_superseded_keys(mail):
    """The key server checks its own store: the signer must be the address's current key."""
    ks = mail.ks.client()
    erin, frank = f"erin@{DOMAIN}", f"frank@{DOMAIN}"
    d = mail.work / "alias-users"
    d.mkdir()
    for addr in (erin, frank):
        enroll(mail, addr, d)
    ekey, echain = user_key(d, erin)
    fkey, fchain = user_key(d, frank)
    now = int(time.time())
    for addr, key, chain in ((erin, ekey, echain), (frank, fkey, fchain)):
        r = rf.route_put(ks, addr, rf.user_request(key, chain, addr, "x@example.org",
                                                   issued=now))
        assert r.status == 200, r.body
    kid, _ = key_id_of(ks, echain[0])
    kf.ctl_ok(mail.ks, "key", "revoke", kid, "--secret-file", d / f"{erin}.revoke",
              cwd=mail.base)
    d2 = mail.work / "alias-users-2"
    d2.mkdir()
    enroll(mail, frank, d2)  # frank's first key is superseded
    before = rf.route_snapshot(mail.pg, mail.db)
    for addr, key, chain in ((erin, ekey, echain), (frank, fkey, fchain)):
        r = rf.route_put(ks, addr, rf.user_request(key, chain, addr, "y@example.org",
                                                   issued=now + 5))
        assert (r.status, r.error_code()) == (403, "not_current_key"), r.body
    assert rf.route_snapshot(mail.pg, mail.db)["routes"] == before["routes"]
    # revocation by the revoked key itself: already revoked, nothing changes
    doc = rf.sign(ekey, echain, {"type": "anchor-revoke", "key_id": kid, "reason":
                                 "keyCompromise"}, "anchor-revoke+jws")
    r = ks.post(f"/v1/keys/{kid}/revoke", doc, headers={"Content-Type": "application/json"})
    assert (r.status, r.error_code()) == (409, "already_revoked"), r.body


# ==========================================================================
# anchor-reputation: reports, delisting, federation, and the key server away

@pytest.fixture(scope="module")
def rep(pg, db, operator_token, request):
    """Reporter domains on one key server: cur (stays current), rvk (its signing key gets
    revoked by the admin), sup (its signing key gets superseded).  R takes reports and
    delisting requests; AR and AS publish feeds signed by rvk's and sup's keys."""
    w = rx.build_world(pg, db, operator_token, request, ["cur", "rvk", "sup"])
    w.db = db
    # sup's first key, moved aside: a new issuance writes new files there
    stem = w.work / "domains" / f"{w.reporters['sup'].host}.signing"
    shutil.move(f"{stem}.key", w.work / "sup-old.key")
    shutil.move(f"{stem}.pem", w.work / "sup-old.pem")
    shutil.move(f"{stem}.chain.pem", w.work / "sup-old.chain.pem")
    (w.work / "domains" / f"{w.reporters['sup'].host}.signing.csr").unlink(missing_ok=True)
    w.old = {k: w.reporters[k] for k in ("rvk", "sup")}
    w.R = rx.Reputation(w, w.work / "rep-r", db,
                        {"key_status_ttl": f"{STATUS_TTL}s"}).start()

    def provider(label, key, certs):
        fed_cert = w.work / f"{label}-federation.pem"
        fed_cert.write_text("".join(certs))
        name = f"t_rvk_{label}_{int(time.time() * 1000) % 10**9}"
        conninfo = pg.create_database(name)
        request.addfinalizer(lambda: pg.drop_database(name))
        return rx.Reputation(w, w.work / f"rep-{label}", conninfo, {
            "provider_domain": rx.zname(label), "federation_key": str(key),
            "federation_cert": str(fed_cert)}).start()

    w.AR = provider("rvk", w.work / "domains" / f"{w.reporters['rvk'].host}.signing.key",
                    w.reporters["rvk"].chain)
    w.AS = provider("sup", w.work / "sup-old.key", w.reporters["sup"].chain)
    return w


def test_reports_and_delisting_refuse_revoked_and_superseded_keys(rep):
    R, ks = rep.R, rep.ks.client()
    rvk, sup = rep.old["rvk"], rep.old["sup"]
    # While current, both keys report.
    rx.report_ok(R, rvk, ["ip:192.0.2.10"])
    rx.report_ok(R, sup, ["ip:192.0.2.10"])

    kid, _ = key_id_of(ks, rvk.chain[0])
    kf.ctl_ok(rep.ks, "key", "revoke", kid, "--reason", "keyCompromise",
              cwd=rep.work / "domains")
    kf.ctl_ok(rep.ks, "server", "issue", sup.host, "--purpose", "signing",
              cwd=rep.work / "domains")
    assert key_id_of(ks, rvk.chain[0])[1] == "revoked"
    assert key_id_of(ks, sup.chain[0])[1] == "superseded"
    past_ttl()

    before = rx.rep_snapshot(rep.pg, rep.db)
    got, want = [], []
    for signer, code in ((rvk, "key_revoked"), (sup, "key_superseded")):
        _, text = rx.signed_report(signer, ["ip:192.0.2.11"])
        r = rx.post_report(R, text, src=signer.src)
        got.append(("report", signer.name, r.status, r.json().get("error")))
        payload = {"type": "anchor-delist-request", "domain": signer.name,
                   "subject": f"domain:{signer.name}", "reason": "fixed",
                   "issued": rx.rfc3339(time.time())}
        body = {"request": rf.sign(signer.key, signer.chain, payload,
                                   "anchor-delist-request+jws")}
        r = rx.request(R, "POST", "/v1/delist", body)
        got.append(("delist", signer.name, r.status, r.json().get("error")))
        want += [("report", signer.name, 403, code), ("delist", signer.name, 403, code)]
    assert got == want
    assert rx.rep_snapshot(rep.pg, rep.db) == before
    # The current keys still report: cur's, and sup's new one.
    rx.report_ok(R, rep.reporters["cur"], ["ip:192.0.2.12"])
    new_sup = rx.Reporter(rep.doms["sup"], rep.work / "domains", sup.src)
    rx.report_ok(R, new_sup, ["ip:192.0.2.12"])


def test_federation_refuses_feeds_signed_by_revoked_or_superseded_keys(rep, pg):
    """Runs after the revocations above: AR's feed key is revoked, AS's superseded."""
    for A in (rep.AR, rep.AS):
        rx.report_ok(A, rep.reporters["cur"], ["ip:198.51.100.77"])
    assert rx.request(rep.AR, "GET", "/v1/federation/feed?since=0").status == 200
    name = f"t_rvk_b_{int(time.time() * 1000) % 10**9}"
    db_b = pg.create_database(name)
    peers = f"{rep.AR.base_url} {rx.zname('rvk')} 1, {rep.AS.base_url} {rx.zname('sup')} 1"
    b = rx.Reputation(rep, rep.work / "rep-b", db_b,
                      {"federation_peers": peers, "federation_interval": "1s"}).start()
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            st = rx.psql(pg, db_b, "SELECT domain, coalesce(last_error, ''), cursor "
                                   "FROM rep_federation_peers ORDER BY domain").splitlines()
            imported = rx.psql(pg, db_b, "SELECT count(*) FROM rep_federation_imports")
            if int(imported) > 0 or (len(st) == 2 and all(s.split("|")[1] for s in st)):
                break
            time.sleep(0.3)
        assert int(imported) == 0, "a feed signed by a dead key was imported"
        assert st[0].startswith(f"{rx.zname('rvk')}|") and "was revoked" in st[0], st
        assert st[1].startswith(f"{rx.zname('sup')}|") and "superseded by a newer" in st[1], st
        assert all(s.endswith("|0") for s in st), st  # no cursor moved
    finally:
        b.stop()
        rep.reps.remove(b)
        pg.drop_database(name)


def test_keyserver_unreachable_fails_closed(rep):
    """Last in the module: the reporters' key server goes away for a while."""
    D = rx.Reputation(rep, rep.work / "rep-d", rep.db, {"key_status_ttl": "0"}).start()
    cur = rep.reporters["cur"]
    rx.report_ok(D, cur, ["ip:192.0.2.20"])  # discovery now cached; status asked each time
    port = rep.ks.port
    rep.ks.stop()
    try:
        before = rx.rep_snapshot(rep.pg, rep.db)
        _, text = rx.signed_report(cur, ["ip:192.0.2.21"])
        r = rx.post_report(D, text, src=cur.src)
        assert (r.status, r.error_code()) == (503, "key_status_unavailable"), r.body
        assert r.headers.get("retry-after") == "30", r.headers
        assert rx.rep_snapshot(rep.pg, rep.db) == before
    finally:
        rep.ks.params["listen_port"] = str(port)
        rep.ks.start()
    r = rx.post_report(D, text, src=cur.src)  # the same report, once the server is back
    assert r.status == 201, r.body
