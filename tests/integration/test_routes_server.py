"""Routes on the key server (PROTOCOL.md §6.1-§6.3): admin-set servers and aliases for an
address and a domain default, signed answers verified independently (jwcrypto, openssl,
cryptography), caching headers, precise refusals that store nothing, and aliases set by
the address's own user with a request signed by its current key."""

import base64
import hashlib
import json
import time

import pytest

import anchorlib
import ksfixtures as kf
import routefixtures as rf


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-rt-")
    yield d
    anchorlib.remove_tree(d)


@pytest.fixture(scope="module")
def dom(keyserver, work, operator_token):
    return kf.register_domain(keyserver, work / "a", kf.new_domain_name("rt"),
                              operator_token.token)


@pytest.fixture(scope="module")
def other(keyserver, work, operator_token):
    return kf.register_domain(keyserver, work / "b", kf.new_domain_name("ro"),
                              operator_token.token, alg="p256")


def pin(n=1):
    return "sha256:" + base64.b64encode(hashlib.sha256(bytes([n])).digest()).decode()


def servers_body(*weights, ttl=None):
    body = {"servers": [{"host": f"mx{i}.example.net", "port": 25 + i, "priority": 10,
                         "weight": w, "pin": pin(i)} for i, w in enumerate(weights)]}
    if ttl is not None:
        body["ttl"] = ttl
    return body


# --------------------------------------------------------------------------
# Setting and reading, verified independently

def test_admin_sets_servers_for_an_address(client, dom, work, pg, db):
    addr = f"alice@{dom.name}"
    r = rf.route_put(client, addr, servers_body(60, 40, ttl=600), token=dom.admin_token)
    assert r.status == 200, r.body
    assert r.headers["content-type"].startswith("application/jose+json")
    p = rf.verify_route(r.body, dom.pin, addr, work)
    assert p["scope"] == "address" and p["domain"] == dom.name and p["ttl"] == 600
    assert [s["weight"] for s in p["servers"]] == [60, 40]
    assert p["servers"][1] == {"host": "mx1.example.net", "port": 26, "priority": 10,
                               "weight": 40, "pin": pin(1)}

    g = rf.route_get(client, addr)
    assert g.status == 200, g.body
    p = rf.verify_route(g.body, dom.pin, addr, work)
    assert p["servers"][0]["host"] == "mx0.example.net"
    issued = time.mktime(time.strptime(p["issued"], "%Y-%m-%dT%H:%M:%SZ"))
    expires = time.mktime(time.strptime(p["expires"], "%Y-%m-%dT%H:%M:%SZ"))
    assert expires - issued == 600 + 3600  # ttl + one hour (PROTOCOL.md §6.2)
    assert rf.stored_route(pg, db, addr)[0] == "servers"


