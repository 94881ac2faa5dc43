"""Nothing the relay acknowledged is lost when it is killed with SIGKILL.

Postfix's smtp-source sends a stream to the relay's submission port: ten smtp-source
processes in parallel (-s 1 each, so that each one's verbose dialogue (-v) is
sequential and says which message got the final "250"), each recipient made unique by -N
("1p3@far.test", "2p3@far.test", ...).  The relay signs and queues them and delivers
them (MX by NSD, smtp_port) to Postfix's smtp-sink, which dumps every message it takes.
Mid-stream the relay is killed with SIGKILL and started again on the same state_dir.

Then every recipient that got a 250 must be in smtp-sink's dumps, and exactly once —
with one exception that SMTP itself imposes (RFC 5321 §6.1, RFC 1047): a delivery in
flight at the kill, whose "250" from the sink came back too late to be recorded, is sent
again after the restart.  Such duplicates are allowed only for messages the sink took in
the moment of the kill, and at most one per delivery worker.  A message that never got
its 250 may arrive (it was committed before the reply was lost), but at most once.

The variant with the sink down during the kill has no delivery in flight at all, so
there every acknowledged message arrives exactly once.
"""

import re
import signal
import subprocess
import threading
import time
from collections import Counter

import pytest

import anchorlib
import relayfixtures as rx
from relayfixtures import make_relay, mx_dns, smtp_sink  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

STREAMS = 10
PER_STREAM = 30
KILL_AFTER = 100   # acknowledgements seen before the SIGKILL
WORKERS = 8


class Stream:
    """One smtp-source -v -N process; .acked: the recipients whose message got 250."""

    def __init__(self, port, k, count):
        self.k = k
        self.argv = [rx.SMTP_SOURCE, "-v", "-N", "-s", "1", "-m", str(count), "-f",
                     "alice@x.test", "-t", f"p{k}@far.test", "-M", "client.test",
                     "-S", f"crash stream {k}", "-l", "512", f"127.0.0.1:{port}"]
        self.acked = []
        self.sent = []   # recipients whose DATA was completed (".") by the client
        self.lines = []
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        rcpt, after_dot = None, False
        for line in self.proc.stderr:
            self.lines.append(line)
            line = re.sub(r"^\S*smtp-source: ", "smtp-source: ", line)
            m = re.match(r"smtp-source: RCPT TO:<([^>]+)>", line)
            if m:
                rcpt = m.group(1)
                continue
            if line.strip() == "smtp-source: .":
                after_dot = True
                self.sent.append(rcpt)
                continue
            if after_dot and line.startswith("smtp-source: <<< "):
                if line.startswith("smtp-source: <<< 250"):
                    self.acked.append(rcpt)
                after_dot = False

    def wait(self, timeout=120):
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=10)
        return self.proc.returncode


def acked_total(streams):
    return sum(len(s.acked) for s in streams)


def stream_and_kill(relay):
    """Start the streams, SIGKILL the relay after KILL_AFTER acks; returns (streams,
    wall-clock time of the kill)."""
    streams = [Stream(relay.submission_port, k, PER_STREAM) for k in range(STREAMS)]
    deadline = time.monotonic() + 120
    while acked_total(streams) < KILL_AFTER:
        assert time.monotonic() < deadline, \
            f"only {acked_total(streams)} acks in 120s\n{relay.text()[-4000:]}"
        assert any(s.proc.poll() is None for s in streams) or \
            acked_total(streams) >= KILL_AFTER, "".join(streams[0].lines[-30:])
        time.sleep(0.005)
    killed_at = time.time()
    assert relay.kill(signal.SIGKILL) == -signal.SIGKILL
    for s in streams:
        s.wait()
    assert anchorlib.sanitizer_report(relay.text()) is None, relay.text()[-4000:]
    return streams, killed_at


def sink_rcpts(sink):
    """Counter of the recipients of every complete dump, and {rcpt: [dump mtimes]}."""
    counts, times = Counter(), {}
    for m in sink.messages():
        for r in m.rcpts:
            counts[r] += 1
            times.setdefault(r, []).append(m.path.stat().st_mtime)
    return counts, times


