"""anchor-policyd driven with the Postfix policy protocol's documented request format
(SMTPD_POLICY_README), against a stand-in anchor-reputation over HTTPS: verdicts to
actions, the cache, the timeout and fail-open/fail-closed when the service is slow or
down, malformed and oversized requests, a Unix socket, and the configuration checks."""

import time

import pytest

import anchorlib
import policyfixtures as px
from policyfixtures import request_attrs


@pytest.fixture
def fake(tls):
    f = px.FakeReputation(tls)
    yield f
    f.stop()


@pytest.fixture
def make_policyd(tls, request):
    started = []

    def factory(fake=None, **params):
        work = anchorlib.mktemp_dir("anchor-policyd-")
        # A generous timeout unless a test is about it: the stand-in service is Python on
        # a machine that may be busy, and a timeout would turn a verdict into DUNNO.
        p = {"reputation_url": fake.url if fake else "https://127.0.0.1:9",
             "cacert": str(tls.ca), "timeout_ms": "5000"}
        p.update({k: str(v) for k, v in params.items()})
        pd = px.Policyd(work, p).start()
        started.append((pd, work))
        return pd

    def finish():
        errors = []
        for pd, work in started:
            try:
                pd.stop()
            except AssertionError as e:
                errors.append(str(e))
            anchorlib.remove_tree(work)
        if errors:
            raise AssertionError("\n\n".join(errors))

    request.addfinalizer(finish)
    return factory


def test_block_rejects_and_unknown_passes(fake, make_policyd):
    fake.verdicts["192.0.2.66"] = ("block", "listed by 10 independent reporting domains")
    pd = make_policyd(fake)
    c = pd.connect()
    assert c.ask(request_attrs()) == ("action=REJECT 5.7.1 client blocked by reputation: "
                                      "listed by 10 independent reporting domains")
    assert c.ask(request_attrs(client_address="192.0.2.7")) == "action=DUNNO"
    # what the service was asked: the client, its HELO and the sender's domain
    assert fake.hits[0] == ("/v1/query", {"ip": "192.0.2.66", "helo": "mx.spam.example",
                                          "domain": "spam.example"})
    # a null sender and no HELO: only the address
    c.ask(request_attrs(client_address="192.0.2.8", sender="", helo_name=""))
    assert fake.hits[-1][1] == {"ip": "192.0.2.8"}
    c.close()


def test_reject_names_the_listing_not_the_csa_result(fake, make_policyd):
    """The service lists the CSA result first and then the reasons of the subjects that
    decided the verdict: the rejection gives the listing that decided the block (before,
    the first reason: "CSA unknown: ...", which is no ground for a rejection)."""
    fake.verdicts["192.0.2.67"] = ("block", [
        {"code": "csa_unknown", "text": "CSA unknown: the CSA lookup for mx.spam.example failed",
         "evidence": []},
        {"code": "listed", "subject": "ip:192.0.2.67", "evidence": ["r1.example/1"],
         "text": "listed: weigh 3.00 from 3 independent reporting domains"}])
    pd = make_policyd(fake)
    c = pd.connect()
    assert c.ask(request_attrs(client_address="192.0.2.67")) == (
        "action=REJECT 5.7.1 client blocked by reputation: "
        "listed: weigh 3.00 from 3 independent reporting domains")
    c.close()


def test_cache_answers_repeats(fake, make_policyd):
    fake.verdicts["192.0.2.66"] = ("block", "listed")
    pd = make_policyd(fake, cache_ttl="60s")
    c = pd.connect()
    for _ in range(5):
        assert c.ask(request_attrs()).startswith("action=REJECT")
    assert len(fake.hits) == 1
    c2 = pd.connect()  # shared by every connection
    assert c2.ask(request_attrs()).startswith("action=REJECT")
    assert len(fake.hits) == 1
    c2.ask(request_attrs(helo_name="other.example"))  # another key
    assert len(fake.hits) == 2
    assert "(cached" in pd.text()
    # without a cache every request asks
    pd2 = make_policyd(fake, cache_ttl="0")
    c3 = pd2.connect()
    c3.ask(request_attrs())
    c3.ask(request_attrs())
    assert len(fake.hits) == 4


def test_pipelined_requests_answered_in_order(fake, make_policyd):
    fake.verdicts["192.0.2.66"] = ("block", "listed")
    pd = make_policyd(fake)
    c = pd.connect()
    c.send(px.encode(request_attrs()) + px.encode(request_attrs(client_address="192.0.2.9")) +
           px.encode(request_attrs()))
    assert c.read_answer().startswith("action=REJECT")
    assert c.read_answer() == "action=DUNNO"
    assert c.read_answer().startswith("action=REJECT")


@pytest.mark.serial  # measures how long a timed-out answer takes
def test_slow_service_times_out_fail_open(fake, make_policyd):
    fake.delay = 3.0
    pd = make_policyd(fake, timeout_ms=300, backoff="30s")
    c = pd.connect()
    t0 = time.monotonic()
    assert c.ask(request_attrs()) == "action=DUNNO"
    took = time.monotonic() - t0
    assert took < 1.5, took  # 300 ms, far below Postfix's 100 s policy timeout
    assert "timed out" in pd.text() or "timeout" in pd.text()
    # backoff: the next request does not wait again, and does not ask
    n = len(fake.hits)
    t0 = time.monotonic()
    assert c.ask(request_attrs(client_address="192.0.2.10")) == "action=DUNNO"
    assert time.monotonic() - t0 < 0.2
    assert len(fake.hits) == n


