"""ACME (RFC 8555, PROTOCOL.md §5.4): Debian's certbot registers, obtains (http-01 and
dns-01), renews and revokes certificates of a domain's hosts from the key server on
loopback; the refusals the RFC names come back as problem documents.

One Knot server serves the domain's zone (the hosts' A records, 127.0.0.1) to the key
server's acme_resolver and takes certbot's RFC 2136 updates for dns-01.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

import acmefixtures as af
import dnsfixtures as df
import ksfixtures as kf
import logfixtures as lf

ORDERS_PER_HOUR = 6


@pytest.fixture(scope="module")
def stack(make_keyserver, operator_token, tmp_path_factory):
    base = tmp_path_factory.mktemp("acme")
    name = kf.new_domain_name("acme")
    knot = af.Knot(base / "knot", name,
                   "mx1 IN A 127.0.0.1\nmx2 IN A 127.0.0.1\nkeys IN A 127.0.0.1\n"
                   "mx3 IN A 127.0.0.1\nbad IN A 127.0.0.1\n").start()
    http_port = df.free_port()
    ks = make_keyserver(extra={"acme": "yes", "acme_http01_port": str(http_port),
                               "acme_resolver": knot.resolver,
                               "acme_orders_per_hour": str(ORDERS_PER_HOUR)})
    dom = kf.register_domain(ks, base / "ctl", name, operator_token.token)
    yield {"ks": ks, "dom": dom, "knot": knot, "http_port": http_port}
    knot.stop()


def diag(stack):
    """The key server's recent log lines, for a failed certbot run's message."""
    return "\n--- key server log (tail):\n" + "\n".join(stack["ks"].stderr().splitlines()[-30:])


def directory(stack, purpose=None):
    url = f"{stack['ks'].base_url}/acme/{stack['dom'].name}/directory"
    return url + (f"/{purpose}" if purpose else "")


def lookup(stack, pem):
    r = stack["ks"].client().get(f"/v1/fingerprints/{kf.cert_fingerprint(pem)}")
    assert r.status == 200, (r.status, r.body)
    return r.json()


def check_issued(stack, live, host, work, purpose="mta"):
    """certbot's files: the leaf verifies to the domain root through the issuer it was
    given, names host, and is in the domain's log (inclusion proof to a signed head)."""
    dom = stack["dom"]
    cert = (live / "cert.pem").read_text()
    chain = (live / "chain.pem").read_text()
    assert kf.load_cert(chain.encode() if isinstance(chain, str) else chain)
    (work / "root.pem").write_text(dom.root_pem)
    v = kf.openssl("verify", "-purpose", "sslserver", "-CAfile", work / "root.pem",
                   "-untrusted", live / "chain.pem", live / "cert.pem")
    assert v.returncode == 0, v.stderr_text
    doc = lookup(stack, cert)
    assert doc["name"] == host and doc["kind"] == "server" and doc["purpose"] == purpose
    head = lf.verify_head(doc["tree_head"], dom, work)
    leaf = lf.check_cert_log(doc, head)
    assert leaf["type"] == "issued"
    return doc


def test_certbot_http01_register_obtain_renew_revoke(stack, tmp_path):
    ks, dom = stack["ks"], stack["dom"]
    host = f"mx1.{dom.name}"
    common = ["--server", directory(stack), "--standalone", "--http-01-address", "127.0.0.1",
              "--http-01-port", str(stack["http_port"]), "--key-type", "ecdsa"]
    r = af.certbot(ks, tmp_path, "register", "--server", directory(stack))
    assert r.returncode == 0, r.stderr + diag(stack)
    r = af.certbot(ks, tmp_path, "certonly", *common, "-d", host)
    assert r.returncode == 0, r.stderr + diag(stack)
    live = tmp_path / "config" / "live" / host
    first = check_issued(stack, live, host, tmp_path)

    r = af.certbot(ks, tmp_path, "renew", "--force-renewal")
    assert r.returncode == 0, r.stderr + diag(stack)
    second = check_issued(stack, live, host, tmp_path)
    assert second["key_id"] != first["key_id"]
    assert lookup(stack, first["certificate"])["status"] == "superseded"

    r = af.certbot(ks, tmp_path, "revoke", "--server", directory(stack), "--cert-path",
                   live / "cert.pem", "--reason", "keycompromise", "--no-delete-after-revoke")
    assert r.returncode == 0, r.stderr + diag(stack)
    doc = lookup(stack, second["certificate"])
    assert doc["status"] == "revoked" and doc["revocation"]["reason"] == "keyCompromise", doc
    entries = [e for e in lf.entries(ks.client(), dom) if e.get("key_id") == second["key_id"]]
    assert [e["type"] for e in entries] == ["issued", "revoked"], entries


