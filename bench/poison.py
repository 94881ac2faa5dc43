"""poison.py BUILD_DIR - how many ring domains it takes to poison anchor-reputation
(driven by bench/poison.sh; docs/operator-reputation.md §4b, the threat model).

Builds the integration tests' world (tests/integration/repfixtures.py): PostgreSQL, a key
server, anchored domains with signing keys in NSD.  Two rings of K fresh domains: ring
"a" with every member's mail server (MX) on one /24 (the /24 of the key server all the
domains here use, as if the ring ran its own), ring "b" round-robin over N /24s; five
honest domains h0..h4 with mail servers of their own.  The real daemon then runs with
three settings, each on a fresh database:

  before   the defences off: signed_evidence = no, newcomer_ramp = 0, min_networks = 0,
           burst_reporters = 0, network_cap 1000 (the network was the report's source
           address, which a ring picks: nothing capped it), no vetted reporters.  The old
           standing rule (agreement between reporters) is gone from the code: the
           discredit row measures today's rule in every column.
  fresh    the defaults (h0..h4 vetted: the operator's relays)
  patient  the defaults, but newcomer_ramp = 0 and burst_reporters = 0: a ring that
           waited out the ramp and the burst window

For each attack, ring members report one at a time (each from its own source address,
127.0.N.1) until the goal is reached; the table shows how many it took, "never" when the
whole ring of K could not.  Knobs: BENCH_RING (K, default 8), BENCH_NETS (N, default 3).
"""

import itertools
import os

import repworld  # first: it puts the integration tests' helpers on the path
import repfixtures as rx

K = int(os.environ.get("BENCH_RING", "8"))
TAGS = itertools.count(1)  # one fresh set of subjects per attack run
N = int(os.environ.get("BENCH_NETS", "3"))
HONEST = [f"h{i}" for i in range(5)]
SCORING = {"min_reporters": "3", "list_weight": "2.5", "trust_weight": "2.5",
           "reporter_cap": "1", "network_cap": "1.5", "log_level": "warning",
           "answer_cache_ttl": "0"}
CONFIGS = {
    "before": {"signed_evidence": "no", "newcomer_ramp": "0", "min_networks": "0",
               "burst_reporters": "0", "network_cap": "1000"},
    "fresh": {"newcomer_ramp": "14d", "burst_reporters": "5",
              "vetted_reporters": ", ".join(f"{h}.rep.test 1" for h in HONEST)},
    "patient": {"newcomer_ramp": "0", "burst_reporters": "0",
                "vetted_reporters": ", ".join(f"{h}.rep.test 1" for h in HONEST)},
}


def ring_labels(ring):
    return [f"{ring}{i}" for i in range(K)]


def mx_of(label):
    """Ring a: one /24 (the key server's); ring b: N /24s; honest domains: the default."""
    if label[0] in "ab" and label[1:].isdigit():
        i = int(label[1:])
        net = 0 if label[0] == "a" else i % N
        return f"127.0.{0 if net == 0 else 100 + net}.{20 + i}"
    return None


def verdict(rep, kind, value):
    return rx.subject_of(rx.query(rep, **{kind: value}), f"{kind}:{value}")


def report(rep, r, subject, **kw):
    p, text = rx.signed_report(r, [subject], **kw)
    a = rx.post_report(rep, text, src=r.src)
    assert a.status == 201, (a.status, a.body)


def ring_until(rep, ring, subject, kind, value, done, **kw):
    """Ring members report one by one; how many it took until done(answer), or None."""
    for k, r in enumerate(ring, 1):
        report(rep, r, subject, **kw)
        if done(verdict(rep, kind, value)):
            return k
    return None


def attack_list_ip(world, rep, ring, tag):
    v = f"10.{tag}.0.1"
    return ring_until(rep, ring, f"ip:{v}", "ip", v, lambda s: s["verdict"] == "block")


def attack_list_domain(world, rep, ring, tag):
    v = f"victim{tag}.example"
    return ring_until(rep, ring, f"domain:{v}", "domain", v,
                      lambda s: s["verdict"] == "block")


