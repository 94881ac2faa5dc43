"""relay_load.py BUILD_DIR - messages per second through anchor-relay beside Postfix with
OpenDKIM as a milter, doing the same work on the same machine, in one run (driven by
bench/relay.sh).

Both sides get the same load from Postfix's smtp-source (COUNT messages of SIZE bytes,
pre-formatted with -F, over SESSIONS parallel sessions) and deliver into one smtp-sink that
throws the messages away (smtp-sink -M COUNT exits once it has them all: that is the end of
the timed run).  Rates are end to end: first connection to last message at the sink.

  sign    Postfix smtpd + OpenDKIM (rsa-sha256 2048, relaxed) -> queue (fsync) -> smtp
          vs anchor-relay submission -> signer (rsa-sha256 2048) -> spool/out (fsync) ->
          route (MX from NSD) -> smtp-sink
  verify  Postfix smtpd + OpenDKIM verifying the message's rsa-sha256 signature (key from
          its TestPublicKeys file) -> queue -> smtp
          vs anchor-relay inbound -> verify (key from NSD) -> tier -> spool/in (fsync)
          -> inbound_next_hop smtp-sink

Before each timed run, one message goes through with the sink dumping it, and must come
out signed (python3-dkim verifies it) or marked dkim=pass: both sides really do the work.
Without BUILD_DIR/anchor-relay only the Postfix+OpenDKIM rows are measured (and said so).
The servers (Postfix's processes and OpenDKIM, or the relay and its signer) run pinned to
CPU 0, smtp-source, smtp-sink and NSD to CPU 1; each row also gives the server's CPU time
(user+system of its process trees, reaped children included) per message.
Knobs: BENCH_RELAY_COUNT (2000), BENCH_RELAY_SIZE (4096), BENCH_RELAY_SESSIONS (20),
BENCH_RELAY_WARMUP (100).  Loopback only.

relay_load.py BUILD_DIR --chunking: relay to relay instead, BDAT beside DATA in one run.
smtp-source -> anchor-relay A (inbound) -> anchor-relay B (inbound) -> smtp-sink: A's
delivery client hands each message to B with BDAT (B offers CHUNKING, A has
smtp_chunking = yes), then, in a second row with the same load, with DATA (a second A with
smtp_chunking = no).  Both relays run pinned to CPU 0, the rest to CPU 1, as above.  Before
each timed run one message goes through and must arrive with both relays' trace fields.
"""

import os
import sys
import time
from pathlib import Path

BIN = Path(sys.argv[1]).resolve()
SRC = Path(__file__).resolve().parents[1]
os.environ["ANCHOR_BIN"] = str(BIN)
os.environ["ANCHOR_SRC"] = str(SRC)
sys.path.insert(0, str(SRC / "tests" / "integration"))

import anchorlib  # noqa: E402
import relayfixtures as rx  # noqa: E402

sys.path.insert(0, str(SRC / "bench"))
from benchcpu import pin_tree, tree_cpu  # noqa: E402

COUNT = int(os.environ.get("BENCH_RELAY_COUNT", "2000"))
SIZE = int(os.environ.get("BENCH_RELAY_SIZE", "4096"))
SESSIONS = int(os.environ.get("BENCH_RELAY_SESSIONS", "20"))
WARMUP = int(os.environ.get("BENCH_RELAY_WARMUP", "100"))
SENDER = "bench@x.test"
RCPT_OUT = "rcpt@far.test"   # outbound: a legacy domain, MX 127.0.0.1 in NSD
RCPT_IN = "rcpt@dest.test"   # inbound: the relay's local domain


class Stack:
    """Everything started, stopped in reverse order at the end."""

    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)
        return item

    def stop(self):
        for it in reversed(self.items):
            try:
                it.stop()
            except Exception as e:  # report and go on cleaning up
                print(f"cleanup: {e}", file=sys.stderr)


def servers_cpu(pids):
    return sum(tree_cpu(p) for p in pids)


def run(port, sink, msgfile, count, sessions, what, diag=(), rcpt=RCPT_OUT, pids=()):
    """smtp-source count messages into port; wait for the sink to have them all (it exits).
    Returns (accept seconds, end-to-end seconds, server CPU seconds: pids' trees)."""
    sink.max_messages = count
    sink.restart()
    c0 = servers_cpu(pids)
    t0 = time.monotonic()
    r = rx.smtp_source(port, count=count, sessions=sessions, file=msgfile, sender=SENDER,
                       rcpt=rcpt)
    accepted = time.monotonic() - t0
    logs = "".join(f"\n--- {type(d).__name__} log:\n{d.text()[-3000:]}" for d in diag)
    if r.rc != 0:
        raise SystemExit(f"{what}: smtp-source failed ({r.rc}): {r.out}{r.err}{logs}")
    try:
        sink.proc.wait(timeout=max(60, count / 10))
    except Exception:
        logs = "".join(f"\n--- {type(d).__name__} log:\n{d.text()[-3000:]}" for d in diag)
        raise SystemExit(f"{what}: smtp-sink did not get all {count} messages; "
                         f"sink log:\n{sink.text()}{logs}")
    return accepted, time.monotonic() - t0, servers_cpu(pids) - c0


