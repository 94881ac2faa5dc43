"""Helpers for the anchor-reputation tests (tests/integration/test_reputation_*.py).

A world of anchored reporter domains, built with the real programs: a key server,
`anchorctl domain init/register` and `anchorctl server issue --purpose signing` for each
domain, `anchor-dns records` for its zone, all served by NSD on a loopback port.  Reports
are signed here with python3-jwcrypto using the signing key anchorctl wrote, so the test
shares no signing code with the daemon.

    build_world(...)                 the key server, the domains and NSD
    Reputation(workdir, ...)         anchor-reputation as a real process
    signed_report(dom, **payload)    a JWS report by a domain's signing key
    post_report(rep, text, src)      POST /v1/reports from source address src (127.0.N.1)
    query(rep, **subjects)           GET /v1/query
    rep_snapshot(pg, conninfo)       digest of every rep_ table (changes-nothing checks)
"""

import http.client
import json
import os
import secrets
import signal
import ssl
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import routefixtures as rf

PARENT = "rep.test"
KEYS_HOST = f"keys.{PARENT}"
REP_TABLES = ("rep_reporters", "rep_reports", "rep_report_subjects", "rep_contrib",
              "rep_subject_scores", "rep_delist_requests", "rep_delist_events")


def zname(label):
    return f"{label}.{PARENT}"


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --------------------------------------------------------------------------
# The world: key server, anchored domains, NSD

class Reporter:
    """An anchored domain with a signing key (host reports.<domain>)."""

    def __init__(self, domain, base, src):
        self.domain = domain
        self.name = domain.name
        self.host = f"reports.{domain.name}"
        self.src = src  # the source address it reports from (its own /24)
        stem = base / f"{self.host}.signing"
        self.key = serialization.load_pem_private_key(Path(f"{stem}.key").read_bytes(), None)
        self.chain = [Path(f"{stem}.pem").read_text()] + _split_pem(
            Path(f"{stem}.chain.pem").read_text())


def _split_pem(text):
    out, cur = [], []
    for line in text.splitlines(keepends=True):
        cur.append(line)
        if line.startswith("-----END"):
            out.append("".join(cur))
            cur = []
    return out


def build_world(pg, db, operator_token, request, labels, extra_zone=None, legacy_zone="",
                mx_ip=None):
    """Register labels (each <label>.rep.test) on one key server, give each a signing key,
    publish their anchors in NSD.  extra_zone(label) -> extra zone lines for that label.
    Each domain's MX is mx.<domain> at its own address 127.0.N.1 (the same /24 as the
    source address it reports from), so that the service finds each reporter on a network
    of its own in DNS; mx_ip(label) -> another address ("": no MX, None: the default).  The key server
    (keys.rep.test, 127.0.0.1) is every domain's.  Domains "legacy" (no anchor;
    legacy_zone: more lines for it) and the parent zone are always there."""
    work = anchorlib.mktemp_dir("anchor-rep-")
    tls = dx.make_tls(work / "tls", [KEYS_HOST])
    ks = anchorlib.Keyserver(work / "ks", db, tls, operator_token.hash)
    w = SimpleNamespace(work=work, tls=tls, ks=ks, nsd=None, doms={}, reporters={},
                        reps=[], pg=pg, operator_token=operator_token)

    def finish():
        errors = []
        for r in w.reps:
            try:
                r.stop()
            except AssertionError as e:  # a sanitizer report must fail the run
                errors.append(str(e))
        if w.nsd:
            w.nsd.stop()
        ks.stop()
        if errors:
            raise AssertionError("\n\n".join(errors))
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    ks.start()
    base = work / "domains"
    zdir = work / "zones"
    zdir.mkdir()
    zones = {}
    for i, label in enumerate(labels):
        name = zname(label)
        d = kf.register_domain(ks, base, name, operator_token.token)
        kf.ctl_ok(ks, "server", "issue", f"reports.{name}", "--purpose", "signing", cwd=base)
        w.doms[label] = d
        w.reporters[label] = Reporter(d, base, f"127.0.{i + 1}.1")
        r = dx.anchor_dns("records", name, "-s", ks.base_url, "--cacert", tls.ca,
                          "--keyserver", f"{KEYS_HOST}:{ks.port}:10:10")
        assert r.rc == 0, r.err
        mx = mx_ip(label) if mx_ip else None
        mx = f"127.0.{i + 1}.1" if mx is None else mx
        body = r.out + (extra_zone(label) if extra_zone else "")
        if mx:
            body += f"@ IN MX 10 mx.{name}.\nmx IN A {mx}\n"
        zones[name] = zdir / f"{label}.zone"
        zones[name].write_text(dx.zone_text(name, body, mx=False))
    zones[PARENT] = zdir / "parent.zone"
    zones[PARENT].write_text(dx.zone_text(PARENT, "keys IN A 127.0.0.1\n", mx=False))
    zones[zname("legacy")] = zdir / "legacy.zone"
    zones[zname("legacy")].write_text(dx.zone_text(zname("legacy"),
                                                       "www IN A 127.0.0.1\n" + legacy_zone))
    w.nsd = dx.Nsd(work / "nsd", zones).start()
    return w


# --------------------------------------------------------------------------
# The daemon

