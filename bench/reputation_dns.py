#!/usr/bin/python3
"""bench/reputation_dns.py [BIN_DIR] - DNS-zone queries per second of anchor-reputation
beside rbldnsd serving the same listings, in one run; and the policy door.

Sets up, on loopback only: a throwaway PostgreSQL cluster, a key server, three anchored
reporter domains (NSD), anchor-reputation with its RFC 5782 zone (dns_listen), and
BENCH_LISTED IPv4 addresses listed through real signed reports (min_reporters = 3).
rbldnsd serves an ip4set zone with the same addresses (127.0.0.2 + TXT).  dnsperf
then sends the same query file to each: half listed, half not listed (NXDOMAIN), A
queries, for BENCH_SECONDS each.  The zone keeps verdicts in memory for
min(dns_ttl, 30 s), so after the first round the store is not asked: the figure is the
DNS path itself (ldns parsing and building, a few UDP threads).

Policy door: anchor-policyd answering Postfix policy requests on one connection,
in sequence (as Postfix does per smtpd process): from its cache, and with every request
asking anchor-reputation over HTTPS (cache_ttl = 0, keep-alive).

Environment: BENCH_LISTED (200), BENCH_SECONDS (10), BENCH_POLICY (2000), BENCH_ROUNDS (3),
BENCH_PERF (a file: perf record -g of anchor-reputation during one more dnsperf run, for
`perf report -i FILE`).
"""

import ipaddress
import os
import re
import subprocess
import time
from pathlib import Path

import repworld  # first: it puts the integration tests' helpers on the path
import anchorlib
import dnsfixtures as dx
import policyfixtures as px
import repfixtures as rx

