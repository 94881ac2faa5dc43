"""Shared helpers for the key-server integration tests (tests/integration/test_keyserver_*.py).

Everything here drives the real programs or computes expected values
independently of the code under test: keys and PKCS#10 requests are made with
python3-cryptography, certificates are checked with openssl(1), and the
database is inspected with psql.

    new_domain_name(prefix)          a fresh, unique domain name under .test
    register_domain(ks, base, name)  `anchorctl domain init` + `domain register` (the real CLI)
    make_key(alg) / make_csr(...)    keys and CSRs made by the test, not by anchorctl
    issue_token / enroll / enroll_new
    db_snapshot(pg, db)              row count + content digest of every key-server table
    openssl(...), spki_pin(...), load_cert(...)
"""

import base64
import hashlib
import itertools
import os
import re
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import NameOID

import anchorlib

# The tables a failed request must leave exactly as they were (PROTOCOL.md §1.1).
TABLES = ("domains", "admin_tokens", "enroll_tokens", "certificates", "group_members")

_counter = itertools.count(1)


def new_domain_name(prefix="d"):
    return f"{prefix}-{next(_counter)}-{secrets.token_hex(3)}.test"


def dbname_of(conninfo):
    return re.search(r"dbname=(\S+)", conninfo).group(1)


# --------------------------------------------------------------------------
# openssl and certificate helpers

def openssl(*args, input=None, check=False):
    """Run openssl; input may be str or bytes.  Returns CompletedProcess (text output)."""
    if isinstance(input, str):
        input = input.encode()
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, input=input,
                       timeout=60)
    r.stdout_text = r.stdout.decode(errors="replace")
    r.stderr_text = r.stderr.decode(errors="replace")
    if check and r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{r.stderr_text}")
    return r


def load_cert(pem):
    if isinstance(pem, Path):
        pem = pem.read_bytes()
    if isinstance(pem, str):
        pem = pem.encode()
    return x509.load_pem_x509_certificate(pem)


def spki_pin(cert_pem):
    """sha256:<base64> of the certificate's DER SubjectPublicKeyInfo (PROTOCOL.md §2)."""
    spki = load_cert(cert_pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


def cert_fingerprint(cert_pem):
    der = load_cert(cert_pem).public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def verify_chain(workdir, root_pem, issuer_pem, leaf_pem, extra=()):
    """openssl verify -CAfile root -untrusted issuer leaf; returns CompletedProcess."""
    workdir = Path(workdir)
    tag = secrets.token_hex(4)
    paths = []
    for name, pem in (("root", root_pem), ("issuer", issuer_pem), ("leaf", leaf_pem)):
        p = workdir / f"v-{tag}-{name}.pem"
        p.write_text(pem if isinstance(pem, str) else Path(pem).read_text())
        paths.append(p)
    return openssl("verify", *extra, "-CAfile", paths[0], "-untrusted", paths[1], paths[2])


# --------------------------------------------------------------------------
# Keys and PKCS#10 requests, made independently of anchorctl

def make_key(alg="ed25519"):
    if alg == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if alg == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(alg[3:]))
    if alg.startswith("dsa"):
        return dsa.generate_private_key(key_size=int(alg[3:] or 2048))
    raise ValueError(alg)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _sign_alg(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def make_csr(address=None, host=None, alg="ed25519", key=None, subject_email=True, san=True):
    """A PKCS#10 request for a user address (emailAddress + rfc822Name SAN) or a host
    (CN + dNSName SAN).  Returns (key, csr_pem)."""
    key = key or make_key(alg)
    attrs = []
    exts = []
    if address is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, address.split("@")[0][:64]))
        if subject_email:
            attrs.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, address))
        if san:
            exts.append(x509.RFC822Name(address))
    else:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, host))
        if san:
            exts.append(x509.DNSName(host))
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if exts:
        b = b.add_extension(x509.SubjectAlternativeName(exts), critical=False)
    csr = b.sign(key, _sign_alg(key))
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def _der_len(der, i):
    """(length, index of the content) of the DER element whose length octets start at i."""
    first = der[i]
    if first < 0x80:
        return first, i + 1
    n = first & 0x7F
    return int.from_bytes(der[i + 1:i + 1 + n], "big"), i + 1 + n


