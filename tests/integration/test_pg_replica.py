"""Key-server nodes on a PostgreSQL primary and a streaming replica (anchor-keyserver(8)
REPLICAS, deploy/postgresql-replicas.md).

A primary and a replica made with `pg_basebackup -R` stream over Unix sockets, the
replica as the primary's synchronous standby (an acknowledged commit is on both), and
with recovery_min_apply_delay: it replays every commit well after the primary has
acknowledged it, so a node that read it naively would see old data.  Node A reads and
writes on the primary; node B writes to the primary and reads from the replica
(db_read_conninfo).  Both name both servers in libpq's multi-host form, so that after the
primary is killed and the replica promoted they find the new primary by themselves.

- B sees its own writes at once, and A's writes within a bound (polled).
- B's answer cache, retired by NOTIFY from the primary, never keeps an answer its
  lagging replica computed before the change.
- Reads the replica has caught up with are served by it.
- anchor-reputation, on the same pair, sees its own writes through its replica too.
- The primary is killed (pg_ctl stop -m immediate) while A enrols users, the replica is
  promoted (pg_ctl promote): the same processes go on, every enrolment acknowledged
  before the kill is readable through both nodes, and writes succeed again.

The clusters run as the postgres user (as deploy/pgcluster.sh does as root)."""

import http.client
import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import anchorlib
import dnsfixtures as dx
import ksfixtures as kf
import repfixtures as rx

APPLY_DELAY = "1500ms"  # the replica's lag: far above db_read_wait_ms below
READ_WAIT_MS = "50"
BOUND = 10.0  # seconds within which a change must show through the other node


def _pg_bin():
    base = Path("/usr/lib/postgresql")
    vers = sorted((d for d in base.iterdir() if (d / "bin" / "initdb").exists()),
                  key=lambda d: int(d.name) if d.name.isdigit() else 0)
    return vers[-1] / "bin"


PG_BIN = _pg_bin()


def _as_owner(argv, timeout=60):
    """Run a PostgreSQL program as the clusters' owner (postgres when we are root)."""
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, cwd="/",
                       timeout=timeout, env={**os.environ, "LC_ALL": "C"})
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


