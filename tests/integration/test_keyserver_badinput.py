"""Key server core: bad input.  Every refused request gets the right 4xx status and
JSON error code (PROTOCOL.md §1.1) and changes nothing in the store: the rows of
every key-server table, enrollment tokens' used_at included, are the same
before and after."""

import hashlib
import json
import socket
import ssl
from dataclasses import dataclass, field

import pytest

import ksfixtures as kf

STATUS_CODE = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}
SQL_ADDRESS = "x'; DROP TABLE certificates; --@{d}"
SQL_TOKEN = "x' OR '1'='1'; DROP TABLE enroll_tokens; --"


@dataclass
class Ctx:
    ks: object
    client: object
    dom: kf.Domain
    pg: object
    db: str
    operator_token: str
    csr: str = ""               # a good request for alice@<dom>
    pending: str = ""           # an unused token for alice@<dom>
    extra: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def ctx(keyserver, operator_token, pg, db, tmp_path_factory):
    """A domain with some state in every table: certificates, a group, pending tokens."""
    base = tmp_path_factory.mktemp("bad")
    client = keyserver.client()
    dom = kf.register_domain(keyserver, base, kf.new_domain_name("bad"), operator_token.token,
                             policy="groups")
    kf.enroll_new(client, dom, f"bob@{dom.name}")
    kf.enroll_new(client, dom, f"team@{dom.name}")
    r = client.put(f"/v1/domains/{dom.name}/groups/team@{dom.name}",
                   {"members": [f"bob@{dom.name}"]}, token=dom.admin_token)
    assert r.status == 200, r.body
    c = Ctx(keyserver, client, dom, pg, db, operator_token.token)
    c.pending = kf.issue_token(client, dom, f"alice@{dom.name}")
    # A domain set made but not registered, for the registration cases.
    spare = kf.new_domain_name("spare")
    kf.ctl_ok(keyserver, "domain", "init", spare, cwd=base)
    c.extra["spare"] = (spare, base / spare)
    c.csr = kf.make_csr(f"alice@{dom.name}")[1]
    return c


def post_raw(c, path, body, ctype="application/json", token=None):
    return c.client.request("POST", path, body=body, token=token,
                            headers={"Content-Type": ctype} if ctype else {})


def enroll_path(c, domain=None):
    return f"/v1/domains/{domain or c.dom.name}/enroll"


# Each case: (id, setup(ctx) -> request thunk, expected status, expected code(s)).
# setup runs before the "before" snapshot; the thunk is the request under test.

def _enroll_raw(body, ctype="application/json"):
    return lambda c: (lambda: post_raw(c, enroll_path(c), body, ctype))


def _enroll_json(make):
    return lambda c: (lambda: c.client.post(enroll_path(c), make(c)))


def _enroll_csr(make_csr, token="pending"):
    """Enroll alice's pending token with the CSR that make_csr(c) returns."""
    def setup(c):
        csr = make_csr(c)
        return lambda: kf.enroll(c.client, c.dom.name, c.pending if token == "pending"
                                 else token, csr)
    return setup


def _garbage_pem(c):
    return "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgcmVxdWVzdA==\n" \
           "-----END CERTIFICATE REQUEST-----\n"