def test_answers_carry_etag_and_cache_control(client, dom):
    addr = f"cache@{dom.name}"
    assert rf.route_put(client, addr, servers_body(1, ttl=120), token=dom.admin_token).status == 200
    g = rf.route_get(client, addr)
    assert g.status == 200
    etag = g.headers.get("etag")
    assert etag, g.headers
    cc = g.headers.get("cache-control", "")
    assert cc.startswith("public"), cc
    max_age = int(cc.split("max-age=")[1].split(",")[0])
    assert 0 < max_age <= 120  # never longer than the route's ttl
    again = rf.route_get(client, addr, headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""


def test_defaults_sizes_are_filled_in(client, dom, work):
    addr = f"defaults@{dom.name}"
    r = rf.route_put(client, addr, {"servers": [{"host": "MX.Example.NET", "pin": pin(7)}]},
                     token=dom.admin_token)
    assert r.status == 200, r.body
    p = rf.verify_route(r.body, dom.pin, addr, work)
    assert p["ttl"] == 3600
    assert p["servers"] == [{"host": "mx.example.net", "port": 25, "priority": 10, "weight": 1,
                             "pin": pin(7)}]


def test_domain_default_and_address_override(client, dom, work):
    assert rf.route_put(client, dom.name, servers_body(5), token=dom.admin_token).status == 200
    # An address with no route of its own gets the domain's default, named as asked.
    addr = f"nobody-{time.time_ns()}@{dom.name}"
    p = rf.verify_route(rf.route_get(client, addr).body, dom.pin, addr, work)
    assert p["scope"] == "domain" and p["servers"][0]["weight"] == 5
    p = rf.verify_route(rf.route_get(client, dom.name).body, dom.pin, dom.name, work)
    assert p["scope"] == "domain"
    # The address's own route wins over the default.
    own = f"own@{dom.name}"
    assert rf.route_put(client, own, {"alias": f"x@{dom.name}"},
                        token=dom.admin_token).status == 200
    p = rf.verify_route(rf.route_get(client, own).body, dom.pin, own, work)
    assert p["scope"] == "address" and p["alias"] == f"x@{dom.name}" and "servers" not in p


def test_aliases_for_address_and_domain(client, dom, other, work):
    addr = f"Bob@{dom.name}"
    r = rf.route_put(client, addr, {"alias": f"Robert@{other.name}", "ttl": 60},
                     token=dom.admin_token)
    assert r.status == 200, r.body
    p = rf.verify_route(rf.route_get(client, addr.lower()).body, dom.pin, addr.lower(), work)
    assert p["alias"] == f"robert@{other.name}" and p["ttl"] == 60
    # A domain default aliases to a domain (other's key is P-256: ES256 answers).
    r = rf.route_put(client, other.name, {"alias": dom.name}, token=other.admin_token)
    assert r.status == 200, r.body
    assert rf.jws_parts(r.body)[1]["alg"] == "ES256"
    p = rf.verify_route(rf.route_get(client, other.name).body, other.pin, other.name, work)
    assert p["alias"] == dom.name
    assert rf.route_delete(client, other.name, token=other.admin_token).status == 200


def test_remove(client, dom, pg, db):
    addr = f"gone@{dom.name}"
    assert rf.route_put(client, addr, {"alias": f"x@{dom.name}"},
                        token=dom.admin_token).status == 200
    r = rf.route_delete(client, addr, token=dom.admin_token)
    assert r.status == 200, r.body
    assert rf.stored_route(pg, db, addr) is None
    r = rf.route_delete(client, addr, token=dom.admin_token)
    assert r.status == 404 and r.error_code() == "no_route"


def test_no_route(client, other):
    r = rf.route_get(client, f"nobody@{other.name}")
    assert r.status == 404 and r.error_code() == "no_route"
    r = rf.route_get(client, f"nobody@unknown-{time.time_ns()}.test")
    assert r.status == 404 and r.error_code() == "unknown_domain"


# --------------------------------------------------------------------------
# Refusals: precise, and nothing stored

def bad_cases(dom):
    a = f"bad@{dom.name}"
    ok_server = {"host": "mx.example.net", "pin": pin(1)}
    return [
        # (name, body, status, code)
        (a, {"alias": a}, 400, "route_loop"),
        (a, {"alias": a.upper()}, 400, "route_loop"),
        (dom.name, {"alias": dom.name}, 400, "route_loop"),
        (a, {"alias": "no-at-sign"}, 400, "bad_route"),
        (a, {"alias": "a@@b.test"}, 400, "bad_route"),
        (a, {"alias": "a@-bad-.test"}, 400, "bad_route"),
        (a, {"alias": "a b@c.test"}, 400, "bad_route"),
        (a, {"alias": 7}, 400, "bad_request"),
        (dom.name, {"alias": f"x@{dom.name}"}, 400, "bad_route"),  # a domain aliases a domain
        (a, {"servers": [dict(ok_server, port=0)]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, port=65536)]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, port="25")]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, weight=-1)]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, weight=65536)]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, priority=70000)]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, weight=1.5)]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, tls="yes")]}, 400, "bad_route"),
        (a, {"servers": [{"pin": pin(1)}]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, host="bad_host!")]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, pin="sha1:abcd")]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, pin="sha256:not-base64!")]}, 400, "bad_route"),
        (a, {"servers": [dict(ok_server, pin="sha256:" + base64.b64encode(b"short").decode())]},
         400, "bad_route"),
        (a, {"servers": [dict(ok_server, pin=None)]}, 400, "bad_route"),
        (a, {"servers": []}, 400, "bad_route"),
        (a, {"servers": [ok_server] * 33}, 400, "bad_route"),
        (a, {"servers": ok_server}, 400, "bad_route"),
        (a, {"servers": [ok_server], "alias": f"x@{dom.name}"}, 400, "bad_route"),
        (a, {}, 400, "bad_route"),
        (a, {"alias": f"x@{dom.name}", "ttl": 59}, 400, "bad_route"),
        (a, {"alias": f"x@{dom.name}", "ttl": 86401}, 400, "bad_route"),
        (a, {"alias": f"x@{dom.name}", "ttl": "60"}, 400, "bad_route"),
        (a, {"alias": f"x@{dom.name}", "weight": 3}, 400, "bad_route"),  # unknown member
    ]


def test_bad_routes_are_refused_precisely_and_store_nothing(client, dom, pg, db):
    before = rf.route_snapshot(pg, db)
    failures = []
    for name, body, status, code in bad_cases(dom):
        r = rf.route_put(client, name, body, token=dom.admin_token)
        got = (r.status, r.error_code() if r.status >= 400 else None)
        if got != (status, code):
            failures.append(f"{name} {json.dumps(body)[:100]}: expected {status} {code}, "
                            f"got {got[0]} {got[1]} {r.body[:200]!r}")
    assert not failures, "\n".join(failures)
    assert rf.route_snapshot(pg, db) == before


