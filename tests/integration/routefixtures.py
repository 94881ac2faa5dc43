"""Helpers for the route tests (tests/integration/test_routes_*.py).

Route answers are checked here independently of the code under test:
python3-jwcrypto verifies the JWS signature with the key of the first x5c
certificate, openssl(1) verifies the x5c chain (issuer under the root, name
constraints included), and python3-cryptography computes the root's pin.
User-signed requests (PROTOCOL.md §6.3) are built with jwcrypto too.

    route_put / route_get / route_delete    the HTTP calls
    verify_route(text, pin, name, workdir)  independent verification -> payload dict
    jws_payload(text)                       the payload without any check (for tampering)
    user_request(key, chain_pems, payload)  a request signed by a user's key
    sign_route(issuer_key_pem, chain, payload)  a route answer signed by a domain's issuer
    route_snapshot(pg, db)                  digest of the route tables (nothing-stored checks)
"""

import base64
import json
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwcrypto import jwk, jws

import ksfixtures as kf

ROUTE_TABLES = ("routes", "key_requests")


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------
# HTTP

def route_path(name):
    return f"/v1/domains/{name}/route" if "@" not in name else f"/v1/routes/{name}"


def route_put(client, name, body, token=None):
    """PUT a route object (dict) or a signed request (JWS text), as application/json."""
    return client.put(route_path(name), body, token=token,
                      headers={"Content-Type": "application/json"})


def route_get(client, name, headers=None):
    return client.get(route_path(name), headers=headers)


def route_delete(client, name, token=None):
    return client.delete(route_path(name), token=token)


# --------------------------------------------------------------------------
# Independent verification

def jws_parts(text):
    doc = json.loads(text)
    assert set(doc) >= {"protected", "payload", "signature"}, doc
    header = json.loads(b64url_decode(doc["protected"]))
    return doc, header, json.loads(b64url_decode(doc["payload"]))


def jws_payload(text):
    return jws_parts(text)[2]


def der_to_pem(der):
    return x509.load_der_x509_certificate(der).public_bytes(
        serialization.Encoding.PEM).decode()


