"""anchor-reputation against a ring of cheap domains (issue 21; docs/operator-reputation.md
§8, the threat model): independent networks from DNS, bursts of new reporters, and vouching
for an IP.

Ring domains ring1..ring4 have their mail servers (MX) at 127.0.0.11..14: the same /24 as
the key server every domain here uses (keys.rep.test, 127.0.0.1), so the service finds the
whole ring on one network however many names it registers and whatever address it reports
from.  h1..h4 have mail servers of their own (127.0.N.1, one /24 each); v1 is vetted."""

import re
import secrets

import pytest

import repfixtures as rx

RING = ["ring1", "ring2", "ring3", "ring4"]
HONEST = ["h1", "h2", "h3", "h4"]


def ring_mx(label):
    return f"127.0.0.{10 + RING.index(label) + 1}" if label in RING else None


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rx.build_world(pg, db, operator_token, request, RING + HONEST + ["v1"], mx_ip=ring_mx)
    w.rep = rx.Reputation(w, w.work / "rep", db, {
        "min_reporters": "3", "list_weight": "2.5", "trust_weight": "2.5",
        "reporter_cap": "1", "network_cap": "1.5", "vetted_reporters": "v1.rep.test 1",
        "answer_cache_ttl": "0"}).start()
    return w


def reporters(world, names):
    return [world.reporters[n] for n in names]


def daemon(world, name, extra):
    """A daemon of its own on a database of its own, to which every reporter is new."""
    dbname = f"t_rep_{name}_{secrets.token_hex(4)}"
    conninfo = world.pg.create_database(dbname)
    rep = rx.Reputation(world, world.work / f"rep-{name}", conninfo, extra).start()
    rep.db = conninfo

    def close():
        rep.stop()
        world.reps.remove(rep)
        world.pg.drop_database(dbname)
    return rep, close


def test_ring_on_one_network_cannot_list_an_ip(world):
    """Three ring domains reporting from three /24s (source addresses 127.0.N.1) listed an
    IP: the network was the report's source address, which the reporter picks.  Their DNS
    puts all three on one network: at most network_cap together, and a listing needs
    min_networks independent networks."""
    subject = "ip:198.51.100.50"
    for r in reporters(world, RING[:3]):
        rx.report_ok(world.rep, r, [subject])  # each from its own source /24
    s = rx.subject_of(rx.query(world.rep, ip="198.51.100.50"), subject)
    assert s["verdict"] == "unknown", s
    assert s["bad"] == pytest.approx(1.5, abs=1e-3), s  # one network: network_cap
    codes = rx.codes(s["reasons"])
    assert "too_few_networks" in codes and "network_capped" in codes, s["reasons"]
    text = [r["text"] for r in s["reasons"] if r["code"] == "too_few_networks"][0]
    assert "on 1 independent network(s)" in text, text
    # One honest domain more: two networks, still short of three.
    rx.report_ok(world.rep, world.reporters["h1"], [subject])
    s = rx.subject_of(rx.query(world.rep, ip="198.51.100.50"), subject)
    assert s["verdict"] == "unknown" and "too_few_networks" in rx.codes(s["reasons"]), s
    # A second: three independent networks (the ring counts as one of them).
    rx.report_ok(world.rep, world.reporters["h2"], [subject])
    s = rx.subject_of(rx.query(world.rep, ip="198.51.100.50"), subject)
    assert s["verdict"] == "block", s


def test_ring_cannot_whitelist_an_ip(world):
    """A not-spam about an IP with "verified_identity": true made it trusted on three
    domains' word: the flag is the reporter's claim.  Vouching for an IP now counts only
    from vetted reporters (and peers); a vetted one's counts."""
    subject = "ip:198.51.100.60"
    for r in reporters(world, HONEST[:3]):  # three domains on three networks
        rx.report_ok(world.rep, r, [subject], category="not-spam", verified=True)
    s = rx.subject_of(rx.query(world.rep, ip="198.51.100.60"), subject)
    assert s["good"] == 0 and s["verdict"] == "unknown", s
    rx.report_ok(world.rep, world.reporters["v1"], [subject], category="not-spam",
                 verified=True)
    s = rx.subject_of(rx.query(world.rep, ip="198.51.100.60"), subject)
    assert s["good"] == pytest.approx(1.0, abs=0.01), s
    assert s["verdict"] == "unknown", s  # one domain makes no verdict


def test_burst_of_new_reporters_is_held_back(world):
    """Three domains the service has never seen, each on a network of its own, listed an
    IP the moment they appeared.  Many first-seen reporters converging on one subject is a
    burst: their reports are held back (reason "burst", a log line, a metric), and count
    once the reporters are no longer new when they report."""
    rep, close = daemon(world, "burst", {
        "min_reporters": "3", "list_weight": "2.5", "burst_reporters": "3",
        "burst_window": "1d", "answer_cache_ttl": "0"})
    try:
        subject = "ip:198.51.100.70"
        for r in reporters(world, HONEST[:3]):
            rx.report_ok(rep, r, [subject])
        s = rx.subject_of(rx.query(rep, ip="198.51.100.70"), subject)
        assert s["verdict"] == "unknown" and s["bad"] == 0, s
        held = [r for r in s["reasons"] if r["code"] == "burst"]
        assert held and held[0]["text"].startswith("held back: 3 reporters"), s["reasons"]
        assert re.search(r"burst: 3 reporters first seen within burst_window converged on "
                         r"ip:198\.51\.100\.70", rep.stderr()), rep.stderr()[-2000:]
        m = rx.request(rep, "GET", "/metrics").text
        burst = re.search(r"^anchor_rep_reports_burst_total (\d+)$", m, re.M)
        assert burst and int(burst.group(1)) >= 1, m
        # Reporters known for two days that report now are no burst.
        rx.psql(world.pg, rep.db,
                "UPDATE rep_reporters SET first_seen = now() - interval '2 days'")
        subject = "ip:198.51.100.71"
        for r in reporters(world, HONEST[:3]):
            rx.report_ok(rep, r, [subject])
        s = rx.subject_of(rx.query(rep, ip="198.51.100.71"), subject)
        assert s["verdict"] == "block" and "burst" not in rx.codes(s["reasons"]), s
    finally:
        close()
