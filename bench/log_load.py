#!/usr/bin/env python3
"""Load generation and reporting for bench/log.sh (the transparency log).

setup     register the benchmark domain and enroll a few users
appends   N route changes by the domain admin from C keep-alive clients: each one is
          a log append with its nodes and a signed tree head, committed before the
          answer; prints appends/s and checks that the log grew by N and that the
          newest head's proofs are current (a consistency proof from the old size)
report    print the appends and feed rates beside their peers (pgbench, nginx)
"""
import argparse
import base64
import json
import os
import re
import sys
import threading
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


def cmd_appends(a):
    admin = open(os.path.join(a.work, "admin.token")).read().strip()
    c0 = ks_load.Client(a.server, a.cacert)
    before = head_size(c0)
    todo = list(range(a.count))
    lock = threading.Lock()
    errors = []

    def worker():
        c = ks_load.Client(a.server, a.cacert)
        while True:
            with lock:
                if not todo or errors:
                    return
                i = todo.pop()
            body = {"servers": [{"host": f"mx{i % 7}.{DOMAIN}", "port": 25, "priority": 10,
                                 "weight": 1 + i % 100,
                                 "pin": "sha256:" + base64.b64encode(bytes(32)).decode()}],
                    "ttl": 600 + i % 1000}
            st, ans = c.call("PUT", f"/v1/routes/user{i % a.users}@{DOMAIN}", body, admin)
            if st != 200:
                with lock:
                    errors.append((st, ans))
                return

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.monotonic() - t0
    if errors:
        sys.exit(f"route set failed: {errors[0]}")
    after = head_size(c0)
    if after != before + a.count:
        sys.exit(f"the log grew by {after - before}, not {a.count}")
    # Proofs are current: the newest head exists for the new size and is consistent.
    st, body = c0.call("GET", f"/v1/domains/{DOMAIN}/log/consistency?first={before}"
                               f"&second={after}")
    if st != 200:
        sys.exit(f"consistency proof {before}->{after}: {st} {body}")
    rate = a.count / dt
    print(f"appends: {a.count} route changes, {a.clients} clients, {dt:.2f} s, "
          f"log {before} -> {after} entries")
    with open(os.path.join(a.work, "appends.txt"), "w") as f:
        f.write(f"{rate}\n")


def parse_pgbench(path):
    text = open(path).read()
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", text) or \
        re.search(r"tps = ([\d.]+)", text)
    return float(m.group(1))


def cmd_report(a):
    ours = float(open(os.path.join(a.work, "appends.txt")).read())
    peer = parse_pgbench(a.pgbench)
    print(f"{'':46}{'per second':>12}")
    print(f"{'log appends via anchor-keyserver (route set)':46}{ours:12.0f}")
    print(f"{'PostgreSQL INSERT + COMMIT (pgbench)':46}{peer:12.0f}")
    print(f"ratio: {ours / peer:.2f} (each append also stores its nodes and a signed head)")
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
    for name in ("--work", "--pgbench", "--feed-ours", "--feed-peer"):
        r.add_argument(name, required=True)
    a = p.parse_args()
    {"setup": cmd_setup, "appends": cmd_appends, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
