"""Smoke test: the key server starts on a random loopback port, answers the
operational endpoints (PROTOCOL.md §6), reports errors as JSON (§1.1), is
reachable by an independent client (curl), and stops cleanly on SIGTERM."""

import json


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status == 200, r.body
    assert r.json() == {"status": "ok"}
    assert r.headers.get("x-request-id"), "every response carries X-Request-Id"


def test_metrics(client):
    client.get("/healthz")
    r = client.get("/metrics")
    assert r.status == 200, r.body
    assert r.headers.get("content-type", "").startswith("text/plain")
    assert "anchor_http_requests_total" in r.text


def test_unknown_path_is_json_404(client):
    r = client.get("/no/such/path")
    assert r.status == 404
    doc = r.json()
    assert isinstance(doc.get("error"), str) and doc["error"]
    assert isinstance(doc.get("message"), str) and doc["message"]
    assert r.headers.get("x-request-id")


def test_curl_with_test_ca(keyserver):
    res = keyserver.curl("/healthz", "-w", "\n%{http_code}")
    assert res.rc == 0, res.err
    body, _, code = res.out.rpartition("\n")
    assert code == "200"
    assert json.loads(body) == {"status": "ok"}


def test_curl_rejects_unknown_ca(keyserver):
    # Without --cacert the system trust store does not know the test CA.
    res = keyserver.curl("/healthz", "--cacert", "/etc/ssl/certs/ca-certificates.crt")
    assert res.rc == 60, (res.rc, res.err)  # CURLE_PEER_FAILED_VERIFICATION


def test_restart_is_clean(keyserver):
    keyserver.restart()  # stop() asserts exit status 0 and no sanitizer report
    r = keyserver.client().get("/healthz")
    assert r.status == 200
    assert r.json() == {"status": "ok"}