ZONE = "rep.example"
LISTED = int(os.environ.get("BENCH_LISTED", "200"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
POLICY = int(os.environ.get("BENCH_POLICY", "2000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
CLIENT_CPU = os.environ.get("BENCH_CLIENT_CPU", "1")
TICK = os.sysconf("SC_CLK_TCK")


def listed_ips():
    base = ipaddress.ip_address("198.51.100.0")
    return [str(base + 1 + i % 250 + 256 * (i // 250)) for i in range(LISTED)]


def unlisted_ips():
    base = ipaddress.ip_address("203.0.113.0")
    return [str(base + 1 + i % 250 + 256 * (i // 250)) for i in range(LISTED)]


def rev(ip):
    return ".".join(reversed(ip.split(".")))


def cpu_seconds(pid):
    """User + system CPU time of process pid (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pin(pid):
    """The server and all its threads on SERVER_CPU."""
    subprocess.run(["taskset", "-a", "-p", "-c", SERVER_CPU, str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


def dnsperf(port, qfile, pid):
    """(queries/s, lost, response codes, average ms, server CPU µs per query)"""
    cpu0 = cpu_seconds(pid)
    r = subprocess.run(["taskset", "-c", CLIENT_CPU, "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
                        "-l", str(SECONDS), "-c", "4", "-T", "1", "-q", "200"],
                       capture_output=True, text=True, timeout=SECONDS + 60)
    cpu = cpu_seconds(pid) - cpu0
    qps = re.search(r"Queries per second:\s+([\d.]+)", r.stdout)
    done = re.search(r"Queries completed:\s+(\d+)", r.stdout)
    lost = re.search(r"Queries lost:\s+(\d+)", r.stdout)
    codes = re.search(r"Response codes:\s+(.*)", r.stdout)
    lat = re.search(r"Average Latency \(s\):\s+([\d.]+)", r.stdout)
    assert qps, r.stdout + r.stderr
    return (float(qps.group(1)), int(lost.group(1)), codes.group(1).strip(),
            float(lat.group(1)) * 1000, cpu / max(int(done.group(1)), 1) * 1e6)


def median(runs):
    return sorted(runs, key=lambda r: r[0])[len(runs) // 2]


def start_rbldnsd(work, ips):
    d = work / "rbldnsd"
    d.mkdir()
    d.chmod(0o755)
    z = d / "rep.ip4set"
    z.write_text(":127.0.0.2:block: listed by reporters\n127.0.0.2\n" +
                 "".join(f"{ip}\n" for ip in ips))
    z.chmod(0o644)
    port = dx.free_port()
    proc = subprocess.Popen(["taskset", "-c", SERVER_CPU, "rbldnsd", "-n", "-q", "-b",
                             f"127.0.0.1/{port}", "-w", str(d), "-u", "rbldns",
                             f"{ZONE}:ip4set:rep.ip4set"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        r = subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "+timeout=1", "+retry=0",
                            f"2.0.0.127.{ZONE}", "A"], capture_output=True, text=True)
        if "127.0.0.2" in r.stdout:
            return proc, port
        if proc.poll() is not None:
            raise AssertionError(f"rbldnsd exited: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("rbldnsd did not answer")


def policy_rate(rep, tls, cache):
    work = anchorlib.mktemp_dir("anchor-bench-policyd-")
    pd = px.Policyd(work, {"reputation_url": rep.base_url, "cacert": str(tls.ca),
                           "cache_ttl": "300s" if cache else "0", "timeout_ms": "2000"}).start()
    try:
        c = pd.connect()
        ips = listed_ips()[:50] + unlisted_ips()[:50]
        reqs = [px.encode(px.request_attrs(client_address=ip, helo_name="", sender=""))
                for ip in ips]
        for q in reqs:  # warm: caches, TLS connection
            c.send(q)
            c.read_answer()
        t0 = time.perf_counter()
        rejects = 0
        for i in range(POLICY):
            c.send(reqs[i % len(reqs)])
            rejects += c.read_answer().startswith("action=REJECT")
        wall = time.perf_counter() - t0
        assert rejects == POLICY // 2, rejects
        return POLICY / wall, wall / POLICY * 1000
    finally:
        pd.stop()
        anchorlib.remove_tree(work)


def main():
    work = anchorlib.mktemp_dir("anchor-bench-repdns-")
    work.chmod(0o755)
    fin = repworld.Finalizers()
    pg = anchorlib.PgCluster(work / "pg")
    rbl = None
    try:
        pg.start()
        fin.addfinalizer(pg.stop)
        db = pg.create_database("bench")
        token = anchorlib.make_token()
        w = rx.build_world(pg, db, token, fin, ["b1", "b2", "b3"])
        dns_port = dx.free_port()
        rep = rx.Reputation(w, w.work / "rep", db, {
            "min_reporters": "3", "list_weight": "2", "dns_listen": f"127.0.0.1:{dns_port}",
            "dns_zone": ZONE, "dns_ttl": "300s"}).start()
        ips = listed_ips()
        t0 = time.perf_counter()
        conn = None
        for label in ("b1", "b2", "b3"):
            r = w.reporters[label]
            conn = rep.connection(r.src)
            for k in range(0, len(ips), 8):
                rx.report_ok(rep, r, [f"ip:{ip}" for ip in ips[k:k + 8]], conn=conn)
            conn.close()
        ingest = time.perf_counter() - t0
        assert rx.query(rep, ip=ips[-1])["verdict"] == "block"

        qfile = work / "queries.txt"
        qfile.write_text("".join(f"{rev(ip)}.{ZONE} A\n"
                                 for pair in zip(ips, unlisted_ips()) for ip in pair))
        rbl, rbl_port = start_rbldnsd(work, ips)
        pin(rep.proc.pid)  # rbldnsd starts pinned

        print(f"RFC 5782 zone, {LISTED} listed IPv4 addresses ({3 * ((LISTED + 7) // 8)} "
              f"signed reports ingested in {ingest:.1f}s), {2 * LISTED} names queried "
              f"(half NXDOMAIN), dnsperf -c 4 -q 200, {SECONDS}s each, servers on CPU "
              f"{SERVER_CPU}, dnsperf on CPU {CLIENT_CPU}, {os.environ['ANCHOR_BIN']}")
        dnsperf(dns_port, qfile, rep.proc.pid)  # warm the zone's verdict cache (first round asks the store)
        # Alternate the two servers, ROUNDS times each, and keep the median run of each, so
        # that other load on the machine hits both alike.
        runs = {"anchor": [], "rbldnsd": []}
        for _ in range(ROUNDS):
            runs["anchor"].append(dnsperf(dns_port, qfile, rep.proc.pid))
            runs["rbldnsd"].append(dnsperf(rbl_port, qfile, rbl.pid))
        if os.environ.get("BENCH_PERF"):
            perf = subprocess.Popen(["perf", "record", "-g", "-o", os.environ["BENCH_PERF"],
                                     "-p", str(rep.proc.pid)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            dnsperf(dns_port, qfile, rep.proc.pid)
            perf.send_signal(2)
            perf.wait()
        rows = [("anchor-reputation dns zone", *median(runs["anchor"])),
                ("rbldnsd ip4set (same listings)", *median(runs["rbldnsd"]))]
        print(f"{'median of ' + str(ROUNDS) + ' alternating runs':34}{'queries/s':>12}"
              f"{'lost':>7}{'avg ms':>9}{'CPU µs/q':>10}  response codes")
        for name, qps, lost, codes, lat, cpu in rows:
            print(f"{name:34}{qps:>12.0f}{lost:>7}{lat:>9.3f}{cpu:>10.2f}  {codes}")
        print(f"ratio anchor/rbldnsd: {rows[0][1] / rows[1][1]:.2f} queries/s, "
              f"{rows[0][5] / rows[1][5]:.2f} server CPU per query  (all runs, queries/s: "
              f"anchor {[round(r[0]) for r in runs['anchor']]}, "
              f"rbldnsd {[round(r[0]) for r in runs['rbldnsd']]})")

        print(f"\npolicy door: anchor-policyd, {POLICY} requests in sequence on one "
              f"connection (half REJECT)")
        for name, cache in (("from its cache", True), ("asking anchor-reputation (HTTPS)",
                                                        False)):
            rate, ms = policy_rate(rep, w.tls, cache)
            print(f"  {name:36}{rate:>10.0f} requests/s{ms:>9.3f} ms each")
    finally:
        if rbl:
            rbl.terminate()
            rbl.wait()
        fin.run()
        anchorlib.remove_tree(work)


if __name__ == "__main__":
    main()