def test_certbot_dns01_through_rfc2136(stack, tmp_path):
    """dns-01: certbot's rfc2136 plugin puts the TXT record into Knot with a TSIG-signed
    update; the key server reads it through its resolver; a key-server certificate."""
    ks, dom = stack["ks"], stack["dom"]
    host = f"keys.{dom.name}"
    creds = stack["knot"].rfc2136_credentials(tmp_path / "rfc2136.ini")
    r = af.certbot(ks, tmp_path, "certonly", "--server", directory(stack, "keyserver"),
                   "--dns-rfc2136", "--dns-rfc2136-credentials", creds,
                   "--dns-rfc2136-propagation-seconds", "1", "-d", host)
    assert r.returncode == 0, r.stderr + diag(stack)
    check_issued(stack, tmp_path / "config" / "live" / host, host, tmp_path, "keyserver")


def test_name_outside_domain_refused(stack):
    c = af.AcmeClient(stack["ks"], stack["dom"].name)
    c.register()
    for name in ("mx.other.test", f"x{stack['dom'].name}", f"*.{stack['dom'].name}"):
        r = c.order(name)
        assert r.status == 400 and r.type == "rejectedIdentifier", (name, r.status, r.body)
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers.get("replay-nonce")


def test_certbot_refuses_name_outside_domain(stack, tmp_path):
    r = af.certbot(stack["ks"], tmp_path, "certonly", "--server", directory(stack),
                   "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port",
                   str(stack["http_port"]), "-d", "mx.elsewhere.test")
    assert r.returncode != 0
    # certbot 2.1 with Debian 12's josepy reports an ACME error as "AttributeError: can't
    # set attribute" on the terminal; the server's problem document is in its log.
    log = (tmp_path / "logs" / "letsencrypt.log").read_text()
    assert "urn:ietf:params:acme:error:rejectedIdentifier" in log, r.stderr
    assert not (tmp_path / "config" / "live" / "mx.elsewhere.test").exists()


def test_replayed_nonce_is_bad_nonce(stack):
    c = af.AcmeClient(stack["ks"], stack["dom"].name)
    body = c.signed(c.dir["newAccount"], {"termsOfServiceAgreed": True}, use_jwk=True)
    first = c.send(c.dir["newAccount"], body)
    assert first.status == 201, first.body
    again = c.send(c.dir["newAccount"], body)
    assert again.status == 400 and again.type == "badNonce", again.body
    # The refusal carries a fresh nonce, with which the same request then succeeds.
    fresh = again.headers["replay-nonce"]
    r = c.send(c.dir["newAccount"], c.signed(c.dir["newAccount"], {}, use_jwk=True,
                                             nonce=fresh))
    assert r.status == 200 and r.headers["location"] == first.headers["location"], r.body
    # A nonce the server never handed out is no better.
    r = c.send(c.dir["newAccount"], c.signed(c.dir["newAccount"], {}, use_jwk=True,
                                             nonce="AAAAAAAAAAAAAAAAAAAAAA"))
    assert r.status == 400 and r.type == "badNonce", r.body


