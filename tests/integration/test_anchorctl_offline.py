"""anchorctl's offline commands, driven as a user would: domain init, key new,
pin, operator token, and the usage errors.  No server, no database: only the
binary in $ANCHOR_BIN and openssl(1) as the independent checker."""

import base64
import hashlib
import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

BIN = Path(os.environ.get("ANCHOR_BIN")
           or Path(__file__).resolve().parents[2] / "build" / "check")
SANITIZER = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def run(*args, cwd=None, input=None, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
    full_env.update(env or {})
    r = subprocess.run([str(BIN / "anchorctl"), *map(str, args)], cwd=cwd, input=input,
                       capture_output=True, text=True, timeout=120, env=full_env)
    assert not any(p in r.stderr for p in SANITIZER), r.stderr
    return r


def openssl(*args, input=None):
    r = subprocess.run(["openssl", *map(str, args)], capture_output=True, input=input,
                       timeout=60)
    return r


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def spki_pin(cert):
    der = openssl("x509", "-in", cert, "-noout", "-pubkey").stdout
    spki = openssl("pkey", "-pubin", "-outform", "DER", input=der).stdout
    return "sha256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.mark.parametrize("alg", ["ed25519", "p256", "rsa2048"])
def test_domain_init_makes_a_verifiable_hierarchy(tmp_path, alg):
    r = run("domain", "init", "Example.COM", "--alg", alg, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "example.com"
    for name, want in (("root.key", 0o600), ("issuer.key", 0o600),
                       ("root.pem", 0o644), ("issuer.pem", 0o644)):
        assert mode(d / name) == want, name
    # The issuer chains to the root, and the pin printed is the root's SPKI digest.
    v = openssl("verify", "-CAfile", d / "root.pem", d / "issuer.pem")
    assert v.returncode == 0, v.stderr
    pin = spki_pin(d / "root.pem")
    assert f"pin: {pin}\n" in r.stdout
    assert (f'_anchor.example.com. IN TXT "v=ANCHOR1; pin={pin}; mode=enforce"'
            in r.stdout)
    text = openssl("x509", "-in", d / "root.pem", "-noout", "-text").stdout.decode()
    assert "Name Constraints" in text and "example.com" in text
    # pin(1) agrees.
    p = run("pin", d / "root.pem")
    assert p.returncode == 0 and p.stdout.strip() == pin


def test_domain_init_days_and_dir(tmp_path):
    r = run("domain", "init", "example.org", "--dir", tmp_path / "keys", "--days", "30",
            "--issuer-days", "10")
    assert r.returncode == 0, r.stderr
    end = openssl("x509", "-in", tmp_path / "keys" / "root.pem", "-noout", "-checkend",
                  str(31 * 86400))
    assert end.returncode == 1  # expires within 31 days
    assert openssl("x509", "-in", tmp_path / "keys" / "root.pem", "-noout", "-checkend",
                   str(29 * 86400)).returncode == 0


def test_domain_init_never_overwrites(tmp_path):
    assert run("domain", "init", "example.com", cwd=tmp_path).returncode == 0
    before = (tmp_path / "example.com" / "root.key").read_bytes()
    r = run("domain", "init", "example.com", cwd=tmp_path)
    assert r.returncode == 1
    assert re.match(r"anchorctl: exists: ", r.stderr)
    assert (tmp_path / "example.com" / "root.key").read_bytes() == before
    # Not even when only one of the files is there: nothing new is written.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "issuer.pem").write_text("x")
    assert run("domain", "init", "example.net", "--dir", tmp_path / "other").returncode == 1
    assert sorted(os.listdir(tmp_path / "other")) == ["issuer.pem"]


def test_key_new_user_and_server(tmp_path):
    r = run("key", "new", "Alice@Example.com", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "ed25519" in r.stdout
    key, csr = tmp_path / "alice@example.com.key", tmp_path / "alice@example.com.csr"
    assert mode(key) == 0o600
    v = openssl("req", "-in", csr, "-noout", "-verify", "-text")
    assert v.returncode == 0, v.stderr
    assert b"email:alice@example.com" in v.stdout
    # The request holds the key that was written.
    pub_req = openssl("req", "-in", csr, "-noout", "-pubkey").stdout
    pub_key = openssl("pkey", "-in", key, "-pubout").stdout
    assert pub_req == pub_key

    r = run("key", "new", "--server", "mx1.example.com", "--alg", "p256", "--dir",
            tmp_path / "srv")
    assert r.returncode == 0, r.stderr
    v = openssl("req", "-in", tmp_path / "srv" / "mx1.example.com.csr", "-noout", "-text")
    assert b"DNS:mx1.example.com" in v.stdout
    assert mode(tmp_path / "srv" / "mx1.example.com.key") == 0o600

    again = run("key", "new", "alice@example.com", cwd=tmp_path)
    assert again.returncode == 1 and "exists" in again.stderr


def test_operator_token(tmp_path):
    r = run("operator", "token")
    assert r.returncode == 0, r.stderr
    token, line = r.stdout.splitlines()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    want = hashlib.sha256(token.encode()).hexdigest()
    assert line == f"operator_token_hash = {want}"
    # --hash-only gives the same line for the same token (trailing newline ignored).
    h = run("operator", "token", "--hash-only", input=token + "\n")
    assert h.returncode == 0 and h.stdout == line + "\n"
    assert run("operator", "token").stdout.splitlines()[0] != token
    assert run("operator", "token", "--hash-only", input="\n").returncode == 1


@pytest.mark.parametrize("args", [
    [],
    ["frob"],
    ["domain"],
    ["domain", "init"],
    ["domain", "init", "not a domain"],
    ["domain", "init", "example.com", "--alg", "dsa"],
    ["domain", "init", "example.com", "--days", "0"],
    ["domain", "init", "example.com", "--bogus"],
    ["key", "new"],
    ["key", "new", "alice@example.com", "--server", "mx.example.com"],
    ["key", "new", "no-at-sign.example.com"],
    ["lookup", "domain", "example.com"],  # no server given
    ["-s", "http://keys.example.com", "lookup", "domain", "example.com"],
    ["server", "issue", "mx.example.com"],  # no --purpose
    ["token", "issue", "alice@example.com", "--ttl", "5"],
    ["policy", "set", "example.com", "corporate"],
    ["lookup", "fingerprint", "sha256:1234", "-s", "https://127.0.0.1:1"],
])
def test_usage_errors_exit_2(tmp_path, args):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert r.stderr.startswith("anchorctl: ")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args", [["help"], ["--help"], ["help", "key", "enroll"],
                                  ["key", "enroll", "--help"], ["lookup", "--help"]])
def test_help(args):
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert "anchorctl" in r.stdout


def test_admin_token_missing_is_reported(tmp_path):
    r = run("-s", "https://127.0.0.1:1", "token", "issue", "alice@example.com", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("anchorctl: no_token: ")


def test_unreachable_server_is_a_network_error(tmp_path):
    r = run("-s", "https://127.0.0.1:1", "lookup", "domain", "example.com")
    assert r.returncode == 1
    assert r.stderr.startswith("anchorctl: network: ")
