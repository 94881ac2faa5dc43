"""anchorctl route set/alias/remove/show against a real key server (no DNS: -s URL).

What anchorctl sends is checked on the server side (psql, independent JWS verification);
what it prints is checked against the server's signed answers."""

import json
import re
import time

import pytest

import anchorlib
import ksfixtures as kf
import routefixtures as rf


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-rc-")
    yield d
    anchorlib.remove_tree(d)


@pytest.fixture(scope="module")
def dom(keyserver, work, operator_token):
    return kf.register_domain(keyserver, work, kf.new_domain_name("rc"), operator_token.token)


@pytest.fixture(scope="module")
def dom2(keyserver, work, operator_token):
    return kf.register_domain(keyserver, work, kf.new_domain_name("rd"), operator_token.token)


def ctl(keyserver, *args, cwd, env=None):
    return kf.run_ctl(keyserver, *args, cwd=cwd, env=env)


@pytest.fixture(scope="module")
def mx_cert(work):
    """A PEM certificate of some receiving server, and its pin computed by cryptography."""
    key, _ = kf.make_csr(host="mx.example.net")
    path = work / "mx.key"
    path.write_text(kf.key_pem(key))
    cert = work / "mx.pem"
    kf.openssl("req", "-new", "-x509", "-key", path, "-out", cert, "-days", "5", "-subj",
               "/CN=mx.example.net", check=True)
    return cert, kf.spki_pin(cert.read_text())


def test_set_servers_show_and_verify(keyserver, client, dom, work, mx_cert, pg, db):
    cert, cert_pin = mx_cert
    addr = f"Alice@{dom.name}"
    r = ctl(keyserver, "route", "set", addr, "--server", "MX1.example.net:2525:10:60=" +
            rf.pin_of_key(kf.make_key()), "--server=mx2.example.net:25:10:40=@" + str(cert),
            "--ttl", "900", cwd=work)
    assert r.rc == 0, r.err
    assert "mx1.example.net:2525 priority 10 weight 60" in r.out
    assert f"mx2.example.net:25 priority 10 weight 40 pin {cert_pin}" in r.out
    assert "verified:" in r.out
    kind, servers, _, ttl, set_by = rf.stored_route(pg, db, addr.lower())
    assert (kind, ttl, set_by) == ("servers", "900", "admin")
    assert json.loads(servers)[1]["pin"] == cert_pin
    # What the server now serves verifies independently, and show --json prints that payload.
    p = rf.verify_route(rf.route_get(client, addr.lower()).body, dom.pin, addr.lower(), work)
    r = ctl(keyserver, "route", "show", addr, "--json", cwd=work)
    assert r.rc == 0, r.err
    shown = json.loads(r.out)
    assert shown["servers"] == p["servers"] and shown["name"] == addr.lower()
    r = ctl(keyserver, "route", "show", addr.lower(), "--pin", dom.pin, cwd=work)
    assert r.rc == 0 and "by --pin" in r.out, r.err


def test_show_refuses_a_wrong_pin(keyserver, dom, dom2, work):
    addr = f"alice@{dom.name}"
    r = ctl(keyserver, "route", "show", addr, "--pin", dom2.pin, cwd=work)
    assert r.rc == 1
    assert re.match(r"anchorctl: route_unverified: .*", r.err), r.err
    assert r.out == ""


def test_alias_admin_address_and_domain(keyserver, client, dom, dom2, work, pg, db):
    addr = f"bob@{dom.name}"
    r = ctl(keyserver, "route", "alias", addr, f"robert@{dom2.name}", "--ttl", "120", cwd=work)
    assert r.rc == 0, r.err
    assert f"alias:    robert@{dom2.name}" in r.out
    assert rf.stored_route(pg, db, addr)[2] == f"robert@{dom2.name}"
    r = ctl(keyserver, "route", "alias", dom.name, dom2.name, cwd=work)
    assert r.rc == 0, r.err
    p = rf.verify_route(rf.route_get(client, f"someone@{dom.name}").body, dom.pin,
                        f"someone@{dom.name}", work)
    assert p["scope"] == "domain" and p["alias"] == dom2.name
    r = ctl(keyserver, "route", "show", dom.name, cwd=work)
    assert r.rc == 0 and "scope:    domain" in r.out, r.err
    # The server's refusals come through as "anchorctl: code: message", exit 1.
    r = ctl(keyserver, "route", "alias", addr, addr, cwd=work)
    assert r.rc == 1 and r.err.startswith("anchorctl: route_loop: "), r.err
    # A domain default aliases to a domain, an address to an address: a usage error.
    r = ctl(keyserver, "route", "alias", dom.name, f"x@{dom2.name}", cwd=work)
    assert r.rc == 2, r.err