def test_bad_signature_refused(stack):
    c = af.AcmeClient(stack["ks"], stack["dom"].name)
    body = json.loads(c.signed(c.dir["newAccount"], {"termsOfServiceAgreed": True},
                               use_jwk=True))
    sig = bytearray(af.base64.urlsafe_b64decode(body["signature"] + "=="))
    sig[5] ^= 1
    body["signature"] = af.b64u(bytes(sig))
    r = c.send(c.dir["newAccount"], json.dumps(body))
    assert r.status == 400 and r.type == "malformed", r.body
    # Nothing was created: the key has no account.
    r = c.post(c.dir["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert r.status == 400 and r.type == "accountDoesNotExist", r.body
    # Signed by another key than the account's (kid): refused the same way.
    c.register()
    other = af.AcmeClient(stack["ks"], stack["dom"].name)
    other.kid = c.kid
    r = other.order(f"mx1.{stack['dom'].name}")
    assert r.status == 400 and r.type == "malformed", r.body


def test_content_type_and_url_enforced(stack):
    c = af.AcmeClient(stack["ks"], stack["dom"].name)
    body = c.signed(c.dir["newAccount"], {}, use_jwk=True)
    r = c.send(c.dir["newAccount"], body, ctype="application/json")
    assert r.status == 415 and r.type == "malformed", r.body
    # Signed for one resource, sent to another.
    r = c.send(c.dir["newOrder"], c.signed(c.dir["newAccount"], {}, use_jwk=True))
    assert r.status == 403 and r.type == "unauthorized", r.body


def test_finalize_before_validation_is_order_not_ready(stack):
    c = af.AcmeClient(stack["ks"], stack["dom"].name)
    c.register()
    r = c.order(f"mx2.{stack['dom'].name}")
    assert r.status == 201, r.body
    order = r.json
    _, csr = kf.make_csr(host=f"mx2.{stack['dom'].name}", alg="p256")
    der = kf.openssl("req", "-outform", "DER", input=csr.encode(), check=True).stdout
    r = c.post(order["finalize"], {"csr": af.b64u(der)})
    assert r.status == 403 and r.type == "orderNotReady", r.body


class _Wrong(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = b"not-the-key-authorization"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_http01_wrong_answer_makes_order_invalid(stack):
    """The key server really fetches and compares: a host answering something else
    than the key authorization gets an invalid order, and finalize is refused."""
    c = af.AcmeClient(stack["ks"], stack["dom"].name)
    c.register()
    r = c.order(f"bad.{stack['dom'].name}")
    assert r.status == 201, r.body
    order_url, order = r.headers["location"], r.json
    authz = c.post(order["authorizations"][0], None).json
    chall = next(ch for ch in authz["challenges"] if ch["type"] == "http-01")
    srv = HTTPServer(("127.0.0.1", stack["http_port"]), _Wrong)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        r = c.post(chall["url"], {})
        assert r.status == 200 and r.json["status"] == "processing", r.body
        r = c.poll(chall["url"])
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.json["status"] == "invalid", r.body
    assert r.json["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse", r.body
    assert c.post(order["authorizations"][0], None).json["status"] == "invalid"
    assert c.post(order_url, None).json["status"] == "invalid"


def test_http01_right_answer_then_finalize(stack):
    """The same with the right body: the authorization and order become valid/ready;
    finalize takes only a CSR for the order's name, once; the chain is leaf + issuer."""
    c = af.AcmeClient(stack["ks"], stack["dom"].name)
    c.register()
    r = c.order(f"mx3.{stack['dom'].name}")
    order_url, order = r.headers["location"], r.json
    authz = c.post(order["authorizations"][0], None).json
    chall = next(ch for ch in authz["challenges"] if ch["type"] == "http-01")
    key_auth = f"{chall['token']}.{c.thumbprint()}".encode()

    class Right(_Wrong):
        def do_GET(self):  # noqa: N802
            ok = self.path == f"/.well-known/acme-challenge/{chall['token']}"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Length", str(len(key_auth)))
            self.end_headers()
            self.wfile.write(key_auth)

    srv = HTTPServer(("127.0.0.1", stack["http_port"]), Right)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r = c.post(chall["url"], {})
        assert r.status == 200 and r.json["status"] == "processing", r.body
        r = c.poll(chall["url"])
    finally:
        srv.shutdown()
        srv.server_close()
    assert r.json["status"] == "valid", r.body
    assert c.post(order_url, None).json["status"] == "ready"

    # The CSR must ask for the order's name: another name of the domain is badCSR.
    def csr_der(host):
        _, csr = kf.make_csr(host=host, alg="rsa2048")
        return kf.openssl("req", "-outform", "DER", input=csr.encode(), check=True).stdout

    r = c.post(order["finalize"], {"csr": af.b64u(csr_der(f"mx2.{stack['dom'].name}"))})
    assert r.status == 400 and r.type == "badCSR", r.body
    r = c.post(order["finalize"], {"csr": af.b64u(csr_der(f"mx3.{stack['dom'].name}"))})
    assert r.status == 200 and r.json["status"] == "valid", r.body
    chain = c.post(r.json["certificate"], None)
    assert chain.status == 200
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n",
                      chain.body.decode(), re.S)
    assert len(pems) == 2 and pems[1].strip() == stack["dom"].issuer_pem.strip()
    assert lookup(stack, pems[0])["name"] == f"mx3.{stack['dom'].name}"
    # One order, one certificate: finalizing again is refused.
    r = c.post(order["finalize"], {"csr": af.b64u(csr_der(f"mx3.{stack['dom'].name}"))})
    assert r.status == 403 and r.type == "orderNotReady", r.body


def test_orders_rate_limited_per_account(stack):
    c = af.AcmeClient(stack["ks"], stack["dom"].name)
    c.register()
    for _ in range(ORDERS_PER_HOUR):
        r = c.order(f"mx1.{stack['dom'].name}")
        assert r.status == 201, r.body
    r = c.order(f"mx1.{stack['dom'].name}")
    assert r.status == 429 and r.type == "rateLimited", r.body
    assert r.headers.get("retry-after")
    # Another account is not held back by this one's orders.
    other = af.AcmeClient(stack["ks"], stack["dom"].name)
    other.register()
    assert other.order(f"mx1.{stack['dom'].name}").status == 201
