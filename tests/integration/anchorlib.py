"""Helpers for the integration tests: a throwaway PostgreSQL cluster, TLS
material, the key server as a real process on a random loopback port,
anchorctl, and a small HTTPS client trusting the test CA.

Nothing here needs a package beyond the standard library; the tests drive
real binaries through their documented interfaces (docs/PROTOCOL.md and the
agreed command lines of anchor-keyserver(8) and anchorctl(1)).
"""

import base64
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

SRC = Path(os.environ.get("ANCHOR_SRC") or Path(__file__).resolve().parents[2])
BIN = Path(os.environ.get("ANCHOR_BIN") or SRC / "build" / "check")
PGCLUSTER = SRC / "deploy" / "pgcluster.sh"

# Sanitizer reports that make any process run fail, whatever its exit status.
SANITIZER_PATTERNS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

SANITIZER_ENV = {
    "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"),
    "UBSAN_OPTIONS": os.environ.get("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
    # anchorctl remembers the tree heads it has seen (PROTOCOL.md §10.3); tests keep
    # that memory out of the user's home, in one file per test run.
    "ANCHOR_STATE": os.environ.get(
        "ANCHOR_STATE", os.path.join(tempfile.gettempdir(), f"anchor-test-heads-{os.getpid()}.json")),
}

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


def binary(name):
    """Path of a built program; fails the test clearly when it is missing."""
    path = BIN / name
    if not os.access(path, os.X_OK):
        raise AssertionError(f"{path} does not exist or is not executable "
                             f"(ANCHOR_BIN={BIN}; build it with make)")
    return path


def sanitizer_report(text):
    """The first sanitizer line in text, or None."""
    for line in text.splitlines():
        if any(p in line for p in SANITIZER_PATTERNS):
            return line
    return None


def mktemp_dir(prefix):
    """A private temporary directory under /tmp (short paths: socket limits)."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


# --------------------------------------------------------------------------
# PostgreSQL

class PgCluster:
    """A throwaway cluster managed by deploy/pgcluster.sh."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.conninfo = None

    def _run(self, *args, check=True):
        return subprocess.run([str(PGCLUSTER), *args], capture_output=True, text=True,
                              check=check, timeout=120)

    def start(self):
        r = self._run("init", str(self.dir), check=False)
        if r.returncode != 0:
            raise AssertionError(f"pgcluster.sh init failed:\n{r.stdout}{r.stderr}")
        self.conninfo = self._run("conninfo", str(self.dir)).stdout.strip()
        return self.conninfo

    def stop(self):
        self._run("stop", str(self.dir), check=False)

    def conninfo_for(self, dbname):
        return re.sub(r"dbname=\S+", f"dbname={dbname}", self.conninfo)

    def psql(self, sql, dbname="anchor"):
        """Run sql (stopping at the first error); return psql's unaligned output."""
        r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
                            self.conninfo_for(dbname), "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"psql failed: {sql}\n{r.stderr}")
        return r.stdout

    def create_database(self, name):
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"bad database name {name!r}")
        self.psql(f"CREATE DATABASE {name}", dbname="postgres")
        return self.conninfo_for(name)

    def drop_database(self, name):
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", dbname="postgres")


# --------------------------------------------------------------------------
# TLS and tokens

@dataclass
class TlsFiles:
    dir: Path
    ca: Path       # the test CA certificate: clients trust this
    ca_key: Path
    cert: Path     # the key server's certificate (SAN IP:127.0.0.1, DNS:localhost)
    key: Path


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, cwd=cwd, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def make_kek(path):
    """The 32-byte key-encryption key of issuer keys, made once (0600)."""
    path = Path(path)
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        os.replace(tmp, path)
    return path


