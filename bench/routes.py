#!/usr/bin/python3
"""bench/routes.py [BIN_DIR] - route resolutions per second, warm and cold, beside kdig.

Sets up, on loopback only: a throwaway PostgreSQL cluster, one key server,
three anchored domains (r1, r2, r3.route.bench) whose records come from
`anchor-dns records`, served by NSD, plus three legacy domains with MX
records only.  Routes:

    one@r3          servers (3, weighted)                 one hop
    a@r1 -> a@r2 -> a@r3 -> servers                       three hops (two aliases)

Then prints, in one run:
  - `anchorctl route resolve --repeat N` (the resolve library in a loop, one
    process): warm (verified answers and discoveries cached for their TTL)
    and cold (both caches flushed before every resolution: DNS SRV+TXT,
    HTTPS domain object, HTTPS route answer and verification per hop);
  - the peer, what legacy routing costs: kdig resolving the MX records of the
    equivalent legacy domains (1 and 3 of them) from the same NSD, cold (a new
    query each time; kdig has no cache), many queries per kdig process.

Environment: BENCH_WARM (default 20000), BENCH_COLD (200), BENCH_KDIG (300).
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANCHOR_SRC", str(SRC))
if len(sys.argv) > 1:
    os.environ["ANCHOR_BIN"] = os.path.abspath(sys.argv[1])
os.environ.setdefault("ANCHOR_BIN", str(SRC / "build" / "release"))
sys.path.insert(0, str(SRC / "tests" / "integration"))

import anchorlib  # noqa: E402
import dnsfixtures as dx  # noqa: E402
import ksfixtures as kf  # noqa: E402

PARENT = "route.bench"
KEYS = f"keys.{PARENT}"
WARM = int(os.environ.get("BENCH_WARM", "20000"))
COLD = int(os.environ.get("BENCH_COLD", "200"))
KDIG = int(os.environ.get("BENCH_KDIG", "300"))


def name(label):
    return f"{label}.{PARENT}"


def put(ks, dom, target, body):
    path = f"/v1/domains/{target}/route" if "@" not in target else f"/v1/routes/{target}"
    r = ks.client().put(path, body, token=dom.admin_token)
    assert r.status == 200, (target, r.status, r.body)


class BenchNsd(dx.Nsd):
    """NSD without response rate limiting (on by default: 200 answers/s per client),
    which would otherwise throttle both us and kdig in a loop on one address."""

    def write_config(self):
        super().write_config()
        text = self.conf.read_text().replace("server:\n", "server:\n    rrl-ratelimit: 0\n", 1)
        self.conf.write_text(text)


def resolve(env, address, n, cold):
    argv = [anchorlib.binary("anchorctl"), "route", "resolve", address, "--json", "--repeat",
            str(n)] + (["--cold"] if cold else [])
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                       timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def kdig_rate(resolver, domains, rounds):
    """One kdig process asking `rounds` times for the MX of each domain, in sequence:
    resolutions (all MX of one set) per second, and kdig's mean reported query time."""
    host, port = resolver.split(":")
    args = ["kdig", f"@{host}", "-p", port, "+retry=0", "+timeout=2"]
    for _ in range(rounds):
        for d in domains:
            args += [d, "MX"]
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    times = [float(m) for m in re.findall(r";; From \S+ in ([\d.]+) ms", r.stdout)]
    answers = len(re.findall(r"status: NOERROR", r.stdout))
    assert answers == rounds * len(domains), r.stdout[-2000:] + r.stderr
    return rounds / wall, sum(times) / len(times) * len(domains)


def main():
    work = anchorlib.mktemp_dir("anchor-bench-routes-")
    pg = anchorlib.PgCluster(work / "pg")
    ks = nsd = None
    try:
        pg.start()
        conninfo = pg.create_database("bench")
        token = anchorlib.make_token()
        tls = dx.make_tls(work / "tls", [KEYS])
        ks = anchorlib.Keyserver(work / "ks", conninfo, tls, token.hash,
                                 {"rate_limit": "0"}).start()
        zones = {}
        zdir = work / "zones"
        zdir.mkdir()
        zones[PARENT] = zdir / "parent.zone"
        zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
        doms = {}
        for label in ("r1", "r2", "r3"):
            doms[label] = kf.register_domain(ks, work / "domains", name(label), token.token)
            r = dx.anchor_dns("records", name(label), "-s", ks.base_url, "--cacert", tls.ca,
                              "--keyserver", f"{KEYS}:{ks.port}")
            assert r.rc == 0, r.err
            zones[name(label)] = zdir / f"{label}.zone"
            zones[name(label)].write_text(dx.zone_text(name(label), r.out, mx=False))
        for label in ("l1", "l2", "l3"):
            zones[name(label)] = zdir / f"{label}.zone"
            zones[name(label)].write_text(dx.zone_text(
                name(label), f"@ IN MX 20 mx2.{name(label)}.\nmx2 IN A 127.0.0.1\n"))
        nsd = BenchNsd(work / "nsd", zones).start()

        servers = {"servers": [{"host": f"mx{i}.example.net", "priority": 10, "weight": w,
                                "pin": kf.spki_pin(tls.cert.read_text())}
                               for i, w in enumerate((50, 30, 20))]}
        put(ks, doms["r3"], f"one@{name('r3')}", servers)
        put(ks, doms["r1"], f"a@{name('r1')}", {"alias": f"a@{name('r2')}"})
        put(ks, doms["r2"], f"a@{name('r2')}", {"alias": f"a@{name('r3')}"})
        put(ks, doms["r3"], f"a@{name('r3')}", servers)

        env = dx.clean_env({"ANCHOR_RESOLVER": nsd.resolver, "ANCHOR_CACERT": tls.ca})
        print(f"route resolution (NSD {nsd.resolver}, key server {ks.base_url}, "
              f"unsigned zones, {os.environ['ANCHOR_BIN']})")
        print(f"{'':44}{'resolutions/s':>14}{'mean ms':>10}{'fetches/res':>13}")
        rows = []
        for label, addr in (("1 hop", f"one@{name('r3')}"), ("3 hops", f"a@{name('r1')}")):
            for cold, n in ((False, WARM), (True, COLD)):
                doc = resolve(env, addr, n, cold)
                assert doc["hops"] == (1 if label == "1 hop" else 3), doc
                rows.append((f"anchorctl route resolve, {label}, {'cold' if cold else 'warm'}",
                             doc["per_second"], doc["mean_ms"],
                             doc["route_fetches"] / doc["resolutions"]))
        for label, domains in (("1 domain", [name("l1")]),
                               ("3 domains", [name("l1"), name("l2"), name("l3")])):
            rate, mean = kdig_rate(nsd.resolver, domains, KDIG)
            rows.append((f"kdig MX, {label} (legacy, cold)", rate, mean, 0.0))
        for label, rate, mean, fetches in rows:
            print(f"{label:44}{rate:>14.1f}{mean:>10.3f}{fetches:>13.2f}")
        print("cold = both caches flushed per resolution: per hop DNS SRV+TXT (+A of the SRV "
              "target), HTTPS domain object, HTTPS route answer, chain and signature checks; "
              "each HTTPS request is a new TLS connection.\nkdig: one process, queries in "
              "sequence over UDP; mean ms is kdig's own query time summed over the domains "
              "of one resolution.")
    finally:
        if nsd:
            nsd.stop()
        if ks:
            ks.stop(check=False)
        pg.stop()
        anchorlib.remove_tree(work)


if __name__ == "__main__":
    main()
