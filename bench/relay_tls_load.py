"""relay_tls_load.py BUILD_DIR - messages per second through anchor-relay beside Postfix,
both with STARTTLS on both sides, in one run (driven by bench/relay_tls.sh).

smtp-source and smtp-sink cannot speak TLS, and a Python load generator and sink cost
more CPU per message than the servers (they saturated CPU 1 first), so both ends are C
programs built by `make bench` (bench/smtp_load.c, bench/smtp_sink.c):
  load  smtp_load: CONNS connections at once, each EHLO, STARTTLS (TLS 1.3), EHLO, then
        PER_CONN messages (MAIL, RCPT, DATA 4 KiB), QUIT, until COUNT are sent
  sink  smtp_sink: STARTTLS offered, MAIL refused without it; counts the messages, and
        keeps the first one of a round
  relay anchor-relay submission with tls_cert_file (STARTTLS inbound) -> signer
        (ed25519-sha256) -> spool/out (fsync) -> route (MX from NSD) -> outbound_tls
        encrypt -> sink
  peer  Postfix smtpd with smtpd_tls (STARTTLS inbound) -> queue (fsync) -> smtp with
        smtp_tls_security_level=encrypt -> sink (no signing: "Postfix with TLS")
The servers are pinned to CPU 0 (taskset, every thread and child), the load generator,
the sink and NSD to CPU 1.  ROUNDS rounds, the two interleaved; the median of each.  A
server's CPU is the user+system time of its process tree (children reaped included)
over the timed run, divided by the messages.  Before timing, one message through each
must arrive over TLS, and the relay's must carry an ed25519-sha256 signature that
python3-dkim verifies.
BENCH_RELAY_PERF=FILE: one more relay round under `perf record -g` into FILE.
Knobs: BENCH_RELAY_COUNT (1000), BENCH_RELAY_SIZE (4096), BENCH_RELAY_CONNS (20),
BENCH_RELAY_PER_CONN (1), BENCH_RELAY_RESUME (0; 1: each connection offers the TLS session
of the one before), BENCH_RELAY_ROUNDS (3), BENCH_RELAY_WARMUP (100).  Loopback only.
"""

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.argv[1]).resolve()
SRC = Path(__file__).resolve().parents[1]
os.environ["ANCHOR_BIN"] = str(BIN)
os.environ["ANCHOR_SRC"] = str(SRC)
sys.path.insert(0, str(SRC / "tests" / "integration"))
sys.path.insert(0, str(SRC / "bench"))

import anchorlib  # noqa: E402
import relayfixtures as rx  # noqa: E402
from benchcpu import pin_tree, tree, tree_cpu  # noqa: E402

COUNT = int(os.environ.get("BENCH_RELAY_COUNT", "1000"))
SIZE = int(os.environ.get("BENCH_RELAY_SIZE", "4096"))
CONNS = int(os.environ.get("BENCH_RELAY_CONNS", "20"))
PER_CONN = int(os.environ.get("BENCH_RELAY_PER_CONN", "1"))
RESUME = os.environ.get("BENCH_RELAY_RESUME", "0") == "1"
ROUNDS = int(os.environ.get("BENCH_RELAY_ROUNDS", "3"))
WARMUP = int(os.environ.get("BENCH_RELAY_WARMUP", "100"))
STALL = 10  # seconds without an answer: the message failed
SERVERS = set()  # the servers' pids, left out of the load generator's CPU
SENDER = "bench@x.test"
RCPT = "rcpt@far.test"  # a legacy domain, MX 127.0.0.1 in NSD