class Server:
    def __init__(self, root, name):
        self.dir = root / name
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log = self.dir / "postgresql.log"

    def conf(self, text):
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(text)

    def start(self):
        _as_owner([PG_BIN / "pg_ctl", "start", "-D", self.data, "-l", self.log, "-w",
                   "-t", "60"])

    def stop(self, mode="fast"):
        _as_owner([PG_BIN / "pg_ctl", "stop", "-D", self.data, "-m", mode, "-w", "-t", "60"])

    def running(self):
        owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*owner, str(PG_BIN / "pg_ctl"), "status", "-D", str(self.data)],
                              capture_output=True, cwd="/").returncode == 0

    def psql(self, sql, dbname="anchor"):
        r = subprocess.run([str(PG_BIN / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1",
                            "-h", str(self.sock), "-U", "postgres", "-d", dbname, "-c", sql],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"psql {sql}: {r.stderr}")
        return r.stdout.strip()


def _setup_dir(d):
    d.mkdir()
    (d / "sock").mkdir()
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres", str(d)], check=True)
    d.chmod(0o700)
    (d / "sock").chmod(0o755)


@pytest.fixture(scope="module")
def servers():
    root = anchorlib.mktemp_dir("anchor-pgr-")
    root.chmod(0o755)
    primary, replica = Server(root, "p"), Server(root, "r")
    _setup_dir(primary.dir)
    _setup_dir(replica.dir)
    try:
        # --no-sync: a machine crash during the test is not what is tested; the servers
        # themselves keep fsync on.
        _as_owner([PG_BIN / "initdb", "-D", primary.data, "-U", "postgres", "-E", "UTF8",
                   "--no-locale", "--auth-local=trust", "--auth-host=reject", "--no-sync"])
        primary.conf(f"""
listen_addresses = ''
unix_socket_directories = '{primary.sock}'
max_connections = 80
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 4
fsync = on
synchronous_commit = on
log_min_messages = warning
""")
        (primary.data / "pg_hba.conf").write_text(
            "local all all trust\nlocal replication all trust\n")
        primary.start()
        primary.psql("CREATE DATABASE anchor", dbname="postgres")
        _as_owner([PG_BIN / "pg_basebackup", "-h", primary.sock, "-U", "postgres", "-D",
                   replica.data, "-R", "-X", "stream", "-c", "fast", "--no-sync"])
        # The copy brings the primary's settings; the replica has its own socket, and once
        # promoted it has no standby of its own to wait for.
        replica.conf(f"""
unix_socket_directories = '{replica.sock}'
synchronous_standby_names = ''
recovery_min_apply_delay = '{APPLY_DELAY}'
""")
        replica.start()
        # Only now: with no standby yet, every commit would wait for one.
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'", dbname="postgres")
        primary.psql("SELECT pg_reload_conf()", dbname="postgres")
        ok = kf.poll(lambda: primary.psql(
            "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") == "1",
            timeout=30, interval=0.1)
        assert ok, "the replica did not become the primary's synchronous standby"
        yield primary, replica
    finally:
        for s in (replica, primary):
            if s.running():
                s.stop("immediate")
        anchorlib.remove_tree(root)


def _conninfo(*socks, attrs):
    return (f"host={','.join(str(s) for s in socks)} dbname=anchor user=postgres "
            f"connect_timeout=2 target_session_attrs={attrs}")


@pytest.fixture(scope="module")
def nodes(servers, tls, operator_token, request):
    primary, replica = servers
    write = _conninfo(primary.sock, replica.sock, attrs="read-write")
    made = []

    def node(extra):
        # Small pools: quicker to start, and enough for the few requests at a time here.
        ks = anchorlib.Keyserver(anchorlib.mktemp_dir("anchor-ks-"), write, tls,
                                 operator_token.hash,
                                 {"rate_limit": "0", "db_pool_size": "2", **extra})
        made.append(ks)
        return ks

    def both(fn):
        """fn on both nodes at once (starting and stopping take seconds each)."""
        errors = []

        def run(ks):
            try:
                fn(ks)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(ks,)) for ks in made]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def finish():
        both(lambda ks: ks.stop())
        for ks in made:
            anchorlib.remove_tree(ks.workdir)

    request.addfinalizer(finish)
    a = node({})
    b = node({"db_read_conninfo": _conninfo(replica.sock, primary.sock,
                                            attrs="prefer-standby"),
              "db_read_wait_ms": READ_WAIT_MS})
    both(lambda ks: ks.start())  # the migrations are safe to run from both at once
    return a, b


@pytest.fixture(scope="module")
def domain(nodes, operator_token):
    a, _ = nodes
    work = anchorlib.mktemp_dir("anchor-pgr-dom-")
    yield kf.register_domain(a, work, kf.new_domain_name("repl"), operator_token.token)
    anchorlib.remove_tree(work)


def _status(client, path):
    return client.get(path).status