def test_refusal_messages_name_the_member_and_the_reason(client, dom):
    """A bad host or alias is reported as the route's error followed, once and intact, by
    the name check's reason (these messages came out as "servers[0].host: servers[0].host:
    ust have..." while err_setf formatted into the buffer it was reading)."""
    a = f"msg@{dom.name}"
    cases = [
        ({"servers": [{"host": "localhost", "pin": pin(1)}]},
         "servers[0].host: the domain name must have at least two labels (like example.com)"),
        ({"alias": "no-at-sign"},
         "alias no-at-sign: the address has no '@'; write it as local@domain"),
    ]
    for body, message in cases:
        r = rf.route_put(client, a, body, token=dom.admin_token)
        assert (r.status, r.error_code()) == (400, "bad_route"), r.body
        assert r.json()["message"] == message


def test_same_domain_loops_are_refused(client, dom, pg, db):
    a, b, c = (f"{x}-loop@{dom.name}" for x in "abc")
    assert rf.route_put(client, a, {"alias": b}, token=dom.admin_token).status == 200
    assert rf.route_put(client, b, {"alias": c}, token=dom.admin_token).status == 200
    before = rf.route_snapshot(pg, db)
    for name, target in ((b, a), (c, a), (c, b)):
        r = rf.route_put(client, name, {"alias": target}, token=dom.admin_token)
        assert (r.status, r.error_code()) == (400, "route_loop"), (name, target, r.body)
    assert rf.route_snapshot(pg, db) == before
    # Leaving the domain is not a loop the server can see: allowed.
    r = rf.route_put(client, c, {"alias": f"{a.split('@')[0]}@elsewhere.test"},
                     token=dom.admin_token)
    assert r.status == 200, r.body


def test_admin_auth(client, dom, other, pg, db):
    addr = f"auth@{dom.name}"
    before = rf.route_snapshot(pg, db)
    r = rf.route_put(client, addr, {"alias": f"x@{dom.name}"})
    assert (r.status, r.error_code()) == (401, "unauthorized")
    r = rf.route_put(client, addr, {"alias": f"x@{dom.name}"}, token=other.admin_token)
    assert (r.status, r.error_code()) == (403, "forbidden")
    r = rf.route_put(client, dom.name, servers_body(1), token=other.admin_token)
    assert (r.status, r.error_code()) == (403, "forbidden")
    r = rf.route_delete(client, f"alice@{dom.name}", token=other.admin_token)
    assert r.status == 403
    assert rf.route_snapshot(pg, db) == before


# --------------------------------------------------------------------------
# Aliases set by the address's own user

@pytest.fixture(scope="module")
def carol(client, dom):
    """carol@dom enrolled; (address, key, chain PEMs [user, issuer, root])."""
    addr = f"carol@{dom.name}"
    cert, key = kf.enroll_new(client, dom, addr)
    return addr, key, [cert["certificate"], dom.issuer_pem, dom.root_pem]


def test_user_sets_own_alias(client, dom, other, carol, work, pg, db):
    addr, key, chain = carol
    r = rf.route_put(client, addr, rf.user_request(key, chain, addr, f"carol@{other.name}"))
    assert r.status == 200, r.body
    p = rf.verify_route(r.body, dom.pin, addr, work)
    assert p["alias"] == f"carol@{other.name}"
    assert rf.stored_route(pg, db, addr)[4].startswith("key:")
    # A later request (newer issued time) replaces it, with a ttl.
    r = rf.route_put(client, addr, rf.user_request(key, chain, addr, f"c2@{other.name}",
                                                   issued=int(time.time()) + 1, ttl=120))
    assert r.status == 200, r.body
    assert rf.verify_route(rf.route_get(client, addr).body, dom.pin, addr, work)["ttl"] == 120