class Sink:
    """bench/smtp_sink.c: a TLS sink on CPU 1 that counts the messages it took."""

    def __init__(self, tls, work):
        self.port = rx.free_port()
        self.first = work / "sink-first.eml"
        self.proc = subprocess.Popen([str(BIN / "bench" / "smtp_sink"), str(self.port),
                                      str(tls.cert), str(tls.key), str(self.first)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the TLS sink did not start")

    def _ask(self, what):
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def reset(self):
        self.first.unlink(missing_ok=True)
        if self._ask("reset") != "ok":
            raise SystemExit("the TLS sink did not reset")

    def wait(self, n, timeout):
        end = time.monotonic() + timeout
        while (got := int(self._ask("count"))) < n:
            if time.monotonic() > end:
                raise SystemExit(f"the sink got {got} of {n} messages")
            time.sleep(0.005)

    def stop(self):
        self.proc.stdin.close()  # end of its stdin ends it
        self.proc.wait(10)


def load(port, n, msgfile):
    """n messages through bench/smtp_load.c (CONNS connections at once, PER_CONN messages
    each): its report as a dict (sent, failed, conns, resumed, seconds, msgs_per_s, p50_ms,
    p99_ms) and what it said about the first failure."""
    argv = [str(BIN / "bench" / "smtp_load"), "-c", str(CONNS), "-m", str(PER_CONN), "-n",
            str(n), "-f", SENDER, "-t", RCPT, "-T", str(STALL)]
    if RESUME:
        argv.append("-r")
    p = subprocess.run(argv + ["127.0.0.1", str(port), str(msgfile)], capture_output=True,
                       text=True, check=False)
    if p.returncode not in (0, 1) or "sent=" not in p.stdout:
        raise SystemExit(f"smtp_load failed: {p.stdout}{p.stderr}")
    rep = {k: float(v) for k, v in (kv.split("=") for kv in p.stdout.split())}
    return rep, p.stderr.strip()


def timed(server_pid, port, sink, msgfile, perf=None):
    """One timed run: a dict of messages/s end to end (first connection to the last message
    at the sink), the server's CPU µs per message, the load generator's and sink's, and the
    generator's report (failed, p50_ms, p99_ms...).  perf: a file to record the server's
    profile into."""
    sink.reset()
    # the relay is this process's child: its tree is not the load generator's
    c0, l0 = tree_cpu(server_pid), tree_cpu(os.getpid(), SERVERS)
    rec = None
    if perf:
        rec = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "499", "-o", perf, "-p",
                                ",".join(map(str, tree(server_pid)))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    rep, why = load(port, COUNT, msgfile)
    sent = int(rep["sent"])
    sink.wait(sent, max(120, COUNT / 5))
    el = time.monotonic() - t0
    if rec:
        rec.send_signal(signal.SIGINT)
        rec.wait(60)
    cpu = tree_cpu(server_pid) - c0
    lcpu = tree_cpu(os.getpid(), SERVERS) - l0
    return dict(rep, rate=sent / el, cpu=cpu / max(sent, 1) * 1e6,
                lcpu=lcpu / max(sent, 1) * 1e6, why=why)


def check(port, sink, msgfile, verdict, what):
    sink.reset()
    rep, why = load(port, 1, msgfile)
    if rep["sent"] != 1:
        raise SystemExit(f"{what}: the check message was not accepted: {why}")
    sink.wait(1, 60)
    why = verdict(sink.first.read_bytes())
    if why:
        raise SystemExit(f"{what}: the check message failed: {why}")
    sink.reset()
    rep, why = load(port, WARMUP, msgfile)
    sink.wait(int(rep["sent"]), 120)


def row(name, x):
    return (f"{name:40}{x['rate']:9.0f}{x['cpu']:12.0f}{x['lcpu']:12.0f}{x['p50_ms']:9.1f}"
            f"{x['p99_ms']:9.1f}")


def main():
    os.sched_setaffinity(0, {1})
    work = rx._workdir("anchor-bench-relay-tls-")
    stack = []
    try:
        tls = anchorlib.make_tls(work / "tls")
        key = rx.dkim_keys(work / "keys", "x.test", "bench", "ed25519")
        nsd = rx.start_nsd(work / "dns", {"x.test": rx.records_of([key])},
                           mx_domains=["far.test"])
        stack.append(nsd)
        msgfile = rx.message_file(work / "plain.eml", sender=SENDER, to=RCPT, size=SIZE)
        sink = Sink(tls, work)
        stack.append(sink)

        pf = rx.Postfix(work / "pf", name="tls", relayhost=f"[127.0.0.1]:{sink.port}", main={
            "smtpd_tls_cert_file": str(tls.cert), "smtpd_tls_key_file": str(tls.key),
            "smtpd_tls_security_level": "may", "smtp_tls_security_level": "encrypt",
            "smtpd_tls_loglevel": "0", "smtp_tls_loglevel": "0"})
        stack.append(pf.start())
        relay = rx.Relay(work / "relay", tls=tls,
                         log_level=os.environ.get("BENCH_RELAY_LOG", "warning"),
                         dns_server=nsd.resolver, smtp_port=sink.port, outbound_tls="encrypt",
                         control=False, max_connections_per_ip=1000)
        relay.keys = [key]
        relay.params["signing_keys"] = f"x.test:{key.selector}:{key.key_file}"
        stack.append(relay.start())
        pf_pid, relay_pid = pf.master_pid, relay.proc.pid
        SERVERS.update((pf_pid, relay_pid))
        pin_tree(pf_pid, 0)
        pin_tree(relay_pid, 0)

        def signed(m):
            if b"a=ed25519-sha256" not in m:
                return "no ed25519-sha256 signature"
            return None if rx.dkimpy_verify(m, rx.records_of([key])) else "dkimpy rejects it"

        print(f"(Postfix on {pf.port}, anchor-relay on {relay.submission_port}, sink on "
              f"{sink.port})", flush=True)
        check(pf.port, sink, msgfile, lambda m: None, "Postfix")
        check(relay.submission_port, sink, msgfile, signed, "anchor-relay")
        print(f"== STARTTLS both sides: {COUNT} messages of {SIZE} bytes (+ headers), "
              f"{CONNS} connections at once, {PER_CONN} message(s) per connection"
              f"{', TLS sessions resumed' if RESUME else ''} (bench/smtp_load); servers on "
              f"CPU 0, load and sink on CPU 1; {ROUNDS} rounds interleaved, medians")
        res = {"pf": [], "relay": []}
        for r in range(ROUNDS):
            res["pf"].append(timed(pf_pid, pf.port, sink, msgfile))
            res["relay"].append(timed(relay_pid, relay.submission_port, sink, msgfile))
            p, a = res["pf"][-1], res["relay"][-1]
            print(f"round {r + 1}: Postfix {p['rate']:.0f}/s {p['cpu']:.0f} µs CPU/msg "
                  f"(load+sink {p['lcpu']:.0f}), anchor-relay {a['rate']:.0f}/s "
                  f"{a['cpu']:.0f} µs CPU/msg (load+sink {a['lcpu']:.0f}); failed: Postfix "
                  f"{p['failed']:.0f}, anchor-relay {a['failed']:.0f}"
                  + (f"; TLS sessions resumed: Postfix {p['resumed']:.0f}, anchor-relay "
                     f"{a['resumed']:.0f}" if RESUME else ""), flush=True)
            for x in (p, a):
                if x["why"]:
                    print(f"  {x['why']}")
        if os.environ.get("BENCH_RELAY_PERF"):
            timed(relay_pid, relay.submission_port, sink, msgfile,
                  perf=os.environ["BENCH_RELAY_PERF"])
            print(f"perf profile of anchor-relay under this load: "
                  f"{os.environ['BENCH_RELAY_PERF']}")
        med = {k: {f: statistics.median(x[f] for x in v)
                   for f in ("rate", "cpu", "lcpu", "p50_ms", "p99_ms")}
               for k, v in res.items()}
        print(f"{'':40}{'msgs/s':>9}{'µs CPU/msg':>12}{'load+sink':>12}{'p50 ms':>9}"
              f"{'p99 ms':>9}")
        print(row("Postfix, STARTTLS in, TLS encrypt out", med["pf"]))
        print(row("anchor-relay, same, ed25519 signing", med["relay"]))
        print(f"ratio anchor-relay/Postfix: {med['relay']['rate'] / med['pf']['rate']:.2f}x "
              f"msgs/s, {med['pf']['cpu'] / med['relay']['cpu']:.2f}x less CPU per message "
              f"(goal: 4x)")
        return 0
    finally:
        for it in reversed(stack):
            try:
                it.stop()
            except Exception as e:  # report and go on cleaning up
                print(f"cleanup: {e}", file=sys.stderr)
        if not os.environ.get("BENCH_KEEP"):
            anchorlib.remove_tree(work)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    sys.exit(main())