def verify_route(text, pin, name, workdir, now=None):
    """Verify a route answer as a relying party that shares no code with the project.

    Returns the payload; raises AssertionError on any failure."""
    if isinstance(text, bytes):
        text = text.decode()
    _, header, _ = jws_parts(text)
    assert header.get("typ") == "anchor-route+jws", header
    assert header.get("alg") in ("EdDSA", "ES256", "RS256"), header
    x5c = header.get("x5c")
    assert isinstance(x5c, list) and len(x5c) == 2, f"x5c must be [issuer, root]: {header}"
    issuer_pem, root_pem = (der_to_pem(base64.b64decode(c)) for c in x5c)
    # The root is the domain's: its SPKI digest is the pin published in DNS.
    assert kf.spki_pin(root_pem) == pin, "the x5c root is not the pinned root"
    # The chain: openssl verify, the root as the only trust anchor.
    wd = Path(workdir)
    (wd / "v-root.pem").write_text(root_pem)
    (wd / "v-issuer.pem").write_text(issuer_pem)
    r = kf.openssl("verify", "-x509_strict", "-CAfile", wd / "v-root.pem", wd / "v-issuer.pem")
    assert r.returncode == 0, f"openssl verify refused the x5c chain:\n{r.stdout_text}{r.stderr_text}"
    # The signature, by jwcrypto with the issuer certificate's key.
    key = jwk.JWK.from_pem(kf.load_cert(issuer_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    obj = jws.JWS()
    obj.deserialize(text)
    obj.verify(key)  # raises InvalidJWSSignature
    payload = json.loads(obj.payload)
    assert payload["type"] == "anchor-route", payload
    assert payload["name"] == name, (payload["name"], name)
    expires = time.mktime(time.strptime(payload["expires"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert expires > (now or time.time()), f"expired answer: {payload}"
    return payload


# --------------------------------------------------------------------------
# Signing, as a user or as a domain's issuer

def _alg(key):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    raise ValueError(type(key))


def _x5c(chain_pems):
    return [base64.b64encode(kf.load_cert(p).public_bytes(serialization.Encoding.DER)).decode()
            for p in chain_pems]


def sign(key, chain_pems, payload, typ):
    """Flattened JWS (JSON text) of payload (dict or str) signed by key, x5c = chain."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    obj = jws.JWS(text.encode())
    obj.add_signature(jwk.JWK.from_pyca(key), None,
                      json.dumps({"alg": _alg(key), "typ": typ, "x5c": _x5c(chain_pems)}))
    return obj.serialize()


def user_request(key, chain_pems, address, alias=None, issued=None, **extra):
    """PUT body for a user-signed alias (PROTOCOL.md §6.3); chain [user, issuer, root]."""
    payload = {"type": "anchor-route-request", "address": address,
               "issued": int(time.time()) if issued is None else issued}
    if alias is not None:
        payload["alias"] = alias
    payload.update(extra)
    return sign(key, chain_pems, payload, "anchor-route-request+jws")


def issuer_key(domain):
    """The domain's issuer private key, from the `anchorctl domain init` directory."""
    return serialization.load_pem_private_key((domain.dir / "issuer.key").read_bytes(), None)


def sign_route(domain, payload):
    """A route answer signed like the key server signs it (issuer key, x5c [issuer, root])."""
    return sign(issuer_key(domain), [domain.issuer_pem, domain.root_pem], payload,
                "anchor-route+jws")


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --------------------------------------------------------------------------
# Database

def route_snapshot(pg, conninfo):
    """kf.db_snapshot plus the route tables."""
    snap = kf.db_snapshot(pg, conninfo)
    dbname = kf.dbname_of(conninfo)
    for t in ROUTE_TABLES:
        snap[t] = pg.psql(f"SELECT count(*)::text || '|' || md5(coalesce(string_agg(x::text, "
                          f"E'\\n' ORDER BY x::text), '')) FROM {t} x", dbname=dbname).strip()
    return snap


def stored_route(pg, conninfo, name):
    """(kind, servers json text, alias, ttl, set_by) of the stored route of name, or None."""
    out = pg.psql("SELECT kind, coalesce(servers::text, ''), coalesce(alias, ''), ttl, set_by "
                  f"FROM routes WHERE name = '{name}'", dbname=kf.dbname_of(conninfo))
    lines = out.splitlines()
    return tuple(lines[0].split("|")) if lines else None


def pin_of_key(key):
    """The pin of a public key (for server entries): sha256:<b64 of SPKI digest>."""
    import hashlib
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


# --------------------------------------------------------------------------
# A key server in the middle: proxies a real one, and can change what it says

class MiddleServer:
    """HTTPS on 127.0.0.1:<random port> with the test TLS certificate.

    GET paths in `answers` get that body (a signed route made by the test);
    paths in `tamper` get the upstream answer passed through the function;
    anything else is proxied unchanged from the upstream key server."""

    def __init__(self, tls, upstream):
        import http.server
        import ssl
        import threading

        self.answers = {}
        self.tamper = {}
        self.hits = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                from urllib.parse import unquote
                self.path = unquote(self.path)  # "/v1/routes/a%40b" is "/v1/routes/a@b"
                outer.hits.append(self.path)
                status, ctype, body = 200, "application/jose+json", None
                if self.path in outer.answers:
                    body = outer.answers[self.path].encode()
                else:
                    r = upstream.get(self.path.replace("@", "%40"))
                    status, ctype, body = r.status, r.headers.get("content-type"), r.body
                    if self.path in outer.tamper and status == 200:
                        body = outer.tamper[self.path](body.decode()).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype or "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls.cert), str(tls.key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def tamper_payload(text, **changes):
    """The JWS with its payload changed and the signature left as it was."""
    doc = json.loads(text)
    payload = json.loads(b64url_decode(doc["payload"]))
    payload.update(changes)
    doc["payload"] = b64url(json.dumps(payload, separators=(",", ":")).encode())
    return json.dumps(doc)
