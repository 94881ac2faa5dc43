"""relay_tls_load.py BUILD_DIR - messages per second through anchor-relay beside Postfix,
both with STARTTLS on both sides, in one run (driven by bench/relay_tls.sh).

smtp-source and smtp-sink cannot speak TLS, so both ends are here:
  load  THREADS threads (smtplib + ssl), each message on its own connection:
        EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA (4 KiB), QUIT
  sink  aiosmtpd with STARTTLS in its own process; it counts messages that arrived
        over TLS (and refuses MAIL without it), and keeps the first one of a round
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
Knobs: BENCH_RELAY_COUNT (1000), BENCH_RELAY_SIZE (4096), BENCH_RELAY_THREADS (20),
BENCH_RELAY_ROUNDS (3), BENCH_RELAY_WARMUP (100).  Loopback only.
"""

import multiprocessing as mp
import os
import signal
import smtplib
import ssl
import statistics
import subprocess
import sys
import threading
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
THREADS = int(os.environ.get("BENCH_RELAY_THREADS", "20"))
ROUNDS = int(os.environ.get("BENCH_RELAY_ROUNDS", "3"))
WARMUP = int(os.environ.get("BENCH_RELAY_WARMUP", "100"))
STALL = 10  # seconds without an answer: the connection stalled
SERVERS = set()  # the servers' pids, left out of the load generator's CPU
SENDER = "bench@x.test"
RCPT = "rcpt@far.test"  # a legacy domain, MX 127.0.0.1 in NSD


