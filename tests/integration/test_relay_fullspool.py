"""A full spool disk: the relay pauses its queue instead of retrying in a storm.

The relay's outbound spool (state_dir/spool/out) is a 1 MB tmpfs.  Messages are queued
while the next hop (smtp-sink) is down, so every attempt is deferred and its outcome
rewritten in the spool.  Then the tmpfs is filled to the last page.  Before the fix a
rewrite that failed (`cannot record the outcome ... No space left on device`) left the
recipient due at once: every message was tried again every second, each attempt logged
twice, and the log of a full disk grew fastest of all.  Now the outcome is held in
memory, the queue pauses (no delivery starts) and /metrics says so; once space comes
back the held states are written, the queue resumes and every message is delivered
exactly once.
"""

import os
import re
import subprocess
import time
from collections import Counter

import pytest

import anchorlib
import relayfixtures as rx
from relayfixtures import make_relay, mx_dns, smtp_sink  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

MESSAGES = 30
WINDOW = 6.0  # seconds watched with the disk full


@pytest.fixture
def small_spool(request):
    """mount(path): a 1 MB tmpfs on path (root only), lazily unmounted at the end."""
    mounted = []

    def mount(path):
        path.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                            str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
        mounted.append(path)
        return path

    def finish():
        for p in mounted:
            subprocess.run(["umount", "-l", str(p)], capture_output=True)

    request.addfinalizer(finish)
    return mount


def fill(path):
    """Write path/zz-fill until the file system refuses another byte."""
    fd = os.open(path / "zz-fill", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    r = subprocess.run(["df", "--output=avail", "-B1", str(path)], capture_output=True,
                       text=True, check=True)
    assert int(r.stdout.split()[-1]) == 0, r.stdout


def metrics(client):
    r = client.get("/metrics")
    assert r.status == 200, r.body
    return r.text


def sample(text, name, queue="out"):
    m = re.search(rf'^{re.escape(name)}{{queue="{queue}"}} (\S+)$', text, re.M)
    assert m, f"{name} not in /metrics:\n{text}"
    return float(m.group(1))


def attempts(text):
    return len(re.findall(r"to=<[^>]*@far\.test> status=", text))


def wait_log(relay, pattern, n, timeout=30.0):
    deadline = time.monotonic() + timeout
    while len(re.findall(pattern, relay.text())) < n:
        assert time.monotonic() < deadline, \
            f"{n} x {pattern!r} not in the log within {timeout}s\n{relay.text()[-4000:]}"
        time.sleep(0.1)


def test_full_spool_pauses_instead_of_a_retry_storm(make_relay, smtp_sink, mx_dns, tls,
                                                    small_spool):
    sink = smtp_sink()
    sink.stop()  # every attempt is deferred: each outcome is a rewrite in the spool
    relay = make_relay(start=False, sign_domains={"x.test": ["ed25519"]},
                       dns_server=mx_dns.resolver, smtp_port=sink.port, control=True,
                       backoff_base="1s", backoff_max="2s")
    spool = small_spool(relay.state_dir / "spool" / "out")
    relay.start()
    client = anchorlib.Client(relay.control_url, tls.ca)

    r = rx.smtp_source(relay.submission_port, count=MESSAGES, sessions=3,
                       sender="alice@x.test", rcpt="full@far.test", extra=["-N"])
    assert r.rc == 0, (r.out, r.err)
    wait_log(relay, r"to=<\d+full@far\.test> status=deferred", MESSAGES)

    fill(spool)
    time.sleep(2.5)  # every message comes due (backoff_max 2 s) and meets the full disk
    before = relay.text()
    time.sleep(WINDOW)
    window = relay.text()[len(before):]

    # no storm: a paused queue starts no attempt at all, and what fails is said once
    assert attempts(window) == 0, f"{attempts(window)} attempts in {WINDOW}s:\n" \
        f"{window[-3000:]}"
    assert len(window.splitlines()) <= 3, f"{len(window.splitlines())} log lines in " \
        f"{WINDOW}s:\n{window[-3000:]}"
    whole = relay.text()
    assert attempts(whole) <= 3 * MESSAGES, attempts(whole)
    assert len(re.findall(r"cannot record the outcome for", whole)) == 1, whole[-3000:]
    assert len(re.findall(r"queue \S+/out: paused, the spool cannot be written", whole)) == 1
    # and /metrics says so
    m = metrics(client)
    assert sample(m, "anchor_relay_queue_paused") == 1, m
    assert sample(m, "anchor_relay_queue_held_messages") >= 1, m
    assert sample(m, "anchor_relay_queue_write_failures_total") >= 1, m
    assert sample(m, "anchor_relay_queue_paused", queue="in") == 0, m

    # space comes back: the held states are written, the queue resumes, all go out once
    (spool / "zz-fill").unlink()
    sink.start()
    want = [f"{i}full@far.test" for i in range(1, MESSAGES + 1)]
    deadline = time.monotonic() + 60
    while True:
        counts = Counter(r for msg in sink.messages() for r in msg.rcpts)
        queued = [p for p in relay.spool_files("out") if p.name.startswith("m.")]
        if all(counts[w] for w in want) and not queued:
            break
        assert time.monotonic() < deadline, \
            f"not delivered: {[w for w in want if not counts[w]][:5]}, {len(queued)} " \
            f"queued\n{relay.text()[-4000:]}"
        time.sleep(0.2)
    sink.wait_for(MESSAGES)
    time.sleep(1.0)
    counts = Counter(r for msg in sink.messages() for r in msg.rcpts)
    assert sorted(counts) == sorted(want), counts
    assert all(n == 1 for n in counts.values()), {r: n for r, n in counts.items() if n > 1}
    m = metrics(client)
    assert sample(m, "anchor_relay_queue_paused") == 0, m
    assert sample(m, "anchor_relay_queue_held_messages") == 0, m
    assert re.search(r"queue \S+/out: resumed", relay.text())
    relay.stop()
