"""A burst of policy queries larger than anchor-reputation's per-address connection limit
(max_connections_per_ip) gets verdicts, not on_error: anchor-policyd -> the real
anchor-reputation, one reporter listing the client.

anchor-reputation closes at once every connection from one address past
max_connections_per_ip.  Before the fix anchor-policyd's libcurl multi handle opened one
connection per query in flight, so a burst of more queries than the limit saw some of its
connections closed unanswered: those requests were answered on_error (DUNNO, fail open for
a listed client), and the backoff then answered DUNNO for the rest.  Now at most
reputation_connections (default 16, below the service's default 32) are open, and the
queries beyond them wait for a kept-alive connection.
"""

import pytest

import policyfixtures as px
import repfixtures as rp
from policyfixtures import request_attrs

pytestmark = [
    pytest.mark.skipif(not rp.bin_available(), reason="anchor-reputation is not built"),
]

LISTED = "192.0.2.66"


@pytest.fixture(scope="module")
def world(pg, db, operator_token, request):
    w = rp.build_world(pg, db, operator_token, request, ["r1"])
    # One reporter lists the client: min_reporters 1 keeps the world small.
    scoring = {"min_reporters": "1", "list_weight": "0.9"}
    w.rep = rp.Reputation(w, w.work / "rep", db, scoring).start()
    rp.report_ok(w.rep, w.reporters["r1"], [f"ip:{LISTED}"], evidence="spam run")
    assert rp.query(w.rep, ip=LISTED)["verdict"] == "block"
    return w


def start_policyd(w, name, rep, request, **params):
    p = {"reputation_url": rep.base_url, "cacert": str(w.tls.ca),
         "cache_ttl": "0",          # every request asks the service
         "query_helo": "no",        # the address alone: no CSA lookups to wait for
         "query_sender_domain": "no",
         "timeout_ms": "20000",     # sanitizer builds are slow; queued queries wait
         "backoff": "60s",          # one failure would answer the rest of the burst too
         "on_error": "dunno"}
    p.update(params)
    pd = px.Policyd(w.work / name, p).start()
    request.addfinalizer(pd.stop)
    return pd


def burst(pd, n):
    """n policy connections each send one request before any answer is read."""
    clients = [pd.connect() for _ in range(n)]
    for c in clients:
        c.send(px.encode(request_attrs(client_address=LISTED)))
    answers = [c.read_answer() for c in clients]
    for c in clients:
        c.close()
    return answers


def assert_all_judged(pd, answers):
    failed = [a for a in answers if not a.startswith("action=REJECT 5.7.1")]
    assert not failed, (len(failed), failed[:3], pd.text()[-3000:])
    assert "answering on_error" not in pd.text()
    assert "not asking again" not in pd.text()


def test_burst_over_a_low_service_limit(world, db, request):
    """The service allows 4 connections per address; policyd is told to open 4."""
    rep = rp.Reputation(world, world.work / "rep4", db,
                        {"min_reporters": "1", "list_weight": "0.9",
                         "max_connections_per_ip": "4"}).start()
    pd = start_policyd(world, "pd4", rep, request, reputation_connections="4")
    answers = burst(pd, 24)
    assert len(answers) == 24
    assert_all_judged(pd, answers)
    # and again, on the kept-alive connections
    assert_all_judged(pd, burst(pd, 24))


def test_burst_over_the_service_default_with_policyd_defaults(world, request):
    """Both daemons with their defaults: 64 queries at once against 32 per address."""
    pd = start_policyd(world, "pd-default", world.rep, request)
    answers = burst(pd, 64)
    assert len(answers) == 64
    assert_all_judged(pd, answers)