def _truncated_csr(c):
    lines = c.csr.splitlines()
    return "\n".join(lines[:len(lines) // 2] + [lines[-1]]) + "\n"


def _get(path_fn, token=None):
    return lambda c: (lambda: c.client.get(path_fn(c), token=token))


def _req(method, path_fn, body=None, token=None):
    return lambda c: (lambda: c.client.request(method, path_fn(c), body=body(c) if callable(body)
                                               else body, token=token(c) if callable(token)
                                               else token))


def _admin(c):
    return c.dom.admin_token


CASES = [
    # The body.
    ("truncated_json", _enroll_raw('{"token": "abc", "csr": "-----BEGIN'), 400, "bad_json"),
    ("garbled_json", _enroll_raw("{token: abc, csr: ]"), 400, "bad_json"),
    ("trailing_garbage", _enroll_raw('{"token": "a", "csr": "b"} x'), 400, "bad_json"),
    ("empty_body", _enroll_raw(""), 400, ("bad_json", "bad_request")),
    ("json_array", _enroll_json(lambda c: [{"token": c.pending, "csr": c.csr}]), 400,
     ("bad_request", "bad_json")),
    ("json_string", _enroll_raw('"hello"'), 400, ("bad_request", "bad_json")),
    ("invalid_utf8", _enroll_raw(b'{"token": "\xff\xfe\xfd", "csr": "x"}'), 400, "bad_json"),
    ("overlong_utf8", _enroll_raw(b'{"token": "\xc0\xaf", "csr": "x"}'), 400, "bad_json"),
    ("missing_token", _enroll_json(lambda c: {"csr": c.csr}), 400, "bad_request"),
    ("missing_csr", _enroll_json(lambda c: {"token": c.pending}), 400, "bad_request"),
    ("empty_object", _enroll_json(lambda c: {}), 400, "bad_request"),
    ("token_number", _enroll_json(lambda c: {"token": 12345, "csr": c.csr}), 400, "bad_request"),
    ("token_null", _enroll_json(lambda c: {"token": None, "csr": c.csr}), 400, "bad_request"),
    ("csr_array", _enroll_json(lambda c: {"token": c.pending, "csr": [c.csr]}), 400,
     "bad_request"),
    ("csr_object", _enroll_json(lambda c: {"token": c.pending, "csr": {"pem": c.csr}}), 400,
     "bad_request"),
    ("text_plain", _enroll_raw('{"token": "a", "csr": "b"}', "text/plain"), 415,
     "unsupported_media_type"),
    ("form_encoded", _enroll_raw("token=a&csr=b", "application/x-www-form-urlencoded"), 415,
     "unsupported_media_type"),
    # The request.
    ("csr_garbage", _enroll_csr(lambda c: "this is not a certificate request"), 400, "bad_csr"),
    ("csr_bad_base64", _enroll_csr(_garbage_pem), 400, "bad_csr"),
    ("csr_truncated", _enroll_csr(_truncated_csr), 400, "bad_csr"),
    ("csr_is_a_certificate", _enroll_csr(lambda c: c.dom.root_pem), 400, "bad_csr"),
    ("csr_flipped_signature",
     _enroll_csr(lambda c: kf.csr_with_flipped_signature(c.csr)), 400, "csr_signature"),
    ("csr_flipped_signature_p256",
     _enroll_csr(lambda c: kf.csr_with_flipped_signature(
         kf.make_csr(f"alice@{c.dom.name}", alg="p256")[1])), 400, "csr_signature"),
    ("csr_flipped_signature_rsa",
     _enroll_csr(lambda c: kf.csr_with_flipped_signature(
         kf.make_csr(f"alice@{c.dom.name}", alg="rsa2048")[1])), 400, "csr_signature"),
    ("csr_no_address", _enroll_csr(lambda c: kf.make_csr(host="alice.example")[1]), 400,
     "bad_csr"),
    ("csr_weak_rsa1024", _enroll_csr(lambda c: kf.make_csr(f"alice@{c.dom.name}",
                                                           alg="rsa1024")[1]), 422, "weak_key"),
    # The name.
    ("csr_outside_domain", _enroll_csr(lambda c: kf.make_csr("alice@other.test")[1]), 400,
     "address_outside_domain"),
    ("csr_parent_domain", _enroll_csr(
        lambda c: kf.make_csr("alice@" + c.dom.name.split(".", 1)[1])[1]), 400,
     ("address_outside_domain", "bad_name")),
    ("csr_sql_address", _enroll_csr(
        lambda c: kf.make_csr(SQL_ADDRESS.format(d=c.dom.name), san=False)[1]),
     400, "bad_name"),
    ("csr_two_addresses", _enroll_csr(lambda c: _two_address_csr(c)), 400,
     ("bad_csr", "address_mismatch")),
    # The token.
    ("address_mismatch", _enroll_csr(lambda c: kf.make_csr(f"bob@{c.dom.name}")[1]), 400,
     "address_mismatch"),
    ("token_unknown", _enroll_csr(lambda c: c.csr, token="A" * 43), 404, "token_unknown"),
    ("token_sql", _enroll_csr(lambda c: c.csr, token=SQL_TOKEN), 404, "token_unknown"),
    ("token_empty", _enroll_csr(lambda c: c.csr, token=""), 404, ("token_unknown",
                                                                   "bad_request")),
    ("unknown_domain", lambda c: (lambda: kf.enroll(c.client, "not-hosted.test", c.pending,
                                                    kf.make_csr("alice@not-hosted.test")[1])),
     404, "unknown_domain"),
    ("sql_domain_in_url", _req("POST", lambda c: "/v1/domains/x';DROP%20TABLE%20domains;--/enroll",
                               body=lambda c: {"token": c.pending, "csr": c.csr}),
     400, "bad_name"),
    # Token issue.
    ("token_issue_sql_address", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                     body=lambda c: {"address": SQL_ADDRESS.format(d=c.dom.name)},
                                     token=_admin), 400, "bad_name"),
    ("token_issue_outside", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                 body={"address": "alice@other.test"}, token=_admin),
     400, "address_outside_domain"),
    ("token_issue_no_address", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                    body={"ttl": 3600}, token=_admin), 400, "bad_request"),
    ("token_issue_ttl_string", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                    body=lambda c: {"address": f"x@{c.dom.name}", "ttl": "60"},
                                    token=_admin), 400, "bad_request"),
    ("token_issue_ttl_short", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                   body=lambda c: {"address": f"x@{c.dom.name}", "ttl": 59},
                                   token=_admin), 400, "bad_request"),
    ("token_issue_ttl_long", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                  body=lambda c: {"address": f"x@{c.dom.name}",
                                                  "ttl": 30 * 86400 + 1},
                                  token=_admin), 400, "bad_request"),
    # Authorization.
    ("token_issue_no_bearer", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                   body=lambda c: {"address": f"x@{c.dom.name}"}),
     401, "unauthorized"),
    ("token_issue_wrong_bearer", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                      body=lambda c: {"address": f"x@{c.dom.name}"},
                                      token="B" * 43), 401, "unauthorized"),
    ("token_issue_sql_bearer", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/tokens",
                                    body=lambda c: {"address": f"x@{c.dom.name}"},
                                    token=SQL_TOKEN), 401, "unauthorized"),
    ("token_issue_basic_auth", lambda c: (lambda: c.client.post(
        f"/v1/domains/{c.dom.name}/tokens", {"address": f"x@{c.dom.name}"},
        headers={"Authorization": "Basic " + c.dom.admin_token})), 401, "unauthorized"),
    ("servers_list_wrong_bearer", _get(lambda c: f"/v1/domains/{c.dom.name}/servers",
                                       token="C" * 43), 401, "unauthorized"),
    ("operator_no_token", _req("POST", lambda c: "/v1/admin/domains",
                               body=lambda c: _register_body(c, "new-one.test")),
     401, "unauthorized"),
    ("operator_wrong_token", _req("POST", lambda c: "/v1/admin/domains",
                                  body=lambda c: _register_body(c, "new-one.test"),
                                  token="D" * 43), 401, "unauthorized"),
    ("operator_admin_token", _req("POST", lambda c: "/v1/admin/domains",
                                  body=lambda c: _register_body(c, "new-one.test"),
                                  token=_admin), (401, 403), ("unauthorized", "forbidden")),
    ("operator_bad_domain_set", _req("POST", lambda c: "/v1/admin/domains",
                                     body=lambda c: _register_body(c, "new-one.test"),
                                     token=lambda c: c.operator_token), 422, "bad_domain_set"),
    ("operator_key_mismatch", _req("POST", lambda c: "/v1/admin/domains",
                                   body=lambda c: dict(_spare_body(c), issuer_key=(
                                       c.dom.dir / "issuer.key").read_text()),
                                   token=lambda c: c.operator_token), 422, "bad_domain_set"),
    ("operator_foreign_issuer", _req("POST", lambda c: "/v1/admin/domains",
                                     body=lambda c: dict(_spare_body(c), issuer=c.dom.issuer_pem,
                                                         issuer_key=(c.dom.dir / "issuer.key")
                                                         .read_text()),
                                     token=lambda c: c.operator_token), 422, "bad_domain_set"),
    ("operator_issuer_as_root", _req("POST", lambda c: "/v1/admin/domains",
                                     body=lambda c: dict(_spare_body(c),
                                                         root=_spare_body(c)["issuer"]),
                                     token=lambda c: c.operator_token), 422, "bad_domain_set"),
    ("operator_sql_domain", _req("POST", lambda c: "/v1/admin/domains",
                                 body=lambda c: _register_body(c, "x'; DROP TABLE domains; --"),
                                 token=lambda c: c.operator_token), 400, "bad_name"),
    ("operator_missing_key", _req("POST", lambda c: "/v1/admin/domains",
                                  body=lambda c: {k: v for k, v in
                                                  _register_body(c, "new-one.test").items()
                                                  if k != "issuer_key"},
                                  token=lambda c: c.operator_token), 400, "bad_request"),
    ("operator_bad_policy", _req("POST", lambda c: "/v1/admin/domains",
                                 body=lambda c: dict(_register_body(c, c.dom.name),
                                                     policy="everyone"),
                                 token=lambda c: c.operator_token), 400, "bad_policy"),
    # Lookups.
    ("lookup_sql_address", _get(lambda c: "/v1/addresses/x'%3B%20DROP%20TABLE%20certificates"
                                          f"%3B%20--@{c.dom.name}"), 400, "bad_name"),
    ("lookup_no_at", _get(lambda c: f"/v1/addresses/{c.dom.name}"), 400, "bad_name"),
    ("key_id_bad_format", _get(lambda c: "/v1/keys/not-a-uuid"), (400, 404),
     ("bad_request", "not_found")),
    ("key_id_sql", _get(lambda c: "/v1/keys/1'%20OR%20'1'='1"), (400, 404),
     ("bad_request", "not_found")),
    ("key_id_too_long", _get(lambda c: "/v1/keys/00000000-0000-4000-8000-0000000000001"),
     (400, 404), ("bad_request", "not_found")),
    ("fingerprint_no_prefix", _get(lambda c: "/v1/fingerprints/" + "ab" * 32), (400, 404),
     ("bad_request", "not_found")),
    ("fingerprint_sha1", _get(lambda c: "/v1/fingerprints/sha1:" + "ab" * 20), (400, 404),
     ("bad_request", "not_found")),
    ("fingerprint_short", _get(lambda c: "/v1/fingerprints/sha256:" + "a" * 63), (400, 404),
     ("bad_request", "not_found")),
    ("fingerprint_not_hex", _get(lambda c: "/v1/fingerprints/sha256:" + "zz" * 32), (400, 404),
     ("bad_request", "not_found")),
    # Methods.
    ("delete_domain", _req("DELETE", lambda c: f"/v1/domains/{c.dom.name}", token=_admin),
     405, "method_not_allowed"),
    ("get_enroll", _get(lambda c: enroll_path(c)), 405, "method_not_allowed"),
    ("put_address", _req("PUT", lambda c: f"/v1/addresses/bob@{c.dom.name}", body={}),
     405, "method_not_allowed"),
    ("get_admin_domains", _get(lambda c: "/v1/admin/domains"), 405, "method_not_allowed"),
    ("post_policy", _req("POST", lambda c: f"/v1/domains/{c.dom.name}/policy",
                         body={"policy": "isp"}, token=_admin), 405, "method_not_allowed"),
]


