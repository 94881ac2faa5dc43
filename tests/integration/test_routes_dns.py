"""Resolving addresses across domains (PROTOCOL.md §6.4) with `anchorctl route resolve`,
against a real authoritative DNS server (NSD on a loopback port, zones from
`anchor-dns records`) and two real key servers on separate databases:

    d1, d2, d3   on key server 1 (keys1.route.test); d2's zone is DNSSEC-signed
    e1, e2       on key server 2 (keys2.route.test)
    t            on key server 1, but its SRV record points at a server in the middle
                 (evil.route.test) that tampers with answers or serves forged ones
    legacy       no _anchor records, two MX records

Each domain is anchored in its own zone (_anchor TXT with its pin, _anchor._tcp SRV to a
host whose A record is 127.0.0.1 and whose name the test TLS certificate holds)."""

import json
import time
from types import SimpleNamespace

import pytest

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import routefixtures as rf

PARENT = "route.test"
KS1, KS2, EVIL = (f"{h}.{PARENT}" for h in ("keys1", "keys2", "evil"))


def zname(label):
    return f"{label}.{PARENT}"


def pin(n):
    import base64
    import hashlib
    return "sha256:" + base64.b64encode(hashlib.sha256(bytes([n])).digest()).decode()


def servers(*specs):
    """specs: (host, priority, weight) -> a servers route body."""
    return {"servers": [{"host": h, "port": 25, "priority": p, "weight": w, "pin": pin(i)}
                        for i, (h, p, w) in enumerate(specs)]}


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    work = anchorlib.mktemp_dir("anchor-rdns-")
    tls = dx.make_tls(work / "tls", [KS1, KS2, EVIL])
    db2_name = f"t_routes_dns_ks2_{int(time.time() * 1000) % 10**9}"
    db2 = pg.create_database(db2_name)
    ks1 = anchorlib.Keyserver(work / "ks1", db, tls, operator_token.hash)
    ks2 = anchorlib.Keyserver(work / "ks2", db2, tls, operator_token.hash)
    w = SimpleNamespace(work=work, tls=tls, ks1=ks1, ks2=ks2, doms={}, nsd=None, middle=None)

    def finish():
        if w.nsd:
            w.nsd.stop()
        if w.middle:
            w.middle.stop()
        errors = []
        for ks in (ks1, ks2):
            try:
                ks.stop()
            except AssertionError as e:
                errors.append(str(e))
        pg.drop_database(db2_name)
        if errors:
            raise AssertionError("\n".join(errors))
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks1.start()
    ks2.start()
    w.middle = rf.MiddleServer(tls, ks1.client())
    base = work / "domains"
    home = {"d1": ks1, "d2": ks1, "d3": ks1, "e1": ks2, "e2": ks2, "t": ks1}
    for label, ks in home.items():
        w.doms[label] = kf.register_domain(ks, base, zname(label), operator_token.token)

    zdir = work / "zones"
    zdir.mkdir()
    zones = {}

    def records(label, target):
        ks = home[label]
        r = dx.anchor_dns("records", zname(label), "-s", ks.base_url, "--cacert", tls.ca,
                          "--keyserver", target)
        assert r.rc == 0, r.err
        return r.out

    zones[PARENT] = zdir / f"{PARENT}.zone"
    zones[PARENT].write_text(dx.zone_text(PARENT, "".join(
        f"{h.split('.')[0]} IN A 127.0.0.1\n" for h in (KS1, KS2, EVIL)), mx=False))
    anchors = work / "anchors.txt"
    for label, ks in home.items():
        target = f"{EVIL}:{w.middle.port}:10:10" if label == "t" else \
            f"{KS1 if ks is ks1 else KS2}:{ks.port}:10:10"
        text = dx.zone_text(zname(label), records(label, target), mx=False)
        if label == "d2":
            z = dx.sign_zone(zdir / "d2", zname(label), text)
            zones[zname(label)] = z.path
            anchors.write_text(z.ds_file.read_text())
        else:
            zones[zname(label)] = zdir / f"{label}.zone"
            zones[zname(label)].write_text(text)
    zones[zname("legacy")] = zdir / "legacy.zone"
    zones[zname("legacy")].write_text(dx.zone_text(zname("legacy"),
                                                   f"@ IN MX 20 mx2.{zname('legacy')}.\n"))
    zones[zname("nullmx")] = zdir / "nullmx.zone"
    zones[zname("nullmx")].write_text(dx.zone_text(zname("nullmx"), "@ IN MX 0 .\n", mx=False))
    zones[zname("implicit")] = zdir / "implicit.zone"
    zones[zname("implicit")].write_text(dx.zone_text(zname("implicit"), "@ IN A 127.0.0.1\n",
                                                     mx=False))
    w.nsd = dx.Nsd(work / "nsd", zones).start()
    w.env = {"ANCHOR_RESOLVER": w.nsd.resolver, "ANCHOR_CACERT": str(tls.ca),
             "ANCHOR_SERVER": "", "ANCHOR_TRUST_ANCHOR": str(anchors)}
    return w


