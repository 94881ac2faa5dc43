"""DNSSEC validation from a root trust anchor, as a real validator does it
(PROTOCOL.md §8.3): a test root zone "." with its own KSK and ZSK, top-level
zones delegated from it with DS (ta. signed with NSEC, tb. with NSEC3 and
opt-out), and the anchored domains delegated below those, all in one NSD on
loopback; the only trust anchor given is the root's KSK (as DS, or as DNSKEY
the way Debian's /usr/share/dns/root.key holds it).

    secure       sec.ta (NSEC), sec3.tb (NSEC3): discovery is "secure", through
                 anchor-dns and through the relay's control API (certauth)
    denial       NXDOMAIN and NODATA of the _anchor records proven by NSEC and NSEC3
    insecure     uns.ta (NSEC: NS, no DS), island.ta (signed, but its parent proves
                 no DS), optout.tb (an unsigned delegation inside tb.'s NSEC3
                 opt-out span): "insecure", never "secure", and not refused
    bogus        wrongds.ta (the parent's DS names another key), expired.ta
                 (RRSIGs expired yesterday), nods.ta (signed child whose DS was
                 taken out of the signed parent: the parent's NSEC still lists DS):
                 refused with dnssec_bogus before any HTTPS request
"""

import base64
import json
import secrets
from types import SimpleNamespace

import pytest

import anchorlib
import dnschain
import dnsfixtures as dx
import ksfixtures as kf
from relayfixtures import make_relay  # noqa: F401
from dnschain import Zone

KS = "keys.ta"
SECURE = ("sec.ta", "sec3.tb")
LEGACY = ("leg.ta", "leg3.tb")
MX = "@ IN MX 10 mx1\nmx1 IN A 127.0.0.1\n"


def anchor_records(pin, port):
    return (f'_anchor IN TXT "v=ANCHOR1; pin={pin}; mode=enforce"\n'
            f"_anchor._tcp IN SRV 10 10 {port} {KS}.\n")


@pytest.fixture(scope="module")
def world(db, operator_token, request):
    work = anchorlib.mktemp_dir("anchor-rootchain-")
    tls = dx.make_tls(work / "tls", [KS])
    ks = anchorlib.Keyserver(work / "ks", db, tls, operator_token.hash)
    w = SimpleNamespace(work=work, tls=tls, ks=ks, chain=None, doms={})

    def finish():
        if w.chain:
            w.chain.stop()
        ks.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks.start()
    base = work / "domains"
    for name in ("sec.ta", "sec3.tb", "uns.ta", "optout.tb", "wrongds.ta"):
        w.doms[name] = kf.register_domain(ks, base, name, operator_token.token)
    for name in ("island.ta", "expired.ta", "nods.ta"):  # never fetched: a pin will do
        w.doms[name] = SimpleNamespace(pin="sha256:" + base64.b64encode(
            secrets.token_bytes(32)).decode())
    w.users = work / "users"
    w.users.mkdir()
    for name in ("sec.ta", "optout.tb", "wrongds.ta"):
        addr = f"bob@{name}"
        kf.ctl_ok(ks, "key", "new", addr, "--dir", w.users, cwd=base)
        tok = kf.issue_token(ks.client(), w.doms[name], addr)
        kf.ctl_ok(ks, "key", "enroll", addr, "--token", tok, "--dir", w.users, cwd=base)


    def z(name, **kw):
        return Zone(name, anchor_records(w.doms[name].pin, ks.port) + MX, **kw)

    ta = Zone("ta", f"keys IN A 127.0.0.1\n", children=[
        z("sec.ta"), z("uns.ta", signing=None, ds="none"), z("island.ta", ds="none"),
        z("wrongds.ta", ds="wrong"), z("expired.ta", expired=True),
        z("nods.ta", ds="deleted"), Zone("leg.ta", "www IN A 127.0.0.1\n" + MX)])
    tb = Zone("tb", signing="nsec3-optout", children=[
        z("sec3.tb", signing="nsec3"), z("optout.tb", signing=None, ds="none"),
        Zone("leg3.tb", "www IN A 127.0.0.1\n" + MX, signing="nsec3"),
        Zone("iter.tb", "www IN A 127.0.0.1\n" + MX, signing="nsec3", iterations=500)])
    w.chain = dnschain.build(work / "dns", [ta, tb])
    w.env = {"ANCHOR_RESOLVER": w.chain.resolver, "ANCHOR_TRUST_ANCHOR": w.chain.root_key,
             "ANCHOR_CACERT": tls.ca}
    return w


