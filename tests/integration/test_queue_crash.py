"""The relay queue survives SIGKILL: nothing acknowledged is lost or torn.

The driver built into the unit-test binary (tests/unit/test_queue.c) submits
messages from four threads and prints "ack <id>" only after the commit
callback said the message is on disk.  It is killed with SIGKILL while
acknowledgements are streaming, restarted on the same spool (which recovers
it) and killed again; then QUEUE_LIST_DIR opens the spool once more and
checks the checksum each message carries.  Every acknowledged id must be
listed as intact; nothing may be torn, quarantined or left as a temporary.
"""

import os
import random
import signal
import subprocess
import time

import anchorlib

ROUNDS = 3
DEADLINE = 120.0


def run_and_kill(binary, spool, acks_wanted):
    """Start the crash driver, SIGKILL it after acks_wanted acks; return every ack seen."""
    env = dict(os.environ, QUEUE_CRASH_DIR=str(spool))
    env.pop("QUEUE_LIST_DIR", None)
    proc = subprocess.Popen([str(binary)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acks = []
    start = time.monotonic()
    try:
        while len(acks) < acks_wanted:
            line = proc.stdout.readline()
            assert line, f"driver ended early: {proc.wait()} {proc.stderr.read()[-2000:]}"
            assert time.monotonic() - start < DEADLINE, "driver too slow"
            if line.startswith("ack "):
                acks.append(line.split()[1])
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        # Read the rest through the same file objects: communicate() reads the pipes'
        # descriptors and would lose the lines readline() had already buffered (many
        # on a loaded machine, where acks pile up in the pipe between two reads).
        rest = proc.stdout.read()
        err = proc.stderr.read()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    # Lines flushed before the kill are acknowledgements too.
    acks += [ln.split()[1] for ln in rest.splitlines() if ln.startswith("ack ")]
    assert anchorlib.sanitizer_report(err) is None, err[-2000:]
    return acks


def list_queue(binary, spool):
    env = dict(os.environ, QUEUE_LIST_DIR=str(spool))
    env.pop("QUEUE_CRASH_DIR", None)
    res = subprocess.run([str(binary)], env=env, capture_output=True, text=True, timeout=120)
    assert anchorlib.sanitizer_report(res.stderr) is None, res.stderr[-2000:]
    status = {}
    stats = None
    for line in res.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ok", "bad"):
            status[rest] = word
        elif word == "stats":
            stats = dict(kv.split("=") for kv in rest.split())
    assert stats is not None, res.stdout[-2000:] + res.stderr[-2000:]
    return res.returncode, status, stats


def test_sigkill_loses_no_acknowledged_message():
    binary = anchorlib.binary("tests/test_queue")
    root = anchorlib.mktemp_dir("anchor-qcrash-")
    spool = root / "spool"
    try:
        acked = []
        for _ in range(ROUNDS):
            acked += run_and_kill(binary, spool, random.randint(150, 400))
        assert len(acked) == len(set(acked)), "an id was acknowledged twice"
        rc, status, stats = list_queue(binary, spool)
        missing = [i for i in acked if i not in status]
        torn = [i for i, s in status.items() if s != "ok"]
        assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
        assert not torn, f"{len(torn)} messages torn, e.g. {torn[:3]}"
        assert rc == 0
        assert stats["corrupt"] == "0"
        assert (spool / "corrupt").is_dir() and not any((spool / "corrupt").iterdir())
        assert not [p.name for p in spool.iterdir() if p.name.startswith("t.")]
        assert oct(spool.stat().st_mode & 0o777) == "0o700"
        # At most the messages in flight at each kill (4 sessions) were committed unacked.
        assert len(status) - len(acked) <= 4 * ROUNDS
        print(f"queue crash: {len(acked)} acknowledged over {ROUNDS} kills, "
              f"{len(status)} in the spool, {stats['tmp_removed']} temporaries removed")
    finally:
        anchorlib.remove_tree(root)
