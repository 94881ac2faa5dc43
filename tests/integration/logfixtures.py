"""Helpers for the revocation and transparency-log tests (test_revocation_*.py, test_log_*.py).

Everything that judges the key server here shares no code with it: tree heads are
verified with python3-jwcrypto (signature) and openssl(1) (the x5c chain), proofs with
tests/integration/rfc9162_ref.py (RFC 9162 written from the RFC), subjects and
fingerprints with hashlib and python3-cryptography.

    ctl(ks, *args, cwd, state=None)   anchorctl with its head store in cwd/heads.json
    enroll_cli(ks, client, dom, address, cwd)   token (API) + `key new` + `key enroll`
    verify_head(text, dom, workdir)   independent check of a signed tree head -> payload
    check_cert_log(cert, head)        independent check of a certificate's log member
    entries(client, dom)              every log entry (admin view, paged)
    sign_head(dom, size, root)        a head signed with the domain's issuer key (forgeries)
"""

import base64
import hashlib
import json
import re
from pathlib import Path

import anchorlib
import ksfixtures as kf
import rfc9162_ref as ref
import routefixtures as rf


def ctl(ks, *args, cwd, state=None, env=None):
    e = {"ANCHOR_STATE": str(state or Path(cwd) / "heads.json")}
    e.update(env or {})
    return kf.run_ctl(ks, *args, cwd=cwd, env=e)


def ctl_ok(ks, *args, cwd, state=None, env=None):
    r = ctl(ks, *args, cwd=cwd, state=state, env=env)
    assert r.rc == 0, f"anchorctl {' '.join(map(str, args))} -> {r.rc}\n{r.out}\n{r.err}"
    return r


def enroll_cli(ks, client, dom, address, cwd, alg=None):
    """Enroll address with anchorctl; returns (key_id, fingerprint, enroll Result)."""
    token = kf.issue_token(client, dom, address)
    ctl_ok(ks, "key", "new", address, *(["--alg", alg] if alg else []), cwd=cwd)
    r = ctl_ok(ks, "key", "enroll", address, "--token", token, cwd=cwd)
    kid = re.search(r"^key id:\s+(\S+)$", r.out, re.M).group(1)
    fpr = re.search(r"^fingerprint:\s+(\S+)$", r.out, re.M).group(1)
    return kid, fpr, r


# --------------------------------------------------------------------------
# Independent verification

def verify_head(text, dom, workdir):
    """A tree head checked without the project's code: x5c [issuer, root] with the root
    pinned and the chain verified by openssl, the signature by jwcrypto, the payload's
    type and domain.  Returns the payload."""
    if isinstance(text, bytes):
        text = text.decode()
    _, header, _ = rf.jws_parts(text)
    assert header.get("typ") == "anchor-tree-head+jws", header
    x5c = header["x5c"]
    assert len(x5c) == 2, "x5c must be [issuer, root]"
    issuer_pem, root_pem = (rf.der_to_pem(base64.b64decode(c)) for c in x5c)
    assert kf.spki_pin(root_pem) == dom.pin
    wd = Path(workdir)
    (wd / "h-root.pem").write_text(root_pem)
    (wd / "h-issuer.pem").write_text(issuer_pem)
    r = kf.openssl("verify", "-x509_strict", "-CAfile", wd / "h-root.pem", wd / "h-issuer.pem")
    assert r.returncode == 0, r.stdout_text + r.stderr_text
    from cryptography.hazmat.primitives import serialization
    from jwcrypto import jwk, jws
    key = jwk.JWK.from_pem(kf.load_cert(issuer_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    obj = jws.JWS()
    obj.deserialize(text)
    obj.verify(key)
    payload = json.loads(obj.payload)
    assert payload["type"] == "anchor-tree-head" and payload["domain"] == dom.name, payload
    assert isinstance(payload["size"], int) and payload["size"] >= 1
    assert len(ref.unb64(payload["root_hash"])) == 32
    return payload


def subject_of(salt, name):
    return hashlib.sha256(f"{salt}:{name}".encode()).hexdigest()


def check_cert_log(cert, head):
    """The certificate object's log member against a verified head payload, by the
    reference: the leaf is its issuance and the inclusion proof leads to the root."""
    log = cert["log"]
    leaf = json.loads(log["leaf"])
    assert leaf["type"] == "issued" and leaf["seq"] == log["seq"], leaf
    assert leaf["key_id"] == cert["key_id"]
    assert leaf["fingerprint"] == kf.cert_fingerprint(cert["certificate"]) == cert["fingerprint"]
    assert leaf["subject"] == subject_of(log["salt"], cert["name"])
    assert log["tree_size"] == head["size"]
    proof = [ref.unb64(h) for h in log["proof"]]
    assert ref.verify_inclusion(log["seq"], log["tree_size"],
                                ref.leaf_hash(log["leaf"].encode()), proof,
                                ref.unb64(head["root_hash"])), "inclusion proof refused"
    return leaf


def entries(client, dom, token=True):
    """Every entry of the domain's log, paged through /log/entries."""
    out, start = [], 0
    while True:
        r = client.get(f"/v1/domains/{dom.name}/log/entries?start={start}&end={start + 1000}",
                       token=dom.admin_token if token else None)
        assert r.status == 200, (r.status, r.body)
        page = r.json()["entries"]
        if not page:
            return out
        out += page
        start += len(page)


def head(client, dom, size=None):
    r = client.get(f"/v1/domains/{dom.name}/log/head" + (f"?size={size}" if size else ""))
    assert r.status == 200, (r.status, r.body)
    return r.text


def sign_head(dom, size, root, timestamp="2026-01-01T00:00:00Z", domain=None):
    """A head as the key server signs one, made by the test with the issuer's key."""
    payload = {"type": "anchor-tree-head", "domain": domain or dom.name, "size": size,
               "root_hash": ref.b64(root), "timestamp": timestamp}
    return rf.sign(rf.issuer_key(dom), [dom.issuer_pem, dom.root_pem], payload,
                   "anchor-tree-head+jws")


def feed(client, dom, since=0, limit=1000):
    r = client.get(f"/v1/domains/{dom.name}/feed?since={since}&limit={limit}")
    assert r.status == 200, (r.status, r.body)
    return r.json()


def tables_digest(pg, conninfo, tables=("certificates", "revocations", "log_entries",
                                        "log_nodes", "tree_heads")):
    dbname = kf.dbname_of(conninfo)
    return {t: pg.psql(f"SELECT count(*)::text || '|' || md5(coalesce(string_agg(x::text, "
                       f"E'\\n' ORDER BY x::text), '')) FROM {t} x", dbname=dbname).strip()
            for t in tables}


def workdir(prefix):
    return anchorlib.mktemp_dir(prefix)