class Reputation:
    """anchor-reputation on an ephemeral loopback port (HTTPS with the test CA)."""

    def __init__(self, world, workdir, db_conninfo, extra=None, env=None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tls = world.tls
        self.conf = self.workdir / "reputation.conf"
        self.port_file = self.workdir / "port"
        self.log = self.workdir / "reputation.log"
        self.params = {
            "listen_address": "127.0.0.1",
            "listen_port": "0",
            "port_file": str(self.port_file),
            "tls_cert_file": str(world.tls.cert),
            "tls_key_file": str(world.tls.key),
            "db_conninfo": db_conninfo,
            "sql_dir": str(anchorlib.SRC / "sql"),
            "operator_token_hash": world.operator_token.hash,
            "resolver": world.nsd.resolver,
            "cacert": str(world.tls.ca),
            "rate_limit": "0",
            "report_rate": "0",
            # the reporters here are seconds old: weigh them fully unless a test ramps
            "newcomer_ramp": "0",
            # ... and were all first seen together: no burst unless a test asks
            "burst_reporters": "0",
            "http_threads": "4",
            "log_level": "info",
        }
        self.params.update(extra or {})
        self.env = env or {}
        self.proc = None
        self.port = None
        self._fh = None
        world.reps.append(self)

    def start(self):
        lines = [f"{k} = {v}" for k, v in self.params.items() if v is not None]
        self.conf.write_text("\n".join(lines) + "\n")
        self.port_file.unlink(missing_ok=True)
        env = dx.clean_env(self.env)
        env.update(anchorlib.SANITIZER_ENV)
        self._fh = open(self.log, "a")
        offset = self.log.stat().st_size
        self.proc = subprocess.Popen([str(anchorlib.binary("anchor-reputation")), "-c",
                                      str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=self._fh, stderr=self._fh, env=env)
        deadline = time.monotonic() + anchorlib.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise AssertionError(f"anchor-reputation exited at start:\n"
                                     f"{self.stderr()[offset:]}")
            try:
                port = int(self.port_file.read_text().strip())
            except (FileNotFoundError, ValueError):
                port = None
            quiet = self.params.get("log_level") in ("warning", "error")
            if port and (quiet or "listening on" in self.stderr()[offset:]):
                self.port = port
                return self
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"anchor-reputation did not start:\n{self.stderr()}")

    def stderr(self):
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
            self.proc = None
            raise AssertionError(f"anchor-reputation ignored SIGTERM:\n{self.stderr()}")
        self.proc = None
        self._fh.close()
        bad = anchorlib.sanitizer_report(self.stderr())
        if bad:
            raise AssertionError(f"sanitizer report from anchor-reputation: {bad}\n"
                                 f"{self.stderr()}")
        if rc != 0:
            raise AssertionError(f"anchor-reputation exited {rc}:\n{self.stderr()}")

    @property
    def base_url(self):
        return f"https://127.0.0.1:{self.port}"

    def client(self):
        return anchorlib.Client(self.base_url, self.tls.ca)

    def connection(self, src=None):
        """A keep-alive HTTPS connection from source address src (default 127.0.0.1)."""
        ctx = ssl.create_default_context(cafile=str(self.tls.ca))
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=60,
                                           source_address=(src, 0) if src else None)


def request(rep, method, path, body=None, src=None, token=None, conn=None):
    own = conn is None
    c = conn or rep.connection(src)
    headers = {}
    if body is not None:
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return anchorlib.Response(r.status, {k.lower(): v for k, v in r.getheaders()},
                                  r.read())
    finally:
        if own:
            c.close()


# --------------------------------------------------------------------------
# Reports and queries

def report_payload(reporter, subjects, category="spam", id=None, observed=None,
                   verified=False, evidence=None, **extra):
    p = {"type": "anchor-report", "id": id or secrets.token_hex(8),
         "reporter": reporter if isinstance(reporter, str) else reporter.name,
         "category": category, "subjects": subjects,
         "observed": rfc3339(observed if observed is not None else time.time() - 60),
         "verified_identity": verified}
    if evidence is not None:
        p["evidence"] = evidence
    p.update(extra)
    return p


def sign(reporter, payload, key=None, chain=None):
    """The JWS of a report, signed by the reporter's signing key with x5c [leaf, issuer, root]."""
    return rf.sign(key or reporter.key, chain or reporter.chain, payload, "anchor-report+jws")


def signed_report(reporter, subjects, **kw):
    p = report_payload(reporter, subjects, **kw)
    return p, sign(reporter, p)


def post_report(rep, text, src=None, conn=None):
    return request(rep, "POST", "/v1/reports", text, src=src, conn=conn)


def report_ok(rep, reporter, subjects, conn=None, **kw):
    p, text = signed_report(reporter, subjects, **kw)
    r = post_report(rep, text, src=None if conn else reporter.src, conn=conn)
    assert r.status == 201, (r.status, r.body)
    return p


def report_evidence_id(rep, reporter, subjects, **kw):
    """Report like report_ok; the report's public evidence id from the answer."""
    p, text = signed_report(reporter, subjects, **kw)
    r = post_report(rep, text, src=reporter.src)
    assert r.status == 201, (r.status, r.body)
    return r.json()["evidence_id"]


def query(rep, **subjects):
    r = request(rep, "GET", "/v1/query?" + urlencode(subjects))
    assert r.status == 200, (r.status, r.body)
    return r.json()


def subject_of(answer, text):
    for s in answer["subjects"]:
        if s["subject"] == text:
            return s
    raise AssertionError(f"{text} not in {answer}")


def codes(reasons):
    return [r["code"] for r in reasons]


# --------------------------------------------------------------------------
# Database

def rep_snapshot(pg, conninfo):
    dbname = kf.dbname_of(conninfo)
    sql = " UNION ALL ".join(
        f"SELECT '{t}', count(*)::text || '|' || "
        f"md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM {t} x"
        for t in REP_TABLES)
    out = pg.psql(sql, dbname=dbname)
    return dict(line.split("|", 1) for line in out.strip().splitlines())


def psql(pg, conninfo, sql):
    return pg.psql(sql, dbname=kf.dbname_of(conninfo)).strip()


def bin_available():
    return os.access(anchorlib.BIN / "anchor-reputation", os.X_OK)
