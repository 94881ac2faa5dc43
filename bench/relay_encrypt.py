"""relay_encrypt.py BUILD_DIR - messages per second and CPU per message of anchor-relay's
outbound side with gateway encryption beside the same relay without it, in one run
(driven by bench/relay_encrypt.sh; PROTOCOL.md §12.9).

The world, on loopback: a throwaway PostgreSQL cluster and key server, NSD serving three
anchored domains: a (the sender's, DKIM key s1 certified by its key server), e
(encryption `required`; rcpt@e has one P-256 encryption certificate) and c (encryption
`none`).  Both e and c route (pinned TLS) to relay B, an anchor-relay holding mx.e's `mta`
certificate, which hands everything to smtp-sink.

  encrypted  smtp-source -> relay A submission -> signer (ed25519-sha256) -> spool/out
             (fsync) -> route -> e's requirement and rcpt's certificate (key server,
             checked) -> S/MIME encryption -> outer DKIM signature (signer) -> B -> sink
  clear      the same relay A, rcpt@c: the same route and requirement lookup, no
             encryption -> B -> sink

Relay A (and its signer) is pinned to CPU 0; smtp-source, smtp-sink, relay B, NSD and the
key server to CPU 1.  ROUNDS rounds, the two interleaved; the median of each.  A's CPU is
the user+system time of its process tree over the timed run, divided by the messages.
Before timing, one message of each kind goes through and is checked at the sink:
application/pkcs7-mime for e, the plain text for c.
Knobs: BENCH_RELAY_COUNT (1000), BENCH_RELAY_SIZE (4096), BENCH_RELAY_SESSIONS (20),
BENCH_RELAY_ROUNDS (3), BENCH_RELAY_WARMUP (100).  Needs root (smtp-sink -u postfix).
"""

import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("BENCH_RELAY_COUNT", "1000")
import relay_load as rl  # noqa: E402  (sets ANCHOR_BIN from argv[1], the paths)

import anchorlib  # noqa: E402
import dnsfixtures as dx  # noqa: E402
import ksfixtures as kf  # noqa: E402
import relayfixtures as rx  # noqa: E402
import routefixtures as rf  # noqa: E402
from benchcpu import pin_tree  # noqa: E402
from test_keyserver_encryption import enroll_enc  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_RELAY_ROUNDS", "3"))
PARENT = "genc.bench"
KEYS = f"keys.{PARENT}"
A, E, C = (f"{x}.{PARENT}" for x in "aec")


def world(work, st):
    """Key server, domains, NSD, relays B (receiving) and A (sending): (A, B, sink)."""
    pg = st.add(anchorlib.PgCluster(work / "pg"))
    pg.start()
    token = anchorlib.make_token()
    tls = dx.make_tls(work / "tls", [KEYS])
    ks = st.add(anchorlib.Keyserver(work / "ks", pg.create_database("bench"), tls, token.hash,
                                    {"rate_limit": "0"}).start())
    base = work / "domains"
    doms = {d: kf.register_domain(ks, base, d, token.token) for d in (A, E, C)}
    kf.ctl_ok(ks, "domain", "encryption", E, "required", cwd=base)
    kf.ctl_ok(ks, "server", "issue", f"s1.{A}", "--purpose", "signing", "--alg", "ed25519",
              cwd=base)
    host = f"mx.{E}"
    kf.ctl_ok(ks, "server", "issue", host, "--purpose", "mta", cwd=base)
    chain = work / "mx-fullchain.pem"
    chain.write_text((base / f"{host}.mta.pem").read_text() +
                     (base / f"{host}.mta.chain.pem").read_text())
    enroll_enc(ks.client(), doms[E], f"rcpt@{E}", "p256", device="desk")
    zdir = work / "zones"
    zdir.mkdir()
    zones = {PARENT: zdir / "parent.zone"}
    zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
    for d in doms:
        r = dx.anchor_dns("records", d, "-s", ks.base_url, "--cacert", tls.ca, "--keyserver",
                          f"{KEYS}:{ks.port}:10:10")
        assert r.rc == 0, r.err
        zones[d] = zdir / f"{d}.zone"
        zones[d].write_text(dx.zone_text(d, r.out + "mx IN A 127.0.0.1\n", mx=False))
    nsd = st.add(dx.Nsd(work / "nsd", zones).start())
    sink = st.add(rx.SmtpSink(work / "sink", dump=False))
    common = dict(dns_server=nsd.resolver, keyserver_cacert=tls.ca, log_level="warning",
                  max_connections_per_ip=1000)
    b = st.add(rx.Relay(work / "b", hostname=host, local_domains=f"{E},{C}",
                        inbound_next_hop=sink.hop, tls_cert_file=chain,
                        tls_key_file=base / f"{host}.mta.key", **common).start())
    a = st.add(rx.Relay(work / "a", hostname=f"mx.{A}",
                        signing_keys=f"{A}:s1:{base / f's1.{A}.signing.key'}", **common).start())
    for d in (E, C):
        r = rf.route_put(ks.client(), d, {"servers": [{"host": host, "port": b.inbound_port,
                                                       "priority": 10, "weight": 1,
                                                       "pin": doms[E].pin}], "ttl": 3600},
                         token=doms[d].admin_token)
        assert r.status == 200, r.body
    for p in (ks.proc.pid, nsd.proc.pid, b.proc.pid):
        pin_tree(p, 1)
    pin_tree(a.proc.pid, 0)
    return a, b, sink


