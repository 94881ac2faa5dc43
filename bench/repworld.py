"""repworld.py - the setup the reputation benchmarks share (poison.py, rep_load.py,
reputation_dns.py): the integration tests' helpers (tests/integration) on the path, for
the build directory given as the first argument (else build/release); Finalizers; and
the world of repfixtures.build_world (PostgreSQL, a key server, anchored domains with
signing keys, NSD serving their anchors) built in a fresh work directory and removed
afterwards, whatever happens.

    with repworld.world("anchor-bench-x-", "bench_x", labels, "== setting up ...") as w:
        w.work, w.pg, w.db, w.world    # the directory, the cluster, the key server's database,
                                       # what build_world returned

Import it before anchorlib and repfixtures (it puts them on the path).
"""

import contextlib
import os
import sys
from pathlib import Path
from types import SimpleNamespace

SRC = Path(__file__).resolve().parents[1]
if len(sys.argv) > 1:
    os.environ["ANCHOR_BIN"] = str(Path(sys.argv[1]).resolve())
os.environ.setdefault("ANCHOR_BIN", str(SRC / "build" / "release"))
os.environ["ANCHOR_SRC"] = str(SRC)
sys.path.insert(0, str(SRC / "tests" / "integration"))

import anchorlib  # noqa: E402
import repfixtures as rx  # noqa: E402


class Finalizers:
    """Stands in for pytest's request in repfixtures.build_world."""

    def __init__(self):
        self.fns = []

    def addfinalizer(self, fn):
        self.fns.append(fn)

    def run(self):
        for fn in reversed(self.fns):
            try:
                fn()
            except Exception as e:  # report and go on cleaning up
                print(f"cleanup: {e}", file=sys.stderr)


@contextlib.contextmanager
def world(prefix, dbname, labels, banner, **build):
    """The world for the anchored domains labels (build: more build_world arguments);
    banner is printed once PostgreSQL is up, before the domains are made."""
    fin = Finalizers()
    work = anchorlib.mktemp_dir(prefix)
    work.chmod(0o755)
    pg = anchorlib.PgCluster(work / "pg")
    try:
        pg.start()
        db = pg.create_database(dbname)
        token = anchorlib.make_token()
        print(banner)
        w = rx.build_world(pg, db, token, fin, labels, **build)
        yield SimpleNamespace(work=work, pg=pg, db=db, world=w)
    finally:
        fin.run()
        pg.stop()
        real = (work / "pg").resolve()  # pgcluster.sh may have put it elsewhere
        anchorlib.remove_tree(work)
        if real.is_dir() and real.name.startswith("anchormail-pg-"):
            anchorlib.remove_tree(real)
