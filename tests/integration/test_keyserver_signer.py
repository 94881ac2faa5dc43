"""The key server's signer process (PROTOCOL.md §13, anchor-keyserver(8)).

The HTTPS process, which parses what the internet sends, must hold neither the KEK nor
an issuer key; the signer, reached over its Unix socket, must refuse what a compromised
HTTPS process would ask of it (a certificate for an address without a valid enrollment,
or outside the domain's name constraints; a tree head over a forged log); and when the
signer dies, the HTTPS process answers 503 and starts another.

The tests speak the signer's wire format themselves (ks_signer_proto.h), as a
compromised HTTPS process would, and write rows straight into PostgreSQL, as one holding
the database password could.
"""

import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

import ksfixtures as kf

# ks_signer_proto.h
OP_REGISTER, OP_TOKEN, OP_ENROLL, OP_SERVER, OP_CRL, OP_ROUTE, OP_PUBLISH = range(1, 8)
# lib/core/err.h
ERR_INPUT, ERR_AUTH, ERR_FORBIDDEN, ERR_NOTFOUND, ERR_CONFLICT = 1, 2, 3, 4, 5
ERR_TEMP = 11


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("signer")


@pytest.fixture(scope="module")
def sockdir():
    # A Unix socket path must fit in 108 bytes: pytest's tmp_path may not.
    d = tempfile.mkdtemp(prefix="ks-signer-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def node(make_keyserver, sockdir):
    """A key server whose signer listens where the test can reach it."""
    return make_keyserver(extra={"signer_socket": str(sockdir / "signer.sock")})


@pytest.fixture(scope="module")
def dom(node, operator_token, base):
    return kf.register_domain(node, base, kf.new_domain_name("sig"), operator_token.token)


def psql(pg, db, sql):
    return pg.psql(sql, dbname=kf.dbname_of(db)).strip()


# --------------------------------------------------------------------------
# The wire format, spoken directly

def frame(op, *fields):
    fields = [f.encode() if isinstance(f, str) else f for f in fields]
    body = bytes([op, len(fields)]) + b"".join(struct.pack(">I", len(f)) + f for f in fields)
    return struct.pack(">I", len(body)) + body


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("the signer hung up")
        buf += chunk
    return buf


def parse(body):
    kind, n = body[0], body[1]
    p, fields = 2, []
    for _ in range(n):
        (ln,) = struct.unpack(">I", body[p:p + 4])
        fields.append(body[p + 4:p + 4 + ln])
        p += 4 + ln
    assert p == len(body), "trailing bytes in the signer's answer"
    return kind, fields


def signer_call(path, raw):
    """Send one raw frame to the signer at path; return (kind, fields)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect(str(path))
        s.sendall(raw)
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        return parse(recv_exact(s, n))


def refused(answer, kind, code):
    got_kind, fields = answer
    assert got_kind == kind and fields and fields[0].decode() == code, (
        f"expected refusal {kind}/{code}, got {got_kind} {fields}")


# --------------------------------------------------------------------------
# Processes and their memory

def children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may hold spaces, so split after the ')'
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def signer_pid(ks):
    kids = children(ks.proc.pid)
    assert len(kids) == 1, f"expected one signer process under {ks.proc.pid}: {kids}"
    cmdline = Path(f"/proc/{kids[0]}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1] == b"--signer", cmdline
    return kids[0]


def memory_holds(pid, needles):
    """The needles found in the readable memory of process pid."""
    found = set()
    overlap = max(len(n) for n in needles) - 1
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            name = parts[5] if len(parts) > 5 else ""
            # Skip what cannot hold our data: unreadable, kernel pages, and the huge
            # sanitizer shadow reservations.
            if "r" not in parts[1] or name in ("[vvar]", "[vsyscall]", "[vvar_vclock]") \
                    or hi - lo > (1 << 30):
                continue
            tail = b""
            for at in range(lo, hi, 1 << 22):
                try:
                    mem.seek(at)
                    chunk = mem.read(min(1 << 22, hi - at))
                except OSError:
                    break
                window = tail + chunk
                for n in needles:
                    if n in window:
                        found.add(n)
                tail = window[-overlap:] if overlap else b""
    return found


def raw_private(key_pem):
    key = serialization.load_pem_private_key(key_pem, None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_numbers().private_value.to_bytes(
            (key.curve.key_size + 7) // 8, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        d = key.private_numbers().d
        return d.to_bytes((d.bit_length() + 7) // 8, "big")
    raise AssertionError(f"unexpected key type {type(key)}")


def test_https_process_holds_no_kek_nor_issuer_key(node, dom):
    """Only the signer ever has the KEK or an unsealed issuer key in memory.  Run after
    everything that signs (registration, a token, an enrollment, a server certificate,
    a CRL, a route answer, tree heads), the HTTPS process's memory holds neither the
    KEK's 32 bytes nor the issuer's private scalar, while the signer's holds the KEK
    (which shows the scan would find it)."""
    c = node.client()
    kf.enroll_new(c, dom, f"mem-{secrets.token_hex(3)}@{dom.name}")
    _, csr = kf.make_csr(host=f"mx.{dom.name}")
    r = c.post(f"/v1/domains/{dom.name}/servers", {"csr": csr, "purpose": "mta"},
               token=dom.admin_token)
    assert r.status == 201, (r.status, r.body)
    assert c.get(f"/v1/domains/{dom.name}/crl").status == 200
    r = c.put(f"/v1/domains/{dom.name}/route",
              {"servers": [{"host": f"mx.{dom.name}", "pin": kf.spki_pin(r.json()["certificate"])}]},
              token=dom.admin_token)
    assert r.status == 200, (r.status, r.body)
    r = c.put(f"/v1/routes/alias-{secrets.token_hex(2)}@{dom.name}",
              {"alias": f"postmaster@{dom.name}"}, token=dom.admin_token)
    assert r.status == 200, (r.status, r.body)
    assert c.get(f"/v1/domains/{dom.name}/route").status == 200

    kek = Path(node.kek_file).read_bytes()
    issuer_scalar = raw_private((dom.dir / "issuer.key").read_bytes())
    assert len(kek) == 32 and len(issuer_scalar) >= 32
    https = memory_holds(node.proc.pid, [kek, issuer_scalar])
    assert kek not in https, "the HTTPS process holds the KEK"
    assert issuer_scalar not in https, "the HTTPS process holds the issuer's private key"
    assert kek in memory_holds(signer_pid(node), [kek]), \
        "the scan did not find the KEK in the signer either: it proves nothing"
    # Nor has it the file open.
    for fd in Path(f"/proc/{node.proc.pid}/fd").iterdir():
        try:
            assert os.readlink(fd) != str(Path(node.kek_file).resolve())
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------
# The signer refuses what a compromised HTTPS process would ask

@pytest.fixture
def sock(node, sockdir):
    path = sockdir / "signer.sock"
    assert path.is_socket()
    assert (path.stat().st_mode & 0o777) == 0o600
    return path


def cert_rows(pg, db, name):
    return psql(pg, db, f"SELECT count(*) FROM certificates WHERE name = '{name}'")


def test_no_certificate_without_an_enrollment(node, dom, sock, pg, db):
    victim = f"victim-{secrets.token_hex(3)}@{dom.name}"
    _, csr = kf.make_csr(victim)
    # No token at all.
    refused(signer_call(sock, frame(OP_ENROLL, dom.name, secrets.token_urlsafe(32), csr)),
            ERR_NOTFOUND, "token_unknown")
    # A token row written straight into the database, as a process holding the database
    # password could: it bears no seal, so it enrolls nobody.
    token = secrets.token_urlsafe(32)
    h = hashlib.sha256(token.encode()).hexdigest()
    psql(pg, db, "INSERT INTO enroll_tokens (domain_id, token_hash, address, expires_at)"
                 f" SELECT id, '{h}', '{victim}', now() + interval '1 hour' FROM domains"
                 f" WHERE name = '{dom.name}'")
    refused(signer_call(sock, frame(OP_ENROLL, dom.name, token, csr)),
            ERR_FORBIDDEN, "token_unsealed")
    # Through the HTTPS API the same forged row is refused alike.
    r = kf.enroll(node.client(), dom.name, token, csr)
    assert (r.status, r.json()["error"]) == (403, "token_unsealed"), (r.status, r.body)
    assert cert_rows(pg, db, victim) == "0"
    assert kf.token_used_at(pg, db, token) == ""


def test_a_token_enrolls_only_its_own_address(node, dom, sock, pg, db):
    me = f"me-{secrets.token_hex(3)}@{dom.name}"
    token = kf.issue_token(node.client(), dom, me)
    other = f"other-{secrets.token_hex(3)}@{dom.name}"
    _, csr = kf.make_csr(other)
    refused(signer_call(sock, frame(OP_ENROLL, dom.name, token, csr)),
            ERR_INPUT, "address_mismatch")
    # Outside the domain's name constraints, with the token of an address inside them.
    _, csr = kf.make_csr(f"me@evil-{secrets.token_hex(3)}.example")
    refused(signer_call(sock, frame(OP_ENROLL, dom.name, token, csr)),
            ERR_INPUT, "address_outside_domain")
    assert cert_rows(pg, db, other) == "0"
    assert kf.token_used_at(pg, db, token) == ""
    # The token still enrolls its own address, once.
    _, csr = kf.make_csr(me)
    kind, fields = signer_call(sock, frame(OP_ENROLL, dom.name, token, csr))
    assert kind == 0 and len(fields) == 2, (kind, fields)
    refused(signer_call(sock, frame(OP_ENROLL, dom.name, token, csr)),
            ERR_CONFLICT, "token_used")
    assert cert_rows(pg, db, me) == "1"


def test_no_server_certificate_without_the_admin(node, dom, sock, pg, db):
    host = f"h-{secrets.token_hex(3)}.{dom.name}"
    _, csr = kf.make_csr(host=host)
    refused(signer_call(sock, frame(OP_SERVER, dom.name, "", "mta", csr)),
            ERR_AUTH, "unauthorized")
    forged = secrets.token_urlsafe(32)
    h = hashlib.sha256(forged.encode()).hexdigest()
    psql(pg, db, f"INSERT INTO admin_tokens (domain_id, token_hash) SELECT id, '{h}'"
                 f" FROM domains WHERE name = '{dom.name}'")
    refused(signer_call(sock, frame(OP_SERVER, dom.name, forged, "mta", csr)),
            ERR_FORBIDDEN, "token_unsealed")
    refused(signer_call(sock, frame(OP_TOKEN, dom.name, forged, f"x@{dom.name}", "3600")),
            ERR_FORBIDDEN, "token_unsealed")
    # With the real admin token, still nothing outside the domain.
    _, evil = kf.make_csr(host=f"mx.evil-{secrets.token_hex(3)}.example")
    refused(signer_call(sock, frame(OP_SERVER, dom.name, dom.admin_token, "mta", evil)),
            ERR_INPUT, "address_outside_domain")
    refused(signer_call(sock, frame(OP_TOKEN, dom.name, dom.admin_token,
                                    "x@evil.example", "3600")),
            ERR_INPUT, "address_outside_domain")
    assert cert_rows(pg, db, host) == "0"


def test_no_signature_for_a_domain_whose_row_was_rewritten(node, operator_token, base, sock,
                                                           pg, db):
    """Swapping a domain's certificates in the database (say, an unconstrained root in
    place of the pinned one) makes the signer refuse everything for that domain."""
    d2 = kf.register_domain(node, base, kf.new_domain_name("swap"), operator_token.token)
    addr = f"a@{d2.name}"
    token = kf.issue_token(node.client(), d2, addr)
    psql(pg, db, f"UPDATE domains SET root_pem = issuer_pem WHERE name = '{d2.name}'")
    _, csr = kf.make_csr(addr)
    refused(signer_call(sock, frame(OP_ENROLL, d2.name, token, csr)),
            ERR_FORBIDDEN, "domain_unsealed")
    refused(signer_call(sock, frame(OP_CRL, d2.name)), ERR_FORBIDDEN, "domain_unsealed")
    assert cert_rows(pg, db, addr) == "0"


def test_no_tree_head_over_a_forged_log(node, operator_token, base, sock, pg, db):
    """An entry written straight into the log, or a head row the signer did not sign,
    gets no signed head: the log cannot be forked through the signer."""
    d3 = kf.register_domain(node, base, kf.new_domain_name("fork"), operator_token.token)
    did = psql(pg, db, f"SELECT id FROM domains WHERE name = '{d3.name}'")
    size = int(psql(pg, db, f"SELECT max(size) FROM tree_heads WHERE domain_id = {did}"))
    assert size == int(psql(pg, db, f"SELECT count(*) FROM log_entries WHERE domain_id = {did}"))
    kind, fields = signer_call(sock, frame(OP_PUBLISH, d3.name))
    assert (kind, fields) == (0, [str(size).encode()])
    # An entry of another domain, hashed and noded right, appended behind the signer.
    leaf = f'{{"domain":"elsewhere.example","seq":{size},"type":"issued","v":1}}'
    lh = hashlib.sha256(b"\0" + leaf.encode()).hexdigest()
    psql(pg, db, "INSERT INTO log_entries (domain_id, seq, type, leaf, leaf_hash) VALUES"
                 f" ({did}, {size}, 'issued', '{leaf}', decode('{lh}', 'hex'));"
                 f" INSERT INTO log_nodes (domain_id, level, idx, hash) VALUES"
                 f" ({did}, 0, {size}, decode('{lh}', 'hex'))")
    refused(signer_call(sock, frame(OP_PUBLISH, d3.name)), ERR_FORBIDDEN, "log_damaged")
    assert psql(pg, db, f"SELECT max(size) FROM tree_heads WHERE domain_id = {did}") == str(size)
    psql(pg, db, f"DELETE FROM log_nodes WHERE domain_id = {did} AND level = 0"
                 f" AND idx = {size}; DELETE FROM log_entries WHERE domain_id = {did}"
                 f" AND seq = {size}")
    # A head row with another root for the newest size: not the signer's signature.
    psql(pg, db, f"UPDATE tree_heads SET root_hash = decode('{'00' * 32}', 'hex')"
                 f" WHERE domain_id = {did} AND size = {size}")
    refused(signer_call(sock, frame(OP_PUBLISH, d3.name)), ERR_FORBIDDEN, "head_unsigned")
    r = node.client().put(f"/v1/routes/a@{d3.name}", {"alias": f"b@{d3.name}"},
                          token=d3.admin_token)
    assert r.status == 200, (r.status, r.body)  # the change stands, unsigned
    assert psql(pg, db, f"SELECT max(size) FROM tree_heads WHERE domain_id = {did}") == str(size)
    assert "head_unsigned" in node.stderr()


@pytest.mark.parametrize("raw, code", [
    (frame(99, "x.test"), "unknown_op"),
    (frame(OP_ENROLL, "x.test", "t"), "bad_request"),                  # too few fields
    (frame(OP_CRL, "X.Test"), "bad_request"),                          # not lowercase
    (frame(OP_CRL, "x.test\0.evil"), "bad_request"),                   # NUL inside
    (frame(OP_TOKEN, "x.test", "t", "a@x.test", "59"), "bad_request"),  # ttl too short
    (frame(OP_ENROLL, "x.test", "t", b"\x01binary"), "bad_request"),   # not PEM text
    (struct.pack(">I", 3) + b"\x05\x02\x00", "bad_frame"),             # fields run out
])
def test_malformed_requests_refused(sock, raw, code):
    refused(signer_call(sock, raw), ERR_INPUT, code)


def test_oversized_frame_refused_and_hung_up(sock):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock))
        s.sendall(struct.pack(">I", 2 * 1024 * 1024))
        (n,) = struct.unpack(">I", recv_exact(s, 4))
        kind, fields = parse(recv_exact(s, n))
        assert kind == 7 and fields[0] == b"frame_too_big"  # ERR_TOOBIG
        assert s.recv(1) == b""


# --------------------------------------------------------------------------
# Restarts

def test_signer_restarted_and_503_meanwhile(make_keyserver, node, operator_token, base,
                                            tmp_path, sockdir):
    """When the signer dies the HTTPS process answers 503 signer_unavailable for what
    needs a signature, keeps answering lookups, and starts another signer.  The KEK
    file's mode is the signer's to check: made readable by others, the restarted signer
    refuses to start, and the key server stays up answering 503 until it is fixed."""
    kek = tmp_path / "kek"
    shutil.copyfile(node.kek_file, kek)  # the session's key, in a file of its own
    os.chmod(kek, 0o600)
    ks = make_keyserver(extra={"issuer_kek_file": str(kek),
                               "signer_socket": str(sockdir / "restart.sock")})
    d = kf.register_domain(ks, base, kf.new_domain_name("rs"), operator_token.token)
    c = ks.client()
    first, _ = kf.enroll_new(c, d, f"before@{d.name}")

    os.chmod(kek, 0o644)
    old = signer_pid(ks)
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    r = None
    while time.monotonic() < deadline:
        r = c.post(f"/v1/domains/{d.name}/tokens", {"address": f"during@{d.name}"},
                   token=d.admin_token)
        if r.status == 503:
            break
        time.sleep(0.05)
    assert r.status == 503 and r.json()["error"] == "signer_unavailable", (r.status, r.body)
    assert c.get(f"/v1/domains/{d.name}/crl").status == 503
    # What the AnchorSignerDown alert watches (docs/monitoring.md).
    assert float(kf.metric(c, "anchor_signer_up")) == 0
    assert float(kf.metric(c, "anchor_signer_failures_total")) >= 2
    # Lookups need no signer.
    assert c.get(f"/v1/keys/{first['key_id']}").status == 200
    assert kf.poll(lambda: "readable by others" in ks.stderr(), timeout=10)

    os.chmod(kek, 0o600)
    assert kf.poll(lambda: c.post(f"/v1/domains/{d.name}/tokens",
                                  {"address": f"after@{d.name}"},
                                  token=d.admin_token).status == 201, timeout=15)
    assert signer_pid(ks) != old
    assert float(kf.metric(c, "anchor_signer_up")) == 1
    kf.enroll_new(c, d, f"after2@{d.name}")
    assert re.search(r"the signer process exited \(signal 9\): restarting it", ks.stderr())
    # A clean stop: the signer ends by itself when the server closes the pipe (and the
    # sanitizers' leak check runs in it; ks.stop refuses any report).
    ks.stop()
    assert "signer: the key server has gone; stopping" in ks.stderr()