def _two_address_csr(c):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    key = kf.make_key("ed25519")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")]))
           .add_extension(x509.SubjectAlternativeName([
               x509.RFC822Name(f"alice@{c.dom.name}"), x509.RFC822Name(f"bob@{c.dom.name}")]),
               critical=False)
           .sign(key, None))
    from cryptography.hazmat.primitives import serialization
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _spare_body(c):
    name, d = c.extra["spare"]
    return {"domain": name, "root": (d / "root.pem").read_text(),
            "issuer": (d / "issuer.pem").read_text(),
            "issuer_key": (d / "issuer.key").read_text(), "policy": "isp"}


def _register_body(c, domain):
    """A registration whose files belong to c.dom, not to the domain named."""
    return {"domain": domain, "root": c.dom.root_pem, "issuer": c.dom.issuer_pem,
            "issuer_key": (c.dom.dir / "issuer.key").read_text(), "policy": "isp"}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_refused_and_changes_nothing(ctx, case):
    name, setup, status, codes = case
    statuses = status if isinstance(status, tuple) else (status,)
    codes = codes if isinstance(codes, tuple) else (codes,)
    thunk = setup(ctx)
    before = kf.db_snapshot(ctx.pg, ctx.db)
    r = thunk()
    assert r.status in statuses, (name, r.status, r.body)
    assert r.error_code() in codes, (name, r.body)
    if len(statuses) > 1:
        # When either reading is allowed, the status and the code still agree.
        assert STATUS_CODE[r.status] == r.error_code(), (name, r.status, r.body)
    assert r.headers.get("x-request-id")
    if r.status == 405:
        assert r.headers.get("allow"), "405 says which methods are allowed"
    after = kf.db_snapshot(ctx.pg, ctx.db)
    assert after == before, f"{name}: the store changed"
    assert kf.token_used_at(ctx.pg, ctx.db, ctx.pending) == "", "the pending token stays unused"