def discover(world, target, anchor=None):
    env = dict(world.env)
    if anchor is not None:
        env["ANCHOR_TRUST_ANCHOR"] = anchor
    r = dx.anchor_dns("discover", target, "--json", env=env)
    assert r.out.strip(), r.err
    return r.rc, json.loads(r.out)


def validate(world, name, rtype="TXT"):
    r = dx.anchor_dns("validate", name, "--type", rtype, "--json", env=world.env)
    assert r.out.strip(), r.err
    return r.rc, json.loads(r.out)


# ---------------------------------------------------------------- secure


@pytest.mark.parametrize("domain", SECURE)
def test_secure_chain_from_the_root(world, domain):
    rc, doc = discover(world, domain)
    assert rc == 0, doc
    assert doc["status"] == "anchored" and doc["dnssec"] == "secure", doc
    assert doc["root_pin"] == world.doms[domain].pin


def test_root_anchor_as_ds_or_dnskey(world):
    """The root KSK as a DS record or as the DNSKEY itself (root.key's form)."""
    for anchor in (world.chain.root_ds, world.chain.root_key):
        rc, doc = discover(world, "sec.ta", anchor=anchor)
        assert rc == 0 and doc["dnssec"] == "secure", (anchor, doc)


def test_wrong_root_anchor_is_bogus(world):
    """A root key that is not the one the root zone is signed with: nothing validates."""
    other = world.work / "other-root"
    other.mkdir()
    k = dx._run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", "."], cwd=other).stdout.strip()
    rc, doc = discover(world, "sec.ta", anchor=other / f"{k}.key")
    assert rc == 1 and doc["error"]["code"] == "dnssec_bogus", doc
    assert "no DNSKEY matches the trust anchor" in doc["error"]["message"], doc


def test_validate_names_the_verdict(world):
    rc, doc = validate(world, "_anchor.sec.ta")
    assert rc == 0 and doc["dnssec"] == "secure", doc
    assert doc["records"] and "v=ANCHOR1" in doc["records"][0]
    r = dx.anchor_dns("validate", "_anchor.sec3.tb", env=world.env)
    assert r.rc == 0 and r.out.startswith("_anchor.sec3.tb TXT: secure\n"), r.out


# ---------------------------------------------------------------- denial


@pytest.mark.parametrize("name,rtype,kind", [
    ("_anchor.leg.ta", "TXT", "nxdomain"),          # NSEC
    ("_anchor._tcp.leg.ta", "SRV", "nxdomain"),
    ("_anchor.sec.ta", "SRV", "nodata"),            # the name has a TXT, no SRV
    ("_anchor.leg3.tb", "TXT", "nxdomain"),         # NSEC3
    ("_anchor._tcp.leg3.tb", "SRV", "nxdomain"),
    ("_anchor.sec3.tb", "SRV", "nodata"),
    ("_tcp.sec3.tb", "TXT", "nodata"),              # an empty non-terminal
])
def test_denial_of_anchor_records_is_proven(world, name, rtype, kind):
    rc, doc = validate(world, name, rtype)
    assert rc == 0, doc
    assert doc[kind] and doc["dnssec"] == "secure", doc


@pytest.mark.parametrize("domain", LEGACY)
def test_legacy_domain_is_proven_legacy(world, domain):
    rc, doc = discover(world, domain)
    assert rc == 0, doc
    assert doc["status"] == "legacy" and doc["dnssec"] == "secure", doc
    assert doc["mx"] == [{"preference": 10, "host": f"mx1.{domain}"}]


def test_forged_denial_is_bogus(world):
    """A denial the zone does not sign: _anchor.sec.ta exists, so an NXDOMAIN for it
    cannot be proven; asked of a server whose copy of sec.ta lost the record after
    signing (the NSEC chain still lists it)."""
    signed = world.chain.zones["sec.ta."]
    forged = world.work / "forged"
    forged.mkdir()
    text = "\n".join(l for l in signed.read_text().splitlines()
                     if not l.startswith("_anchor.sec.ta.") or "NSEC" in l) + "\n"
    (forged / "sec.zone").write_text(text)
    zones = dict(world.chain.zones)
    zones["sec.ta."] = forged / "sec.zone"
    nsd = dx.Nsd(forged / "nsd", zones, root=False).start()
    try:
        env = dict(world.env, ANCHOR_RESOLVER=nsd.resolver)
        r = dx.anchor_dns("validate", "_anchor.sec.ta", "--json", env=env)
        doc = json.loads(r.out)
        assert r.rc == 1 and doc["dnssec"] == "bogus", doc
        assert "does not deny" in doc["why"], doc
    finally:
        nsd.stop()