def put(world, name, body):
    label = name.split("@")[-1].split(".")[0]
    dom = world.doms[label]
    ks = world.ks2 if label.startswith("e") else world.ks1
    r = rf.route_put(ks.client(), name, body, token=dom.admin_token)
    assert r.status == 200, (name, body, r.status, r.body)
    return r


def resolve(world, address, *extra, env=None):
    e = dict(world.env)
    e.update(env or {})
    return anchorlib.run_program([anchorlib.binary("anchorctl"), "route", "resolve", address,
                                  *extra], env=e, timeout=120)


def resolve_json(world, address, *extra):
    r = resolve(world, address, "--json", *extra)
    assert r.out.strip(), r.err
    return r.rc, json.loads(r.out), r.err


# --------------------------------------------------------------------------
# Following aliases

def test_alias_across_two_domains_on_one_key_server(world):
    a, b = f"alice@{zname('d1')}", f"bob@{zname('d2')}"
    put(world, a, {"alias": b})
    put(world, b, servers(("mx1.example.net", 10, 1)))
    rc, doc, err = resolve_json(world, a)
    assert rc == 0, err
    assert [(h["address"], h["kind"]) for h in doc["hops"]] == [(a, "alias"), (b, "servers")]
    assert doc["hops"][0]["alias"] == b and doc["hops"][0]["domain"] == zname("d1")
    assert doc["final"] == b and doc["legacy"] is False
    assert doc["targets"] == [{"host": "mx1.example.net", "port": 25, "priority": 10,
                               "weight": 1, "pin": pin(0)}]
    # DNSSEC: d2's zone is signed under the configured trust anchor, d1's is not.
    assert doc["hops"][1]["dnssec"] == "secure"
    assert doc["hops"][0]["dnssec"] in ("insecure", "unvalidated")
    # The human form names every hop and the targets in order.
    r = resolve(world, a)
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith(f"hop 1: {a} (domain {zname('d1')}, dnssec ")
    assert lines[0].endswith(f"alias -> {b} [scope address, ttl 3600, expires "
                             f"{doc['hops'][0]['expires']}]")
    assert lines[1].startswith(f"hop 2: {b} (domain {zname('d2')}, dnssec secure, fetched): "
                               "servers")
    assert f"  1. mx1.example.net:25 priority 10 weight 1 pin {pin(0)}" in lines


def test_three_domains_on_two_key_servers(world):
    """x@d1 -(address alias)-> y@e1 -(e1's domain default)-> y@d3 -> servers."""
    x = f"x@{zname('d1')}"
    put(world, x, {"alias": f"y@{zname('e1')}"})
    put(world, zname("e1"), {"alias": zname("d3")})
    put(world, f"y@{zname('d3')}", servers(("in1.example.org", 5, 0), ("in2.example.org", 10, 3)))
    rc, doc, err = resolve_json(world, x)
    assert rc == 0, err
    hops = [(h["address"], h["kind"], h.get("scope")) for h in doc["hops"]]
    assert hops == [(x, "alias", "address"), (f"y@{zname('e1')}", "alias", "domain"),
                    (f"y@{zname('d3')}", "servers", "address")]
    assert [t["host"] for t in doc["targets"]] == ["in1.example.org", "in2.example.org"]


