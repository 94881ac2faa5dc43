"""A new key server's first start (anchor-keyserver(8), FIRST START IN PRODUCTION).

TLS bootstrap: `anchorctl server issue <host> --purpose keyserver --offline` issues the
key server's own certificate from the domain's issuer key before any key server runs;
the key server then serves HTTPS with it, verified by curl and openssl against the
domain's root alone; the domain is registered over that HTTPS and the certificate is
replaced by a logged one, as the guide says.

anchor-keyserver -n checks what a start needs, and fails exactly where the start would,
naming the setting to fix:

    - tls_cert_file / tls_key_file: readable, PEM, the key of the certificate;
    - issuer_kek_file: readable when it exists, else its directory exists (the signer
      makes the file there, 0600, at the first start);
    - sql_dir: exists and holds migrations (when migrate_on_start);
    - db_conninfo: the database answers.

Each case is run twice: `anchor-keyserver -n -c FILE` (exit 1, the message on stderr,
nothing printed on stdout) and a real start with the same file (exit 1, the same
message).  `anchorctl db migrate` with a missing migrations directory names sql_dir
instead of answering `internal`."""

import subprocess
from pathlib import Path

import pytest

import ksfixtures as kf

import anchorlib
import dnsfixtures as dx


def run(argv, timeout=60):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def check(ks):
    ks.write_config()
    return run([anchorlib.binary("anchor-keyserver"), "-n", "-c", ks.conf])


def start(ks):
    """A real start with the file: it must stop at once with the same error."""
    ks.write_config()
    return run([anchorlib.binary("anchor-keyserver"), "-c", ks.conf], timeout=60)


def test_check_passes_when_a_start_can(make_keyserver):
    ks = make_keyserver(start=False)
    r = check(ks)
    assert r.returncode == 0, r.stderr
    assert "issuer_kek_file = " in r.stdout
    ks.start()  # and the start really works


def case_settings(name, ks, tls):
    work = ks.workdir
    if name == "cert_missing":
        return {"tls_cert_file": str(work / "nope.pem")}, \
            f"tls_cert_file: cannot read {work}/nope.pem"
    if name == "cert_garbage":
        (work / "junk.pem").write_text("not a certificate\n")
        return {"tls_cert_file": str(work / "junk.pem")}, \
            f"tls_cert_file: {work}/junk.pem holds no PEM certificate"
    if name == "key_missing":
        return {"tls_key_file": str(work / "nope.key")}, \
            f"tls_key_file: cannot read {work}/nope.key"
    if name == "key_mismatch":
        return {"tls_key_file": str(tls.ca_key)}, \
            f"tls_key_file: {tls.ca_key} is not the key of the certificate"
    if name == "kek_dir_missing":
        return {"issuer_kek_file": str(work / "no-such-dir" / "issuer.kek")}, \
            f"issuer_kek_file: directory {work}/no-such-dir does not exist"
    if name == "kek_is_dir":
        (work / "kekdir").mkdir()
        return {"issuer_kek_file": str(work / "kekdir")}, \
            f"issuer_kek_file: {work}/kekdir is not a regular file"
    if name == "sql_dir_missing":
        return {"sql_dir": str(work / "no-sql")}, \
            f"sql_dir: the migrations directory {work}/no-sql: No such file or directory"
    if name == "sql_dir_empty":
        (work / "empty-sql").mkdir()
        return {"sql_dir": str(work / "empty-sql")}, \
            f"sql_dir: {work}/empty-sql holds no migrations"
    if name == "db_unreachable":
        port = dx.closed_port()
        return {"db_conninfo": f"host=127.0.0.1 port={port} dbname=anchor connect_timeout=3"}, \
            "db_conninfo: the database is not reachable"
    raise AssertionError(name)


CASES = ["cert_missing", "cert_garbage", "key_missing", "key_mismatch", "kek_dir_missing",
         "kek_is_dir", "sql_dir_missing", "sql_dir_empty", "db_unreachable"]


@pytest.mark.parametrize("case", CASES)
def test_check_fails_where_the_start_would(make_keyserver, tls, case):
    ks = make_keyserver(start=False)
    extra, want = case_settings(case, ks, tls)
    ks.params.update(extra)
    r = check(ks)
    assert r.returncode == 1, (case, r.stdout, r.stderr)
    assert want in r.stderr, (case, r.stderr)
    assert r.stdout == "", r.stdout  # nothing dumped: the check failed
    r = start(ks)
    assert r.returncode == 1 and want in r.stderr, (case, r.stderr)