def make_tls(directory):
    """A private CA and a server certificate it signs, all ECDSA P-256."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    f = TlsFiles(d, d / "ca.pem", d / "ca.key", d / "server.pem", d / "server.key")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", str(f.ca_key), "-out", str(f.ca), "-days", "30",
             "-subj", "/CN=Anchormail test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    csr = d / "server.csr"
    _openssl("req", "-new", *ec, "-keyout", str(f.key), "-out", str(csr),
             "-subj", "/CN=localhost")
    ext = d / "server.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\n"
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(f.ca), "-CAkey", str(f.ca_key),
             "-CAcreateserial", "-out", str(f.cert), "-days", "30", "-extfile", str(ext))
    for k in (f.ca_key, f.key):
        os.chmod(k, 0o600)
    return f


@dataclass
class Token:
    token: str
    hash: str  # hex SHA-256 of the token text, as the server stores it


def make_token():
    """A random 256-bit bearer token, base64url without padding (PROTOCOL.md §5)."""
    tok = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    return Token(tok, hashlib.sha256(tok.encode()).hexdigest())


# --------------------------------------------------------------------------
# HTTPS client

@dataclass
class Response:
    status: int
    headers: dict  # lower-case names
    body: bytes

    @property
    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        ctype = self.headers.get("content-type", "")
        if not ctype.startswith("application/json"):
            raise AssertionError(f"expected JSON, got Content-Type {ctype!r}: {self.body[:200]!r}")
        return json.loads(self.body)

    def error_code(self):
        """The "error" code of a JSON error body (PROTOCOL.md §1.1), checked for shape."""
        doc = self.json()
        if not (isinstance(doc.get("error"), str) and isinstance(doc.get("message"), str)):
            raise AssertionError(f"not an error body: {doc!r}")
        return doc["error"]


class Client:
    """Minimal HTTPS client for one base URL, trusting only the given CA."""

    def __init__(self, base_url, cafile, timeout=30):
        u = urlsplit(base_url)
        self.host, self.port, self.scheme = u.hostname, u.port, u.scheme
        self.timeout = timeout
        self.ctx = None
        if self.scheme == "https":
            self.ctx = ssl.create_default_context(cafile=str(cafile))

    def connection(self):
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, context=self.ctx,
                                               timeout=self.timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method, path, body=None, token=None, headers=None, conn=None):
        """Send one request; body may be bytes, str or a JSON-able object."""
        hdrs = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        own = conn is None
        c = conn or self.connection()
        try:
            c.request(method, path, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            if own:
                c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


# --------------------------------------------------------------------------
# Programs

@dataclass
class Result:
    rc: int
    out: str
    err: str

    def __iter__(self):  # allows: rc, out, err = anchorctl(...)
        return iter((self.rc, self.out, self.err))


def run_program(argv, env=None, input=None, cwd=None, timeout=60):
    """Run a program with the sanitizer settings; fail on any sanitizer report."""
    full_env = dict(os.environ)
    full_env.update(SANITIZER_ENV)
    full_env.update(env or {})
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=full_env,
                       input=input, cwd=cwd, timeout=timeout)
    bad = sanitizer_report(r.stderr)
    if bad:
        raise AssertionError(f"sanitizer report from {argv[0]}: {bad}\n{r.stderr}")
    return Result(r.returncode, r.stdout, r.stderr)


def anchorctl(*args, server=None, cacert=None, env=None, input=None, cwd=None, timeout=60):
    """Run anchorctl with -s/--cacert before the command; returns Result(rc, out, err)."""
    argv = [binary("anchorctl")]
    if server:
        argv += ["-s", server]
    if cacert:
        argv += ["--cacert", str(cacert)]
    argv += list(args)
    e = {k: v for k, v in (env or {}).items() if v is not None}
    return run_program(argv, env=e, input=input, cwd=cwd, timeout=timeout)


class Keyserver:
    """anchor-keyserver as a real process on an ephemeral loopback port.

    The configuration is written per docs (anchor-keyserver(8)); extra maps
    further parameters to values.  The daemon's stderr goes to
    <workdir>/keyserver.log, read back for error messages and sanitizer
    reports.
    """

    def __init__(self, workdir, db_conninfo, tls, operator_token_hash, extra=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = tls
        # Every node of a session shares one key-encryption key, as the nodes of one
        # deployment do (anchor-keyserver(8), issuer_kek_file).
        self.kek_file = make_kek(Path(tls.dir) / "issuer.kek")
        self.conf = self.workdir / "keyserver.conf"
        self.port_file = self.workdir / "port"
        self.log = self.workdir / "keyserver.log"
        self.params = {
            "listen_address": "127.0.0.1",
            "listen_port": "0",
            "port_file": str(self.port_file),
            "tls_cert_file": str(tls.cert),
            "tls_key_file": str(tls.key),
            "db_conninfo": db_conninfo,
            "sql_dir": str(SRC / "sql"),
            "migrate_on_start": "yes",
            "issuer_kek_file": str(self.kek_file),
            "operator_token_hash": operator_token_hash,
            "log_level": "info",
        }
        self.params.update(extra or {})
        self.proc = None
        self.port = None
        self._log_fh = None

    # -- configuration

    def write_config(self):
        lines = ["# written by tests/integration/anchorlib.py"]
        lines += [f"{k} = {v}" for k, v in self.params.items() if v is not None]
        self.conf.write_text("\n".join(lines) + "\n")

    # -- life cycle

    @property
    def base_url(self):
        scheme = "https" if self.params.get("tls_cert_file") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def stderr(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, args=()):
        assert self.proc is None, "already running"
        self.write_config()
        self.port_file.unlink(missing_ok=True)
        env = dict(os.environ)
        env.update(SANITIZER_ENV)
        self._log_fh = open(self.log, "a")
        self._log_fh.write(f"--- start {time.strftime('%H:%M:%S')}\n")
        self._log_fh.flush()
        log_offset = self.log.stat().st_size
        self.proc = subprocess.Popen([str(binary("anchor-keyserver")), "-c", str(self.conf),
                                      *args], stdin=subprocess.DEVNULL,
                                     stdout=self._log_fh, stderr=self._log_fh, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self._close_log()
                self.proc = None
                raise AssertionError(f"anchor-keyserver exited with status {rc} at start:\n"
                                     f"{self.stderr()[log_offset:]}")
            port = self._read_port()
            new_log = self.stderr()[log_offset:]
            if port and "listening on" in new_log:
                self.port = port
                return self
            time.sleep(0.05)
        self._kill()
        raise AssertionError(f"anchor-keyserver did not report 'listening on' and write "
                             f"{self.port_file} within {START_TIMEOUT}s:\n{self.stderr()}")

    def _read_port(self):
        try:
            text = self.port_file.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() and int(text) > 0 else None

    def _close_log(self):
        if self._log_fh:
            self._log_fh.close()
            self._log_fh = None

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self._close_log()

    def stop(self, check=True):
        """SIGTERM, wait; then require exit status 0 and no sanitizer report."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError(f"anchor-keyserver ignored SIGTERM for {STOP_TIMEOUT}s:\n"
                                 f"{self.stderr()}")
        self.proc = None
        self._close_log()
        if check:
            log = self.stderr()
            bad = sanitizer_report(log)
            if bad:
                raise AssertionError(f"sanitizer report from anchor-keyserver: {bad}\n{log}")
            if rc != 0:
                raise AssertionError(f"anchor-keyserver exited with status {rc} after "
                                     f"SIGTERM:\n{log}")
        return rc

    def restart(self):
        """Stop cleanly and start again (on a new ephemeral port: use base_url anew)."""
        self.stop()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)

    # -- clients

    def client(self):
        return Client(self.base_url, self.tls.ca)

    def ctl(self, *args, env=None, **kw):
        """anchorctl against this server."""
        return anchorctl(*args, server=self.base_url, cacert=self.tls.ca, env=env, **kw)

    def curl(self, path, *curl_args):
        """curl the server with the test CA; returns Result(rc, out, err)."""
        return run_program(["curl", "-sS", "--cacert", self.tls.ca, *curl_args,
                            f"{self.base_url}{path}"], timeout=60)


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