def test_domain_default_alias_keeps_the_local_part(world):
    put(world, zname("e2"), {"alias": zname("d3")})
    put(world, zname("d3"), servers(("default.example.org", 10, 1)))
    rc, doc, err = resolve_json(world, f"Some.One@{zname('e2')}")
    assert rc == 0, err
    assert doc["final"] == f"some.one@{zname('d3')}"
    assert doc["hops"][1]["scope"] == "domain"
    assert doc["targets"][0]["host"] == "default.example.org"


def test_cross_domain_loop_is_detected(world):
    a, b = f"loop@{zname('d1')}", f"loop@{zname('e1')}"
    put(world, a, {"alias": b})      # each key server sees only its own half:
    put(world, b, {"alias": a})      # neither refuses
    rc, doc, err = resolve_json(world, a)
    assert rc == 1
    assert doc["error"] == "route_loop", doc
    assert [h["address"] for h in doc["hops"]] == [a, b]
    r = resolve(world, a)
    assert r.rc == 1 and "anchorctl: route_loop: " in r.err
    assert f"hop 2: {b}" in r.out


def test_three_domain_loop(world):
    a, b, c = f"ring@{zname('d1')}", f"ring@{zname('e2')}", f"ring@{zname('d2')}"
    put(world, a, {"alias": b})
    put(world, b, {"alias": c})
    put(world, c, {"alias": a})
    rc, doc, _ = resolve_json(world, b)
    assert rc == 1 and doc["error"] == "route_loop"
    assert [h["address"] for h in doc["hops"]] == [b, c, a]


def chain(world, prefix, n_aliases):
    """prefix0@d1 -> prefix1@e1 -> prefix2@d1 -> ... ; the last one has servers."""
    names = [f"{prefix}{i}@{zname('d1' if i % 2 == 0 else 'e1')}" for i in range(n_aliases + 1)]
    for i in range(n_aliases):
        put(world, names[i], {"alias": names[i + 1]})
    put(world, names[-1], servers(("end.example.net", 10, 1)))
    return names


def test_hop_limit(world):
    ok = chain(world, "h", 8)       # 8 aliases: 9 answers, the most allowed
    rc, doc, err = resolve_json(world, ok[0])
    assert rc == 0, err
    assert len(doc["hops"]) == 9 and doc["final"] == ok[-1]
    far = chain(world, "f", 9)      # one more
    rc, doc, _ = resolve_json(world, far[0])
    assert rc == 1 and doc["error"] == "too_many_hops", doc
    assert doc["targets"] == []


def test_no_route(world):
    rc, doc, _ = resolve_json(world, f"nobody@{zname('d2')}")
    assert rc == 1 and doc["error"] == "no_route"
    # An alias into a domain where the target has no route.
    put(world, f"dangling@{zname('d1')}", {"alias": f"nobody@{zname('d2')}"})
    rc, doc, _ = resolve_json(world, f"dangling@{zname('d1')}")
    assert rc == 1 and doc["error"] == "no_route" and len(doc["hops"]) == 2


def test_alias_into_a_domain_that_takes_no_mail(world):
    """No anchor, no MX, no address (here: the name does not exist): no_route."""
    put(world, f"lost@{zname('d1')}", {"alias": f"x@nowhere.{PARENT}"})
    rc, doc, err = resolve_json(world, f"lost@{zname('d1')}")
    assert rc == 1 and doc["error"] == "no_route", doc
    assert [h["kind"] for h in doc["hops"]] == ["alias", "legacy"] and doc["targets"] == []
    rc, doc, err = resolve_json(world, f"x@{zname('nullmx')}")   # RFC 7505 null MX
    assert rc == 1 and doc["error"] == "no_route", doc


# --------------------------------------------------------------------------
# Answers that must not be followed

