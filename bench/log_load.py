#!/usr/bin/env python3
"""Load generation and reporting for bench/log.sh (the transparency log).

setup     register the benchmark domain and enroll a few users
appends   N route changes by the domain admin from C keep-alive client processes:
          each one is a log append with its nodes, answered once a signed tree head
          covers it; prints appends/s and checks that the log grew by N, that the
          newest head's proofs are current (a consistency proof from the old size)
          and that a signed head of the new size exists
pgbench-rate FILE  pgbench's transactions per second
report    the medians of the rounds (rates and server CPU per operation) and the feed
          rates beside their peers (pgbench, nginx)
"""
import argparse
import base64
import json
import multiprocessing
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ks_load  # noqa: E402  (Client, make_csr, issue_tokens, enroll_one)

DOMAIN = ks_load.DOMAIN


def head_size(c):
    st, body = c.call("GET", f"/v1/domains/{DOMAIN}/feed?since=0&limit=1")
    if st != 200:
        sys.exit(f"feed: {st} {body}")
    return body["size"]


def cmd_setup(a):
    ks_load.cmd_setup(argparse.Namespace(operator_token=a.operator_token, work=a.work,
                                         anchorctl=a.anchorctl, server=a.server,
                                         cacert=a.cacert, users=a.users))


def append_worker(a, admin, indices, q):
    """One client process: route changes for indices, one keep-alive connection."""
    c = ks_load.Client(a.server, a.cacert)
    for i in indices:
        body = {"servers": [{"host": f"mx{i % 7}.{DOMAIN}", "port": 25, "priority": 10,
                             "weight": 1 + i % 100,
                             "pin": "sha256:" + base64.b64encode(bytes(32)).decode()}],
                "ttl": 600 + i % 1000}
        st, ans = c.call("PUT", f"/v1/routes/user{i % a.users}@{DOMAIN}", body, admin)
        if st != 200:
            q.put((st, ans))
            return
    q.put(None)


def cmd_appends(a):
    admin = open(os.path.join(a.work, "admin.token")).read().strip()
    before = head_size(ks_load.Client(a.server, a.cacert))
    # Processes, not threads: the load generator must not be held back by one GIL.
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=append_worker,
                                     args=(a, admin, range(k, a.count, a.clients), q))
             for k in range(a.clients)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    dt = time.monotonic() - t0
    for p in procs:
        p.join()
    errors = [r for r in results if r is not None]
    if errors:
        sys.exit(f"route set failed: {errors[0]}")
    c0 = ks_load.Client(a.server, a.cacert)
    after = head_size(c0)
    if after != before + a.count:
        sys.exit(f"the log grew by {after - before}, not {a.count}")
    # Proofs are current: the newest head exists for the new size and is consistent.
    st, body = c0.call("GET", f"/v1/domains/{DOMAIN}/log/consistency?first={before}"
                               f"&second={after}")
    if st != 200:
        sys.exit(f"consistency proof {before}->{after}: {st} {body}")
    # ... and the writers were answered only once a head covered their entries.
    c0.conn.request("GET", f"/v1/domains/{DOMAIN}/log/head?size={after}")
    r = c0.conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"no signed head of size {after}: {r.status}")
    print(f"{a.count / dt:.1f}")


def parse_pgbench(path):
    text = open(path).read()
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text) or \
        re.search(r"tps = ([\d.]+)", text)
    return float(m.group(1))


def cmd_pgbench_rate(a):
    print(f"{parse_pgbench(a.file):.1f}")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def cmd_report(a):
    rows = [[float(x) for x in line.split()] for line in open(a.rounds) if line.strip()]
    ours, ours_cpu, peer, peer_cpu = (median([r[i] for r in rows]) for i in range(4))
    ratios = [r[0] / r[2] for r in rows]
    print(f"{'medians of ' + str(len(rows)) + ' rounds':46}{'per second':>12}"
          f"{'server CPU/op':>15}")
    print(f"{'log appends via anchor-keyserver (route set)':46}{ours:12.0f}{ours_cpu:12.0f} us")
    print(f"{'PostgreSQL INSERT + COMMIT (pgbench)':46}{peer:12.0f}{peer_cpu:12.0f} us")
    print(f"ratio: {median(ratios):.2f} (median of the rounds' ratios; goal >= 0.5; each "
          f"append also stores its nodes, its route and a signed head)")
    print()
    ks_rate, ks_p99, ks_err = ks_load.parse_wrk(a.feed_ours)
    ng_rate, ng_p99, ng_err = ks_load.parse_wrk(a.feed_peer)
    print(f"{'feed reads (since=0, limit=100)':32}{'requests/s':>12}{'p99 ms':>10}"
          f"{'non-2xx':>9}")
    print(f"{'anchor-keyserver':32}{ks_rate:12.0f}{ks_p99:10.2f}{ks_err:9d}")
    print(f"{'nginx (the same body, static)':32}{ng_rate:12.0f}{ng_p99:10.2f}{ng_err:9d}")
    print(f"ratio anchor-keyserver/nginx: {ks_rate / ng_rate:.2f}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    for name in ("--server", "--cacert", "--operator-token", "--anchorctl", "--work"):
        s.add_argument(name, required=True)
    s.add_argument("--users", type=int, default=20)
    ap = sub.add_parser("appends")
    for name in ("--server", "--cacert", "--work"):
        ap.add_argument(name, required=True)
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--users", type=int, default=20)
    r = sub.add_parser("report")
    for name in ("--rounds", "--feed-ours", "--feed-peer"):
        r.add_argument(name, required=True)
    pr = sub.add_parser("pgbench-rate")
    pr.add_argument("file")
    a = p.parse_args()
    {"setup": cmd_setup, "appends": cmd_appends, "report": cmd_report,
     "pgbench-rate": cmd_pgbench_rate}[a.cmd](a)


if __name__ == "__main__":
    main()
