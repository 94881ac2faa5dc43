"""Helpers and fixtures for the anchor-relay tests: third-party mail tools as real
processes on loopback ports, each in its own throwaway directory.

    SmtpSink(workdir)          Postfix's smtp-sink dumping every message to a file;
                               wait_for(n) -> [SinkMessage] (envelope + message)
    PySink(workdir, lmtp=)     the same from aiosmtpd, in-process: exact bytes (CRLF), LMTP
    Postfix(workdir, ...)      a throwaway Postfix instance (postfix -c DIR start) on its own
                               port, queue and log file; relayhost / transports / Maildir
                               domains / milters configurable
    OpenDkim(workdir, ...)     OpenDKIM as a milter on a loopback port with generated keys;
                               verification keys from NSD (dnsfixtures.Nsd) or a key file
    Relay(workdir, ...)        anchor-relay as a real process (see "The relay" below)
    smtp_source(port, ...)     Postfix's smtp-source; timing and exit status
    swaks(port, ...)           one swaks transaction; the replies it saw
    dkim_keys(dir, ...)        an rsa-sha256 or ed25519-sha256 key pair and its TXT record
    dkimpy_verify(msg, recs)   python3-dkim's verdict with keys from a dict, never DNS

Pytest fixtures (factories; everything they start is stopped at the end of the test,
and the logs of every process are printed when the test failed):

    smtp_sink(**kw)        -> SmtpSink (started)       py_sink(**kw)   -> PySink
    postfix_instance(**kw) -> Postfix (started)        opendkim_milter(**kw) -> OpenDkim
    make_relay(**settings) -> Relay (started unless start=False)
    mx_dns                 -> dnsfixtures.Nsd serving far.test with MX 127.0.0.1

A test module uses them with `from relayfixtures import *  # noqa: F401,F403` (pytest
finds fixtures imported into the module) or by importing the names it needs.

Only loopback addresses are used.  Postfix's programs refuse to run as root without a
user to become, so smtp-sink runs with -u postfix and the directories it writes belong
to postfix; the OpenDKIM milter runs as the opendkim user.
"""

import base64
import email.utils
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import anchorlib
import dnsfixtures as dx

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
SWAKS = shutil.which("swaks") or "/usr/bin/swaks"

free_port = dx.free_port


def relay_available():
    return os.access(anchorlib.BIN / "anchor-relay", os.X_OK)


def _chown(path, user):
    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def _workdir(prefix):
    d = anchorlib.mktemp_dir(prefix)
    d.chmod(0o755)  # postfix and opendkim users must reach their files below
    return d


def wait_greeting(port, timeout=20.0, proc=None, what="server"):
    """Wait until 127.0.0.1:port answers with a 220 greeting."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.settimeout(5)
                line = s.recv(512)
                if line.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                    except OSError:
                        pass
                    return
                last = line
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise AssertionError(f"{what} on port {port} gave no 220 greeting within {timeout}s "
                         f"(last: {last!r})")


def wait_listening(port, timeout=20.0, proc=None, what="server"):
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} does not listen on port {port} after {timeout}s")


def _stop_proc(proc, timeout=10.0):
    if proc is None or proc.poll() is not None:
        return proc.returncode if proc else None
    proc.terminate()
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


# --------------------------------------------------------------------------
# Received messages

def _addr(arg):
    """The address of a MAIL/RCPT argument: '<a@b> SIZE=1' -> 'a@b'."""
    m = re.match(r"\s*<([^>]*)>", arg)
    return m.group(1) if m else arg.split()[0] if arg.split() else ""


@dataclass
class SinkMessage:
    mail_from: str              # the envelope sender (no <>)
    rcpts: list                 # the envelope recipients, in order
    data: bytes                 # the message as received, CRLF line ends, dots unstuffed
    helo: str = ""
    client: str = ""
    proto: str = ""             # SMTP, ESMTP or LMTP
    path: Path = None           # the dump file, for smtp-sink
    mail_args: str = ""         # the whole MAIL argument (SIZE=, BODY=, ...)

    @property
    def text(self):
        return self.data.decode("utf-8", errors="replace")

    def headers(self):
        """[(name, value)] of the message header, unfolded, in order."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("utf-8", errors="replace")
        out = []
        for line in head.split("\r\n"):
            if line[:1] in (" ", "\t") and out:
                out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
            elif ":" in line:
                name, value = line.split(":", 1)
                out.append((name.strip(), value.strip()))
        return out

    def header(self, name):
        """Every value of the header field called name (any case), top to bottom."""
        return [v for n, v in self.headers() if n.lower() == name.lower()]

    @property
    def body(self):
        parts = self.data.split(b"\r\n\r\n", 1)
        return parts[1] if len(parts) == 2 else b""


def parse_sink_dump(raw):
    """One smtp-sink -d file: its X-* envelope lines, its three-line Received field,
    the message, then the empty line it appends (smtp-sink(1), DUMP FILE FORMAT)."""
    lines = raw.split(b"\n")
    env = {"X-Client-Addr": "", "X-Client-Proto": "", "X-Helo-Args": "", "X-Mail-Args": ""}
    rcpts = []
    i = 0
    while i < len(lines) and lines[i].startswith(b"X-"):
        name, _, value = lines[i].decode("utf-8", errors="replace").partition(":")
        value = value.strip()
        if name == "X-Rcpt-Args":
            rcpts.append(_addr(value))
        else:
            env[name] = value
        i += 1
    if i >= len(lines) or not lines[i].startswith(b"Received: "):
        raise ValueError("not an smtp-sink dump: no Received field after the envelope")
    i += 1
    while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
        i += 1
    msg = b"\n".join(lines[i:])
    if msg.endswith(b"\n\n"):
        msg = msg[:-1]  # the empty line smtp-sink adds after each message
    data = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return SinkMessage(mail_from=_addr(env["X-Mail-Args"]), rcpts=rcpts, data=data,
                       helo=env["X-Helo-Args"], client=env["X-Client-Addr"],
                       proto=env["X-Client-Proto"], mail_args=env["X-Mail-Args"])


