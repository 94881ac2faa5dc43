"""ACME test helpers (PROTOCOL.md §5.4): a Knot DNS server the tests can update (RFC 2136,
TSIG), a minimal ACME client for the protocol's refusals, and certbot runs.

    Knot(workdir, zone, records)   knotd on 127.0.0.1:<free port> serving one zone that
                                   accepts TSIG-signed updates; start()/stop()
    AcmeClient(ks, domain)         a raw RFC 8555 client with an ES256 account key
    certbot(ks, workdir, *args)    certbot against the key server, state under workdir
"""

import base64
import hashlib
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

import dnsfixtures as df


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Knot:
    """knotd serving `zone` (with records, zone-file lines relative to the origin) and
    accepting RFC 2136 updates signed with the TSIG key `tsig_name`/`tsig_secret`."""

    def __init__(self, workdir, zone, records):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zone = zone
        self.records = records
        self.tsig_name = "acme-test"
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.port = None
        self.proc = None
        self.log = self.dir / "knot.log"

    def write(self):
        (self.dir / "db").mkdir(exist_ok=True)  # knotd makes neither journal nor timer DB dir
        (self.dir / f"{self.zone}.zone").write_text(df.zone_text(self.zone, self.records))
        (self.dir / "knot.conf").write_text(f"""server:
    rundir: "{self.dir}"
    listen: 127.0.0.1@{self.port}
log:
  - target: "{self.log}"
    any: info
database:
    storage: "{self.dir}/db"
key:
  - id: {self.tsig_name}
    algorithm: hmac-sha256
    secret: {self.tsig_secret}
acl:
  - id: update
    key: {self.tsig_name}
    action: update
template:
  - id: default
    storage: "{self.dir}"
    zonefile-sync: -1
    zonefile-load: difference-no-serial
    journal-content: all
zone:
  - domain: {self.zone}
    acl: update
""")

    def start(self):
        self.port = df.free_port()
        self.write()
        self.proc = subprocess.Popen(["knotd", "-c", str(self.dir / "knot.conf")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"knotd exited with {self.proc.returncode}:\n"
                                     f"{self.log.read_text()}")
            r = subprocess.run(["kdig", "@127.0.0.1", "-p", str(self.port), "+timeout=1",
                                "+retry=0", "SOA", self.zone], capture_output=True, text=True)
            if "status: NOERROR" in r.stdout:
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"knotd did not answer within 20s:\n{self.log.read_text()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def resolver(self):
        return f"127.0.0.1:{self.port}"

    def rfc2136_credentials(self, path):
        path.write_text(f"dns_rfc2136_server = 127.0.0.1\n"
                        f"dns_rfc2136_port = {self.port}\n"
                        f"dns_rfc2136_name = {self.tsig_name}\n"
                        f"dns_rfc2136_secret = {self.tsig_secret}\n"
                        f"dns_rfc2136_algorithm = HMAC-SHA256\n")
        path.chmod(0o600)
        return path


class Reply:
    def __init__(self, r):
        self.status = r.status
        self.headers = r.headers
        self.body = r.body
        ctype = r.headers.get("content-type", "")
        self.json = json.loads(r.body) if "json" in ctype and r.body else None

    @property
    def type(self):
        return (self.json or {}).get("type", "").rsplit(":", 1)[-1]


class AcmeClient:
    """An RFC 8555 client with an ES256 account key, written from the RFC, so the
    tests can send what certbot never would (replays, bad signatures, foreign names)."""

    def __init__(self, ks, domain, purpose=None):
        self.http = ks.client()
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = None
        self.prefix = f"https://127.0.0.1:{ks.port}"
        r = self.http.get(f"/acme/{domain}/directory" + (f"/{purpose}" if purpose else ""))
        assert r.status == 200, (r.status, r.body)
        self.dir = json.loads(r.body)
        self.last_nonce = None

    def jwk(self):
        n = self.key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
                "y": b64u(n.y.to_bytes(32, "big"))}

    def thumbprint(self):
        text = json.dumps(self.jwk(), sort_keys=True, separators=(",", ":"))
        return b64u(hashlib.sha256(text.encode()).digest())

    def nonce(self):
        r = self.http.request("HEAD", self.path(self.dir["newNonce"]))
        assert r.status == 200 and r.headers.get("replay-nonce"), r.headers
        return r.headers["replay-nonce"]

    def path(self, url):
        assert url.startswith(self.prefix), url
        return url[len(self.prefix):]

    def signed(self, url, payload, use_jwk=False, nonce=None):
        """The JWS body of a request (payload None: POST-as-GET)."""
        prot = {"alg": "ES256", "nonce": nonce or self.nonce(), "url": url}
        if use_jwk or self.kid is None:
            prot["jwk"] = self.jwk()
        else:
            prot["kid"] = self.kid
        p64 = b64u(json.dumps(prot))
        pay64 = "" if payload is None else b64u(json.dumps(payload))
        der = self.key.sign(f"{p64}.{pay64}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        return json.dumps({"protected": p64, "payload": pay64, "signature": sig})

    def send(self, url, body, ctype="application/jose+json"):
        r = Reply(self.http.request("POST", self.path(url), body=body,
                                    headers={"Content-Type": ctype}))
        self.last_nonce = r.headers.get("replay-nonce")
        return r

    def post(self, url, payload, **kw):
        return self.send(url, self.signed(url, payload, **kw))

    def register(self):
        r = self.post(self.dir["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True)
        assert r.status == 201, (r.status, r.body)
        self.kid = r.headers["location"]
        return r

    def order(self, name):
        return self.post(self.dir["newOrder"], {"identifiers": [{"type": "dns", "value": name}]})

    def poll(self, url, timeout=60):
        """POST-as-GET url until its status is no longer pending/processing (RFC 8555
        §7.5.1: validation runs after the challenge POST has been answered)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.post(url, None)
            assert r.status == 200, (r.status, r.body)
            if r.json["status"] not in ("pending", "processing"):
                return r
            assert time.monotonic() < deadline, f"{url} still {r.json['status']}"
            time.sleep(0.1)


def certbot(ks, workdir, *args, timeout=120):
    """certbot with its state under workdir, talking to the key server over TLS checked
    against the test CA; returns the CompletedProcess."""
    w = Path(workdir)
    env = dict(os.environ, REQUESTS_CA_BUNDLE=str(ks.tls.ca))
    argv = ["certbot", *args, "--config-dir", str(w / "config"), "--work-dir", str(w / "work"),
            "--logs-dir", str(w / "logs"), "--non-interactive", "--agree-tos",
            "--register-unsafely-without-email", "--no-random-sleep-on-renew"]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout)


def private_key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