def sink_main(port, cert, key, count, first, ready):
    """The TLS sink process: count.value += 1 per message received over TLS."""
    os.sched_setaffinity(0, {1})
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))

    class Handler:
        async def handle_MAIL(self, server, session, envelope, address, options):
            if session.ssl is None:
                return "530 5.7.0 STARTTLS first"
            envelope.mail_from = address
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            with count.get_lock():
                count.value += 1
                if count.value == 1:
                    Path(first).write_bytes(envelope.original_content or envelope.content)
            return "250 2.0.0 OK"

    class Ctl(Controller):
        def factory(self):
            return SMTP(self.handler, decode_data=False, hostname="sink.test",
                        tls_context=ctx, require_starttls=False)

    ctl = Ctl(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    ready.set()
    while True:
        time.sleep(3600)


class Sink:
    def __init__(self, tls, work):
        self.port = rx.free_port()
        self.count = mp.Value("i", 0)
        self.first = work / "sink-first.eml"
        ready = mp.Event()
        self.proc = mp.Process(target=sink_main, args=(self.port, tls.cert, tls.key,
                                                       self.count, str(self.first), ready),
                               daemon=True)
        self.proc.start()
        if not ready.wait(30):
            raise SystemExit("the TLS sink did not start")

    def reset(self):
        with self.count.get_lock():
            self.count.value = 0
        self.first.unlink(missing_ok=True)

    def wait(self, n, timeout):
        end = time.monotonic() + timeout
        while self.count.value < n:
            if time.monotonic() > end:
                raise SystemExit(f"the sink got {self.count.value} of {n} messages")
            time.sleep(0.005)

    def stop(self):
        self.proc.terminate()
        self.proc.join(10)


def load(port, n, message):
    """n messages, one per STARTTLS connection, from THREADS threads; the number of
    connections that stalled (no answer within STALL seconds; the message is resent)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    left = [n]
    errors, stalls = [], []
    lock = threading.Lock()

    def send():
        """One message on its own connection; None, or what went wrong."""
        stage = "connect"
        try:
            with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                              timeout=STALL) as s:
                stage = "greeting"
                s.starttls(context=ctx)
                stage = "STARTTLS"
                s.ehlo("client.test")
                stage = "EHLO after STARTTLS"
                s.mail(SENDER)
                stage = "MAIL"
                s.rcpt(RCPT)
                stage = "RCPT"
                s.data(message)
                stage = "DATA"
            return None
        except (OSError, smtplib.SMTPException) as e:
            return f"{type(e).__name__}: {e} (after {stage})"

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            for _ in range(3):  # a stalled connection is counted, and the message resent
                why = send()
                if why is None:
                    break
                with lock:
                    stalls.append(why)
            else:
                with lock:
                    errors.append(why)

    ts = [threading.Thread(target=worker) for _ in range(min(THREADS, n))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit(f"port {port}: {len(errors)} messages failed, first: {errors[0]}")
    return stalls


def timed(server_pid, port, sink, message, perf=None):
    """One timed run: (messages/s end to end, server CPU µs per message, load generator's
    and sink's CPU µs per message).  perf: a file to record the server's profile into."""
    sink.reset()
    # the relay is this process's child: its tree is not the load generator's
    c0, l0 = tree_cpu(server_pid), tree_cpu(os.getpid(), SERVERS)
    rec = None
    if perf:
        rec = subprocess.Popen(["perf", "record", "-q", "-g", "-F", "499", "-o", perf, "-p",
                                ",".join(map(str, tree(server_pid)))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    stalled = load(port, COUNT, message)
    sink.wait(COUNT, max(120, COUNT / 5))
    el = time.monotonic() - t0
    if rec:
        rec.send_signal(signal.SIGINT)
        rec.wait(60)
    cpu = tree_cpu(server_pid) - c0
    lcpu = tree_cpu(os.getpid(), SERVERS) - l0
    return COUNT / el, cpu / COUNT * 1e6, lcpu / COUNT * 1e6, len(stalled), stalled


def check(port, sink, message, verdict, what):
    sink.reset()
    load(port, 1, message)
    sink.wait(1, 60)
    why = verdict(sink.first.read_bytes())
    if why:
        raise SystemExit(f"{what}: the check message failed: {why}")
    sink.reset()
    load(port, WARMUP, message)
    sink.wait(WARMUP, 120)  # a resent message may arrive twice: at least WARMUP


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
        message = rx.message_file(work / "plain.eml", sender=SENDER, to=RCPT,
                                  size=SIZE).read_bytes().replace(b"\n", b"\r\n")
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
        check(pf.port, sink, message, lambda m: None, "Postfix")
        check(relay.submission_port, sink, message, signed, "anchor-relay")
        print(f"== STARTTLS both sides: {COUNT} messages of {SIZE} bytes (+ headers), "
              f"{THREADS} client threads, one message per connection; servers on CPU 0, "
              f"load and sink on CPU 1; {ROUNDS} rounds interleaved, medians")
        res = {"pf": [], "relay": []}
        for r in range(ROUNDS):
            res["pf"].append(timed(pf_pid, pf.port, sink, message))
            res["relay"].append(timed(relay_pid, relay.submission_port, sink, message))
            p, a = res["pf"][-1], res["relay"][-1]
            print(f"round {r + 1}: Postfix {p[0]:.0f}/s {p[1]:.0f} µs CPU/msg (load+sink "
                  f"{p[2]:.0f}), anchor-relay {a[0]:.0f}/s {a[1]:.0f} µs CPU/msg (load+sink "
                  f"{a[2]:.0f}); stalled connections: Postfix {p[3]}, anchor-relay {a[3]}",
                  flush=True)
            for why in sorted(set(p[4] + a[4])):
                print(f"  stalled: {why}")
        if os.environ.get("BENCH_RELAY_PERF"):
            timed(relay_pid, relay.submission_port, sink, message,
                  perf=os.environ["BENCH_RELAY_PERF"])
            print(f"perf profile of anchor-relay under this load: "
                  f"{os.environ['BENCH_RELAY_PERF']}")
        med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
               for k, v in res.items()}
        print(f"{'':44}{'msgs/s':>10}{'µs CPU/msg':>12}")
        print(f"{'Postfix, STARTTLS in, TLS encrypt out':44}{med['pf'][0]:10.0f}"
              f"{med['pf'][1]:12.0f}")
        print(f"{'anchor-relay, same, ed25519 signing':44}{med['relay'][0]:10.0f}"
              f"{med['relay'][1]:12.0f}")
        print(f"ratio anchor-relay/Postfix: {med['relay'][0] / med['pf'][0]:.2f}x msgs/s, "
              f"{med['pf'][1] / med['relay'][1]:.2f}x less CPU per message (goal: 4x)")
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