def check(port, sink, msgfile, rcpt, verdict):
    """One message through with the sink dumping it: verdict(SinkMessage) says whether the
    work was really done (a signature that verifies, a dkim=pass)."""
    sink.dump, sink.max_messages = True, None
    sink.clear()
    sink.restart()
    try:
        r = rx.smtp_source(port, count=1, file=msgfile, sender=SENDER, rcpt=rcpt)
        if r.rc != 0:
            return f"smtp-source: {r.err.strip()}"
        try:
            [m] = sink.wait_for(1, timeout=30)
        except AssertionError as e:
            return str(e)
        return verdict(m)
    finally:
        sink.dump = False
        sink.clear()


def signed_ok(records):
    def verdict(m):
        return None if rx.dkimpy_verify(m.data, records) else "no signature dkimpy accepts"
    return verdict


def verified_ok(m):
    ar = " ".join(m.header("Authentication-Results"))
    return None if "dkim=pass" in ar else f"no dkim=pass in {ar!r}"


def measure(port, sink, msgfile, what, diag=(), rcpt=RCPT_OUT, verdict=None, pids=()):
    """pids: the server's processes, pinned to CPU 0 here (their children follow)."""
    for p in pids:
        pin_tree(p, 0)
    if verdict:
        why = check(port, sink, msgfile, rcpt, verdict)
        if why:
            raise SystemExit(f"{what}: the check message failed: {why}")
    run(port, sink, msgfile, WARMUP, min(SESSIONS, WARMUP), what, diag, rcpt)
    return run(port, sink, msgfile, COUNT, SESSIONS, what, diag, rcpt, pids)


def signed_file(path, key, rcpt):
    """The 4 KiB message, DKIM-signed by python3-dkim with key, LF line ends for -F."""
    plain = rx.message_file(path, sender=SENDER, to=rcpt, size=SIZE)
    data = plain.read_bytes().replace(b"\n", b"\r\n")
    sig = rx.dkimpy_sign(data, key)
    Path(path).write_bytes((sig + data).replace(b"\r\n", b"\n"))
    return Path(path)


def row(name, acc, e2e, cpu):
    print(f"{name:44}{COUNT / acc:12.0f}{COUNT / e2e:12.0f}{e2e:10.2f}"
          f"{cpu / COUNT * 1e6:12.0f}")