def wait_drained(relay, sink, want, timeout=90.0):
    """Until every recipient of want is in the sink and spool/out is empty."""
    deadline = time.monotonic() + timeout
    while True:
        counts, _ = sink_rcpts(sink)
        missing = [r for r in want if counts[r] == 0]
        spool = [p for p in relay.spool_files("out") if p.name.startswith("m.")]
        if not missing and not spool:
            sink.wait_for(sum(counts.values()))  # every dump complete
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout}s: {len(missing)} acknowledged messages "
                                 f"not delivered (e.g. {missing[:5]}), {len(spool)} still "
                                 f"queued\n{relay.text()[-5000:]}")
        time.sleep(0.2)


def check(streams, sink, killed_at, strict):
    acked = [r for s in streams for r in s.acked]
    sent = {r for s in streams for r in s.sent}
    assert len(acked) == len(set(acked))
    assert len(acked) >= KILL_AFTER
    counts, times = sink_rcpts(sink)
    lost = [r for r in acked if counts[r] == 0]
    assert not lost, f"{len(lost)} acknowledged messages lost: {lost[:10]}"
    strangers = [r for r in counts if r not in sent]
    assert not strangers, f"the sink got messages nobody sent: {strangers[:10]}"
    dups = {r: n for r, n in counts.items() if n > 1}
    if strict:
        assert not dups, f"delivered more than once: {dups}"
    else:
        assert all(n == 2 for n in dups.values()), dups
        assert len(dups) <= WORKERS, dups
        # only what the sink took at the moment of the kill
        late = {r: times[r] for r in dups if not killed_at - 3 <= min(times[r]) <= killed_at + 2}
        assert not late, f"duplicates that were not in flight at the kill: {late}"
    unacked = [r for r in counts if r not in set(acked)]
    print(f"crash: {len(acked)} acknowledged, {len(sent)} sent, {sum(counts.values())} "
          f"dumped, {len(unacked)} committed without their 250, {len(dups)} in-flight "
          f"duplicates")


def test_sigkill_mid_stream_loses_nothing(make_relay, smtp_sink, mx_dns):
    sink = smtp_sink(backlog=256)
    relay = make_relay(sign_domains={"x.test": ["ed25519"]}, dns_server=mx_dns.resolver,
                       smtp_port=sink.port, workers=WORKERS, max_connections_per_ip=100)
    streams, killed_at = stream_and_kill(relay)
    assert all(s.proc.returncode != 0 for s in streams if len(s.sent) < PER_STREAM), \
        "a stream cut by the kill should have failed"
    relay.start()
    acked = [r for s in streams for r in s.acked]
    wait_drained(relay, sink, acked)
    time.sleep(1.0)
    check(streams, sink, killed_at, strict=False)
    # and the restarted relay takes a new stream as usual
    r = rx.smtp_source(relay.submission_port, count=20, sessions=4, sender="alice@x.test",
                       rcpt="after@far.test", extra=["-N"])
    assert r.rc == 0, (r.out, r.err)
    wait_drained(relay, sink, [f"{i}after@far.test" for i in range(1, 21)])
    relay.stop()


def test_sigkill_while_the_sink_is_down(make_relay, smtp_sink, mx_dns):
    sink = smtp_sink(backlog=256)
    sink.stop()  # down: every delivery is deferred, none is in flight at the kill
    relay = make_relay(sign_domains={"x.test": ["ed25519"]}, dns_server=mx_dns.resolver,
                       smtp_port=sink.port, workers=WORKERS, max_connections_per_ip=100)
    streams, killed_at = stream_and_kill(relay)
    assert sink.count() == 0
    queued = [p for p in relay.spool_files("out") if p.name.startswith("m.")]
    acked = [r for s in streams for r in s.acked]
    assert len(queued) >= len(acked), (len(queued), len(acked))
    sink.start()
    relay.start()
    wait_drained(relay, sink, acked)
    time.sleep(1.0)
    check(streams, sink, killed_at, strict=True)
    relay.stop()
