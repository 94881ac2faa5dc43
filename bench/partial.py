"""bench/partial.py - bytes moved between two anchored relays for one message of the unknown
tier that its recipient never fetches (refused after a look at its view), with
receiver-chosen transfer (ANCHOR-PARTIAL, the text view) beside a full transfer, in one
run.

A sender relay (signs x.test) delivers through a byte-counting TCP relay to one of two
receivers: "view" (partial_tiers = unknown, partial_view = text) and "full" (partial_tiers
empty).  The message: a short text part and a BENCH_PARTIAL_ATTACHMENT-byte attachment
(base64).  Every byte of the SMTP session in both directions is counted (STARTTLS and the
TLS records included: peers know each other only by their certificates' keys).

Usage: python3 bench/partial.py BUILD_DIR   (bench/partial.sh)
"""

import base64
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent
BIN = Path(sys.argv[1] if len(sys.argv) > 1 else SRC / "build" / "release").resolve()
os.environ["ANCHOR_BIN"] = str(BIN)
os.environ["ANCHOR_SRC"] = str(SRC)
sys.path.insert(0, str(SRC / "tests" / "integration"))

import anchorlib  # noqa: E402
import relayfixtures as rx  # noqa: E402


def pin_of(key):
    spki = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                          check=True, capture_output=True).stdout
    return "sha256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


ATTACHMENT = int(os.environ.get("BENCH_PARTIAL_ATTACHMENT", str(1 << 20)))


class CountingProxy:
    """127.0.0.1:port -> target port, counting the octets each way."""

    def __init__(self):
        self.port = rx.free_port()
        self.target = None
        self.up = self.down = 0
        self.lock = threading.Lock()
        self.sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            c, _ = self.sock.accept()
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(c, s, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(s, c, "down"), daemon=True).start()

    def _pipe(self, a, b, way):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                with self.lock:
                    setattr(self, way, getattr(self, way) + len(data))
                b.sendall(data)
        except OSError:
            pass
        finally:
            for x in (a, b):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def take(self):
        with self.lock:
            n, self.up, self.down = self.up + self.down, 0, 0
        return n


def message(subject):
    body = b"A" * ATTACHMENT
    import base64
    b64 = base64.encodebytes(body).replace(b"\n", b"\r\n")
    return (f"From: <alice@x.test>\r\nTo: <bob@dest.test>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.time_ns()}@x.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=BB\r\n\r\n--BB\r\n"
            "Content-Type: text/plain\r\n\r\nPlease see the attached invoice.\r\n--BB\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64"
            "\r\n\r\n").encode() + b64 + b"--BB--\r\n"


def send(relay, subject):
    s = socket.create_connection(("127.0.0.1", relay.submission_port), timeout=30)
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return line

    reply()
    for cmd in (b"EHLO bench.x.test", b"MAIL FROM:<alice@x.test>", b"RCPT TO:<bob@dest.test>",
                b"DATA"):
        s.sendall(cmd + b"\r\n")
        reply()
    s.sendall(message(subject) + b".\r\n")
    assert reply().startswith(b"250"), "not queued"
    s.sendall(b"QUIT\r\n")
    s.close()


def wait(sink, subject):
    deadline = time.monotonic() + 60
    while not any(m.header("Subject") == [subject] for m in sink.messages()):
        if time.monotonic() > deadline:
            sys.exit(f"bench/partial.py: {subject!r} never arrived")
        time.sleep(0.02)
    time.sleep(0.3)  # the session's QUIT


def main():
    work = anchorlib.mktemp_dir("anchor-bench-partial-")
    started = []
    try:
        proxy = CountingProxy()
        sink = rx.PySink().start()
        started.append(sink)
        recv = {}
        # peers know each other by the keys of their certificates (anchored_peers)
        rtls, stls = anchorlib.make_tls(work / "tls-dest"), anchorlib.make_tls(work / "tls-x")
        for name, tiers in (("view", "unknown"), ("full", "")):
            recv[name] = rx.Relay(work / name, tls=rtls, hostname=f"{name}.dest.test",
                                  local_domains="dest.test", inbound_next_hop=sink.hop,
                                  anchored_peers=f"relay.x.test={pin_of(stls.key)}",
                                  anchored_client="yes", partial_tiers=tiers,
                                  log_level="warning")
        sender = rx.Relay(work / "sender", tls=stls, sign_domains={"x.test": "ed25519"},
                          hostname="relay.x.test", smtp_port=proxy.port,
                          anchored_peers=f"dest.test={pin_of(rtls.key)}",
                          anchored_client="yes", log_level="warning",
                          connection_idle_time="0")
        nsd = rx.start_nsd(work, {"x.test": sender.records()}, mx_domains=["dest.test"])
        started.append(nsd)
        for r in (*recv.values(), sender):
            r.params["dns_server"] = nsd.resolver
            started.append(r.start())
        rows = []
        for name in ("view", "full"):
            proxy.target = recv[name].inbound_port
            proxy.take()
            send(sender, f"bench {name}")
            wait(sink, f"bench {name}")
            rows.append((name, proxy.take()))
        size = len(message("bench x"))
        print(f"one unknown-tier message of {size} octets ({ATTACHMENT}-octet attachment), "
              "never fetched:")
        for name, n in rows:
            what = ("receiver-chosen transfer (text view)" if name == "view"
                    else "full transfer")
            print(f"  {what:40s} {n:10d} octets on the wire")
        print(f"  ratio full/view: {rows[1][1] / max(rows[0][1], 1):.1f}")
    finally:
        for item in reversed(started):
            item.stop()
        anchorlib.remove_tree(work)


if __name__ == "__main__":
    main()