def test_token_used(ctx):
    client, dom = ctx.client, ctx.dom
    token = kf.issue_token(client, dom, f"carl@{dom.name}")
    _, csr = kf.make_csr(f"carl@{dom.name}")
    r = kf.enroll(client, dom.name, token, csr)
    assert r.status == 201, r.body
    first = r.json()["key_id"]
    _, csr2 = kf.make_csr(f"carl@{dom.name}")
    before = kf.db_snapshot(ctx.pg, ctx.db)
    r = kf.enroll(client, dom.name, token, csr2)
    assert r.status == 409 and r.error_code() == "token_used", r.body
    # The same request again is refused too (no replay).
    r = kf.enroll(client, dom.name, token, csr)
    assert r.status == 409 and r.error_code() == "token_used", r.body
    assert kf.db_snapshot(ctx.pg, ctx.db) == before
    doc = client.get(f"/v1/addresses/carl@{dom.name}").json()
    assert [c["key_id"] for c in doc["certificates"]] == [first]


def test_token_expired(ctx):
    client, dom = ctx.client, ctx.dom
    token = kf.issue_token(client, dom, f"dora@{dom.name}", ttl=60)
    h = hashlib.sha256(token.encode()).hexdigest()
    ctx.pg.psql(f"UPDATE enroll_tokens SET expires_at = now() - interval '1 minute' "
                f"WHERE token_hash = '{h}'", dbname=kf.dbname_of(ctx.db))
    _, csr = kf.make_csr(f"dora@{dom.name}")
    before = kf.db_snapshot(ctx.pg, ctx.db)
    r = kf.enroll(client, dom.name, token, csr)
    assert r.status == 410 and r.error_code() == "token_expired", r.body
    assert kf.db_snapshot(ctx.pg, ctx.db) == before
    assert kf.token_used_at(ctx.pg, ctx.db, token) == ""
    r = client.get(f"/v1/addresses/dora@{dom.name}")
    assert r.status == 404


