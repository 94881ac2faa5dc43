"""deploy/: every daemon has a sample configuration that lists every parameter of its
settings table and passes the daemon's own -n check, where a commented-out line shows
the built-in default (uncommenting every one of them changes nothing -n prints); every
daemon has a systemd unit; `make install` installs every program, sample and unit."""

import re
import subprocess

import pytest

import anchorlib
import doccmds

DAEMONS = {"keyserver": "anchor-keyserver", "relay": "anchor-relay",
           "reputation": "anchor-reputation", "policyd": "anchor-policyd"}
DEPLOY = anchorlib.SRC / "deploy"


def check(daemon, conf, overrides=()):
    return anchorlib.run_program([anchorlib.binary(daemon), "-n", "-c", conf, *overrides])


def machine_overrides(name, tmp_path, tls, db):
    """anchor-keyserver -n also checks what its start needs on this machine (TLS files,
    the KEK file's directory, sql_dir, the database): the sample's production paths are
    pointed at this test's own, the same for both checks below."""
    if name != "keyserver":
        return []
    o = {"tls_cert_file": tls.cert, "tls_key_file": tls.key,
         "issuer_kek_file": tmp_path / "kek" / "issuer.kek",
         "sql_dir": anchorlib.SRC / "sql", "db_conninfo": db}
    (tmp_path / "kek").mkdir()
    return [x for k, v in o.items() for x in ("-o", f"{k}={v}")]


def dump(result):
    return dict(line.split(" =", 1) for line in result.out.splitlines())


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_sample_lists_every_setting_and_passes_check(name, tmp_path, tls, db):
    sample = DEPLOY / f"{name}.conf.sample"
    machine = machine_overrides(name, tmp_path, tls, db)
    r = check(DAEMONS[name], sample, machine)
    assert r.rc == 0, f"{sample.name}: {r.err}"
    settings = dump(r)
    text = sample.read_text()
    lines = text.splitlines()
    missing = [k for k in settings if not re.search(rf"^#?{k} =", text, re.M)]
    assert not missing, f"{sample.name} does not list {missing}"
    # Commented-out lines are the defaults: uncommenting all of them changes nothing.
    set_here = {m.group(1) for m in (re.match(r"^(\w+) =", x) for x in lines) if m}
    uncommented = [re.sub(r"^#(\w+ = .+)$", r"\1", x)
                   if re.match(r"^#(\w+) = ", x) and x[1:].split(" ")[0] not in set_here
                   else x for x in lines]
    conf = tmp_path / f"{name}.conf"
    conf.write_text("\n".join(uncommented) + "\n")
    r2 = check(DAEMONS[name], conf, machine)
    assert r2.rc == 0, r2.err
    changed = {k: (v, dump(r2)[k]) for k, v in settings.items() if dump(r2)[k] != v}
    assert not changed, f"{sample.name}: commented lines that are not the default: {changed}"


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_unit_runs_the_check_then_the_daemon(name):
    unit = (DEPLOY / "systemd" / f"{DAEMONS[name]}.service").read_text()
    conf = f"/etc/anchor/{name}.conf"
    assert f"ExecStartPre=/usr/local/sbin/{DAEMONS[name]} -n -c {conf}" in unit
    assert f"ExecStart=/usr/local/sbin/{DAEMONS[name]} -c {conf}" in unit
    for line in ("User=anchor", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "SystemCallFilter=@system-service"):
        assert line in unit, f"{DAEMONS[name]}.service lacks {line}"


def test_make_install_installs_samples_and_units(tmp_path):
    r = subprocess.run(["make", "--no-print-directory", "-C", str(anchorlib.SRC),
                        f"BUILD={anchorlib.BIN}", "SAN=1", f"DESTDIR={tmp_path}", "PREFIX=/usr/local",
                        "install"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    root = tmp_path / "usr/local"
    for name, daemon in DAEMONS.items():
        assert (root / "sbin" / daemon).exists()
        assert (root / "share/anchor" / f"{name}.conf.sample").read_text() == \
            (DEPLOY / f"{name}.conf.sample").read_text()
        assert (root / "lib/systemd/system" / f"{daemon}.service").exists()
    assert (root / "bin/anchorctl").exists() and (root / "bin/anchor-dns").exists()
    assert list((root / "share/anchor/sql").glob("*.sql"))


def shim(directory, name, body):
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_guide_install_commands_run_as_written(tmp_path):
    """docs/relay-postfix.md §2, run as written under a scratch root: make and make
    install (into the root's /usr/local), the directories, the sample copied from where
    make install put it and checked with -n, the unit enabled.  useradd, systemctl and
    install's -o/-g (root's business) are recorded by shims instead."""
    root, shims, log = tmp_path / "root", tmp_path / "shims", tmp_path / "calls"
    shims.mkdir()
    shim(shims, "make", f'exec /usr/bin/make --no-print-directory -C {anchorlib.SRC} '
                        f'BUILD={anchorlib.BIN} SAN=1 PREFIX={root}/usr/local "$@"')
    shim(shims, "useradd", f'echo "useradd $*" >> {log}')
    shim(shims, "systemctl", f'echo "systemctl $*" >> {log}')
    shim(shims, "install", 'args=""\nwhile [ $# -gt 0 ]; do case "$1" in -o|-g) shift 2;; '
                           '*) args="$args $1"; shift;; esac; done\nexec /usr/bin/install $args')
    r = doccmds.run("relay-postfix.md", "relay-install",
                    {"/etc/anchor": root / "etc/anchor", "/var/lib/anchor": root / "var/lib/anchor",
                     "/usr/local": root / "usr/local"},
                    env={"PATH": f"{shims}:{root}/usr/local/sbin:/usr/bin:/bin"}, timeout=600)
    assert r.rc == 0, r.out + r.err
    assert (root / "usr/local/sbin/anchor-relay").exists()
    assert (root / "usr/local/lib/systemd/system/anchor-relay.service").exists()
    assert (root / "etc/anchor/relay.conf").read_text() == \
        (DEPLOY / "relay.conf.sample").read_text()
    assert "hostname = mx.example.com" in r.out  # what -n printed
    calls = log.read_text()
    assert re.search(r"^useradd --system .* anchor$", calls, re.M), calls
    assert "systemctl enable --now anchor-relay" in calls
    unit = (DEPLOY / "systemd/anchor-relay.service").read_text()
    assert "User=anchor\n" in unit and "KillMode=mixed" in unit  # what the guide says