def encrypted_ok(m):
    ct = " ".join(m.header("Content-Type"))
    return None if ct.startswith("application/pkcs7-mime") else f"not encrypted: {ct!r}"


def clear_ok(m):
    ct = " ".join(m.header("Content-Type"))
    return None if not ct.startswith("application/pkcs7-mime") else "encrypted"


def main():
    os.sched_setaffinity(0, {1})
    work = rx._workdir("anchor-bench-relay-encrypt-")
    st = rl.Stack()
    try:
        a, b, sink = world(work, st)
        kinds = {"encrypted": (f"rcpt@{E}", encrypted_ok), "clear": (f"rcpt@{C}", clear_ok)}
        files = {k: rx.message_file(work / f"{k}.eml", sender=f"alice@{A}", to=rcpt,
                                    size=rl.SIZE) for k, (rcpt, _) in kinds.items()}
        for k, (rcpt, verdict) in kinds.items():  # before any load: nothing else in flight
            why = rl.check(a.submission_port, sink, files[k], rcpt, verdict)
            if why:
                raise SystemExit(f"{k}: the check message failed: {why}")
        for k, (rcpt, _) in kinds.items():
            rl.run(a.submission_port, sink, files[k], rl.WARMUP, min(rl.SESSIONS, rl.WARMUP),
                   k, (a, b), rcpt)
        print(f"== {rl.COUNT} messages of {rl.SIZE} bytes (+ headers), smtp-source -s "
              f"{rl.SESSIONS}, relay A (CPU 0) -> relay B -> smtp-sink; {ROUNDS} rounds "
              f"interleaved, medians; {os.cpu_count()} cores")
        got = {k: [] for k in kinds}
        for r in range(ROUNDS):
            for k, (rcpt, _) in kinds.items():
                acc, e2e, cpu = rl.run(a.submission_port, sink, files[k], rl.COUNT,
                                       rl.SESSIONS, k, (a, b), rcpt, (a.proc.pid,))
                got[k].append((rl.COUNT / e2e, cpu / rl.COUNT * 1e6))
                print(f"round {r + 1}: {k:10} {got[k][-1][0]:8.0f} msg/s "
                      f"{got[k][-1][1]:8.0f} µs CPU/msg (relay A)")
        print(f"{'':36}{'delivered/s':>12}{'µs CPU/msg':>12}")
        med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
               for k, v in got.items()}
        for k, label in (("clear", "relay, no encryption (rcpt@c)"),
                         ("encrypted", "relay, gateway encryption (rcpt@e)")):
            print(f"{label:36}{med[k][0]:12.0f}{med[k][1]:12.0f}")
        print(f"encryption costs {med['encrypted'][1] / med['clear'][1]:.2f}x the CPU per "
              f"message; throughput {med['encrypted'][0] / med['clear'][0]:.2f}x")
        return 0
    finally:
        st.stop()
        anchorlib.remove_tree(work)


if __name__ == "__main__":
    sys.exit(main())
