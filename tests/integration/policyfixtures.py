"""Helpers for the anchor-policyd tests: the daemon as a real process, the Postfix
policy protocol spoken as SMTPD_POLICY_README documents it, and a stand-in
anchor-reputation (HTTPS, the test CA) whose answers and delays a test controls.

    Policyd(workdir, params)          anchor-policyd on a loopback port or Unix socket
    PolicyClient(pd)                  one policy connection: ask(attrs) -> action line
    FakeReputation(tls)               GET /v1/query answered from .verdicts; .hits counts
    request_attrs(**over)             a realistic RCPT-stage request
"""

import json
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anchorlib
import dnsfixtures as dx


def request_attrs(**over):
    a = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
         "client_address": "192.0.2.66", "client_name": "mx.spam.example",
         "reverse_client_name": "mx.spam.example", "helo_name": "mx.spam.example",
         "sender": "alice@spam.example", "recipient": "bob@example.net",
         "recipient_count": "0", "queue_id": "", "instance": "a1b2.5f0e.1", "size": "0",
         "etrn_domain": "", "stress": "", "sasl_method": "", "sasl_username": "",
         "sasl_sender": "", "ccert_subject": "", "ccert_issuer": "",
         "ccert_fingerprint": "", "encryption_protocol": "", "encryption_cipher": "",
         "encryption_keysize": "0"}
    a.update(over)
    return a


def encode(attrs):
    return ("".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n").encode()


class Policyd:
    def __init__(self, workdir, params):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "policyd.conf"
        self.log = self.dir / "policyd.log"
        self.params = {"log_level": "debug"}
        self.params.update(params)
        if "listen" not in self.params:
            self.port = dx.free_port()
            self.params["listen"] = f"127.0.0.1:{self.port}"
        else:
            self.port = None
        self.proc = None

    def start(self):
        self.conf.write_text("".join(f"{k} = {v}\n" for k, v in self.params.items()))
        env = dx.clean_env()
        env.update(anchorlib.SANITIZER_ENV)
        fh = open(self.log, "a")
        offset = self.log.stat().st_size
        self.proc = subprocess.Popen([str(anchorlib.binary("anchor-policyd")), "-c",
                                      str(self.conf)], stdin=subprocess.DEVNULL, stdout=fh,
                                     stderr=fh, env=env)
        fh.close()
        deadline = time.monotonic() + anchorlib.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"anchor-policyd exited at start:\n{self.text()[offset:]}")
            if "listening on" in self.text()[offset:]:
                return self
            time.sleep(0.05)
        raise AssertionError(f"anchor-policyd did not start:\n{self.text()}")

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=anchorlib.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"anchor-policyd ignored SIGTERM:\n{self.text()}")
        finally:
            self.proc = None
        bad = anchorlib.sanitizer_report(self.text())
        if bad:
            raise AssertionError(f"sanitizer report from anchor-policyd: {bad}\n{self.text()}")
        if rc != 0:
            raise AssertionError(f"anchor-policyd exited {rc}:\n{self.text()}")

    def connect(self):
        listen = self.params["listen"]
        if listen.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(listen[5:])
        else:
            s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(10)
        return PolicyClient(s)


class PolicyClient:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def read_answer(self):
        """One response: attribute lines up to the empty line; None when the server closed."""
        while b"\n\n" not in self.buf:
            chunk = self.s.recv(4096)
            if not chunk:
                return None
            self.buf += chunk
        answer, self.buf = self.buf.split(b"\n\n", 1)
        return answer.decode()

    def ask(self, attrs):
        self.send(encode(attrs))
        return self.read_answer()

    def closed(self):
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        self.s.close()


class FakeReputation:
    """GET /v1/query like anchor-reputation: verdict per ip from .verdicts (default unknown),
    optional .delay seconds, .status to force an HTTP status; .hits lists the queries."""

    def __init__(self, tls):
        self.verdicts = {}
        self.delay = 0.0
        self.status = 200
        self.hits = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
                fake.hits.append((u.path, q))
                if fake.delay:
                    time.sleep(fake.delay)
                verdict, text = fake.verdicts.get(q.get("ip"), ("unknown", "nothing known"))
                # text: one reason's sentence, or the whole reasons list as the service
                # writes it (PROTOCOL.md §11.2)
                reasons = text if isinstance(text, list) else [{"code": "x", "text": text}]
                body = json.dumps({"verdict": verdict, "reasons": reasons,
                                   "subjects": []}).encode()
                try:
                    self.send_response(fake.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