def test_remove(keyserver, dom, work, pg, db):
    assert ctl(keyserver, "route", "remove", dom.name, cwd=work).rc == 0
    r = ctl(keyserver, "route", "remove", dom.name, cwd=work)
    assert r.rc == 1 and "no_route" in r.err
    addr = f"bob@{dom.name}"
    r = ctl(keyserver, "route", "remove", addr, cwd=work)
    assert r.rc == 0 and "removed" in r.out, r.err
    assert rf.stored_route(pg, db, addr) is None
    r = ctl(keyserver, "route", "show", addr, cwd=work)
    assert r.rc == 1 and "no_route" in r.err


def test_usage_errors(keyserver, dom, work, pg, db):
    before = rf.route_snapshot(pg, db)
    a = f"u@{dom.name}"
    p = rf.pin_of_key(kf.make_key())
    for args in (["route", "set", a],                                   # no --server
                 ["route", "set", a, "--server", "mx.example.net"],     # no pin
                 ["route", "set", a, "--server", f"mx.example.net:0={p}"],
                 ["route", "set", a, "--server", f"mx.example.net:25:10:65536={p}"],
                 ["route", "set", a, "--server", f"mx.example.net:25:1:1:1={p}"],
                 ["route", "set", a, "--server", f"mx:x={p}"],
                 ["route", "set", a, "--server", f"mx.example.net={p}", "--ttl", "59"],
                 ["route", "set", "not an address", "--server", f"mx.example.net={p}"],
                 ["route", "alias", a],
                 ["route", "alias", a, "also not an address"],
                 ["route", "alias", dom.name, dom.name, "--key", "x.key"],
                 ["route", "resolve", dom.name],
                 ["route", "resolve", a, "--cold"],
                 ["route", "show", a, "--pin"]):
        r = ctl(keyserver, *args, cwd=work)
        assert r.rc == 2, (args, r.rc, r.err)
    # Pins are the server's to check: a bad one is its precise refusal.
    r = ctl(keyserver, "route", "set", a, "--server", "mx.example.net=sha256:AAAA", cwd=work)
    assert r.rc == 1 and r.err.startswith("anchorctl: bad_route: "), r.err
    assert rf.route_snapshot(pg, db) == before


def test_user_alias_with_own_key(keyserver, client, dom, dom2, work, pg, db):
    """key new + key enroll (the real flow), then route alias --key as the user."""
    addr = f"carol@{dom.name}"
    udir = work / "carol"
    assert ctl(keyserver, "key", "new", addr, "--dir", udir, cwd=work).rc == 0
    token = kf.issue_token(client, dom, addr)
    r = ctl(keyserver, "key", "enroll", addr, "--token", token, "--dir", udir, cwd=work)
    assert r.rc == 0, r.err
    # No admin token anywhere: run from a directory without <domain>/admin.token.
    r = ctl(keyserver, "route", "alias", addr, f"carol@{dom2.name}", "--key",
            udir / f"{addr}.key", cwd=udir)
    assert r.rc == 0, r.err
    assert f"alias:    carol@{dom2.name}" in r.out
    assert rf.stored_route(pg, db, addr)[4].startswith("key:")
    # --cert given explicitly with no chain file beside it: the chain comes from the server.
    lone = work / "lone.pem"
    lone.write_text((udir / f"{addr}.pem").read_text())
    time.sleep(1.1)  # "issued" is in whole seconds and must grow (PROTOCOL.md §6.3)
    r = ctl(keyserver, "route", "alias", addr, f"c2@{dom2.name}", "--ttl", "300", "--key",
            udir / f"{addr}.key", "--cert", lone, cwd=udir)
    assert r.rc == 0, r.err
    assert rf.stored_route(pg, db, addr)[2:4] == (f"c2@{dom2.name}", "300")
    # A key that is not the certificate's is caught before anything is sent.
    other_key = work / "other.key"
    other_key.write_text(kf.key_pem(kf.make_key()))
    r = ctl(keyserver, "route", "alias", addr, f"c3@{dom2.name}", "--key", other_key,
            "--cert", udir / f"{addr}.pem", cwd=udir)
    assert r.rc == 1 and "key_mismatch" in r.err, r.err
    # After re-enrollment the old key is refused by the server.
    old = work / "old"
    old.mkdir()
    for suffix in (".key", ".pem", ".chain.pem"):
        (old / f"{addr}{suffix}").write_bytes((udir / f"{addr}{suffix}").read_bytes())
    for suffix in (".key", ".csr"):
        (udir / f"{addr}{suffix}").unlink()
    assert ctl(keyserver, "key", "new", addr, "--dir", udir, cwd=work).rc == 0
    token = kf.issue_token(client, dom, addr)
    assert ctl(keyserver, "key", "enroll", addr, "--token", token, "--dir", udir,
               cwd=work).rc == 0
    r = ctl(keyserver, "route", "alias", addr, f"c4@{dom2.name}", "--key",
            old / f"{addr}.key", cwd=old)
    assert r.rc == 1 and r.err.startswith("anchorctl: not_current_key: "), r.err
    assert rf.stored_route(pg, db, addr)[2] == f"c2@{dom2.name}"