def test_reads_from_the_replica(servers, nodes, domain):
    primary, replica = servers
    a, b = (n.client() for n in nodes)
    assert replica.psql("SELECT pg_is_in_recovery()") == "t"

    # B's own write, read back at once through B although its replica lags behind.
    obj, _ = kf.enroll_new(b, domain, f"bob@{domain.name}")
    r = b.get(f"/v1/keys/{obj['key_id']}")
    assert r.status == 200, f"node B did not see its own enrolment: {r.status} {r.body}"
    assert b.get(f"/v1/addresses/bob@{domain.name}").status == 200

    # A's write shows through B within the bound.
    obj_a, _ = kf.enroll_new(a, domain, f"alice@{domain.name}")
    path = f"/v1/keys/{obj_a['key_id']}"
    assert kf.poll(lambda: _status(b, path) == 200, timeout=BOUND), \
        "an enrolment through node A never showed through node B"

    # B keeps alice's answer in its cache; A revokes the key; B's next answers must not
    # come from its replica before the replica has the revocation.
    assert b.get(path).json()["status"] == "current"
    assert b.get(path).json()["status"] == "current"  # now from B's cache
    r = a.post(f"/v1/keys/{obj_a['key_id']}/revoke", {"reason": "keyCompromise"},
               token=domain.admin_token)
    assert r.status == 200, (r.status, r.body)
    assert kf.poll(lambda: b.get(path).json()["status"] == "revoked", timeout=BOUND), \
        "node B kept serving the key as current after its revocation through node A"
    # ... and stays right (nothing old was cached while the replica lagged).
    for _ in range(5):
        assert b.get(path).json()["status"] == "revoked"
    assert kf.metric(b, "anchor_db_replica_fallbacks_total") > 0

    # Once the replica has replayed everything, B's reads are served by it.
    target = primary.psql("SELECT pg_current_wal_lsn()")
    assert kf.poll(lambda: replica.psql(
        f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") == "t",
        timeout=BOUND, interval=0.1), "the replica never caught up"
    before = kf.metric(b, "anchor_db_replica_fallbacks_total")
    assert b.get(f"/v1/addresses/bob@{domain.name}").status == 200
    assert b.get(f"/v1/domains/{domain.name}").status == 200
    assert kf.metric(b, "anchor_db_replica_fallbacks_total") == before, \
        "a read the replica had caught up with went to the primary"


def test_reputation_reads_its_own_writes(servers, tls, operator_token):
    """anchor-reputation on the same pair: a GET from its lagging replica still sees the
    node's own write (the reporter it has just registered)."""
    primary, replica = servers
    world = SimpleNamespace(tls=tls, operator_token=operator_token, reps=[],
                            nsd=SimpleNamespace(resolver=f"127.0.0.1:{dx.free_port()}"))
    work = anchorlib.mktemp_dir("anchor-pgr-rep-")
    rep = rx.Reputation(world, work, _conninfo(primary.sock, replica.sock, attrs="read-write"),
                        extra={"db_read_conninfo": _conninfo(replica.sock, primary.sock,
                                                             attrs="prefer-standby"),
                               "db_read_wait_ms": READ_WAIT_MS, "db_pool_size": "2"})
    try:
        rep.start()
        c = rep.client()
        for i in range(3):
            name = kf.new_domain_name(f"rr{i}")
            r = c.post("/v1/reporters", {"domain": name}, token=operator_token.token)
            assert r.status == 201, (r.status, r.body)
            r = c.get(f"/v1/reporters/{name}")
            assert r.status == 200, f"the node did not see its own write: {r.status} {r.body}"
        assert kf.metric(c, "anchor_db_replica_fallbacks_total") > 0
    finally:
        rep.stop()
    anchorlib.remove_tree(work)


def test_failover_loses_nothing_acknowledged(servers, nodes, domain):
    primary, replica = servers
    ka, kb = nodes
    a, b = ka.client(), kb.client()
    pids = (ka.proc.pid, kb.proc.pid)
    acked = []  # key ids whose enrolment answered 201
    lock = threading.Lock()
    stop = threading.Event()

    def writer(client, tag):
        i = 0
        while not stop.is_set():
            i += 1
            address = f"w{tag}{i}@{domain.name}"
            try:
                r = client.post(f"/v1/domains/{domain.name}/tokens", {"address": address},
                                token=domain.admin_token)
                if r.status != 201:
                    time.sleep(0.05)
                    continue
                _, csr = kf.make_csr(address)
                r = kf.enroll(client, domain.name, r.json()["token"], csr)
            except (OSError, http.client.HTTPException):
                continue
            if r.status == 201:
                with lock:
                    acked.append((time.monotonic(), r.json()["key_id"]))
            else:
                time.sleep(0.05)

    threads = [threading.Thread(target=writer, args=(c, t)) for c, t in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    try:
        assert kf.poll(lambda: len(acked) >= 4, timeout=BOUND), "no enrolments succeeded"
        primary.stop("immediate")  # a crash: no shutdown checkpoint, nothing flushed late
        killed = time.monotonic()
        _as_owner([PG_BIN / "pg_ctl", "promote", "-D", replica.data, "-w", "-t", "60"])
        assert replica.psql("SELECT pg_is_in_recovery()") == "f"
        # Writes succeed again through both nodes, without restarting them.
        assert kf.poll(lambda: sum(1 for t, _ in acked if t > killed) >= 4,
                       timeout=BOUND + 20), "no enrolment succeeded after the promotion"
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert (ka.proc.pid, kb.proc.pid) == pids and ka.running() and kb.running()
    missing = [(c, k) for _, k in acked for c in (a, b)
               if c.get(f"/v1/keys/{k}").status != 200]
    assert not missing, f"acknowledged enrolments lost by the failover: {missing}"
    for c in (a, b):
        obj, _ = kf.enroll_new(c, domain, f"after{c.port}@{domain.name}")
        assert c.get(f"/v1/keys/{obj['key_id']}").status == 200
