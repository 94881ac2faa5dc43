"""DNS helpers for the anchor-dns integration tests: NSD on a random loopback
port, zones with SOA/NS boilerplate, signing with ldns-keygen/ldns-signzone,
and running anchor-dns.

    Nsd(workdir, zones, root=True) nsd -d with a generated nsd.conf (and an empty root
                                 zone: other names are NXDOMAIN); start()/stop()
    zone_text(origin, body)      a zone file: SOA, NS, then body
    sign_zone(dir, origin, text) KSK+ZSK (ECDSA P-256), ldns-signzone; returns SignedZone
    make_tls(dir, names)         a test CA and a key-server certificate for names
    anchor_dns(*args, env=...)   run the built anchor-dns
"""

import os
import random
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import anchorlib


def _listen_port_range():
    """Ports tests may listen on: below the kernel's ephemeral range, so that no outgoing
    connection (of any process) can take a port between its choice and its bind, and
    split between pytest-xdist workers, so that two workers never choose the same one."""
    try:
        eph_lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        eph_lo = 32768
    lo, hi = 10000, max(eph_lo - 1, 20000)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if worker.startswith("gw") and worker[2:].isdigit() and count > 1:
        span = (hi - lo + 1) // count
        lo += int(worker[2:]) * span
        hi = lo + span - 1
    return lo, hi


