"""Key server: the database's disk fills up (PROTOCOL.md §1.1 `unavailable`).  A write that
PostgreSQL cannot store (SQLSTATE 53100 disk_full) is `503 unavailable`, as for an outage,
not `500 internal`; nothing is half-done (the token stays usable), lookups go on, and
the same write succeeds once there is room again.

The certificates table is moved to a tablespace on a small tmpfs, which the test then
fills (needs root, as `make check` runs; skipped otherwise)."""

import os
import subprocess

import pytest

import anchorlib
import ksfixtures as kf


@pytest.fixture
def tiny_tablespace(pg, db, keyserver):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = anchorlib.mktemp_dir("anchor-tblspc-")
    owner = subprocess.run(["stat", "-L", "-c", "%U", str(pg.dir)], capture_output=True,
                           text=True, check=True).stdout.strip()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)],
                   check=True)
    subprocess.run(["chown", owner, str(mnt)], check=True)
    name = kf.dbname_of(db)
    try:
        pg.psql(f"CREATE TABLESPACE tiny_{name} LOCATION '{mnt}'", dbname=name)
        pg.psql(f"ALTER TABLE certificates SET TABLESPACE tiny_{name}", dbname=name)
        yield mnt
    finally:
        pg.psql(f"ALTER TABLE certificates SET TABLESPACE pg_default", dbname=name)
        pg.psql(f"DROP TABLESPACE IF EXISTS tiny_{name}", dbname=name)
        subprocess.run(["umount", str(mnt)], check=False)
        anchorlib.remove_tree(mnt)


def test_full_database_disk_is_unavailable_not_internal(keyserver, operator_token, tmp_path,
                                                       tiny_tablespace):
    c = keyserver.client()
    d = kf.register_domain(keyserver, tmp_path, kf.new_domain_name("dbfull"),
                           operator_token.token)
    obj, _ = kf.enroll_new(c, d, f"alice@{d.name}")
    filler = tiny_tablespace / "filler"
    # Fill the tmpfs: the table's next page cannot be written.
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    refused = None
    for i in range(60):
        token = kf.issue_token(c, d, f"u{i}@{d.name}")
        r = kf.enroll(c, d.name, token, kf.make_csr(f"u{i}@{d.name}")[1])
        if r.status != 201:
            refused = (i, token, r)
            break
    assert refused is not None, "the full tablespace never refused an enrollment"
    i, token, r = refused
    assert r.status == 503 and r.error_code() == "unavailable", (r.status, r.body)
    assert "out of resources" in r.json()["message"]
    # Reads go on.
    assert c.get(f"/v1/keys/{obj['key_id']}").status == 200
    # Room again: the same token enrolls (it was not spent by the refused request).
    filler.unlink()
    r = kf.enroll(c, d.name, token, kf.make_csr(f"u{i}@{d.name}")[1])
    assert r.status == 201, (r.status, r.body)
