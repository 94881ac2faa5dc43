"""The key server's public lookup page (GET /lookup, PROTOCOL.md §3.6) in headless Chromium.

The page fetches the address's answer and the domain object from its own origin and
checks them with WebCrypto: pin, root -> issuer -> certificate signatures, fingerprint,
name, validity, the issuer-signed tree head and each certificate's inclusion proof.
Chromium loads /lookup#<address> and `--dump-dom` prints the page once its checks have
run (`--virtual-time-budget` lets the fetches and WebCrypto finish first); the result
element carries data-verdict = verified | partial | refused | error.

A real answer is loaded from the key server itself, over HTTPS (Chromium trusts the
test certificate's key by its SPKI hash only).  A tampered one comes from a proxy the
test controls: the page is loaded from the proxy's own origin, so its same-origin
fetches reach the proxy, which passes every request to the key server and alters the
address answer on the way back.  The page itself never fetches anything but its own
origin (its Content-Security-Policy says connect-src 'self').
"""

import base64
import copy
import html
import json
import os
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import hashes, serialization

import ksfixtures as kf

CHROMIUM = "chromium"


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("lookuppage")


def enrolled(keyserver, client, operator_token, base, alg):
    """A domain with root and issuer keys of alg, a few entries in its log, and one user."""
    dom = kf.register_domain(keyserver, base, kf.new_domain_name("page"), operator_token.token,
                             alg=alg)
    kf.enroll_new(client, dom, f"bob@{dom.name}")
    kf.enroll_new(client, dom, f"carol@{dom.name}", alg="p256")
    kf.enroll_new(client, dom, f"alice@{dom.name}")
    kf.enroll_new(client, dom, f"dave@{dom.name}", alg="rsa2048")
    return dom


@pytest.fixture(scope="module")
def domains(keyserver, client, operator_token, base):
    return {alg: enrolled(keyserver, client, operator_token, base, alg)
            for alg in ("ed25519", "p256", "rsa")}


def spki_hash(cert_pem):
    """base64 SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's SPKI list form)."""
    der = kf.load_cert(cert_pem).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashes.Hash(hashes.SHA256())
    h.update(der)
    return base64.b64encode(h.finalize()).decode()


class Page:
    def __init__(self, dom_text):
        self.dom = dom_text
        m = re.search(r'<div id="result"([^>]*)>', dom_text)
        assert m, f"no result element in the page:\n{dom_text[:2000]}"
        attrs = dict(re.findall(r'data-(\w+)="([^"]*)"', m.group(1)))
        self.state, self.verdict = attrs.get("state"), attrs.get("verdict")
        # One (what, state, detail) per row of the checks' tables.
        self.rows = [tuple(html.unescape(c) for c in row) for row in re.findall(
            r'<tr><td>([^<]*)</td><td class="\w+">([^<]*)</td><td class="detail">([^<]*)</td>',
            dom_text)]

    def failed(self):
        return [r for r in self.rows if r[1] == "FAILED"]


def render(url, tmp_path, extra=()):
    """Load url in headless Chromium and return the page as its scripts left it."""
    home = tmp_path / "chromium"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"))
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-extensions", "--disable-background-networking", "--disable-sync",
            f"--user-data-dir={home / 'profile'}", "--virtual-time-budget=20000", *extra,
            "--dump-dom", url]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, f"chromium exited {r.returncode}:\n{r.stderr[-3000:]}"
    page = Page(r.stdout)
    assert page.state == "done", f"the page did not finish its checks:\n{r.stdout[:3000]}"
    return page


def render_keyserver(keyserver, path, tmp_path):
    return render(f"{keyserver.base_url}{path}", tmp_path,
                  [f"--ignore-certificate-errors-spki-list={spki_hash(keyserver.tls.cert.read_text())}"])


# --------------------------------------------------------------------------
# The tampering proxy

class Proxy:
    """http://127.0.0.1:<port>/ in front of the key server; tamper(path, doc) may change
    the JSON answer of GET /v1/addresses/... and GET /v1/domains/... on the way back."""

    def __init__(self, keyserver, tamper):
        client = keyserver.client()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                r = client.get(self.path)
                body = r.body
                if r.status == 200 and self.path.startswith("/v1/"):
                    doc = tamper(self.path, json.loads(body))
                    body = json.dumps(doc).encode()
                self.send_response(r.status)
                for name in ("content-type", "content-security-policy",
                             "x-content-type-options"):
                    if name in r.headers:
                        self.send_header(name, r.headers[name])
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def render_tampered(keyserver, address, tamper, tmp_path):
    proxy = Proxy(keyserver, tamper)
    try:
        return render(f"{proxy.base_url}/lookup#{address}", tmp_path)
    finally:
        proxy.close()


# --------------------------------------------------------------------------

