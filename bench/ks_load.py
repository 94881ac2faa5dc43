#!/usr/bin/env python3
"""Load generation and reporting for bench/keyserver.sh.

setup       register a benchmark domain and enroll N users (paths.txt for wrk)
report-wrk  print both wrk runs side by side with the ratio and p99 latencies
enroll      time N enrollments (4 client threads, keep-alive) beside openssl x509 -req
"""
import argparse
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import threading
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


def cmd_enroll(a):
    admin = open(os.path.join(a.work, "admin.token")).read().strip()
    c = Client(a.server, a.cacert)
    addresses = [f"enroll{i}@{DOMAIN}" for i in range(a.count)]
    tokens = issue_tokens(c, admin, addresses)
    csrs = [make_csr(addr) for addr in addresses]
    work = list(zip(tokens, csrs))
    lock = threading.Lock()

    def worker():
        cl = Client(a.server, a.cacert)
        while True:
            with lock:
                if not work:
                    return
                tok, csr = work.pop()
            enroll_one(cl, tok, csr)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ours = a.count / (time.monotonic() - t0)

    # Peer: the stock tool signing the same requests, with nothing stored.
    d = os.path.join(a.work, "domain")
    sample = csrs[:min(100, len(csrs))]
    paths = []
    for i, csr in enumerate(sample):
        p = os.path.join(a.work, f"peer{i}.csr")
        open(p, "w").write(csr)
        paths.append(p)
    t0 = time.monotonic()
    for p in paths:
        subprocess.run(["openssl", "x509", "-req", "-in", p, "-CA", os.path.join(d, "issuer.pem"),
                        "-CAkey", os.path.join(d, "issuer.key"), "-days", "365",
                        "-copy_extensions", "copy", "-out", p + ".pem"],
                       check=True, stderr=subprocess.DEVNULL)
    peer = len(paths) / (time.monotonic() - t0)
    print(f"anchor-keyserver enrollments/s (verify CSR, sign, commit): {ours:.0f}")
    print(f"openssl x509 -req signings/s (one process each, no storage): {peer:.0f}")
    print(f"ratio: {ours / peer:.2f}")


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
    e = sub.add_parser("enroll")
    for name in ("--server", "--cacert", "--work"):
        e.add_argument(name, required=True)
    e.add_argument("--count", type=int, default=300)
    a = p.parse_args()
    {"setup": cmd_setup, "report-wrk": cmd_report_wrk, "enroll": cmd_enroll}[a.cmd](a)


if __name__ == "__main__":
    main()
