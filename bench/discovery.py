#!/usr/bin/python3
"""bench/discovery.py [BIN_DIR] - cold vs warm discovery beside kdig.

Sets up what a real discovery needs, on loopback only: a throwaway
PostgreSQL cluster, the key server, a registered domain whose records come
from `anchor-dns records`, its zone signed with ldns-signzone and served by
NSD.  Then, in one run, prints:

  - anchor-dns discover, cold (DNS + DNSSEC + HTTPS + verification) and warm
    (the in-process cache), in milliseconds and round trips;
  - kdig resolving the same records (SRV, TXT, DNSKEY, target A) against the
    same NSD, in milliseconds and round trips.
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

DOMAIN = "bench.dns.test"
KEYS = "keys.dns.test"


def kdig_ms(resolver, name, rtype):
    host, port = resolver.split(":")
    t0 = time.perf_counter()
    r = subprocess.run(["kdig", f"@{host}", "-p", port, "+dnssec", "+cd", name, rtype],
                       capture_output=True, text=True, timeout=30)
    wall = (time.perf_counter() - t0) * 1000
    m = re.search(r";; From \S+ in ([\d.]+) ms", r.stdout)
    return float(m.group(1)) if m else float("nan"), wall


def main():
    work = anchorlib.mktemp_dir("anchor-bench-")
    pg = anchorlib.PgCluster(work / "pg")
    ks = nsd = None
    try:
        pg.start()
        conninfo = pg.create_database("bench")
        token = anchorlib.make_token()
        tls = dx.make_tls(work / "tls", [KEYS])
        ks = anchorlib.Keyserver(work / "ks", conninfo, tls, token.hash).start()
        dom = kf.register_domain(ks, work / "domains", DOMAIN, token.token)
        r = dx.anchor_dns("records", DOMAIN, "-s", ks.base_url, "--cacert", tls.ca,
                          "--keyserver", f"{KEYS}:{ks.port}")
        assert r.rc == 0, r.err
        z = dx.sign_zone(work / "zone", DOMAIN, dx.zone_text(DOMAIN, r.out))
        parent = work / "parent.zone"
        parent.write_text(dx.zone_text("dns.test", "keys IN A 127.0.0.1\n", mx=False))
        nsd = dx.Nsd(work / "nsd", {"dns.test": parent, DOMAIN: z.path}).start()
        env = {"ANCHOR_RESOLVER": nsd.resolver, "ANCHOR_TRUST_ANCHOR": z.ds_file,
               "ANCHOR_CACERT": tls.ca}
        r = dx.anchor_dns("discover", DOMAIN, "--json", "--count", "2", env=env)
        assert r.rc == 0, r.out + r.err
        cold, warm = json.loads(r.out)
        print(f"discovery of {DOMAIN} (NSD on {nsd.resolver}, key server {ks.base_url})")
        print(f"{'':28}{'ms':>10}{'DNS queries':>14}{'HTTPS':>8}  dnssec")
        for label, run in (("anchor-dns cold", cold), ("anchor-dns warm (cache)", warm)):
            print(f"{label:28}{run['elapsed_ms']:>10.2f}{run['dns_queries']:>14}"
                  f"{run['https_requests']:>8}  {run['dnssec']}")
        total = total_wall = 0.0
        queries = [(f"_anchor._tcp.{DOMAIN}", "SRV"), (f"_anchor.{DOMAIN}", "TXT"),
                   (DOMAIN, "DNSKEY"), (KEYS, "A")]
        for name, rtype in queries:
            ms, wall = kdig_ms(nsd.resolver, name, rtype)
            total += ms
            total_wall += wall
            print(f"{'kdig ' + rtype + ' ' + name:40.40}{ms:>8.2f} ms (process {wall:.1f} ms)")
        print(f"{'kdig, the same 4 records':28}{total:>10.2f}{len(queries):>14}{0:>8}  "
              f"(sequential; {total_wall:.1f} ms with process start-up)")
    finally:
        if nsd:
            nsd.stop()
        if ks:
            ks.stop(check=False)
        pg.stop()
        anchorlib.remove_tree(work)


if __name__ == "__main__":
    main()
