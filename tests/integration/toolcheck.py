"""Every third-party tool the integration tests drive, and the features they use.

Checked once, when the pytest session starts (conftest.pytest_configure): a tool
that is missing or lacks a feature stops the whole run with one line naming the
Debian package to install, instead of tests that fail deep inside a fixture or
are quietly skipped.  A green run therefore means every test ran with the tools
it was written for, which is what `deploy/install-deps.sh` must provide.

Each check is (what, package, probe); probe() returns None when the tool is
usable, else a short reason.  Keep this list in step with install-deps.sh.
"""

import importlib
import os
import shutil
import subprocess


def _run(argv):
    """stdout+stderr of argv, or None when it cannot run at all."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.decode("utf-8", "replace")


def _command(name, *paths):
    """A probe: the command is on PATH (or at one of paths) and executable."""
    def probe():
        found = shutil.which(name) or next((p for p in paths if os.access(p, os.X_OK)), None)
        return None if found else f"`{name}` not found"
    return probe


def _module(name):
    def probe():
        try:
            importlib.import_module(name)
        except ImportError as e:
            return f"python3 cannot import {name} ({e})"
        return None
    return probe


def _swaks_feature(feature):
    """swaks prints '=== <feature> supported' or '*** <feature> not available: ...'."""
    def probe():
        out = _run([shutil.which("swaks") or "/usr/bin/swaks", "--support"])
        if out is None:
            return "`swaks` not found"
        for line in out.splitlines():
            if line.startswith("===") and feature in line and "supported" in line:
                return None
            if line.startswith("***") and feature in line:
                return f"swaks: {line[4:].strip()}"
        return f"swaks --support does not mention {feature}"
    return probe


def _curl_https():
    out = _run(["curl", "-V"])
    if out is None:
        return "`curl` not found"
    protocols = next((ln for ln in out.splitlines() if ln.startswith("Protocols:")), "")
    return None if " https" in protocols else "curl was built without HTTPS"


def _postgresql_server():
    base = "/usr/lib/postgresql"
    if os.path.isdir(base):
        for v in os.listdir(base):
            if os.access(os.path.join(base, v, "bin", "initdb"), os.X_OK):
                return None
    return "no initdb under /usr/lib/postgresql"


CHECKS = [
    ("swaks", "swaks", _command("swaks", "/usr/bin/swaks")),
    ("swaks STARTTLS and TLS-wrapped AUTH", "libnet-ssleay-perl", _swaks_feature("TLS")),
    ("swaks AUTH PLAIN/LOGIN", "swaks", _swaks_feature("Basic AUTH")),
    ("openssl", "openssl", _command("openssl")),
    ("curl with HTTPS", "curl", _curl_https),
    ("kdig", "knot-dnsutils", _command("kdig")),
    ("ldns-keygen / ldns-signzone", "ldnsutils", _command("ldns-signzone")),
    ("nsd", "nsd", _command("nsd", "/usr/sbin/nsd")),
    ("certbot", "certbot", _command("certbot")),
    ("certbot's RFC 2136 plugin", "python3-certbot-dns-rfc2136",
     _module("certbot_dns_rfc2136")),
    ("knotd", "knot", _command("knotd", "/usr/sbin/knotd")),
    ("postfix", "postfix", _command("postfix", "/usr/sbin/postfix")),
    ("smtp-sink", "postfix", _command("smtp-sink", "/usr/sbin/smtp-sink")),
    ("smtp-source", "postfix", _command("smtp-source", "/usr/sbin/smtp-source")),
    ("opendkim", "opendkim", _command("opendkim", "/usr/sbin/opendkim")),
    ("hashcash", "hashcash", _command("hashcash")),
    ("chromium (headless)", "chromium", _command("chromium")),
    ("psql", "postgresql-client", _command("psql")),
    ("PostgreSQL server (initdb)", "postgresql", _postgresql_server),
    ("python3 pytest", "python3-pytest", _module("pytest")),
    ("python3 pytest-xdist (run-integration.sh's workers)", "python3-pytest-xdist",
     _module("xdist")),
    ("python3 jwcrypto", "python3-jwcrypto", _module("jwcrypto")),
    ("python3 dkim (dkimpy)", "python3-dkim", _module("dkim")),
    ("python3 cryptography", "python3-cryptography", _module("cryptography")),
    ("python3 requests", "python3-requests", _module("requests")),
    ("python3 aiosmtpd", "python3-aiosmtpd", _module("aiosmtpd")),
]


def missing():
    """One line per unusable tool: 'what: reason (install the Debian package P)'."""
    lines = []
    for what, package, probe in CHECKS:
        why = probe()
        if why:
            lines.append(f"{what}: {why} (install the Debian package {package}; "
                         f"deploy/install-deps.sh names it)")
    return lines
