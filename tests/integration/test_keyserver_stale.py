"""Key server: stale-if-error (RFC 5861; PROTOCOL.md §1.1 `unavailable`, setting
`stale_if_error`).  While PostgreSQL is down, a lookup answered before gets its last good
(signed) answer, 200 with Age, Warning 110 and Cache-Control stale-if-error, for at most
stale_if_error seconds from the outage; a lookup never answered, a write, /healthz and
everything past the bound get 503 `unavailable`.  An answer retired by a change notice
(a revocation) before the outage is never served stale.

This module stops the session's PostgreSQL cluster; it always starts it again."""

import threading
import time

import pytest

import ksfixtures as kf

BOUND = 15  # stale_if_error, seconds: well above the time PostgreSQL takes to stop


def _wait(fn, timeout):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(0.1)


@pytest.fixture
def cluster_restarted(pg):
    """Yields pg; whatever happens, the cluster is running again afterwards."""
    try:
        yield pg
    finally:
        pg.start()


class Load:
    """Lookups from other threads the whole time, as a busy relying party makes them."""

    def __init__(self, ks, paths):
        self.ks, self.paths = ks, paths
        self.stop = threading.Event()
        self.statuses = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(3)]

    def _run(self):
        c = self.ks.client()
        while not self.stop.is_set():
            for p in self.paths:
                self.statuses.append(c.get(p).status)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def _wait_kept(c, path):
    """Until path is answered from the key server's memory (the change notices of the
    writes before it have arrived and retired older answers)."""
    def hit():
        hits = kf.metric(c, "anchor_keyserver_cache_hits_total")
        c.get(path)
        return kf.metric(c, "anchor_keyserver_cache_hits_total") > hits
    assert _wait(hit, 5.0), f"{path} is not kept"


def _assert_stale(r, body, max_age):
    assert r.status == 200, (r.status, r.body)
    assert r.body == body, "a stale answer is the last good answer, byte for byte"
    age = int(r.headers["age"])
    assert 0 <= age <= max_age + BOUND, age
    assert "110" in r.headers.get("warning", ""), r.headers
    cc = r.headers["cache-control"]
    assert f"stale-if-error={BOUND}" in cc and f"max-age={max_age}" in cc, cc