def test_tampered_answer_is_rejected(world):
    t = world.doms["t"]
    a = f"victim@{t.name}"
    put(world, a, {"alias": f"good@{zname('d2')}"})
    path = f"/v1/routes/{a}"
    # Untouched, through the middle server, it resolves.
    world.middle.tamper.pop(path, None)
    rc, doc, err = resolve_json(world, a)
    assert doc["hops"][0]["alias"] == f"good@{zname('d2')}", (doc, err)
    # Changed in transit: the alias now points at the attacker.
    world.middle.tamper[path] = lambda text: rf.tamper_payload(text, alias=f"evil@{zname('e2')}")
    rc, doc, err = resolve_json(world, a)
    assert rc == 1 and doc["error"] == "route_unverified", doc
    assert all(h["address"] != f"evil@{zname('e2')}" for h in doc["hops"])
    assert doc["targets"] == []
    assert any(p == path for p in world.middle.hits)
    del world.middle.tamper[path]


def forged(world, name, expires_in=3600, sign_as="t", **extra):
    t = world.doms["t"]
    now = int(time.time())
    payload = {"type": "anchor-route", "name": name, "domain": t.name, "scope": "address",
               "servers": [{"host": "forged.example.net", "port": 25, "priority": 10,
                            "weight": 1, "pin": pin(9)}],
               "ttl": 60, "issued": rf.rfc3339(now - 7200),
               "expires": rf.rfc3339(now + expires_in), "updated": rf.rfc3339(now - 7200)}
    payload.update(extra)
    return rf.sign_route(world.doms[sign_as], payload)


def test_expired_answer_is_rejected(world):
    t = world.doms["t"]
    a = f"stale@{t.name}"
    world.middle.answers[f"/v1/routes/{a}"] = forged(world, a, expires_in=-60)
    rc, doc, _ = resolve_json(world, a)
    assert rc == 1 and doc["error"] == "route_expired", doc
    assert doc["targets"] == []
    # The same answer with an expiry ahead verifies: the refusal was the expiry alone.
    world.middle.answers[f"/v1/routes/{a}"] = forged(world, a, expires_in=600)
    rc, doc, err = resolve_json(world, a)
    assert rc == 0, (doc, err)
    assert doc["targets"][0]["host"] == "forged.example.net"


def test_answer_for_another_name_is_rejected(world):
    t = world.doms["t"]
    a = f"asked@{t.name}"
    world.middle.answers[f"/v1/routes/{a}"] = forged(world, f"other@{t.name}")
    rc, doc, _ = resolve_json(world, a)
    assert rc == 1 and doc["error"] == "route_mismatch", doc


def test_answer_signed_by_another_domain_is_rejected(world):
    t = world.doms["t"]
    a = f"foreign@{t.name}"
    # Validly signed, but by d1's issuer: its root is not t's pin.
    world.middle.answers[f"/v1/routes/{a}"] = forged(world, a, sign_as="d1")
    rc, doc, _ = resolve_json(world, a)
    assert rc == 1 and doc["error"] == "route_unverified", doc


def test_answer_signed_by_a_user_of_the_domain_is_rejected(world):
    """A user certificate chains to the pinned root too, but only the domain (its issuer)
    speaks for routes: mallory@t must not be able to redirect victim@t's mail."""
    t = world.doms["t"]
    cert, key = kf.enroll_new(world.ks1.client(), t, f"mallory@{t.name}")
    a = f"target@{t.name}"
    now = int(time.time())
    payload = {"type": "anchor-route", "name": a, "domain": t.name, "scope": "address",
               "alias": f"mallory@{zname('e2')}", "ttl": 60, "issued": rf.rfc3339(now),
               "expires": rf.rfc3339(now + 600), "updated": rf.rfc3339(now)}
    world.middle.answers[f"/v1/routes/{a}"] = rf.sign(
        key, [cert["certificate"], t.issuer_pem, t.root_pem], payload, "anchor-route+jws")
    rc, doc, _ = resolve_json(world, a)
    assert rc == 1 and doc["error"] == "route_unverified", doc
    assert all(h.get("alias") != f"mallory@{zname('e2')}" for h in doc["hops"])