def test_token_ttl_is_honoured(ctx):
    """A ttl of 60 s gives a token that expires about a minute from now."""
    r = ctx.client.post(f"/v1/domains/{ctx.dom.name}/tokens",
                        {"address": f"eve@{ctx.dom.name}", "ttl": 60},
                        token=ctx.dom.admin_token)
    assert r.status == 201, r.body
    h = hashlib.sha256(r.json()["token"].encode()).hexdigest()
    secs = ctx.pg.psql(f"SELECT extract(epoch FROM expires_at - now())::int FROM enroll_tokens"
                       f" WHERE token_hash = '{h}'", dbname=kf.dbname_of(ctx.db))
    assert 50 <= int(secs) <= 61, secs
    # Only the hash is stored.
    assert ctx.pg.psql(f"SELECT count(*) FROM enroll_tokens WHERE token_hash = "
                       f"'{r.json()['token']}'", dbname=kf.dbname_of(ctx.db)).strip() == "0"


def _raw_https(ks, head, body, read_timeout=10):
    """Send raw bytes over TLS; return (status, headers, body) parsed loosely.  The server
    may answer and close before the whole body is sent: that is allowed (PROTOCOL.md §1)."""
    ctxs = ssl.create_default_context(cafile=str(ks.tls.ca))
    with socket.create_connection(("127.0.0.1", ks.port), timeout=read_timeout) as raw:
        with ctxs.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(head)
            try:
                s.sendall(body)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                    if b"\r\n\r\n" in data:
                        hdr, _, rest = data.partition(b"\r\n\r\n")
                        clen = [int(l.split(b":", 1)[1]) for l in hdr.split(b"\r\n")
                                if l.lower().startswith(b"content-length:")]
                        if clen and len(rest) >= clen[0]:
                            break
            except (ConnectionResetError, ssl.SSLError, socket.timeout):
                pass
    hdr, _, rest = data.partition(b"\r\n\r\n")
    lines = hdr.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip()
               for l in lines[1:] if ":" in l}
    return status, headers, rest


