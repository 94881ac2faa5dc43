"""Webhooks (PROTOCOL.md §10.5): a subscriber registered with `anchorctl webhook add`
receives, on a loopback HTTP receiver, the revocation of a key it watches, with a proof
that verifies offline (rfc9162_ref + jwcrypto); a receiver that fails the first two
times gets it on a retry (webhook_retry_base shortened to 1 s); a deleted webhook gets
nothing more.  The key server runs with webhook_allow_http = yes for http:// on
loopback."""

import http.server
import json
import re
import threading
import time

import pytest

import anchorlib
import ksfixtures as kf
import logfixtures as lf
import rfc9162_ref as ref


class Receiver:
    """POST receiver on 127.0.0.1; fails the first `fail` calls with 500."""

    def __init__(self, fail=0):
        self.calls = []  # (time, status, body)
        self.fail = fail
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = 500 if outer.fail > 0 else 200
                outer.fail -= 1
                outer.calls.append((time.monotonic(), status, body,
                                    self.headers.get("Content-Type")))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def delivered(self):
        return [json.loads(b) for _, s, b, _ in self.calls if s == 200]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def keyserver(make_keyserver):
    return make_keyserver(extra={"webhook_allow_http": "yes", "webhook_retry_base": "1s",
                                 "cache_max_age": "0"})


@pytest.fixture(scope="module")
def work():
    d = anchorlib.mktemp_dir("anchor-wh-")
    yield d
    anchorlib.remove_tree(d)


@pytest.fixture(scope="module")
def dom(keyserver, work, operator_token):
    return kf.register_domain(keyserver, work, kf.new_domain_name("wh"), operator_token.token)


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.stop()


def add_hook(keyserver, dom, work, url, *kids, secret="hook.secret"):
    secret_file = work / f"{secret}-{time.monotonic_ns()}"
    r = lf.ctl_ok(keyserver, "webhook", "add", dom.name, url, *kids, "--secret-file",
                  secret_file, cwd=work)
    m = re.search(r"^webhook: (\d+)$", r.out, re.M)
    assert m, r.out
    assert (secret_file.stat().st_mode & 0o777) == 0o600
    assert secret_file.read_text().strip() not in r.out
    return int(m.group(1)), secret_file


def check_delivery(body, dom, kid, etype, work):
    """The call verifies offline like a lookup: the entry is about the key, its proof
    leads to the signed head."""
    assert body["domain"] == dom.name
    entry = body["entry"]
    leaf = json.loads(entry["leaf"])
    assert leaf["type"] == etype and leaf["key_id"] == kid, leaf
    head = lf.verify_head(body["tree_head"], dom, work)
    assert entry["tree_size"] == head["size"]
    assert ref.verify_inclusion(entry["seq"], entry["tree_size"],
                                ref.leaf_hash(entry["leaf"].encode()),
                                [ref.unb64(h) for h in entry["proof"]],
                                ref.unb64(head["root_hash"]))
    assert "salt" not in entry and "name" not in entry
    return leaf


def test_revocation_of_a_watched_key_is_delivered(keyserver, client, dom, work, receiver):
    kid, _, _ = lf.enroll_cli(keyserver, client, dom, f"w1@{dom.name}", work)
    other, _, _ = lf.enroll_cli(keyserver, client, dom, f"w2@{dom.name}", work)
    add_hook(keyserver, dom, work, receiver.url, kid)
    lf.ctl_ok(keyserver, "key", "revoke", other, cwd=work)  # not watched
    lf.ctl_ok(keyserver, "key", "revoke", kid, "--reason", "keyCompromise", cwd=work)
    got = kf.poll(receiver.delivered, timeout=15, interval=0.1)
    assert len(got) == 1, receiver.calls
    leaf = check_delivery(got[0], dom, kid, "revoked", work)
    assert leaf["reason"] == "keyCompromise"
    assert receiver.calls[0][3].startswith("application/json")
    time.sleep(2)
    assert len(receiver.calls) == 1  # once, and nothing about the unwatched key


def test_a_failing_receiver_gets_it_on_a_retry(keyserver, client, dom, work, pg, db):
    rec = Receiver(fail=2)
    try:
        kid, _, _ = lf.enroll_cli(keyserver, client, dom, f"w3@{dom.name}", work)
        hook, _ = add_hook(keyserver, dom, work, rec.url, kid)
        t0 = time.monotonic()
        lf.ctl_ok(keyserver, "key", "revoke", kid, cwd=work)
        got = kf.poll(rec.delivered, timeout=30, interval=0.1)
        assert len(got) == 1, rec.calls
        assert [s for _, s, _, _ in rec.calls] == [500, 500, 200]
        check_delivery(got[0], dom, kid, "revoked", work)
        # backoff: 1 s then 2 s (webhook_retry_base = 1s), give or take the poll interval
        times = [t for t, _, _, _ in rec.calls]
        assert times[1] - times[0] >= 0.9 and times[2] - times[1] >= 1.9, times
        assert times[2] - t0 < 20
        out = pg.psql(f"SELECT attempts, delivered_at IS NOT NULL, coalesce(last_error, '') "
                      f"FROM webhook_deliveries WHERE webhook_id = {hook}",
                      dbname=kf.dbname_of(db)).strip()
        assert out == "3|t|", out
    finally:
        rec.stop()


def test_a_deleted_webhook_is_not_called(keyserver, client, dom, work, receiver):
    kid, _, _ = lf.enroll_cli(keyserver, client, dom, f"w4@{dom.name}", work)
    hook, secret = add_hook(keyserver, dom, work, receiver.url, kid)
    wrong = work / "wrong.secret"
    wrong.write_text(kf.anchorlib.make_token().token + "\n")
    r = lf.ctl(keyserver, "webhook", "delete", dom.name, str(hook), "--secret-file", wrong,
               cwd=work)
    assert r.rc == 1 and "not_found" in r.err, r.err
    r = lf.ctl_ok(keyserver, "webhook", "delete", dom.name, str(hook), "--secret-file", secret,
                  cwd=work)
    assert f"webhook {hook} deleted" in r.out
    lf.ctl_ok(keyserver, "key", "revoke", kid, cwd=work)
    time.sleep(3)
    assert receiver.calls == []


def test_webhook_input_is_checked(keyserver, client, dom, work):
    kid = client.get(f"/v1/addresses/w1@{dom.name}/history").json()["certificates"][0]["key_id"]
    base = f"/v1/domains/{dom.name}/webhooks"
    for body in ({"url": "ftp://127.0.0.1/x", "key_ids": [kid]},
                 {"url": "http://127.0.0.1:1/x", "key_ids": []},
                 {"url": "http://127.0.0.1:1/x", "key_ids": ["not-a-uuid"]},
                 {"url": "http://127.0.0.1:1/x"}):
        r = client.post(base, body)
        assert r.status == 400, (body, r.body)
    r = lf.ctl(keyserver, "webhook", "delete", dom.name, "x", "--secret-file", work / "wrong.secret",
               cwd=work)
    assert r.rc == 2