def csr_with_flipped_signature(csr_pem):
    """The same request with one byte of its signature BIT STRING flipped, re-PEMed."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(
        serialization.Encoding.DER))
    assert der[0] == 0x30
    _, i = _der_len(der, 1)               # inside the outer SEQUENCE
    for _ in range(2):                    # skip certificationRequestInfo, signatureAlgorithm
        n, c = _der_len(der, i + 1)
        i = c + n
    assert der[i] == 0x03, "expected the signature BIT STRING"
    n, c = _der_len(der, i + 1)
    assert c + n == len(der)
    # c is the unused-bits octet; flip a byte in the middle of the signature value.
    der[c + 1 + (n - 1) // 2] ^= 0x5A
    b64 = base64.encodebytes(bytes(der)).decode().replace("\n", "")
    lines = [b64[k:k + 64] for k in range(0, len(b64), 64)]
    return ("-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(lines) +
            "\n-----END CERTIFICATE REQUEST-----\n")


# --------------------------------------------------------------------------
# Domains, tokens, enrollment

@dataclass
class Domain:
    name: str
    base: Path          # the directory anchorctl ran in; <base>/<name>/admin.token
    dir: Path           # <base>/<name>: root.pem, root.key, issuer.pem, issuer.key
    admin_token: str
    pin: str            # as printed by anchorctl domain init

    @property
    def root_pem(self):
        return (self.dir / "root.pem").read_text()

    @property
    def issuer_pem(self):
        return (self.dir / "issuer.pem").read_text()


def run_ctl(ks, *args, cwd, env=None):
    """anchorctl -s <ks> --cacert <test CA> args, run in cwd with no inherited ANCHOR_* settings."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")
            or k in ("ANCHOR_BIN", "ANCHOR_SRC")}
    full.update(anchorlib.SANITIZER_ENV)
    full.update({k: v for k, v in (env or {}).items() if v is not None})
    argv = [anchorlib.binary("anchorctl"), "-s", ks.base_url, "--cacert", str(ks.tls.ca),
            *args]
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=full,
                       cwd=cwd, timeout=120)
    bad = anchorlib.sanitizer_report(r.stderr)
    if bad:
        raise AssertionError(f"sanitizer report from anchorctl: {bad}\n{r.stderr}")
    return anchorlib.Result(r.returncode, r.stdout, r.stderr)


def ctl_ok(ks, *args, cwd, env=None):
    r = run_ctl(ks, *args, cwd=cwd, env=env)
    assert r.rc == 0, f"anchorctl {' '.join(map(str, args))} -> {r.rc}\n{r.out}\n{r.err}"
    return r


def register_domain(ks, base, name, operator_token, policy=None, alg=None):
    """`anchorctl domain init` and `anchorctl domain register` in base; returns Domain."""
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    init_args = ["domain", "init", name] + (["--alg", alg] if alg else [])
    r = ctl_ok(ks, *init_args, cwd=base)
    m = re.search(r"^pin: (sha256:\S+)$", r.out, re.M)
    assert m, f"domain init printed no pin:\n{r.out}"
    pin = m.group(1)
    reg = ["domain", "register", name] + (["--policy", policy] if policy else [])
    ctl_ok(ks, *reg, cwd=base, env={"ANCHOR_OPERATOR_TOKEN": operator_token})
    token = (base / name / "admin.token").read_text().strip()
    assert token
    return Domain(name, base, base / name, token, pin)


def issue_token(client, domain, address, ttl=None):
    """An enrollment token through the API (admin token of domain)."""
    body = {"address": address}
    if ttl is not None:
        body["ttl"] = ttl
    r = client.post(f"/v1/domains/{domain.name}/tokens", body, token=domain.admin_token)
    assert r.status == 201, (r.status, r.body)
    doc = r.json()
    assert doc["address"] == address.lower()
    return doc["token"]


def enroll(client, domain_name, token, csr_pem):
    return client.post(f"/v1/domains/{domain_name}/enroll", {"token": token, "csr": csr_pem})


def enroll_new(client, domain, address, alg="ed25519"):
    """Token + key + CSR + enrollment; returns (certificate object, private key)."""
    token = issue_token(client, domain, address)
    key, csr = make_csr(address, alg=alg)
    r = enroll(client, domain.name, token, csr)
    assert r.status == 201, (r.status, r.body)
    return r.json(), key


# --------------------------------------------------------------------------
# Database state

def db_snapshot(pg, conninfo):
    """{table: "count|md5"} over every row's full text, for the changes-nothing checks."""
    dbname = dbname_of(conninfo)
    sql = " UNION ALL ".join(
        f"SELECT '{t}', count(*)::text || '|' || "
        f"md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM {t} x"
        for t in TABLES)
    out = pg.psql(sql, dbname=dbname)
    snap = dict(line.split("|", 1) for line in out.strip().splitlines())
    assert set(snap) == set(TABLES), snap
    return snap


def token_used_at(pg, conninfo, token):
    """used_at of an enrollment token ('' when unused), found by its SHA-256."""
    h = hashlib.sha256(token.encode()).hexdigest()
    out = pg.psql(f"SELECT coalesce(used_at::text, '') FROM enroll_tokens "
                  f"WHERE token_hash = '{h}'", dbname=dbname_of(conninfo))
    lines = out.splitlines()
    assert len(lines) == 1, f"token row not found exactly once: {out!r}"
    return lines[0]


# --------------------------------------------------------------------------
# Processes

def kill9(ks):
    """SIGKILL the key server (no clean shutdown), leaving it ready for ks.start()."""
    os.kill(ks.proc.pid, signal.SIGKILL)
    ks.proc.wait(timeout=20)
    ks.proc = None
    ks._close_log()


def metric(client, name):
    """The value of an unlabelled Prometheus sample in /metrics."""
    r = client.get("/metrics")
    assert r.status == 200, r.body
    m = re.search(rf"^{re.escape(name)} (\S+)$", r.text, re.M)
    assert m, f"{name} not in /metrics:\n{r.text}"
    return float(m.group(1))


def poll(fn, timeout=1.0, interval=0.02):
    """Call fn until it returns a true value or timeout passes; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
