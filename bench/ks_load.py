#!/usr/bin/env python3
"""Load generation and reporting for bench/keyserver.sh.

setup       register a benchmark domain and enroll N users (paths.txt for wrk)
report-wrk  print both wrk runs side by side with the ratio and p99 latencies
lookup-round   one interleaved lookup round: rates, p99, server CPU per request
lookup-report  the medians of the lookup rounds and the same-round ratios
enroll-prep    tokens and CSRs for one round of enrollments (untimed)
enroll-run     time a round's enrollments from C keep-alive client processes
enroll-peer    openssl x509 -req signing CSRs: rate and CPU per signing
enroll-report  the medians of the rounds
"""
import argparse
import http.client
import json
import multiprocessing
import os
import re
import ssl
import statistics
import subprocess
import sys
import time
from urllib.parse import urlparse, quote

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

DOMAIN = "bench.example"


class Client:
    """One keep-alive HTTPS connection to the key server."""

    def __init__(self, server, cacert):
        u = urlparse(server)
        ctx = ssl.create_default_context(cafile=cacert)
        self.conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)

    def call(self, method, path, body=None, token=None):
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = "Bearer " + token
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        payload = r.read()
        return r.status, json.loads(payload) if payload else None


def make_csr(address):
    key = ed25519.Ed25519PrivateKey.generate()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, address)]))
           .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), False)
           .sign(key, None))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def issue_tokens(client, admin, addresses):
    tokens = []
    for a in addresses:
        st, body = client.call("POST", f"/v1/domains/{DOMAIN}/tokens", {"address": a}, admin)
        if st != 201:
            sys.exit(f"token issue failed: {st} {body}")
        tokens.append(body["token"])
    return tokens


def enroll_one(client, token, csr):
    st, body = client.call("POST", f"/v1/domains/{DOMAIN}/enroll", {"token": token, "csr": csr})
    if st != 201:
        sys.exit(f"enrollment failed: {st} {body}")


def cmd_setup(a):
    env = dict(os.environ, ANCHOR_OPERATOR_TOKEN=a.operator_token)
    d = os.path.join(a.work, "domain")
    subprocess.run([a.anchorctl, "domain", "init", DOMAIN, "--dir", d], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    subprocess.run([a.anchorctl, "domain", "register", DOMAIN, "--dir", d], check=True,
                   env=env, stdout=subprocess.DEVNULL)
    admin = open(os.path.join(d, "admin.token")).read().strip()
    open(os.path.join(a.work, "admin.token"), "w").write(admin)
    c = Client(a.server, a.cacert)
    addresses = [f"user{i}@{DOMAIN}" for i in range(a.users)]
    for addr, tok in zip(addresses, issue_tokens(c, admin, addresses)):
        enroll_one(c, tok, make_csr(addr))
    with open(os.path.join(a.work, "paths.txt"), "w") as f:
        for addr in addresses:
            f.write(f"/v1/addresses/{addr}\n")


def parse_wrk(path):
    text = open(path).read()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", text)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rate, float(m.group(1)) * scale, int(errors.group(1)) if errors else 0


def cmd_report_wrk(a):
    ks_rate, ks_p99, ks_err = parse_wrk(a.ours)
    ng_rate, ng_p99, ng_err = parse_wrk(a.peer)
    print(f"{'':22}{'requests/s':>12}{'p99 ms':>10}{'non-2xx':>9}")
    print(f"{'anchor-keyserver':22}{ks_rate:12.0f}{ks_p99:10.2f}{ks_err:9d}")
    print(f"{'nginx (static files)':22}{ng_rate:12.0f}{ng_p99:10.2f}{ng_err:9d}")
    print(f"ratio anchor-keyserver/nginx: {ks_rate / ng_rate:.2f} (goal: >= 1.00)")


def cmd_lookup_round(a):
    """One line: round, then rate, p99 ms, us CPU/request, non-2xx for ours, then nginx."""
    cols = [a.round]
    for path, c0, c1 in ((a.ours, a.cpu[0], a.cpu[1]), (a.peer, a.cpu[2], a.cpu[3])):
        rate, p99, err = parse_wrk(path)
        cols += [rate, p99, (c1 - c0) * 1e6 / max(1.0, rate * a.duration), err]
    print(" ".join(str(c) for c in cols))


def cmd_lookup_report(a):
    rows = [[float(x) for x in line.split()] for line in open(a.rounds) if line.strip()]
    print(f"{'':8}{'anchor-keyserver':>30}   {'nginx (static files)':>30}")
    print(f"{'round':8}{'req/s':>10}{'p99 ms':>8}{'us CPU/req':>12}   "
          f"{'req/s':>10}{'p99 ms':>8}{'us CPU/req':>12}{'ratio':>7}")
    for r in rows:
        print(f"{int(r[0]):<8d}{r[1]:10.0f}{r[2]:8.2f}{r[3]:12.1f}   "
              f"{r[5]:10.0f}{r[6]:8.2f}{r[7]:12.1f}{r[1] / r[5]:7.2f}")
    med = [statistics.median(r[i] for r in rows) for i in range(len(rows[0]))]
    ratios = sorted(r[1] / r[5] for r in rows)
    print(f"{'median':8}{med[1]:10.0f}{med[2]:8.2f}{med[3]:12.1f}   "
          f"{med[5]:10.0f}{med[6]:8.2f}{med[7]:12.1f}")
    print(f"ratio anchor-keyserver/nginx (same round): median {statistics.median(ratios):.2f}, "
          f"range {ratios[0]:.2f}..{ratios[-1]:.2f} (goal: >= 1.00); non-2xx "
          f"{int(sum(r[4] for r in rows))} / {int(sum(r[8] for r in rows))}")


def cmd_enroll_prep(a):
    """Tokens and CSRs for one round of enrollments, made before the round is timed."""
    admin = open(os.path.join(a.work, "admin.token")).read().strip()
    c = Client(a.server, a.cacert)
    addresses = [f"enroll{a.round}x{i}@{DOMAIN}" for i in range(a.count)]
    tokens = issue_tokens(c, admin, addresses)
    csrs = [make_csr(addr) for addr in addresses]
    with open(a.out, "w") as f:
        json.dump(list(zip(tokens, csrs)), f)


def enroll_worker(server, cacert, work, q):
    cl = Client(server, cacert)
    for tok, csr in work:
        enroll_one(cl, tok, csr)
    q.put(len(work))


def cmd_enroll_run(a):
    """Time the prepared enrollments from C client processes (not threads: one GIL
    would hold the load back); print enrollments per second."""
    work = json.load(open(a.input))
    q = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=enroll_worker,
                                     args=(a.server, a.cacert, work[k::a.clients], q))
             for k in range(a.clients)]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    done = sum(q.get() for _ in procs)
    dt = time.monotonic() - t0
    for p in procs:
        p.join()
    if done != len(work) or any(p.exitcode != 0 for p in procs):
        sys.exit("an enrollment failed")
    print(f"{len(work) / dt:.1f}")