# --------------------------------------------------------------------------
# Load spread, caching, legacy

def test_weighted_spread_within_bounds(world):
    w = f"spread@{zname('d3')}"
    put(world, w, servers(("heavy.example.net", 10, 60), ("light.example.net", 10, 40),
                          ("backup.example.net", 20, 100)))
    n = 4000
    r = resolve(world, w, "--json", "--repeat", str(n))
    assert r.rc == 0, r.err
    doc = json.loads(r.out)
    firsts = doc["first_targets"]
    assert set(firsts) <= {"heavy.example.net", "light.example.net"}, firsts
    heavy = firsts.get("heavy.example.net", 0)
    sigma = (n * 0.6 * 0.4) ** 0.5
    assert abs(heavy - 0.6 * n) < 5 * sigma, firsts
    assert doc["route_fetches"] == 1  # warm: one fetch, then the cache
    # The lower priority always comes after both.
    rc, one, _ = resolve_json(world, w)
    assert [t["host"] for t in one["targets"]][2] == "backup.example.net"


def test_warm_and_cold_repeat(world):
    x = f"x@{zname('d1')}"  # three hops, from test_three_domains_on_two_key_servers
    r = resolve(world, x, "--json", "--repeat", "20")
    assert r.rc == 0, r.err
    warm = json.loads(r.out)
    assert warm["hops"] == 3 and warm["route_fetches"] == 3
    r = resolve(world, x, "--json", "--repeat", "5", "--cold")
    assert r.rc == 0, r.err
    cold = json.loads(r.out)
    assert cold["route_fetches"] == 15 and cold["mode"] == "cold"
    r = resolve(world, x, "--repeat", "3")
    assert r.rc == 0 and "3 warm resolutions (3 hops)" in r.out, r.out


def test_legacy_domain_falls_back_to_mx(world):
    a = f"old@{zname('legacy')}"
    rc, doc, err = resolve_json(world, a)
    assert rc == 0, err
    assert doc["legacy"] is True and doc["hops"][0]["kind"] == "legacy"
    assert [(t["host"], t["priority"]) for t in doc["targets"]] == [
        (f"mx1.{zname('legacy')}", 10), (f"mx2.{zname('legacy')}", 20)]
    assert all("pin" not in t for t in doc["targets"])
    # No MX but an address: the domain itself is the implicit MX (RFC 5321 §5.1).
    rc, doc, err = resolve_json(world, f"x@{zname('implicit')}")
    assert rc == 0, err
    assert [(t["host"], t["port"]) for t in doc["targets"]] == [(zname("implicit"), 25)]
    # An alias from an anchored domain into the legacy one ends there too.
    put(world, f"moved@{zname('d1')}", {"alias": a})
    rc, doc, err = resolve_json(world, f"moved@{zname('d1')}")
    assert rc == 0 and doc["legacy"] is True and len(doc["hops"]) == 2, (doc, err)


def test_show_from_dns(world):
    """route show without -s: key server and pins from DNS."""
    b = f"bob@{zname('d2')}"
    put(world, b, servers(("mx1.example.net", 10, 1)))
    r = anchorlib.run_program([anchorlib.binary("anchorctl"), "route", "show", b],
                              env=world.env)
    assert r.rc == 0, r.err
    assert f"verified: signature and chain to a root pinned in DNS (_anchor.{zname('d2')}, " \
           "dnssec secure)" in r.out
    r = anchorlib.run_program([anchorlib.binary("anchorctl"), "route", "show",
                               f"old@{zname('legacy')}"], env=world.env)
    assert r.rc == 1 and "legacy_domain" in r.err
    # Through the tampering middle server, show refuses too.
    t = world.doms["t"]
    a = f"victim2@{t.name}"
    put(world, a, {"alias": b})
    world.middle.tamper[f"/v1/routes/{a}"] = lambda text: rf.tamper_payload(text, ttl=86400)
    r = anchorlib.run_program([anchorlib.binary("anchorctl"), "route", "show", a],
                              env=world.env)
    assert r.rc == 1 and "route_unverified" in r.err, r.err