@pytest.mark.serial  # stale answers measured against their time bound
def test_lookups_stale_while_the_database_is_down(make_keyserver, operator_token, tmp_path,
                                                  cluster_restarted):
    pg = cluster_restarted
    # No rate limit: the load threads below, answered at once while the database is
    # gone, would otherwise be refused 429 for their rate, hiding the answers tested.
    ks = make_keyserver(extra={"stale_if_error": f"{BOUND}s", "rate_limit": "0"})
    c = ks.client()
    d = kf.register_domain(ks, tmp_path, kf.new_domain_name("stale"), operator_token.token)
    obj, _ = kf.enroll_new(c, d, f"alice@{d.name}")
    token = kf.issue_token(c, d, f"bob@{d.name}")
    kf.enroll_new(c, d, f"carol@{d.name}")  # enrolled, never looked up
    paths = [f"/v1/addresses/alice@{d.name}", f"/v1/domains/{d.name}",
             f"/v1/keys/{obj['key_id']}"]
    good = {}
    for p in paths:
        r = c.get(p)
        assert r.status == 200 and "warning" not in r.headers and "age" not in r.headers
        good[p] = (r.body, int(r.headers["cache-control"].split("max-age=")[1].split(",")[0]))
    for p in paths:
        _wait_kept(c, p)
    stale0 = kf.metric(c, "anchor_keyserver_cache_stale_total")

    with Load(ks, paths) as load:
        down = time.monotonic()
        pg.stop()
        stopped = time.monotonic() - down
        assert stopped < BOUND - 5, f"PostgreSQL took {stopped:.1f}s to stop"
        # Every lookup answered before keeps answering, with its age.
        for _ in range(5):
            for p in paths:
                _assert_stale(c.get(p), *good[p])
        assert time.monotonic() - down < BOUND, "the test machine is too slow for the bound"
        # What was never answered, writes and health are refused.
        r = c.get(f"/v1/addresses/carol@{d.name}")
        assert r.status == 503 and r.error_code() == "unavailable", (r.status, r.body)
        r = kf.enroll(c, d.name, token, kf.make_csr(f"bob@{d.name}")[1])
        assert r.status == 503 and r.error_code() == "unavailable", (r.status, r.body)
        assert c.get("/healthz").status == 503
        assert kf.metric(c, "anchor_keyserver_cache_stale_total") > stale0
        # Past the bound, the outage shows.
        r = _wait(lambda: (lambda x: x if x.status == 503 else None)(c.get(paths[0])),
                  BOUND + 5.0)
        assert r is not None, "stale answers outlived stale_if_error"
        assert time.monotonic() - down >= BOUND - 1, "stale answers stopped before the bound"
        assert r.error_code() == "unavailable"
        # Each answer's own bound (its age, max-age + stale_if_error) and the outage's
        # bound are counted in whole seconds from different instants: the others follow
        # within a second or two, never later.
        assert _wait(lambda: all(c.get(p).status == 503 for p in paths), 3.0), \
            [c.get(p).status for p in paths]
    assert load.statuses.count(200) > 0 and set(load.statuses) <= {200, 503}, \
        set(load.statuses)
    # Hundreds of refusals, but the outage is logged once with a count (log_repeat),
    # not a line per request.
    refusals = load.statuses.count(503)
    lines = [ln for ln in ks.stderr().splitlines() if "unavailable:" in ln]
    assert refusals >= 5 and 1 <= len(lines) <= 3, (refusals, lines[:5])

    pg.start()
    assert _wait(lambda: c.get("/healthz").status == 200, 15.0)
    r = _wait(lambda: (lambda x: x if x.status == 200 else None)(c.get(paths[0])), 10.0)
    assert r is not None and "warning" not in r.headers and r.body == good[paths[0]][0]
    assert kf.enroll(c, d.name, token, kf.make_csr(f"bob@{d.name}")[1]).status == 201


def test_revoked_before_the_outage_is_never_served_stale(make_keyserver, operator_token,
                                                         tmp_path, cluster_restarted):
    """Node B kept alice's answer; node A revokes her key; B is told (NOTIFY) and retires
    what it kept; then the database goes.  B must answer 503, not the answer from before
    the revocation."""
    pg = cluster_restarted
    ks_a = make_keyserver(extra={"stale_if_error": f"{BOUND}s"})
    ks_b = make_keyserver(extra={"stale_if_error": f"{BOUND}s"})
    a, b = ks_a.client(), ks_b.client()
    d = kf.register_domain(ks_a, tmp_path, kf.new_domain_name("stalerev"),
                           operator_token.token)
    obj, _ = kf.enroll_new(a, d, f"alice@{d.name}")
    kf.enroll_new(a, d, f"dave@{d.name}")
    alice, dave = f"/v1/addresses/alice@{d.name}", f"/v1/addresses/dave@{d.name}"
    assert b.get(alice).status == 200 and b.get(dave).status == 200
    _wait_kept(b, alice)
    r = a.post(f"/v1/keys/{obj['key_id']}/revoke", {"reason": "keyCompromise"},
               token=d.admin_token)
    assert r.status == 200, (r.status, r.body)
    # B's change listener retires everything it kept; give the notice time to arrive.
    misses = kf.metric(b, "anchor_keyserver_cache_misses_total")
    assert _wait(lambda: (b.get(dave), kf.metric(b, "anchor_keyserver_cache_misses_total")
                          > misses)[1], 5.0), "node B was not told of the revocation"

    pg.stop()
    r = b.get(alice)
    assert r.status == 503 and r.error_code() == "unavailable", \
        f"the answer from before the revocation was served stale: {r.status} {r.body[:200]}"
    # dave's answer was kept again after the notice: it is current, and served stale.
    r = b.get(dave)
    assert r.status == 200 and "110" in r.headers.get("warning", ""), (r.status, r.headers)