def test_service_down_fail_open_and_fail_closed(make_policyd):
    c = make_policyd(None, backoff="0").connect()  # nothing listens on port 9
    t0 = time.monotonic()
    assert c.ask(request_attrs()) == "action=DUNNO"
    assert time.monotonic() - t0 < 1.5
    c = make_policyd(None, on_error="defer_if_permit", backoff="0").connect()
    a = c.ask(request_attrs())
    assert a.startswith("action=DEFER_IF_PERMIT 4.3.0 reputation service unavailable"), a
    c = make_policyd(None, on_error="reject", backoff="0").connect()
    assert c.ask(request_attrs()).startswith("action=REJECT 5.3.0 ")


def test_http_error_and_bad_answer_fail_open(fake, make_policyd):
    fake.status = 503
    pd = make_policyd(fake, backoff="0")
    c = pd.connect()
    assert c.ask(request_attrs()) == "action=DUNNO"
    assert "HTTP 503" in pd.text()


def test_untrusted_certificate_fails_open(fake, make_policyd, tmp_path):
    other = anchorlib.make_tls(tmp_path / "other")  # a CA that did not sign the service
    pd = make_policyd(fake, cacert=other.ca, backoff="0")
    c = pd.connect()
    assert c.ask(request_attrs()) == "action=DUNNO"
    assert "certificate" in pd.text().lower()
    assert fake.hits == []


def test_malformed_requests_answered_dunno(fake, make_policyd):
    fake.verdicts["192.0.2.66"] = ("block", "listed")
    pd = make_policyd(fake)
    c = pd.connect()
    c.send(b"request=smtpd_access_policy\nthis line has no equals sign\n"
           b"client_address=192.0.2.66\n\n")
    assert c.read_answer() == "action=DUNNO"
    assert c.ask({"request": "junk", "client_address": "192.0.2.66"}) == "action=DUNNO"
    assert c.ask({"request": "smtpd_access_policy"}) == "action=DUNNO"
    assert c.ask(request_attrs(client_address="not-an-ip")) == "action=DUNNO"
    # the connection is still good for a real request
    assert c.ask(request_attrs()).startswith("action=REJECT")
    log = pd.text()
    assert "malformed policy request: a line is not name=value" in log
    assert "request=junk is not smtpd_access_policy" in log
    assert "no client_address attribute" in log
    assert "client_address=not-an-ip is not an IP address" in log
    assert len(fake.hits) == 1  # malformed requests never reach the service


def test_oversized_line_closes(fake, make_policyd):
    pd = make_policyd(fake, max_line="1k")
    c = pd.connect()
    c.send(b"request=smtpd_access_policy\nhelo_name=" + b"a" * 5000)
    assert c.closed()
    c = pd.connect()
    c.send(b"helo_name=" + b"a" * 2000 + b"\n\n")
    assert c.closed()
    assert "a line longer than 1024 octets; closing" in pd.text()
    assert pd.connect().ask(request_attrs()) == "action=DUNNO"  # the daemon is fine


def test_prepend_and_ok_actions(fake, make_policyd):
    fake.verdicts["192.0.2.20"] = ("trusted", "verified sender")
    pd = make_policyd(fake, unknown_action="prepend", trusted_action="ok",
                      header_name="X-Rep")
    c = pd.connect()
    assert c.ask(request_attrs(client_address="192.0.2.21")) == \
        "action=PREPEND X-Rep: unknown; nothing known"
    assert c.ask(request_attrs(client_address="192.0.2.20")) == "action=OK"


def test_unix_socket(fake, make_policyd, tmp_path):
    fake.verdicts["192.0.2.66"] = ("block", "listed")
    path = tmp_path / "policy.sock"
    pd = make_policyd(fake, listen=f"unix:{path}")
    assert (path.stat().st_mode & 0o777) == 0o666
    assert pd.connect().ask(request_attrs()).startswith("action=REJECT")
    pd.stop()
    assert not path.exists()


def test_config_check_and_errors(tmp_path):
    conf = tmp_path / "p.conf"
    conf.write_text("on_error = defer_if_permit\ntimeout_ms = 250\n")
    r = anchorlib.run_program([anchorlib.binary("anchor-policyd"), "-c", conf, "-n"])
    assert r.rc == 0, r.err
    assert "on_error = defer_if_permit" in r.out and "timeout_ms = 250" in r.out
    conf.write_text("on_error = maybe\n")
    r = anchorlib.run_program([anchorlib.binary("anchor-policyd"), "-c", conf, "-n"])
    assert r.rc != 0 and "on_error = maybe: use one of" in r.err
    conf.write_text("timeout_ms = 5\n")
    r = anchorlib.run_program([anchorlib.binary("anchor-policyd"), "-c", conf, "-n"])
    assert r.rc != 0 and "timeout_ms" in r.err
    conf.write_text("listen = nonsense\n")
    r = anchorlib.run_program([anchorlib.binary("anchor-policyd"), "-c", conf])
    assert r.rc != 0 and "use ADDRESS:PORT" in r.err
