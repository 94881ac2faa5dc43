"""Fixtures shared by the integration tests.

    pg               session: a throwaway PostgreSQL cluster (deploy/pgcluster.sh); under
                     pytest-xdist each worker is a session of its own, with its own cluster
    db               module:  a fresh database in it; the value is its conninfo
    tls              session: test CA + key-server certificate (anchorlib.TlsFiles)
    operator_token   session: anchorlib.Token (token, hash)
    make_keyserver   module:  factory Keyserver(**overrides), each stopped and checked at the end
    keyserver        module:  one running key server on `db`
    client           module:  anchorlib.Client for `keyserver`
"""

import re
import secrets
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import anchorlib  # noqa: E402
import toolcheck  # noqa: E402


def pytest_configure(config):
    """Stop at once, with one line per tool, when a tool the tests drive is unusable.

    Under pytest-xdist the controller checks once; its workers do not repeat it.
    """
    config.addinivalue_line(
        "markers", "serial: runs alone, in run-integration.sh's second pass after the "
        "parallel one (a test whose outcome depends on having the machine's cores to itself)")
    if hasattr(config, "workerinput"):
        return
    lines = toolcheck.missing()
    if lines:
        pytest.exit("integration: the test tools are incomplete:\n  " + "\n  ".join(lines),
                    returncode=3)


# Files that take minutes (test_tls_policy's testssl scans) run first: pytest-xdist's
# loadfile hands out files in collection order, and one started last is what the
# other worker sits idle waiting for at the end of the run.
LONG_FILES = ("test_tls_policy.py",)


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name not in LONG_FILES)  # stable: else as found


@pytest.fixture(scope="session")
def pg(request):
    root = anchorlib.mktemp_dir("anchor-pg-")
    root.chmod(0o755)  # the server runs as the postgres user, which must reach root/pg
    cluster = anchorlib.PgCluster(root / "pg")

    def finish():
        cluster.stop()
        real = (root / "pg").resolve()  # pgcluster.sh may have put it elsewhere
        anchorlib.remove_tree(root)
        if real.is_dir() and real.name.startswith("anchormail-pg-"):
            anchorlib.remove_tree(real)

    request.addfinalizer(finish)
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def db(pg, request):
    base = re.sub(r"[^a-z0-9_]", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    name = f"t_{base[:40]}_{secrets.token_hex(4)}"
    conninfo = pg.create_database(name)
    request.addfinalizer(lambda: pg.drop_database(name))
    return conninfo


@pytest.fixture(scope="session")
def tls(request):
    d = anchorlib.mktemp_dir("anchor-tls-")
    request.addfinalizer(lambda: anchorlib.remove_tree(d))
    return anchorlib.make_tls(d)


@pytest.fixture(scope="session")
def operator_token():
    return anchorlib.make_token()


@pytest.fixture(scope="module")
def make_keyserver(db, tls, operator_token, request):
    """Factory: make_keyserver(extra={...}, db_conninfo=None, start=True)."""
    servers = []
    dirs = []

    def factory(extra=None, db_conninfo=None, start=True):
        work = anchorlib.mktemp_dir("anchor-ks-")
        dirs.append(work)
        ks = anchorlib.Keyserver(work, db_conninfo or db, tls, operator_token.hash, extra)
        servers.append(ks)
        if start:
            ks.start()
        return ks

    def finish():
        errors = []
        for ks in servers:
            try:
                ks.stop()
            except AssertionError as e:
                errors.append(str(e))
        if not errors:
            for d in dirs:
                anchorlib.remove_tree(d)  # kept for inspection when something failed
        if errors:
            pytest.fail("\n\n".join(errors), pytrace=False)

    request.addfinalizer(finish)
    return factory


@pytest.fixture(scope="module")
def keyserver(make_keyserver):
    return make_keyserver()


@pytest.fixture(scope="module")
def client(keyserver):
    return keyserver.client()