_handed_out = set()  # never the same port twice in one session


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (a small race with this worker's own
    later binds is acceptable in tests)."""
    lo, hi = _listen_port_range()
    for _ in range(500):
        port = random.randint(lo, hi)
        if port in _handed_out:
            continue
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            t.bind(("127.0.0.1", port))
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        _handed_out.add(port)
        return port
    raise AssertionError(f"no free port in {lo}-{hi}")


def closed_port():
    """A loopback port where nothing listens (UDP and TCP)."""
    return free_port()


def kdig_short(port, name, rtype="A"):
    """The +short answer lines of one UDP query to 127.0.0.1:port."""
    r = subprocess.run(["kdig", "@127.0.0.1", "-p", str(port), "+timeout=2", "+retry=0",
                        "+notcp", "+short", rtype, name],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def zone_text(origin, body, mx=True):
    o = origin.rstrip(".") + "."
    head = (f"$ORIGIN {o}\n$TTL 300\n"
            f"@ IN SOA ns.{o} hostmaster.{o} 1 3600 600 86400 300\n"
            f"@ IN NS ns.{o}\n"
            f"ns IN A 127.0.0.1\n")
    if mx:
        head += f"@ IN MX 10 mx1.{o}\nmx1 IN A 127.0.0.1\n"
    return head + body


@dataclass
class SignedZone:
    path: Path       # the signed zone file
    ds_file: Path    # KSK as DS  (trust anchor form 1)
    key_file: Path   # KSK as DNSKEY (trust anchor form 2)


def _run(argv, cwd=None, check=True):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd=cwd,
                       timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({r.returncode}):\n"
                             f"{r.stdout}{r.stderr}")
    return r


def sign_zone(directory, origin, text):
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    plain = d / f"{origin}.zone.unsigned"
    plain.write_text(text)
    ksk = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", "-k", origin], cwd=d).stdout.strip()
    zsk = _run(["ldns-keygen", "-a", "ECDSAP256SHA256", origin], cwd=d).stdout.strip()
    signed = d / f"{origin}.zone"
    _run(["ldns-signzone", "-f", str(signed), "-o", origin, str(plain), ksk, zsk], cwd=d)
    return SignedZone(signed, d / f"{ksk}.ds", d / f"{ksk}.key")


class Nsd:
    """NSD serving zones {origin: zone file path} on 127.0.0.1:<random port>; options:
    further server: settings, e.g. ["rrl-ratelimit: 200"]."""

    def __init__(self, workdir, zones, root=True, options=()):
        self.dir = Path(workdir)
        self.options = list(options)  # more "name: value" lines for the server: clause
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zones = dict(zones)
        if root and "." not in self.zones:
            # An empty root zone: a name outside the test's zones is NXDOMAIN, as a
            # recursive resolver answers for a name nobody registered, not REFUSED
            # (which the daemons rightly take as a resolver failure).
            path = self.dir / "root.zone"
            path.write_text("$ORIGIN .\n$TTL 300\n"
                            ". IN SOA localhost. hostmaster.localhost. 1 3600 600 86400 300\n"
                            ". IN NS localhost.\n")
            self.zones["."] = path
        self.port = None
        self.proc = None
        self.conf = self.dir / "nsd.conf"
        self.log = self.dir / "nsd.log"

    def write_config(self):
        d = self.dir
        lines = ["server:",
                 f"    ip-address: 127.0.0.1@{self.port}",
                 f"    port: {self.port}",
                 f"    zonesdir: \"{d}\"",
                 f"    pidfile: \"{d}/nsd.pid\"",
                 "    username: \"\"",
                 "    chroot: \"\"",
                 "    database: \"\"",
                 f"    zonelistfile: \"{d}/zone.list\"",
                 f"    xfrdfile: \"{d}/xfrd.state\"",
                 f"    xfrdir: \"{d}\"",
                 f"    logfile: \"{self.log}\"",
                 "    verbosity: 1",
                 "    server-count: 1",
                 "    hide-version: yes",
                 "    reuseport: no",
                 *[f"    {o}" for o in self.options],
                 "remote-control:",
                 "    control-enable: no"]
        for origin, path in self.zones.items():
            lines += ["zone:", f"    name: \"{origin}\"", f"    zonefile: \"{path}\""]
        self.conf.write_text("\n".join(lines) + "\n")
        r = _run(["nsd-checkconf", str(self.conf)], check=False)
        if r.returncode != 0:
            raise AssertionError(f"nsd-checkconf rejected {self.conf}:\n{r.stderr}")

    def start(self):
        self.port = free_port()
        self.write_config()
        self.proc = subprocess.Popen(["nsd", "-d", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))
        first = next(iter(self.zones))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nsd exited with {self.proc.returncode}:\n"
                                     f"{self.log.read_text()}")
            r = _run(["kdig", f"@127.0.0.1", "-p", str(self.port), "+timeout=1", "+retry=0",
                      "SOA", first], check=False)
            if "status: NOERROR" in r.stdout:
                return self
            time.sleep(0.1)
        self.stop()
        raise AssertionError(f"nsd did not answer within 20s:\n{self.log.read_text()}")

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


def make_tls(directory, names):
    """Like anchorlib.make_tls, with the key server certificate valid for names too."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    f = anchorlib.TlsFiles(d, d / "ca.pem", d / "ca.key", d / "server.pem", d / "server.key")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    anchorlib._openssl("req", "-x509", *ec, "-keyout", str(f.ca_key), "-out", str(f.ca),
                       "-days", "30", "-subj", "/CN=Anchormail DNS test CA",
                       "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    csr = d / "server.csr"
    anchorlib._openssl("req", "-new", *ec, "-keyout", str(f.key), "-out", str(csr),
                       "-subj", "/CN=localhost")
    san = ",".join(["IP:127.0.0.1", "DNS:localhost"] + [f"DNS:{n}" for n in names])
    ext = d / "server.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n")
    anchorlib._openssl("x509", "-req", "-in", str(csr), "-CA", str(f.ca), "-CAkey",
                       str(f.ca_key), "-CAcreateserial", "-out", str(f.cert), "-days", "30",
                       "-extfile", str(ext))
    for k in (f.ca_key, f.key):
        os.chmod(k, 0o600)
    return f


def clean_env(extra=None):
    """The environment without inherited ANCHOR_* settings, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")}
    env.update({k: str(v) for k, v in (extra or {}).items() if v is not None})
    return env


def anchor_dns(*args, env=None, timeout=60):
    """Run anchor-dns (sanitizer reports fail the test); returns anchorlib.Result."""
    argv = [anchorlib.binary("anchor-dns"), *args]
    full = clean_env(env)
    full.update(anchorlib.SANITIZER_ENV)
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=full,
                       timeout=timeout)
    bad = anchorlib.sanitizer_report(r.stderr)
    if bad:
        raise AssertionError(f"sanitizer report from anchor-dns: {bad}\n{r.stderr}")
    return anchorlib.Result(r.returncode, r.stdout, r.stderr)