def cmd_enroll_peer(a):
    """The stock tool signing the same kind of requests with nothing stored: signings
    per second and CPU time per signing (its processes' user + system time)."""
    d = os.path.join(a.work, "domain")
    paths = []
    for i in range(a.count):
        p = os.path.join(a.work, f"peer{i}.csr")
        open(p, "w").write(make_csr(f"peer{i}@{DOMAIN}"))
        paths.append(p)
    c0, t0 = os.times(), time.monotonic()
    for p in paths:
        subprocess.run(["openssl", "x509", "-req", "-in", p, "-CA", os.path.join(d, "issuer.pem"),
                        "-CAkey", os.path.join(d, "issuer.key"), "-days", "365",
                        "-copy_extensions", "copy", "-out", p + ".pem"],
                       check=True, stderr=subprocess.DEVNULL)
    c1, t1 = os.times(), time.monotonic()
    cpu = (c1.children_user + c1.children_system - c0.children_user - c0.children_system)
    print(f"{a.count / (t1 - t0):.1f} {cpu * 1e6 / a.count:.0f}")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def cmd_enroll_report(a):
    rows = [[float(x) for x in line.split()] for line in open(a.rounds) if line.strip()]
    ours, ours_cpu, peer, peer_cpu = (median([r[i] for r in rows]) for i in range(4))
    print(f"{'medians of ' + str(len(rows)) + ' rounds':52}{'per second':>11}"
          f"{'CPU/op':>12}")
    print(f"{'anchor-keyserver enrollments (verify, sign, commit)':52}{ours:11.0f}"
          f"{ours_cpu:9.0f} us")
    print(f"{'openssl x509 -req (one process each, no storage)':52}{peer:11.0f}"
          f"{peer_cpu:9.0f} us")
    print(f"goal: >= 1000 enrollments/s; ratio to openssl x509 -req: {ours / peer:.2f}")


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    for name in ("--server", "--cacert", "--operator-token", "--anchorctl", "--work"):
        s.add_argument(name, required=True)
    s.add_argument("--users", type=int, default=200)
    r = sub.add_parser("report-wrk")
    r.add_argument("ours")
    r.add_argument("peer")
    r = sub.add_parser("lookup-round")
    r.add_argument("ours")
    r.add_argument("peer")
    r.add_argument("--duration", type=float, required=True)
    r.add_argument("--round", type=int, required=True)
    r.add_argument("--cpu", type=float, nargs=4, required=True)
    r = sub.add_parser("lookup-report")
    r.add_argument("rounds")
    e = sub.add_parser("enroll-prep")
    for name in ("--server", "--cacert", "--work", "--out"):
        e.add_argument(name, required=True)
    e.add_argument("--count", type=int, default=300)
    e.add_argument("--round", type=int, default=0)
    e = sub.add_parser("enroll-run")
    for name in ("--server", "--cacert", "--input"):
        e.add_argument(name, required=True)
    e.add_argument("--clients", type=int, default=4)
    e = sub.add_parser("enroll-peer")
    e.add_argument("--work", required=True)
    e.add_argument("--count", type=int, default=50)
    e = sub.add_parser("enroll-report")
    e.add_argument("--rounds", required=True)
    a = p.parse_args()
    {"setup": cmd_setup, "report-wrk": cmd_report_wrk, "enroll-prep": cmd_enroll_prep,
     "enroll-run": cmd_enroll_run, "enroll-peer": cmd_enroll_peer,
     "enroll-report": cmd_enroll_report, "lookup-round": cmd_lookup_round,
     "lookup-report": cmd_lookup_report}[a.cmd](a)


if __name__ == "__main__":
    main()
