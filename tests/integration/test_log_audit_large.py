"""`anchorctl audit` of a large log (more than 1000 entries): progress on standard error
as plain lines when it is no terminal (no carriage returns), the report and its verdict
on standard output as for a small log, and the problems summed up at the end."""

import re
from concurrent.futures import ThreadPoolExecutor

import anchorlib
import ksfixtures as kf
import logfixtures as lf

ENTRIES = 1010


def test_audit_of_a_large_log(make_keyserver, operator_token):
    # No response cache: it would answer older heads with the newest (test_log_audit.py).
    ks = make_keyserver(extra={"cache_max_age": "0", "rate_limit": "0"})
    work = anchorlib.mktemp_dir("anchor-aularge-")
    dom = kf.register_domain(ks, work, kf.new_domain_name("aul"), operator_token.token)

    def change(i):
        r = ks.client().put(f"/v1/domains/{dom.name}/groups/g{i}@{dom.name}",
                            {"members": [f"m{i}@{dom.name}"]}, token=dom.admin_token)
        assert r.status == 200, (r.status, r.body)

    # Four at once: the group changes of one domain must queue on its lock, not deadlock.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(change, range(ENTRIES)))

    total = ENTRIES + 1  # and the domain's registration
    r = lf.ctl(ks, "audit", dom.name, cwd=work)
    assert r.rc == 0, r.out + r.err
    assert re.search(rf"^entries:\s+{total}$", r.out, re.M), r.out
    assert "result:   OK" in r.out
    lines = r.err.splitlines()
    entries = [x for x in lines if x.startswith("anchorctl: fetching log entries: ")]
    heads = [x for x in lines if x.startswith("anchorctl: checking signed heads: ")]
    assert entries and entries[-1] == (f"anchorctl: fetching log entries: {total}/{total}"
                                       " done, 0 failed"), r.err
    assert 2 <= len(entries) <= 12, "a line at every tenth, not one per entry"
    assert heads and re.fullmatch(r"anchorctl: checking signed heads: (\d+)/\1 done, 0 failed",
                                  heads[-1]), r.err
    assert "\r" not in r.err
    anchorlib.remove_tree(work)