def main():
    os.sched_setaffinity(0, {1})  # smtp-source, smtp-sink, NSD: CPU 1; servers: CPU 0
    work = rx._workdir("anchor-bench-relay-")
    st = Stack()
    have_relay = os.access(BIN / "anchor-relay", os.X_OK)
    try:
        # keys: the signer's (OpenDKIM and the relay sign with the same kind of key), and
        # a sender's key for the verify rows, published in NSD with MX records
        sign_key = rx.dkim_keys(work / "keys", "x.test", "bench", "rsa")
        sender_key = rx.dkim_keys(work / "keys", "x.test", "sender", "rsa")
        nsd = st.add(rx.start_nsd(work / "dns", {"x.test": rx.records_of([sign_key,
                                                                         sender_key])},
                                  mx_domains=["far.test", "x.test"]))
        plain = rx.message_file(work / "plain.eml", sender=SENDER, to=RCPT_OUT, size=SIZE)
        signed_out = signed_file(work / "signed-out.eml", sender_key, RCPT_OUT)
        signed_in = signed_file(work / "signed-in.eml", sender_key, RCPT_IN)
        sink = st.add(rx.SmtpSink(work / "sink", dump=False))
        print(f"== {COUNT} messages of {SIZE} bytes (+ headers), smtp-source -s {SESSIONS}, "
              f"into smtp-sink; warm-up {WARMUP}; {os.cpu_count()} cores")
        print(f"{'':44}{'accepted/s':>12}{'delivered/s':>12}{'seconds':>10}"
              f"{'µs CPU/msg':>12}")

        # Postfix + OpenDKIM, signing: mail from 127.0.0.1 is "internal"
        od_sign = st.add(rx.OpenDkim(work / "od-sign", keys=[sign_key], mode="s",
                                     dns="file").start())
        pf_sign = st.add(rx.Postfix(work / "pf-sign", name="sign",
                                    relayhost=f"[127.0.0.1]:{sink.port}",
                                    milters=[od_sign.milter]).start())
        p_sign = measure(pf_sign.port, sink, plain, "Postfix+OpenDKIM sign", (pf_sign, od_sign),
                         verdict=signed_ok(rx.records_of([sign_key])),
                         pids=(pf_sign.master_pid, od_sign.proc.pid))
        row("Postfix + OpenDKIM milter, sign", *p_sign)
        pf_sign.stop()
        od_sign.stop()

        # Postfix + OpenDKIM, verifying: no host is internal.  Its keys come from its
        # TestPublicKeys file (no DNS at all, which favours it): through Unbound, OpenDKIM
        # re-reads the Unbound configuration in every milter thread and libunbound's parser
        # breaks under concurrent sessions.
        od_ver = st.add(rx.OpenDkim(work / "od-verify", mode="v", internal_hosts="192.0.2.1",
                                    records=rx.records_of([sender_key]), dns="file").start())
        pf_ver = st.add(rx.Postfix(work / "pf-verify", name="verify",
                                   relayhost=f"[127.0.0.1]:{sink.port}",
                                   milters=[od_ver.milter]).start())
        p_ver = measure(pf_ver.port, sink, signed_out, "Postfix+OpenDKIM verify", (pf_ver, od_ver),
                        verdict=verified_ok, pids=(pf_ver.master_pid, od_ver.proc.pid))
        row("Postfix + OpenDKIM milter, verify", *p_ver)
        pf_ver.stop()
        od_ver.stop()

        if not have_relay:
            print(f"(anchor-relay rows skipped: {BIN}/anchor-relay is not built)")
            return 0

        relay = rx.Relay(work / "relay", log_level="warning", dns_server=nsd.resolver,
                         smtp_port=sink.port, local_domains="dest.test",
                         inbound_next_hop=sink.hop, outbound_tls="may", control=False,
                         max_connections_per_ip=1000)
        relay.keys = [sign_key]
        relay.params["signing_keys"] = f"x.test:{sign_key.selector}:{sign_key.key_file}"
        st.add(relay.start())
        r_sign = measure(relay.submission_port, sink, plain, "anchor-relay sign", (relay,),
                         verdict=signed_ok(rx.records_of([sign_key])), pids=(relay.proc.pid,))
        row("anchor-relay submission, sign", *r_sign)
        r_ver = measure(relay.inbound_port, sink, signed_in, "anchor-relay verify", (relay,),
                        rcpt=RCPT_IN, verdict=verified_ok, pids=(relay.proc.pid,))
        row("anchor-relay inbound, verify", *r_ver)
        print(f"ratio anchor-relay/Postfix+OpenDKIM (delivered/s): sign "
              f"{p_sign[1] / r_sign[1]:.2f}x, verify {p_ver[1] / r_ver[1]:.2f}x "
              f"(goal: 2x or more); server CPU per message: sign "
              f"{p_sign[2] / r_sign[2]:.2f}x less, verify {p_ver[2] / r_ver[2]:.2f}x less")
        return 0
    finally:
        st.stop()
        anchorlib.remove_tree(work)


def both_relays_ok(m):
    got = " ".join(m.header("Received"))
    return None if got.count("(anchor-relay)") >= 2 else f"not through both relays: {got!r}"


def chunking_main():
    """A -> B with BDAT, then with DATA: messages/s end to end, server CPU per message."""
    os.sched_setaffinity(0, {1})
    work = rx._workdir("anchor-bench-relay-chunking-")
    st = Stack()
    try:
        plain = rx.message_file(work / "plain.eml", sender=SENDER, to=RCPT_IN, size=SIZE)
        sink = st.add(rx.SmtpSink(work / "sink", dump=False))
        common = dict(log_level="warning", local_domains="dest.test", control=False,
                      max_connections_per_ip=1000)
        print(f"== {COUNT} messages of {SIZE} bytes (+ headers), smtp-source -s {SESSIONS}, "
              f"relay A -> relay B -> smtp-sink; warm-up {WARMUP}; {os.cpu_count()} cores")
        print(f"{'':44}{'accepted/s':>12}{'delivered/s':>12}{'seconds':>10}"
              f"{'µs CPU/msg':>12}")
        rows = {}
        for mode, chunking in (("BDAT", "yes"), ("DATA", "no")):
            # a fresh pair per row: nothing one row left queued reaches the next
            b = st.add(rx.Relay(work / f"b-{mode}", hostname="b.relay.test",
                                inbound_next_hop=sink.hop, **common).start())
            a = st.add(rx.Relay(work / f"a-{mode}", hostname="a.relay.test",
                                inbound_next_hop=f"smtp:127.0.0.1:{b.inbound_port}",
                                smtp_chunking=chunking, **common).start())
            rows[mode] = measure(a.inbound_port, sink, plain, f"relay to relay, {mode}", (a, b),
                                 rcpt=RCPT_IN, verdict=both_relays_ok,
                                 pids=(a.proc.pid, b.proc.pid))
            row(f"anchor-relay -> anchor-relay, {mode}", *rows[mode])
            a.stop()
            b.stop()
        print(f"ratio BDAT/DATA (delivered/s): {rows['DATA'][1] / rows['BDAT'][1]:.2f}x; "
              f"server CPU per message: {rows['BDAT'][2] / rows['DATA'][2]:.2f}x")
        return 0
    finally:
        st.stop()
        anchorlib.remove_tree(work)


if __name__ == "__main__":
    sys.exit(chunking_main() if "--chunking" in sys.argv[2:] else main())
