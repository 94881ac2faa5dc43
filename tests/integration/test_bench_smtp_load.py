"""The load generator and TLS sink of bench/relay_tls.sh (bench/smtp_load.c,
bench/smtp_sink.c) against the real relay: one message goes smtp_load -> STARTTLS ->
anchor-relay (signing) -> STARTTLS -> smtp_sink.  Only what the bench relies on is checked:
the generator reports the one message as sent, the sink counts it, and the message arrives
whole: a body line that starts with a dot comes out as it went in (the generator
dot-stuffs, the sink undoes it), signed by the relay.  No timing is asserted.
"""

import os
import subprocess
import time

import pytest

import anchorlib
import dnsfixtures as dx
import relayfixtures as rx
from relayfixtures import make_relay, mx_dns  # noqa: F401

pytestmark = pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built")

BENCH = anchorlib.BIN / "bench"


@pytest.fixture
def sink(tls, tmp_path):
    exe = BENCH / "smtp_sink"
    assert os.access(exe, os.X_OK), f"{exe} is missing (make check-build builds it)"
    port = dx.free_port()
    dump = tmp_path / "first.eml"
    p = subprocess.Popen([str(exe), str(port), str(tls.cert), str(tls.key), str(dump)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"

    def ask(what):
        p.stdin.write(what + "\n")
        p.stdin.flush()
        return p.stdout.readline().strip()

    assert ask("reset") == "ok"  # the next message is dumped
    yield port, ask, dump
    p.stdin.close()
    assert p.wait(10) == 0


def test_one_message_through_the_relay_with_starttls_both_sides(make_relay, sink, mx_dns,
                                                                  tmp_path):
    port, ask, dump = sink
    relay = make_relay(sign_domains={"x.test": ["ed25519"]}, dns_server=mx_dns.resolver,
                       smtp_port=port, outbound_tls="encrypt")
    msg = tmp_path / "msg.eml"
    msg.write_text("From: alice@x.test\nTo: bob@far.test\nSubject: load\n\n"
                   "first line\n.a line that starts with a dot\n..two dots\nlast line\n")

    r = subprocess.run([str(BENCH / "smtp_load"), "-c", "1", "-n", "1", "-f", "alice@x.test",
                        "-t", "bob@far.test", "127.0.0.1", str(relay.submission_port),
                        str(msg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stdout, r.stderr)
    rep = dict(kv.split("=") for kv in r.stdout.split())
    assert (rep["sent"], rep["failed"], rep["conns"]) == ("1", "0", "1"), r.stdout

    end = time.monotonic() + 30
    while ask("count") != "1":
        assert time.monotonic() < end, "the sink did not get the message"
        time.sleep(0.05)
    got = dump.read_bytes()
    assert b"a=ed25519-sha256" in got, got
    assert got.endswith(b"\r\nfirst line\r\n.a line that starts with a dot\r\n..two dots\r\n"
                        b"last line\r\n"), got