def test_page_and_its_headers(client):
    """The page and its files, with a CSP that allows no inline script and fetches only
    from this origin; nothing else under /lookup/."""
    r = client.get("/lookup")
    assert r.status == 200, r.body
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    page = r.text
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert scripts and all(re.search(r'\bsrc="/lookup/lookup\.js"', s) for s in scripts)
    assert not re.search(r"\son\w+=", page), "an inline event handler"
    assert "<style" not in page and " style=" not in page

    for path, ctype in (("/lookup/lookup.js", "text/javascript"),
                        ("/lookup/lookup.css", "text/css")):
        r = client.get(path)
        assert r.status == 200 and r.headers["content-type"].startswith(ctype), path
        assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/lookup/").status == 200
    for path in ("/lookup/nothing.js", "/lookup/lookup.js/x", "/lookup/.."):
        r = client.get(path)
        assert r.status == 404 and r.error_code() == "not_found", path
    r = client.request("POST", "/lookup")
    assert r.status == 405


@pytest.mark.parametrize("alg", ["ed25519", "p256", "rsa"])
def test_real_answer_is_verified(keyserver, domains, alg, tmp_path):
    """A real answer passes every check, whatever the domain's key algorithm."""
    address = f"alice@{domains[alg].name}"
    page = render_keyserver(keyserver, f"/lookup#{address}", tmp_path)
    assert page.verdict == "verified", (page.failed(), page.rows)
    whats = {r[0] for r in page.rows if r[1] == "ok"}
    for what in ("root key matches a pin of the domain", "issuer is signed by the root",
                 "tree head is signed by the issuer", "signed by the domain's issuer",
                 "fingerprint", "names the address", "log entry records this issuance",
                 "inclusion proof leads to the signed head"):
        assert what in whats, (what, page.rows)
    # The page says what it did not check.
    assert any(r[0] == "revocation" and r[1] == "not checked" for r in page.rows)


def test_utf8_address_is_verified(keyserver, client, domains, base, tmp_path):
    """A certificate naming its address in an RFC 9598 SmtpUTF8Mailbox (a UTF-8 local part,
    enrolled with anchorctl) passes every check, the address typed in upper case."""
    dom = domains["ed25519"]
    addr = f"d\u00f6rte@{dom.name}"
    users = base / "utf8users"
    users.mkdir(exist_ok=True)
    kf.ctl_ok(keyserver, "key", "new", addr, "--alg", "ed25519", "--dir", users, cwd=base)
    tok = kf.issue_token(client, dom, addr)
    kf.ctl_ok(keyserver, "key", "enroll", addr, "--token", tok, "--dir", users, cwd=base)
    typed = quote(f"D\u00d6RTE@{dom.name.upper()}")
    page = render_keyserver(keyserver, f"/lookup#{typed}", tmp_path)
    assert page.verdict == "verified", (page.failed(), page.rows)
    named = [r for r in page.rows if r[0] == "names the address"]
    assert named and all(r[1] == "ok" for r in named), page.rows
    assert addr in named[0][2], named


def tamper_proof(path, doc):
    if path.startswith("/v1/addresses/"):
        proof = doc["certificates"][0]["log"]["proof"]
        h = bytearray(base64.b64decode(proof[0]))
        h[0] ^= 1
        proof[0] = base64.b64encode(bytes(h)).decode()
    return doc


def other_user(keyserver, dom):
    """Bob's real, issuer-signed certificate object, with its own valid log proof."""
    r = keyserver.client().get(f"/v1/addresses/bob@{dom.name}")
    assert r.status == 200
    return r.json()["certificates"][0]


def tamper_head(path, doc):
    if path.startswith("/v1/addresses/"):
        jws = json.loads(doc["tree_head"])  # the flattened JWS, as a JSON text
        head = json.loads(base64.urlsafe_b64decode(jws["payload"] + "=="))
        head["size"] += 1
        jws["payload"] = base64.urlsafe_b64encode(json.dumps(head).encode()).decode().rstrip("=")
        doc["tree_head"] = json.dumps(jws)
    return doc


def tamper_issuer(keyserver, domains):
    """The domain object with another domain's issuer in place of its own."""
    other = keyserver.client().get(f"/v1/domains/{domains['p256'].name}").json()

    def tamper(path, doc):
        if path.startswith("/v1/domains/"):
            doc["issuer"] = other["issuer"]
        return doc
    return tamper


def test_tampered_answers_are_refused(keyserver, domains, tmp_path):
    """Four answers altered by a proxy, each refused by the check it breaks: a proof hash,
    another user's (genuine) certificate object, the tree head's payload, the issuer."""
    dom = domains["ed25519"]
    address = f"alice@{dom.name}"
    bob = other_user(keyserver, dom)

    def swap_cert(path, doc):
        if path.startswith("/v1/addresses/"):
            doc["certificates"] = [copy.deepcopy(bob)]
            doc["encryption"]["certificates"] = [copy.deepcopy(bob)]
        return doc

    cases = [
        (tamper_proof, "inclusion proof leads to the signed head"),
        (swap_cert, "names the address"),
        (tamper_head, "tree head is signed by the issuer"),
        (tamper_issuer(keyserver, domains), "issuer is signed by the root"),
    ]
    for tamper, broken in cases:
        page = render_tampered(keyserver, address, tamper, tmp_path)
        assert page.verdict == "refused", (tamper.__name__, page.rows)
        assert broken in {r[0] for r in page.failed()}, (tamper.__name__, page.failed())


def test_unknown_address_is_an_error(keyserver, domains, tmp_path):
    page = render_keyserver(keyserver, f"/lookup#nobody@{domains['rsa'].name}", tmp_path)
    assert page.verdict == "error"
    assert "no certificate is published" in page.dom