@pytest.mark.parametrize("size", [64 * 1024 + 1, 1024 * 1024])
def test_oversized_body(ctx, size):
    token = kf.issue_token(ctx.client, ctx.dom, f"alice@{ctx.dom.name}")
    before = kf.db_snapshot(ctx.pg, ctx.db)
    pad = "x" * (size - 40)
    body = json.dumps({"token": token, "csr": ctx.csr, "pad": pad}).encode()
    assert len(body) > 64 * 1024
    try:
        r = post_raw(ctx, enroll_path(ctx), body)
    except (ssl.SSLError, ConnectionError):
        r = None  # answered and closed before the client had sent it all: allowed
    if r is not None:
        assert r.status == 413, (r.status, r.body[:200])
        assert r.error_code() == "body_too_large"
    # Announced length alone is enough to refuse (without sending the body in full).
    head = (f"POST {enroll_path(ctx)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    status, headers, rest = _raw_https(ctx.ks, head, body[:1024])
    assert status == 413, (status, rest[:200])
    assert json.loads(rest)["error"] == "body_too_large"
    assert kf.db_snapshot(ctx.pg, ctx.db) == before
    assert kf.token_used_at(ctx.pg, ctx.db, token) == ""


def test_body_just_under_limit_is_read(ctx):
    """The limit is the limit: a (useless) body just under 64 KiB is parsed, not refused."""
    pad = "x" * (64 * 1024 - 200)
    r = ctx.client.post(enroll_path(ctx), {"token": "A" * 43, "csr": "junk", "pad": pad})
    assert len(json.dumps({"token": "A" * 43, "csr": "junk", "pad": pad})) < 64 * 1024
    assert r.status == 400 and r.error_code() == "bad_csr", r.body


def test_tables_intact_and_pending_token_still_works(ctx):
    """After all the above (SQL-looking input included), the tables are there and the
    token that every refused enrollment presented is still good."""
    out = ctx.pg.psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
                      "WHERE schemaname = 'public'", dbname=kf.dbname_of(ctx.db))
    for t in kf.TABLES:
        assert t in out.strip().split(","), out
    r = kf.enroll(ctx.client, ctx.dom.name, ctx.pending, ctx.csr)
    assert r.status == 201, r.body
    assert r.json()["name"] == f"alice@{ctx.dom.name}"
    assert kf.token_used_at(ctx.pg, ctx.db, ctx.pending) != ""
    r = ctx.client.get(f"/v1/addresses/bob@{ctx.dom.name}")
    assert r.status == 200 and r.json()["encryption"]["address"] == f"team@{ctx.dom.name}"
    # The set refused in pieces above registers fine as a whole.
    r = ctx.client.post("/v1/admin/domains", _spare_body(ctx), token=ctx.operator_token)
    assert r.status == 201, r.body
    assert r.json()["pins"] == [kf.spki_pin(_spare_body(ctx)["root"])]