def test_user_request_refusals(client, dom, other, carol, work, pg, db):
    addr, key, chain = carol
    now = int(time.time()) + 10  # later than anything test_user_sets_own_alias signed
    body = rf.user_request(key, chain, addr, f"z@{other.name}", issued=now)
    assert rf.route_put(client, addr, body).status == 200
    before = rf.route_snapshot(pg, db)
    # The very same request again, and an older one.
    r = rf.route_put(client, addr, body)
    assert (r.status, r.error_code()) == (409, "replayed"), r.body
    r = rf.route_put(client, addr, rf.user_request(key, chain, addr, f"y@{other.name}",
                                                   issued=now - 5))
    assert (r.status, r.error_code()) == (409, "replayed"), r.body
    # Outside the clock window, either way.
    for issued in (int(time.time()) - 3600, int(time.time()) + 3600):
        r = rf.route_put(client, addr, rf.user_request(key, chain, addr, f"y@{other.name}",
                                                       issued=issued))
        assert (r.status, r.error_code()) == (400, "stale_request"), r.body
    # Servers are the admin's.
    r = rf.route_put(client, addr, rf.user_request(key, chain, addr, None, issued=now + 1,
                                                   servers=servers_body(1)["servers"]))
    assert (r.status, r.error_code()) == (403, "forbidden"), r.body
    # A request for another address than the URL's.
    r = rf.route_put(client, f"dave@{dom.name}",
                     rf.user_request(key, chain, addr, f"y@{other.name}", issued=now + 2))
    assert r.status == 400 and r.error_code() == "address_mismatch", r.body
    # Alias to itself or to a malformed address.
    r = rf.route_put(client, addr, rf.user_request(key, chain, addr, addr, issued=now + 3))
    assert (r.status, r.error_code()) == (400, "route_loop"), r.body
    r = rf.route_put(client, addr, rf.user_request(key, chain, addr, "not an address",
                                                   issued=now + 4))
    assert (r.status, r.error_code()) == (400, "bad_route"), r.body
    # Signature that does not verify: payload swapped after signing.
    doc = json.loads(rf.user_request(key, chain, addr, f"y@{other.name}", issued=now + 5))
    evil = dict(json.loads(rf.b64url_decode(doc["payload"])), alias=f"evil@{other.name}")
    doc["payload"] = rf.b64url(json.dumps(evil).encode())
    r = rf.route_put(client, addr, doc)
    assert (r.status, r.error_code()) == (422, "jws_signature"), r.body
    assert rf.route_snapshot(pg, db)["routes"] == before["routes"]
    assert rf.verify_route(rf.route_get(client, addr).body, dom.pin, addr,
                           work)["alias"] == f"z@{other.name}"
    # Milliseconds count: two requests signed within one second are two new ones, and
    # the earlier of them sent again is a replay.
    for issued, alias in ((now + 6.25, "m1"), (now + 6.5, "m2")):
        r = rf.route_put(client, addr, rf.user_request(key, chain, addr,
                                                       f"{alias}@{other.name}", issued=issued))
        assert r.status == 200, r.body
    r = rf.route_put(client, addr, rf.user_request(key, chain, addr, f"m3@{other.name}",
                                                   issued=now + 6.25))
    assert (r.status, r.error_code()) == (409, "replayed"), r.body


def test_user_request_signed_by_another_key(client, dom, other, carol, pg, db):
    addr, _, _ = carol
    # dave's current key (same domain, same issuer) signs a request for carol's address.
    dave = f"dave@{dom.name}"
    cert, dkey = kf.enroll_new(client, dom, dave)
    dchain = [cert["certificate"], dom.issuer_pem, dom.root_pem]
    before = rf.route_snapshot(pg, db)
    r = rf.route_put(client, addr, rf.user_request(dkey, dchain, addr, f"x@{other.name}",
                                                   issued=int(time.time()) + 20))
    assert (r.status, r.error_code()) == (403, "not_current_key"), r.body
    # A user of another domain, chained to another root: does not verify against dom's pins.
    ext = f"erin@{other.name}"
    cert, ekey = kf.enroll_new(client, other, ext, alg="p256")
    echain = [cert["certificate"], other.issuer_pem, other.root_pem]
    r = rf.route_put(client, addr, rf.user_request(ekey, echain, addr, f"x@{other.name}",
                                                   issued=int(time.time()) + 21))
    assert (r.status, r.error_code()) == (422, "pin_mismatch"), r.body
    assert rf.route_snapshot(pg, db)["routes"] == before["routes"]


def test_superseded_key_is_refused(client, dom, other, pg, db):
    addr = f"frank@{dom.name}"
    cert1, key1 = kf.enroll_new(client, dom, addr)
    chain1 = [cert1["certificate"], dom.issuer_pem, dom.root_pem]
    r = rf.route_put(client, addr, rf.user_request(key1, chain1, addr, f"f1@{other.name}"))
    assert r.status == 200, r.body
    cert2, key2 = kf.enroll_new(client, dom, addr)  # re-enroll: key1 is superseded
    before = rf.route_snapshot(pg, db)
    r = rf.route_put(client, addr, rf.user_request(key1, chain1, addr, f"f2@{other.name}",
                                                   issued=int(time.time()) + 1))
    assert (r.status, r.error_code()) == (403, "not_current_key"), r.body
    assert rf.route_snapshot(pg, db) == before
    chain2 = [cert2["certificate"], dom.issuer_pem, dom.root_pem]
    r = rf.route_put(client, addr, rf.user_request(key2, chain2, addr, f"f3@{other.name}",
                                                   issued=int(time.time()) + 2))
    assert r.status == 200, r.body
    assert rf.stored_route(pg, db, addr)[2] == f"f3@{other.name}"