def test_sql_dir_not_migrated_when_migrate_on_start_is_off(make_keyserver, tls):
    """sql_dir is only read when the start migrates."""
    ks = make_keyserver(start=False, extra={"migrate_on_start": "no",
                                           "sql_dir": "/nonexistent/anchor-sql"})
    r = check(ks)
    assert r.returncode == 0, r.stderr


def test_db_migrate_names_a_missing_sql_dir(db, tmp_path):
    r = run([anchorlib.binary("anchorctl"), "db", "migrate", "--conninfo", db,
             "--sql-dir", tmp_path / "nowhere"])
    assert r.returncode == 1, r.stdout
    assert "internal" not in r.stderr, r.stderr
    assert (f"anchorctl: bad_config: sql_dir: the migrations directory {tmp_path}/nowhere: "
            "No such file or directory") in r.stderr, r.stderr
    conf = tmp_path / "keyserver.conf"
    conf.write_text(f"db_conninfo = {db}\nsql_dir = {tmp_path}/gone\n")
    r = run([anchorlib.binary("anchorctl"), "-c", conf, "db", "migrate"])
    assert r.returncode == 1 and f"sql_dir: the migrations directory {tmp_path}/gone" \
        in r.stderr, r.stderr


# --------------------------------------------------------------------------
# TLS bootstrap

def ctl(*args, cwd, env=None):
    """anchorctl with no inherited ANCHOR_* settings."""
    full = dx.clean_env(env)
    full.update(anchorlib.SANITIZER_ENV)
    r = subprocess.run([str(anchorlib.binary("anchorctl")), *[str(a) for a in args]],
                       capture_output=True, text=True, env=full, cwd=cwd, timeout=120)
    assert not anchorlib.sanitizer_report(r.stderr), r.stderr
    return r


def test_offline_bootstrap_of_a_new_key_server(make_keyserver, operator_token, tmp_path):
    name = kf.new_domain_name("boot")
    host = f"keys.{name}"
    r = ctl("domain", "init", name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    root = tmp_path / name / "root.pem"

    # only the key server's own certificate is issued offline
    r = ctl("server", "issue", f"mx.{name}", "--purpose", "mta", "--offline", cwd=tmp_path)
    assert r.returncode == 2 and "--offline is only for --purpose keyserver" in r.stderr, \
        r.stderr
    r = ctl("server", "issue", host, "--purpose", "keyserver", "--offline", "--days", "91",
            cwd=tmp_path)
    assert r.returncode == 2 and "--days must be 1 to 90" in r.stderr, r.stderr

    # the documented command, with nothing running: key, CSR, certificate and chain
    r = ctl("server", "issue", host, "--purpose", "keyserver", "--offline", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "offline:" in r.stdout and "in no log" in r.stdout, r.stdout
    stem = tmp_path / f"{host}.keyserver"
    tls_cert = tmp_path / "keyserver-tls.pem"
    tls_cert.write_text(Path(f"{stem}.pem").read_text() + Path(f"{stem}.chain.pem").read_text())
    ks = make_keyserver(start=False, extra={"tls_cert_file": str(tls_cert),
                                           "tls_key_file": f"{stem}.key"})
    assert check(ks).returncode == 0
    ks.start()
    port = ks.port

    # HTTPS with that certificate, verified against the domain's root and nothing else
    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", root,
             "--resolve", f"{host}:{port}:127.0.0.1", f"https://{host}:{port}/v1/domains/{name}"])
    assert r.returncode == 0, r.stderr  # TLS verified (the HTTP status does not matter)
    r = run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", host,
             "-CAfile", root, "-verify_hostname", host, "-verify_return_error"], timeout=30)
    assert "Verify return code: 0 (ok)" in r.stdout, r.stdout + r.stderr
    r = run(["curl", "-sS", "-o", "/dev/null", "--cacert", ks.tls.ca,
             "--resolve", f"{host}:{port}:127.0.0.1", f"https://{host}:{port}/"])
    assert r.returncode != 0  # not the test CA's certificate: the bootstrap one is served

    # the domain registered over that HTTPS, then the certificate replaced by a logged one
    server = ["-s", f"https://{host}:{port}", "--cacert", root,
              "--resolve", f"{host}:{port}:127.0.0.1"]
    r = ctl(*server, "domain", "register", name, cwd=tmp_path,
            env={"ANCHOR_OPERATOR_TOKEN": operator_token.token})
    assert r.returncode == 0, r.stderr
    (tmp_path / "logged").mkdir()
    r = ctl(*server, "server", "issue", host, "--purpose", "keyserver", "--dir",
            tmp_path / "logged", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "logged" / f"{host}.keyserver.pem").exists()
