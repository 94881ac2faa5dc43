"""A DNSSEC chain of trust from a test root, for the validation tests: a root zone
"." with its own KSK and ZSK, top-level zones delegated from it with DS, and
child zones delegated below those, all signed with ldns-signzone and served by
one NSD on a loopback port (NSD answers a DS query from the parent's zone and
the rest from the child's, as the resolvers discovery asks would).

    Zone(name, body, signing=..., ...)   what one zone is, and how it is broken
    build(workdir, tlds)                 sign bottom-up, start NSD; returns Chain

A signing is "nsec", "nsec3" (no opt-out), "nsec3-optout" or None (unsigned).
Breakages: ds="wrong" (the parent publishes the DS of another key), ds="none"
(no DS in the parent: an insecure delegation, proven by its NSEC/NSEC3),
ds="deleted" (the parent was signed with the DS, which was then removed from the
signed zone: its NSEC still says a DS exists), expired=True (RRSIGs that expired
yesterday), iterations=N (NSEC3 with N hash iterations).
"""

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import dnsfixtures as dx


@dataclass
class Zone:
    name: str                      # without the trailing dot; "" is the root
    body: str = ""                 # master-file lines after the SOA/NS boilerplate
    signing: str | None = "nsec"
    ds: str = "ok"                 # ok | wrong | none | deleted
    expired: bool = False
    iterations: int = 0            # NSEC3 hash iterations
    children: list = field(default_factory=list)


@dataclass
class Chain:
    nsd: dx.Nsd
    root_ds: Path        # the root KSK as DS: the trust anchor file (form 1)
    root_key: Path       # the root KSK as DNSKEY (form 2, as /usr/share/dns/root.key)
    zones: dict          # name -> signed (or plain) zone file

    @property
    def resolver(self):
        return self.nsd.resolver

    def stop(self):
        self.nsd.stop()


def _origin(name):
    return name.rstrip(".") + "." if name else "."


def _zone_text(z):
    o = _origin(z.name)
    ns = f"ns.{o}" if z.name else "ns.root-servers.test."
    head = (f"$ORIGIN {o}\n$TTL 300\n"
            f"@ IN SOA {ns} hostmaster.{o if z.name else 'test.'} 1 3600 600 86400 300\n"
            f"@ IN NS {ns}\n")
    if z.name:
        head += "ns IN A 127.0.0.1\n"
    return head + z.body


def _keygen(d, origin, ksk):
    args = ["ldns-keygen", "-a", "ECDSAP256SHA256"] + (["-k"] if ksk else []) + [origin]
    return dx._run(args, cwd=d).stdout.strip()


def _sign(d, z, text):
    """Sign z's text in directory d; returns (signed path, KSK DS text, KSK DNSKEY path)."""
    o = _origin(z.name)
    d.mkdir(parents=True, exist_ok=True)
    plain = d / "zone.unsigned"
    plain.write_text(text)
    signed = d / "zone.signed"
    if z.signing == "nsec3-optout":
        return _sign_optout(d, o, plain, signed)
    ksk, zsk = _keygen(d, o, True), _keygen(d, o, False)
    argv = ["ldns-signzone", "-f", signed, "-o", o]
    if z.signing in ("nsec3", "nsec3-optout"):
        argv += ["-n", "-t", str(z.iterations)]
    if z.expired:
        now = int(time.time())
        argv += ["-i", str(now - 10 * 86400), "-e", str(now - 86400)]
    dx._run(argv + [plain, ksk, zsk], cwd=d)
    return signed, (d / f"{ksk}.ds").read_text(), d / f"{ksk}.key"


def _sign_optout(d, origin, plain, signed):
    """NSEC3 with opt-out that leaves the unsigned delegations out of the chain (RFC 5155
    §6), as ldns-signzone -p does not: BIND's dnssec-signzone -A."""
    ksk = dx._run(["dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", "-f", "KSK", "-K", d,
                   origin]).stdout.strip()
    zsk = dx._run(["dnssec-keygen", "-q", "-a", "ECDSAP256SHA256", "-K", d,
                   origin]).stdout.strip()
    with open(plain, "a") as f:  # the DNSKEYs go into the zone that is signed
        f.write((d / f"{ksk}.key").read_text() + (d / f"{zsk}.key").read_text())
    dx._run(["dnssec-signzone", "-q", "-3", "-", "-A", "-H", "0", "-o", origin, "-f", signed,
             "-K", d, "-k", d / f"{ksk}.key", plain, d / f"{zsk}.key"], cwd=d)
    ds = dx._run(["dnssec-dsfromkey", "-2", d / f"{ksk}.key"]).stdout
    return signed, ds, d / f"{ksk}.key"


def _wrong_ds(d, z):
    """The DS of a KSK the child does not use."""
    other = d / "other"
    other.mkdir(parents=True, exist_ok=True)
    k = _keygen(other, _origin(z.name), True)
    return (other / f"{k}.ds").read_text()


def _make(zdir, z, files):
    """Sign z and its children (children first, their DS into z); returns z's DS text
    for its parent (or "")."""
    d = zdir / (z.name or "root")
    extra, deleted = "", []
    for c in z.children:
        ds = _make(zdir, c, files)
        extra += f"{c.name}. IN NS ns.{c.name}.\nns.{c.name}. IN A 127.0.0.1\n"
        if c.ds == "wrong":
            extra += _wrong_ds(d, c)
        elif c.ds in ("ok", "deleted"):
            extra += ds
        if c.ds == "deleted":
            deleted.append(c.name)
    text = _zone_text(z) + extra
    if z.signing is None:
        path = d / "zone.plain"
        d.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files[_origin(z.name)] = path
        return ""
    signed, ds, key = _sign(d, z, text)
    for name in deleted:
        # The DS (and its RRSIG) go, the NSEC/NSEC3 bitmap that lists DS stays.
        out = [l for l in signed.read_text().splitlines()
               if not re.match(rf"^{re.escape(name)}\.\s+\d+\s+IN\s+(DS|RRSIG\s+DS)\s", l)]
        signed.write_text("\n".join(out) + "\n")
    files[_origin(z.name)] = signed
    z.key_file = key
    return ds


def build(workdir, tlds):
    """The root zone with tlds (Zone objects with their children) delegated from it;
    NSD started on a free loopback port."""
    workdir = Path(workdir)
    zdir = workdir / "zones"
    root = Zone("", children=list(tlds))
    files = {}
    root_ds = _make(zdir, root, files)
    anchors = workdir / "root.ds"
    anchors.write_text(root_ds)
    key = workdir / "root.key"
    key.write_text(root.key_file.read_text())
    nsd = dx.Nsd(workdir / "nsd", files, root=False).start()
    return Chain(nsd, anchors, key, files)