def test_costly_nsec3_is_not_hashed(world):
    """A zone whose NSEC3 asks for 500 hash iterations per name does not get them: its
    denials are not accepted (RFC 9276 §3.2), and discovery refuses rather than call
    the domain legacy."""
    rc, v = validate(world, "_anchor.iter.tb")
    assert rc == 1 and v["nxdomain"] and v["dnssec"] == "bogus", v
    assert "NSEC3 with 500 iterations, above 150" in v["why"], v
    rc, doc = discover(world, "iter.tb")
    assert rc == 1 and doc["error"]["code"] == "dnssec_bogus", doc


# ---------------------------------------------------------------- insecure


def test_signed_child_without_ds_is_insecure(world):
    """island.ta is signed, but its parent proves it has no DS: insecure (RFC 4035
    §5.2), not secure, and not bogus either (compare nods.ta below)."""
    rc, v = validate(world, "_anchor.island.ta")
    assert rc == 0 and v["dnssec"] == "insecure", v
    assert v["why"] == "island.ta.: insecure delegation: signed NSEC proof of no DS", v


@pytest.mark.parametrize("domain,why", [
    ("uns.ta", "uns.ta.: insecure delegation: signed NSEC proof of no DS"),
    ("optout.tb", "optout.tb.: insecure delegation: covered by an NSEC3 opt-out span"),
])
def test_insecure_delegation_is_insecure(world, domain, why):
    rc, doc = discover(world, domain)
    assert rc == 0, doc
    assert doc["status"] == "anchored" and doc["dnssec"] == "insecure", doc
    # SRV and TXT are asked at once: one may find the delegation already proven (cached)
    assert doc["dnssec_reason"].startswith(f"{domain}.: insecure delegation"), doc
    rc, v = validate(world, f"_anchor.{domain}")
    assert rc == 0 and v["dnssec"] == "insecure" and why in v["why"], v


def test_nxdomain_in_an_optout_span_is_insecure(world):
    """tb.'s NSEC3 chain skips unsigned delegations: the absence of a name inside an
    opt-out span is not proven (RFC 5155 §9.2)."""
    rc, doc = validate(world, f"nothing-{secrets.token_hex(3)}.tb", "A")
    assert rc == 0 and doc["nxdomain"] and doc["dnssec"] == "insecure", doc
    assert "opt-out" in doc["why"], doc


# ---------------------------------------------------------------- bogus


@pytest.mark.parametrize("domain,why", [
    ("wrongds.ta", "wrongds.ta.: no DNSKEY matches the trust anchor (DS)"),
    ("expired.ta", "DNSSEC signature has expired"),
    ("nods.ta", "nods.ta.: signed, but its parent gives no DS for it"),
])
def test_broken_chain_is_bogus_and_refused(world, domain, why):
    rc, doc = discover(world, domain)
    assert rc == 1, doc
    assert doc["status"] == "error" and doc["dnssec"] == "bogus", doc
    assert doc["error"]["code"] == "dnssec_bogus" and why in doc["error"]["message"], doc
    assert doc["https_requests"] == 0
    rc, v = validate(world, f"_anchor.{domain}")
    assert rc == 1 and v["dnssec"] == "bogus" and why in v["why"], v


# ---------------------------------------------------------------- the relay


def test_relay_checks_signed_requests_through_the_root_chain(world, make_relay, tls):
    """The relay's control API authenticates a user's signed request with the pins its
    discovery finds (certauth): secure and insecure domains are served, a bogus one is
    refused."""
    domains = "sec.ta, optout.tb, wrongds.ta"
    relay = make_relay(control=True, local_domains=domains, dns_server=world.chain.resolver,
                       dns_trust_anchor=str(world.chain.root_key),
                       keyserver_cacert=world.tls.ca,
                       control_token_hash=anchorlib.make_token().hash)

    def listing(addr):
        argv = [anchorlib.binary("anchorctl"), "-s",
                f"https://127.0.0.1:{relay.ports['control']}", "--cacert", tls.ca,
                "relay", "list", addr, "--json", "--key", str(world.users / f"{addr}.key")]
        return anchorlib.run_program(argv, env=dx.clean_env(), timeout=60)

    for addr in ("bob@sec.ta", "bob@optout.tb"):
        r = listing(addr)
        assert r.rc == 0, (addr, r.err)
        assert json.loads(r.out)["address"] == addr
    r = listing("bob@wrongds.ta")
    assert r.rc == 1, r.out
    assert "not_anchored" in r.err and "DNSSEC validation failed for wrongds.ta" in r.err, r.err
    assert "no DNSKEY matches the trust anchor (DS)" in r.err, r.err