def attack_whitelist_ip(world, rep, ring, tag):
    v = f"10.{tag}.0.2"
    return ring_until(rep, ring, f"ip:{v}", "ip", v, lambda s: s["verdict"] == "trusted",
                      category="not-spam", verified=True)


def attack_known_ip(world, rep, ring, tag):
    v = f"10.{tag}.0.3"
    return ring_until(rep, ring, f"ip:{v}", "ip", v,
                      lambda s: s["verdict"] in ("known", "trusted"),
                      category="not-spam", verified=True)


def attack_unlist(world, rep, ring, tag):
    """Five honest domains (vetted after) list a spammer; the ring vouches for it."""
    v = f"10.{tag}.0.4"
    for h in HONEST:
        report(rep, world.reporters[h], f"ip:{v}")
    if verdict(rep, "ip", v)["verdict"] != "block":
        return "n/a"
    return ring_until(rep, ring, f"ip:{v}", "ip", v, lambda s: s["verdict"] != "block",
                      category="not-spam", verified=True)


def attack_discredit(world, rep, ring, tag):
    """An honest domain (h4: vetted after, so h3 here is not) lists spammers with the
    vetted; the ring contradicts each listing, then a standing pass: did h3's fall?"""
    honest = world.reporters["h3"]
    subjects = [f"ip:10.{tag}.1.{j + 1}" for j in range(3)]
    for s in subjects:
        report(rep, honest, s)
        report(rep, world.reporters["h0"], s)
    for k, r in enumerate(ring, 1):
        for s in subjects:
            report(rep, r, s, category="not-spam", verified=True)
        a = rx.request(rep, "POST", "/v1/admin/standing", token=world.operator_token.token)
        assert a.status == 200, a.body
        info = rx.request(rep, "GET", f"/v1/reporters/{honest.name}").json()
        if info["standing"] < 1.0:
            return k
    return None


ATTACKS = [("list an IP", attack_list_ip),
           ("list a domain (unsigned)", attack_list_domain),
           ("whitelist an IP (trusted)", attack_whitelist_ip),
           ("vouch an IP to known", attack_known_ip),
           ("unlist what 5 domains listed", attack_unlist),
           ("discredit an honest reporter", attack_discredit)]


def run_config(world, pg, name, extra, results):
    conninfo = pg.create_database(f"bench_poison_{name}")
    params = dict(SCORING)
    params.update(extra)
    if name != "before":  # h3 is judged: it is not vetted
        params["vetted_reporters"] = ", ".join(f"{h}.rep.test 1" for h in HONEST if h != "h3")
    rep = rx.Reputation(world, world.work / f"rep-{name}", conninfo, params).start()
    try:
        for n_label, ring in (("1", "a"), (str(N), "b")):
            members = [world.reporters[label] for label in ring_labels(ring)]
            for title, fn in ATTACKS:
                got = fn(world, rep, members, next(TAGS))
                results[(title, name, n_label)] = "never" if got is None else str(got)
                print(f"   {name:8} n={n_label}: {title}: {results[(title, name, n_label)]}",
                      flush=True)
    finally:
        rep.stop()
        world.reps.remove(rep)


def print_table(results):
    cols = [(c, n) for c in CONFIGS for n in ("1", str(N))]
    head = f"{'attack (ring of k=' + str(K) + ', n networks)':34}" + "".join(
        f"{c + ' n=' + n:>14}" for c, n in cols)
    print(head)
    for title, _ in ATTACKS:
        print(f"{title:34}" + "".join(f"{results.get((title, c, n), '-'):>14}"
                                      for c, n in cols))


def main():
    results = {}
    labels = ring_labels("a") + ring_labels("b") + HONEST
    with repworld.world("anchor-bench-poison-", "bench_poison_ks", labels,
                        f"== setting up: PostgreSQL, key server, {len(labels)} anchored domains "
                        f"(rings a: 1 network, b: {N} networks, {K} domains each), NSD",
                        mx_ip=mx_of) as w:
        for name, extra in CONFIGS.items():
            print(f"== {name}: {extra}", flush=True)
            run_config(w.world, w.pg, name, extra, results)
        print()
        print_table(results)


if __name__ == "__main__":
    main()