# --------------------------------------------------------------------------
# smtp-sink

class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:<port>, one dump file per message (-d).

    dump=False throws messages away (benchmarks; count them with max_messages, which makes
    smtp-sink exit after that many).  lmtp=True speaks LMTP.  args: further smtp-sink options
    (e.g. ["-r", "RCPT"] to answer 4xx to every RCPT, ["-q", "DATA"] to hang up).
    """

    def __init__(self, workdir, port=None, dump=True, lmtp=False, args=(), max_messages=None,
                 backlog=256, hostname="sink.test"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.msgdir = self.dir / "msgs"
        self.log = self.dir / "smtp-sink.log"
        self.port = port or free_port()
        self.dump = dump
        self.lmtp = lmtp
        self.args = list(args)
        self.max_messages = max_messages
        self.backlog = backlog
        self.hostname = hostname
        self.proc = None

    @property
    def hop(self):
        """The anchor-relay next-hop syntax for this sink."""
        return f"{'lmtp' if self.lmtp else 'smtp'}:127.0.0.1:{self.port}"

    @property
    def postfix_nexthop(self):
        return f"{'lmtp' if self.lmtp else 'smtp'}:[127.0.0.1]:{self.port}"

    def argv(self):
        argv = [SMTP_SINK, "-u", "postfix", "-h", self.hostname]
        if self.lmtp:
            argv.append("-L")
        if self.dump:
            argv += ["-d", f"{self.msgdir}/%Y%m%d%H%M%S."]
        if self.max_messages:
            argv += ["-M", str(self.max_messages)]
        argv += self.args
        argv += [f"127.0.0.1:{self.port}", str(self.backlog)]
        return argv

    def start(self):
        self.msgdir.mkdir(exist_ok=True)
        _chown(self.msgdir, "postfix")
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=fh,
                                         stderr=fh)
        wait_listening(self.port, proc=self.proc, what="smtp-sink")
        return self

    def stop(self):
        _stop_proc(self.proc)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def files(self):
        return sorted(self.msgdir.iterdir()) if self.msgdir.is_dir() else []

    def count(self):
        return len(self.files())

    def messages(self):
        """Every complete message dumped so far, oldest first."""
        out = []
        for p in self.files():
            raw = p.read_bytes()
            if not raw.endswith(b"\n\n"):
                continue  # still being written
            m = parse_sink_dump(raw)
            m.path = p
            out.append(m)
        out.sort(key=lambda m: m.path.stat().st_mtime_ns)
        return out

    def wait_for(self, n, timeout=30.0, exact=False):
        """At least n complete messages (exactly n when exact: more fail); returns them all.
        A message counts once its file ended with the empty line and stopped growing."""
        deadline = time.monotonic() + timeout
        prev = None
        while True:
            msgs = self.messages()
            sizes = [(m.path.name, m.path.stat().st_size) for m in msgs]
            if len(msgs) >= n and len(msgs) == self.count() and sizes == prev:
                if exact and len(msgs) != n:
                    raise AssertionError(f"smtp-sink got {len(msgs)} messages, expected {n}")
                return msgs
            prev = sizes
            if time.monotonic() > deadline:
                raise AssertionError(f"smtp-sink got {len(msgs)} complete messages "
                                     f"({self.count()} files) within {timeout}s, expected {n}")
            time.sleep(0.1)

    def clear(self):
        for p in self.files():
            p.unlink()


class PySink:
    """An SMTP (or LMTP) server from aiosmtpd, in this process: exact message bytes as
    received (CRLF), for the cases smtp-sink's dump format loses (bare CR/LF, trailing
    blanks).  .code/.reply let a test force an answer to every DATA."""

    def __init__(self, workdir=None, port=None, lmtp=False):
        from aiosmtpd.controller import Controller
        from aiosmtpd.lmtp import LMTP
        from aiosmtpd.smtp import SMTP

        self.port = port or free_port()
        self.lmtp = lmtp
        self.msgs = []
        self.reply = None  # e.g. "451 4.3.0 try later" for every message
        self.cond = threading.Condition()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if sink.reply:
                    return sink.reply
                m = SinkMessage(mail_from=envelope.mail_from or "",
                                rcpts=list(envelope.rcpt_tos),
                                data=envelope.original_content or envelope.content,
                                helo=session.host_name or "", client=session.peer[0],
                                proto="LMTP" if sink.lmtp else "ESMTP",
                                mail_args=" ".join(envelope.mail_options))
                with sink.cond:
                    sink.msgs.append(m)
                    sink.cond.notify_all()
                if sink.lmtp:
                    return "\r\n".join(["250 2.0.0 OK"] * len(envelope.rcpt_tos))
                return "250 2.0.0 OK"

        cls = LMTP if lmtp else SMTP

        class Ctl(Controller):
            def factory(self):
                return cls(self.handler, decode_data=False, enable_SMTPUTF8=True,
                           hostname="pysink.test")

        self.ctl = Ctl(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def hop(self):
        return f"{'lmtp' if self.lmtp else 'smtp'}:127.0.0.1:{self.port}"

    def start(self):
        self.ctl.start()
        return self

    def stop(self):
        try:
            self.ctl.stop()
        except (AssertionError, RuntimeError):
            pass

    def messages(self):
        with self.cond:
            return list(self.msgs)

    def wait_for(self, n, timeout=30.0):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.msgs) >= n, timeout=timeout):
                raise AssertionError(f"sink got {len(self.msgs)} messages within {timeout}s, "
                                     f"expected {n}")
            return list(self.msgs)

    def text(self):
        return f"PySink on port {self.port}: {len(self.msgs)} messages\n"


# --------------------------------------------------------------------------
# Postfix

MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{listen} inet n - n - {smtpd_procs} smtpd
{extra_listen}pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


class Postfix:
    """A throwaway Postfix instance: its own config_directory (DIR/etc), queue_directory
    (DIR/spool), data_directory (DIR/data) and log file (DIR/maillog, through postlogd),
    smtpd on 127.0.0.1:<port> only, every loopback client allowed to relay.

    Where mail goes:
      relayhost="[127.0.0.1]:PORT"    everything not local (e.g. the relay's submission port)
      transports={"dom": "smtp:[127.0.0.1]:PORT"}   per-domain routes (inline: table)
      mailbox_domains=["dest.test"]   delivered by virtual(8) into Maildirs,
                                      DIR/mail/<domain>/<local>/ (see mailbox())
    milters=["inet:127.0.0.1:PORT"] are smtpd_milters (milter failure: tempfail).
    main={...} adds or overrides main.cf parameters; smtpd_args=["-o", "x=y"] go to smtpd.
    Without a relayhost, RCPT to any other domain gets 450 (no DNS is ever used).
    """

    def __init__(self, workdir, name="pf", port=None, relayhost=None, transports=None,
                 mailbox_domains=(), milters=(), main=None, smtpd_args=(), hostname=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.name = name
        self.etc = self.dir / "etc"
        self.spool = self.dir / "spool"
        self.data = self.dir / "data"
        self.maildir = self.dir / "mail"
        self.log = self.dir / "maillog"
        self.port = port or free_port()
        self.relayhost = relayhost
        self.transports = dict(transports or {})
        self.mailbox_domains = list(mailbox_domains)
        self.milters = list(milters)
        self.main = dict(main or {})
        self.smtpd_args = list(smtpd_args)
        self.hostname = hostname or f"{name}.mta.test"
        self.started = False
        self.master_pid = None

    # -- configuration

    def main_cf(self):
        pw = pwd.getpwnam("postfix")
        p = {
            "compatibility_level": "3.6",
            "config_directory": str(self.etc),
            "queue_directory": str(self.spool),
            "data_directory": str(self.data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "syslog_name": f"postfix-{self.name}-{self.port}",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.dir),
            "myhostname": self.hostname,
            "mydomain": "mta.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "",
            "relayhost": self.relayhost or "",
            # without a relayhost, mail for unrouted domains stays deferred: no DNS, no MX
            "default_transport": "smtp" if self.relayhost else "retry:4.4.1 no route here",
            "smtp_dns_support_level": "disabled",
            "smtp_host_lookup": "native",
            "lmtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            "biff": "no",
            "smtputf8_enable": "no",
            "message_size_limit": "52428800",
            "queue_run_delay": "5s",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "30s",
            "bounce_queue_lifetime": "1d",
            "maximal_queue_lifetime": "1d",
            "delay_warning_time": "0h",
            "smtpd_banner": "$myhostname ESMTP",
            "smtp_tls_security_level": "may",
            "smtp_tls_loglevel": "1",
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
            "milter_connect_timeout": "10s",
            "milter_content_timeout": "60s",
            "smtpd_milters": ", ".join(self.milters),
            "non_smtpd_milters": "",
        }
        if self.transports:
            p["transport_maps"] = "inline:{ " + ", ".join(
                f"{d}={t}" for d, t in self.transports.items()) + " }"
        if self.mailbox_domains:
            p.update({
                "virtual_mailbox_domains": ", ".join(self.mailbox_domains),
                "virtual_mailbox_base": str(self.maildir),
                # one Maildir (the trailing slash) for every recipient; virtual(8) adds
                # Delivered-To: <recipient as given, +extension kept>, see mailbox()
                "virtual_mailbox_maps": "static:all/",
                "virtual_uid_maps": f"static:{pw.pw_uid}",
                "virtual_gid_maps": f"static:{pw.pw_gid}",
                "virtual_minimum_uid": "1",
                "virtual_mailbox_limit": "0",
                "recipient_delimiter": "+",
            })
        p.update(self.main)
        return "".join(f"{k} = {v}\n" for k, v in p.items() if v is not None)

    def write_config(self):
        for d in (self.etc, self.spool, self.data, self.maildir):
            d.mkdir(parents=True, exist_ok=True)
        _chown(self.data, "postfix")
        _chown(self.maildir, "postfix")
        (self.etc / "main.cf").write_text(self.main_cf())
        extra = " ".join(self.smtpd_args)
        listen = f"127.0.0.1:{self.port}"
        master = MASTER_CF.format(listen=listen, smtpd_procs="-", extra_listen="")
        if extra:
            master = master.replace(f"{listen} inet n - n - - smtpd",
                                    f"{listen} inet n - n - - smtpd\n  {extra}")
        (self.etc / "master.cf").write_text(master)

    # -- life cycle

    def _postfix(self, *args, check=True, timeout=60):
        r = subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"postfix -c {self.etc} {' '.join(args)} failed "
                                 f"({r.returncode}):\n{r.stdout}{r.stderr}\n{self.text()}")
        return r

    def start(self):
        self.write_config()
        self._postfix("check")
        self._postfix("start")
        self.started = True
        try:
            self.master_pid = int((self.spool / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            self.master_pid = None
        try:
            wait_greeting(self.port, what=f"Postfix {self.name}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.text()}")
        return self

    def _master_alive(self):
        if not self.master_pid:
            return False
        try:
            with open(f"/proc/{self.master_pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"
        except OSError:
            return False

    def stop(self):
        if not self.started:
            return
        self._postfix("stop", check=False)
        deadline = time.monotonic() + 20
        while self._master_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._master_alive():
            self._postfix("abort", check=False)
            os.kill(self.master_pid, signal.SIGKILL)
        self.started = False

    def reload(self):
        self.write_config()
        self._postfix("reload")

    def flush(self):
        """Try every deferred message now (postfix flush)."""
        self._postfix("flush", check=False)

    def queue(self):
        """The queue listing (postqueue -p) as text; 'Mail queue is empty' when so."""
        r = subprocess.run(["postqueue", "-c", str(self.etc), "-p"], capture_output=True,
                           text=True, timeout=30)
        return r.stdout + r.stderr

    def queue_empty(self):
        return not any(p.is_file() for q in ("incoming", "active", "deferred", "maildrop",
                                              "hold") for p in (self.spool / q).rglob("*"))

    def wait_queue_empty(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not self.queue_empty():
            if time.monotonic() > deadline:
                raise AssertionError(f"Postfix {self.name} queue not empty after {timeout}s:\n"
                                     f"{self.queue()}\n{self.text()}")
            time.sleep(0.1)

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, pattern, timeout=30.0):
        """The first match of the regex pattern in the log, waiting up to timeout."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.text())
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not in Postfix {self.name}'s log "
                                     f"after {timeout}s:\n{self.text()}")
            time.sleep(0.1)

    def mailbox(self, address):
        """The messages virtual(8) delivered to address (Maildir new/ and cur/), as bytes:
        those whose Delivered-To is address exactly (any case, "+extension" included)."""
        md = self.maildir / "all"
        files = sorted([*(md / "new").glob("*"), *(md / "cur").glob("*")]) \
            if md.is_dir() else []
        want = address.lower()
        out = []
        for f in files:
            data = f.read_bytes()
            m = re.search(rb"^Delivered-To: *(\S+)", data, re.M | re.I)
            if m and m.group(1).decode(errors="replace").lower() == want:
                out.append(data)
        return out

    def wait_mailbox(self, address, n, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.mailbox(address)
            if len(msgs) >= n:
                return msgs
            if time.monotonic() > deadline:
                raise AssertionError(f"{address} has {len(msgs)} messages after {timeout}s, "
                                     f"expected {n}:\n{self.text()}")
            time.sleep(0.1)

    @property
    def nexthop(self):
        return f"smtp:127.0.0.1:{self.port}"


# --------------------------------------------------------------------------
# DKIM keys and verification with python3-dkim

@dataclass
class DkimKey:
    domain: str
    selector: str
    alg: str          # "rsa" or "ed25519"
    key_file: Path    # PKCS#8 PEM private key (0600)
    record: str       # the TXT record text: "v=DKIM1; k=...; p=..."
    raw_private: bytes = b""  # ed25519: the 32-byte seed, base64 (dkimpy's form)

    @property
    def name(self):
        return f"{self.selector}._domainkey.{self.domain}"

    def dkimpy_private(self):
        """The private key in the form dkim.sign() takes."""
        return self.raw_private if self.alg == "ed25519" else self.key_file.read_bytes()


def dkim_keys(directory, domain, selector, alg="rsa", bits=2048, owner=None):
    """A fresh key pair in directory/<selector>.<domain>.key and its DNS record."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if alg == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pub = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        raw = b""
    elif alg == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        raw = base64.b64encode(key.private_bytes(serialization.Encoding.Raw,
                                                 serialization.PrivateFormat.Raw,
                                                 serialization.NoEncryption()))
    else:
        raise ValueError(f"unknown DKIM algorithm {alg}")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path = d / f"{selector}.{domain}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    if owner:
        _chown(path, owner)
    record = f"v=DKIM1; k={alg}; p={base64.b64encode(pub).decode()}"
    return DkimKey(domain, selector, alg, path, record, raw)


def records_of(keys):
    """{"sel._domainkey.dom": record} for DkimKeys."""
    return {k.name: k.record for k in keys}


def dnsfunc_for(records):
    """A dkimpy dnsfunc answering TXT queries from records ({name: text}), never DNS."""
    recs = {k.lower().rstrip("."): v for k, v in records.items()}

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        v = recs.get(name.lower().rstrip("."))
        return v.encode() if v is not None else None

    return dnsfunc


def dkimpy_verify(msg, records, index=None):
    """python3-dkim's verdict on msg (bytes).  index=None: every signature must pass
    (and there must be one); else the index-th signature (0 = topmost)."""
    import dkim

    d = dkim.DKIM(msg)
    n = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
    if n == 0:
        return False
    idx = range(n) if index is None else [index]

    def one(i):
        try:
            return bool(d.verify(idx=i, dnsfunc=dnsfunc_for(records)))
        except dkim.DKIMException:  # e.g. "body hash mismatch" is raised, not returned
            return False

    return all(one(i) for i in idx)


def dkimpy_sign(msg, key, headers=None, canon=(b"relaxed", b"relaxed"), identity=None):
    """The DKIM-Signature field python3-dkim makes for msg with a DkimKey (bytes, CRLF)."""
    import dkim

    kw = {"canonicalize": canon, "include_headers": headers}
    if identity:
        kw["identity"] = identity.encode()
    if key.alg == "ed25519":
        kw["signature_algorithm"] = b"ed25519-sha256"
    return dkim.sign(msg, key.selector.encode(), key.domain.encode(), key.dkimpy_private(),
                     **kw)


def dns_zone_for(records, origin):
    """Zone body lines for records under origin (TXT split into 255-byte strings)."""
    o = origin.rstrip(".")
    lines = []
    for name, text in records.items():
        name = name.rstrip(".")
        if not (name == o or name.endswith("." + o)):
            continue
        rel = name[: -len(o) - 1] if name != o else "@"
        chunks = [text[i:i + 250] for i in range(0, len(text), 250)]
        lines.append(f"{rel} IN TXT " + " ".join(f'"{c}"' for c in chunks))
    return "\n".join(lines) + "\n"


def start_nsd(workdir, zones_records, mx_domains=()):
    """NSD serving {origin: {name: txt}} (plus an MX -> 127.0.0.1 for mx_domains); Nsd."""
    work = Path(workdir)
    zdir = work / "zones"
    zdir.mkdir(parents=True, exist_ok=True)
    zones = {}
    origins = set(zones_records) | set(mx_domains)
    for origin in origins:
        body = dns_zone_for(zones_records.get(origin, {}), origin)
        path = zdir / f"{origin}.zone"
        path.write_text(dx.zone_text(origin, body, mx=origin in mx_domains))
        zones[origin] = path
    return dx.Nsd(work / "nsd", zones).start()


# --------------------------------------------------------------------------
# OpenDKIM

class OpenDkim:
    """OpenDKIM as a milter on inet:<port>@127.0.0.1, running as the opendkim user.

    keys: DkimKeys to sign with (KeyTable/SigningTable: mail From an address in a key's
    domain is signed with every key of that domain, MultipleSignatures), all of one
    algorithm: OpenDKIM's SignatureAlgorithm is global, so rsa-sha256 and ed25519-sha256
    signatures on one message take two milters in a row (smtpd_milters = a, b).  Keys are
    PKCS#8 PEM (ed25519 included).  mode "sv", "s"
    or "v".  Mail from internal_hosts is signed, the rest verified (and an
    Authentication-Results field added).  Verification keys come from:
      dns="nsd"   an NSD (dnsfixtures.Nsd) serving records, reached through OpenDKIM's
                  Unbound (ResolverConfiguration with a stub zone per domain)
                  (OpenDKIM re-reads that file in every milter thread and libunbound's
                  parser is not thread-safe: keep to a few sessions at a time)
      dns="file"  OpenDKIM's TestPublicKeys file (any concurrency)
    records: {name: txt} to publish (default: the keys' own records).
    """

    def __init__(self, workdir, keys=(), mode="sv", internal_hosts="127.0.0.1",
                 records=None, dns="nsd", port=None, extra=None, authserv_id="opendkim.test"):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)
        self.keys = list(keys)
        algs = {k.alg for k in self.keys}
        if len(algs) > 1:
            # SignatureAlgorithm is global: an ed25519 key under rsa-sha256 signs nothing
            raise ValueError("one OpenDKIM signs with one algorithm: chain two milters")
        self.algorithm = algs.pop() if algs else "rsa"
        self.mode = mode
        self.internal_hosts = internal_hosts
        self.records = dict(records if records is not None else records_of(self.keys))
        self.dns = dns
        self.port = port or free_port()
        self.extra = dict(extra or {})
        self.authserv_id = authserv_id
        self.conf = self.dir / "opendkim.conf"
        self.log = self.dir / "opendkim.log"
        self.proc = None
        self.nsd = None

    @property
    def milter(self):
        """The Postfix smtpd_milters entry."""
        return f"inet:127.0.0.1:{self.port}"

    def _resolver(self, lines):
        if self.dns == "file":
            tk = self.dir / "testkeys"
            tk.write_text("".join(f"{n} {t}\n" for n, t in self.records.items()))
            lines.append(f"TestPublicKeys {tk}")
            return
        zones = {}
        for name, text in self.records.items():
            dom = name.split("._domainkey.", 1)[-1]
            zones.setdefault(dom, {})[name] = text
        if not zones:
            return
        self.nsd = start_nsd(self.dir / "dns", zones)
        ub = self.dir / "unbound.conf"
        text = ["server:", "    do-not-query-localhost: no", "    verbosity: 0",
                "    module-config: \"iterator\""]
        # Unbound answers special-use names (test., invalid., ...) itself unless told not to
        for tld in sorted({dom.rstrip(".").rsplit(".", 1)[-1] for dom in zones}):
            text.append(f"    local-zone: \"{tld}.\" nodefault")
        for dom in zones:
            text += ["stub-zone:", f"    name: \"{dom}\"",
                     f"    stub-addr: 127.0.0.1@{self.nsd.port}"]
        ub.write_text("\n".join(text) + "\n")
        lines.append(f"ResolverConfiguration {ub}")

    def write_config(self):
        keytable = self.dir / "KeyTable"
        signtable = self.dir / "SigningTable"
        keydir = self.dir / "keys"
        keydir.mkdir(exist_ok=True)
        kt, st = [], []
        for k in self.keys:
            # OpenDKIM's own copy, owned by its user (it refuses keys others could read)
            mine = keydir / f"{k.selector}.{k.domain}.key"
            shutil.copyfile(k.key_file, mine)
            os.chmod(mine, 0o600)
            _chown(mine, "opendkim")
            label = f"{k.selector}-{k.domain}"
            kt.append(f"{label} {k.domain}:{k.selector}:{mine}\n")
            st.append(f"*@{k.domain} {label}\n")
        keytable.write_text("".join(kt))
        signtable.write_text("".join(st))
        lines = [
            f"Socket inet:{self.port}@127.0.0.1",
            f"PidFile {self.dir}/opendkim.pid",
            "UserID opendkim",
            "Syslog no",
            f"Mode {self.mode}",
            "Canonicalization relaxed/relaxed",
            f"InternalHosts {self.internal_hosts}",
            "MultipleSignatures yes",
            "RequireSafeKeys no",
            "AlwaysAddARHeader yes",
            f"AuthservID {self.authserv_id}",
            f"SignatureAlgorithm {self.algorithm}-sha256",
            "On-Default accept",
            "On-BadSignature accept",
            "On-DNSError tempfail",
            "On-NoSignature accept",
            "DNSTimeout 5",
        ]
        if self.keys:
            lines += [f"KeyTable refile:{keytable}", f"SigningTable refile:{signtable}"]
        self._resolver(lines)
        lines += [f"{k} {v}" for k, v in self.extra.items()]
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self):
        self.write_config()
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen([OPENDKIM, "-f", "-x", str(self.conf)],
                                         stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
        try:
            wait_listening(self.port, proc=self.proc, what="opendkim")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.text()}")
        return self

    def stop(self):
        _stop_proc(self.proc)
        self.proc = None
        if self.nsd:
            self.nsd.stop()
            self.nsd = None

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# --------------------------------------------------------------------------
# The relay

class Relay:
    """anchor-relay as a real process, driven as its man page says:

      anchor-relay -c FILE            config: "name = value" lines, the names being the fields
                                      of struct relay_settings (relay/relay.h)
      port_file                       written once every listener is bound: lines
                                      "inbound=N", "submission=N", "control=N" (a disabled
                                      listener's line absent or 0)
      SIGTERM                         clean stop, exit status 0
      SIGKILL, then start again       nothing accepted is lost (state_dir keeps the queue)

    The listeners get fixed free ports chosen here (so a restart comes back on the same
    ones) unless the settings name them.  The control API is off unless control=True
    (then on a free port, with the TLS certificate).  stderr goes to WORK/relay.log,
    which is checked for sanitizer reports at stop.  Generated DKIM keys: sign_domains
    ({"x.test": "rsa", "y.test": "ed25519"}) makes a key per domain (the signer holds one
    per domain), selector "<alg>sel", listed in signing_keys; .keys and .records() give
    them to verifiers.
    """

    def __init__(self, workdir, tls=None, sign_domains=None, control=False, **settings):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "relay.conf"
        self.port_file = self.dir / "ports"
        self.log = self.dir / "relay.log"
        self.state_dir = self.dir / "state"
        self.keydir = self.dir / "keys"
        self.keys = []
        for dom, algs in (sign_domains or {}).items():
            for alg in ([algs] if isinstance(algs, str) else algs):
                self.keys.append(dkim_keys(self.keydir, dom, f"{alg}sel", alg))
        self.ports = {"inbound": free_port(), "submission": free_port(),
                      "control": free_port() if control else 0}
        self.params = {
            "hostname": "relay.test",
            "inbound_listen": f"127.0.0.1:{self.ports['inbound']}",
            "submission_listen": f"127.0.0.1:{self.ports['submission']}",
            "control_listen": f"127.0.0.1:{self.ports['control']}" if control else "",
            "state_dir": str(self.state_dir),
            "local_domains": "dest.test",
            "port_file": str(self.port_file),
            "log_level": "debug",
            "syslog": "no",
            "connect_timeout": "5s",
            "backoff_base": "1s",
            "backoff_max": "5s",
            "lookup_timeout_ms": "2000",
        }
        if tls is not None:
            self.params["tls_cert_file"] = str(tls.cert)
            self.params["tls_key_file"] = str(tls.key)
        if self.keys:
            self.params["signing_keys"] = ",".join(
                f"{k.domain}:{k.selector}:{k.key_file}" for k in self.keys)
        self.tls = tls
        self.params.update({k: (str(v) if v is not None else None) for k, v in settings.items()})
        self.proc = None
        self._fh = None
        self.starts = 0

    # -- configuration and life cycle

    def write_config(self):
        lines = ["# written by tests/integration/relayfixtures.py"]
        lines += [f"{k} = {v}" for k, v in self.params.items() if v is not None]
        self.conf.write_text("\n".join(lines) + "\n")

    def read_ports(self):
        """{"inbound": N, ...} from the port file, or None while incomplete."""
        try:
            text = self.port_file.read_text()
        except FileNotFoundError:
            return None
        got = {}
        for tok in text.split():
            k, _, v = tok.partition("=")
            if v.isdigit():
                got[k.strip()] = int(v)
        need = [s for s in ("inbound", "submission", "control")
                if self.params.get(f"{s}_listen")]
        if not all(got.get(s, 0) > 0 for s in need):
            return None
        return got

    def start(self, args=()):
        assert self.proc is None, "already running"
        self.write_config()
        self.port_file.unlink(missing_ok=True)
        env = dx.clean_env()
        env.update(anchorlib.SANITIZER_ENV)
        self._fh = open(self.log, "a")
        self._fh.write(f"--- start {self.starts} {time.strftime('%H:%M:%S')}\n")
        self._fh.flush()
        offset = self.log.stat().st_size
        self.starts += 1
        self.proc = subprocess.Popen([str(anchorlib.binary("anchor-relay")), "-c",
                                      str(self.conf), *args], stdin=subprocess.DEVNULL,
                                     stdout=self._fh, stderr=self._fh, env=env)
        deadline = time.monotonic() + anchorlib.START_TIMEOUT
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                self._close()
                raise AssertionError(f"anchor-relay exited with status {rc} at start:\n"
                                     f"{self.text()[offset:]}")
            got = self.read_ports()
            if got:
                self.ports.update(got)
                return self
            time.sleep(0.05)
        self.kill(signal.SIGKILL)
        raise AssertionError(f"anchor-relay did not write {self.port_file} within "
                             f"{anchorlib.START_TIMEOUT}s:\n{self.text()[offset:]}")

    def _close(self):
        if self._fh:
            self._fh.close()
            self._fh = None

    def kill(self, sig=signal.SIGKILL, timeout=anchorlib.STOP_TIMEOUT):
        """Send sig and wait for the exit; returns the exit status (-sig when killed)."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self._close()
        self._wait_signer_gone()
        return rc

    def _wait_signer_gone(self, timeout=10.0):
        """The signer exits when its parent's end of the pipe closes; wait for that so a
        restart does not meet the old signer's socket."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [p for p in self._children_named() if p]
            if not alive:
                return
            time.sleep(0.05)

    def _children_named(self):
        """pids of processes still running our config (the signer's command line is ours)."""
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if str(self.conf).encode() in cmd and stat.split(")")[-1].split()[0] != "Z":
                out.append(int(d.name))
        return out

    def stop(self, check=True):
        """SIGTERM and wait; with check, exit status 0 and no sanitizer report required."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=anchorlib.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self._close()
            raise AssertionError(f"anchor-relay ignored SIGTERM for {anchorlib.STOP_TIMEOUT}s:"
                                 f"\n{self.text()}")
        self.proc = None
        self._close()
        self._wait_signer_gone()
        if check:
            bad = anchorlib.sanitizer_report(self.text())
            if bad:
                raise AssertionError(f"sanitizer report from anchor-relay: {bad}\n{self.text()}")
            if rc != 0:
                raise AssertionError(f"anchor-relay exited with status {rc} after SIGTERM:\n"
                                     f"{self.text()}")
        return rc

    def restart(self, sig=signal.SIGTERM):
        """Stop (SIGTERM, checked) or kill with sig, then start again on the same ports."""
        if sig == signal.SIGTERM:
            self.stop()
        else:
            self.kill(sig)
        return self.start()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- addresses and the state on disk

    @property
    def inbound_port(self):
        return self.ports["inbound"]

    @property
    def submission_port(self):
        return self.ports["submission"]

    @property
    def control_port(self):
        return self.ports.get("control", 0)

    @property
    def control_url(self):
        return f"https://127.0.0.1:{self.control_port}"

    def spool_files(self, side="out"):
        """Files under state_dir/spool/<side> (the durable queue), recursively."""
        d = self.state_dir / "spool" / side
        return sorted(p for p in d.rglob("*") if p.is_file()) if d.is_dir() else []

    def records(self):
        return records_of(self.keys)


# --------------------------------------------------------------------------
# Clients: smtp-source and swaks

@dataclass
class SourceResult:
    rc: int
    out: str
    err: str
    seconds: float
    argv: list = field(default_factory=list)


def smtp_source(port, count=1, sessions=1, size=None, sender="from@x.test",
                rcpt="to@dest.test", file=None, rcpts=1, helo="client.test", subject=None,
                lmtp=False, extra=(), timeout=600):
    """Run smtp-source against 127.0.0.1:port; count messages over sessions parallel
    sessions, size bytes of body each (or the message in file: -F), rcpts recipients each.
    smtp-source exits non-zero at the first reply it did not expect."""
    argv = [SMTP_SOURCE, "-s", str(sessions), "-m", str(count), "-f", sender, "-t", rcpt,
            "-M", helo]
    if size is not None:
        argv += ["-l", str(size)]
    if file is not None:
        argv += ["-F", str(file)]
    if rcpts > 1:
        argv += ["-r", str(rcpts)]
    if subject:
        argv += ["-S", subject]
    if lmtp:
        argv.append("-L")
    argv += list(extra)
    argv.append(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return SourceResult(r.returncode, r.stdout, r.stderr, time.monotonic() - t0, argv)


def message_file(path, sender="from@x.test", to="to@dest.test", size=4096, subject="bench"):
    """A pre-formatted message for smtp-source -F: From/To/Subject/Date/Message-ID and a
    body of printable lines adding up to about size bytes.  LF line ends (smtp-source adds
    the CRLF)."""
    line = "The quick brown fox jumps over the lazy dog; 0123456789 abcdefghij.\n"
    body = (line * (size // len(line) + 1))[:size]
    body = body[: body.rfind("\n") + 1]
    head = (f"From: <{sender}>\nTo: <{to}>\nSubject: {subject}\n"
            f"Date: {email.utils.formatdate()}\n"
            f"Message-ID: <{time.time_ns()}.bench@{sender.split('@')[-1]}>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n")
    Path(path).write_text(head + body)
    return Path(path)


@dataclass
class SwaksResult:
    rc: int
    out: str
    err: str

    def replies(self):
        """Every server reply line swaks printed ('<-  250 ...' and '<** 5xx ...')."""
        return [re.sub(r"^<[-~*]+\s+", "", ln) for ln in self.out.splitlines()
                if re.match(r"^<[-~*]+ ", ln)]

    def last_code(self):
        """The code of the reply to the message (the last before QUIT's 221), or None."""
        codes = [int(r[:3]) for r in self.replies() if r[:3].isdigit()]
        codes = [c for c in codes if c != 221] or codes
        return codes[-1] if codes else None


def swaks(port, sender="alice@x.test", to="bob@dest.test", data=None, helo="client.test",
          tls=False, headers=(), body=None, lmtp=False, extra=(), timeout=60):
    """One swaks transaction against 127.0.0.1:port.  data: a whole message (bytes or
    str, CRLF, as it should arrive: the final line end is the one before the dot);
    otherwise swaks makes one (with headers and body)."""
    argv = [SWAKS, "--server", f"127.0.0.1:{port}", "--from", sender, "--helo", helo,
            "--timeout", "30"]
    argv += ["--to", to if isinstance(to, str) else ",".join(to)]
    if lmtp:
        argv += ["--protocol", "LMTP"]
    if tls:
        argv.append("--tls")
    for h in headers:
        argv += ["--add-header", h]
    stdin = None
    if data is not None:
        argv += ["--data", "-"]
        stdin = data.encode() if isinstance(data, str) else data
        # swaks sends CRLF "." CRLF after the data: without this, one more empty line
        if stdin.endswith(b"\r\n"):
            stdin = stdin[:-2]
        elif stdin.endswith(b"\n"):
            stdin = stdin[:-1]
    elif body is not None:
        argv += ["--body", body]
    argv += list(extra)
    r = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
    return SwaksResult(r.returncode, r.stdout.decode(errors="replace"),
                       r.stderr.decode(errors="replace"))


# --------------------------------------------------------------------------
# pytest fixtures

class _Owned:
    """What one test started: stopped at teardown, logs printed when the test failed."""

    def __init__(self, request, prefix):
        self.request = request
        self.failed_before = request.session.testsfailed
        self.items = []
        self.dirs = []
        self.prefix = prefix

    def workdir(self):
        d = _workdir(self.prefix)
        self.dirs.append(d)
        return d

    def add(self, item):
        self.items.append(item)
        return item

    def finish(self):
        # the call phase's report is logged before teardown: a failure has been counted
        failed = self.request.session.testsfailed > self.failed_before
        errors = []
        for it in reversed(self.items):
            try:
                it.stop()
            except AssertionError as e:
                errors.append(str(e))
        if failed or errors:
            for it in self.items:
                text = it.text()
                if text:
                    sys.stderr.write(f"\n----- {type(it).__name__} log ({getattr(it, 'dir', '')})"
                                     f" -----\n{text[-20000:]}\n")
        if not failed and not errors:
            for d in self.dirs:
                anchorlib.remove_tree(d)  # kept for inspection when something failed
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def smtp_sink(request):
    """Factory: smtp_sink(dump=True, lmtp=False, args=(), max_messages=None) -> SmtpSink."""
    own = _Owned(request, "anchor-sink-")
    request.addfinalizer(own.finish)

    def factory(**kw):
        return own.add(SmtpSink(own.workdir(), **kw)).start()

    return factory


@pytest.fixture
def py_sink(request):
    """Factory: py_sink(lmtp=False) -> PySink (aiosmtpd, exact bytes)."""
    own = _Owned(request, "anchor-pysink-")
    request.addfinalizer(own.finish)

    def factory(**kw):
        return own.add(PySink(**kw)).start()

    return factory


@pytest.fixture
def mx_dns(request):
    """NSD serving far.test, whose MX is 127.0.0.1 (dnsfixtures.zone_text): a relay made
    with dns_server=mx_dns.resolver and smtp_port=<a sink's port> delivers far.test's mail
    to that sink."""
    work = anchorlib.mktemp_dir("anchor-mxnsd-")
    zone = work / "far.test.zone"
    zone.write_text(dx.zone_text("far.test", ""))
    n = dx.Nsd(work / "nsd", {"far.test": zone}).start()

    def finish():
        n.stop()
        anchorlib.remove_tree(work)

    request.addfinalizer(finish)
    return n


@pytest.fixture
def postfix_instance(request):
    """Factory: postfix_instance(name=, relayhost=, transports=, mailbox_domains=, milters=,
    main=, smtpd_args=) -> a started Postfix."""
    own = _Owned(request, "anchor-pf-")
    request.addfinalizer(own.finish)
    names = []

    def factory(name=None, **kw):
        name = name or f"pf{len(names)}"
        names.append(name)
        return own.add(Postfix(own.workdir(), name=name, **kw)).start()

    return factory


@pytest.fixture
def opendkim_milter(request):
    """Factory: opendkim_milter(keys=[DkimKey], mode="sv", internal_hosts=, records=,
    dns="nsd"|"file") -> a started OpenDkim.  make_keys(domain, alg) -> DkimKey helps."""
    own = _Owned(request, "anchor-odkim-")
    request.addfinalizer(own.finish)

    def factory(**kw):
        return own.add(OpenDkim(own.workdir(), **kw)).start()

    def make_keys(domain, alg="rsa", selector=None):
        d = own.workdir()
        return dkim_keys(d, domain, selector or f"od{alg}", alg)

    factory.make_keys = make_keys
    return factory


@pytest.fixture
def make_relay(tls, request):
    """Factory: make_relay(start=True, sign_domains={dom: [algs]}, control=False,
    **settings) -> Relay; every one stopped (and checked) at the end."""
    if not relay_available():
        pytest.skip(f"{anchorlib.BIN}/anchor-relay is not built")
    own = _Owned(request, "anchor-relay-")
    request.addfinalizer(own.finish)

    def factory(start=True, **kw):
        r = own.add(Relay(own.workdir(), tls=tls, **kw))
        return r.start() if start else r

    return factory
