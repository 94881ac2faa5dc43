"""Key server core: server certificates issued by the domain admin (PROTOCOL.md §2, §5.2)."""

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

import ksfixtures as kf


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="module")
def dom(keyserver, operator_token, base):
    return kf.register_domain(keyserver, base, kf.new_domain_name("srv"), operator_token.token)


def _write_chain(dom, d):
    root, issuer = d / "root.pem", d / "issuer.pem"
    root.write_text(dom.root_pem)
    issuer.write_text(dom.issuer_pem)
    return root, issuer


def _eku(cert):
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def test_mta_certificate_with_anchorctl(keyserver, dom, base, tmp_path):
    host = f"mx1.{dom.name}"
    r = kf.ctl_ok(keyserver, "server", "issue", host, "--purpose", "mta", cwd=base)
    pem = base / f"{host}.mta.pem"
    assert pem.exists(), r.out
    assert ((base / f"{host}.mta.key").stat().st_mode & 0o777) == 0o600
    cert = kf.load_cert(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [host]
    assert san.get_values_for_type(x509.RFC822Name) == []
    assert _eku(cert) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False

    root, issuer = _write_chain(dom, tmp_path)
    for purpose in ("sslserver", "sslclient"):
        v = kf.openssl("verify", "-purpose", purpose, "-CAfile", root, "-untrusted", issuer, pem)
        assert v.returncode == 0, (purpose, v.stderr_text)
    # Not usable for S/MIME.
    v = kf.openssl("verify", "-purpose", "smimesign", "-CAfile", root, "-untrusted", issuer, pem)
    assert v.returncode != 0


@pytest.mark.parametrize("purpose", ["keyserver", "signing"])
def test_other_purposes(keyserver, dom, base, tmp_path, purpose):
    host = f"{purpose}.{dom.name}" if purpose != "signing" else dom.name
    kf.ctl_ok(keyserver, "server", "issue", host, "--purpose", purpose, "--domain", dom.name,
              cwd=base)
    pem = base / f"{host}.{purpose}.pem"
    cert = kf.load_cert(pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [host]
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature
    if purpose == "keyserver":
        assert _eku(cert) == {ExtendedKeyUsageOID.SERVER_AUTH}
    else:
        assert _eku(cert) is None, "a signing certificate has no EKU"
        assert not ku.key_encipherment and not ku.key_cert_sign
    root, issuer = _write_chain(dom, tmp_path)
    v = kf.openssl("verify", "-CAfile", root, "-untrusted", issuer, pem)
    assert v.returncode == 0, v.stderr_text


def test_host_outside_domain_refused(client, dom, pg, db):
    before = kf.db_snapshot(pg, db)
    for host in ("mx.other.test", f"x{dom.name}", dom.name.split(".", 1)[1]):
        _, csr = kf.make_csr(host=host)
        r = client.post(f"/v1/domains/{dom.name}/servers", {"csr": csr, "purpose": "mta"},
                        token=dom.admin_token)
        assert r.status == 400, (host, r.status, r.body)
        assert r.error_code() in ("address_outside_domain", "bad_name"), (host, r.body)
        if host == "mx.other.test":
            assert r.error_code() == "address_outside_domain"
    # Unknown purpose; smime is for users.
    _, csr = kf.make_csr(host=f"mx.{dom.name}")
    for purpose in ("smime", "web", 3):
        r = client.post(f"/v1/domains/{dom.name}/servers", {"csr": csr, "purpose": purpose},
                        token=dom.admin_token)
        assert 400 <= r.status < 500 and r.error_code() in ("bad_request", "bad_policy"), r.body
    # No admin token.
    r = client.post(f"/v1/domains/{dom.name}/servers", {"csr": csr, "purpose": "mta"})
    assert r.status == 401 and r.error_code() == "unauthorized"
    assert kf.db_snapshot(pg, db) == before


def test_server_list_and_supersede(keyserver, client, operator_token, base):
    d = kf.register_domain(keyserver, base, kf.new_domain_name("srvlist"), operator_token.token)
    issued = {}
    for host, purpose in ((f"mx1.{d.name}", "mta"), (f"mx2.{d.name}", "mta"),
                          (f"keys.{d.name}", "keyserver"), (d.name, "signing")):
        _, csr = kf.make_csr(host=host, alg="p256")
        r = client.post(f"/v1/domains/{d.name}/servers", {"csr": csr, "purpose": purpose},
                        token=d.admin_token)
        assert r.status == 201, r.body
        obj = r.json()
        assert obj["kind"] == "server" and obj["purpose"] == purpose and obj["name"] == host
        assert [c.strip() for c in obj["chain"]] == [d.issuer_pem.strip(), d.root_pem.strip()]
        issued[(host, purpose)] = obj["key_id"]

    def listing():
        r = client.get(f"/v1/domains/{d.name}/servers", token=d.admin_token)
        assert r.status == 200, r.body
        doc = r.json()
        assert doc["domain"] == d.name
        return {(s["name"], s["purpose"]): s["key_id"] for s in doc["servers"]}, doc["servers"]

    got, servers = listing()
    assert got == issued
    assert all(s["status"] == "current" for s in servers)

    # Re-issuing for the same host and purpose supersedes the previous certificate.
    old = issued[(f"mx1.{d.name}", "mta")]
    _, csr = kf.make_csr(host=f"mx1.{d.name}")
    r = client.post(f"/v1/domains/{d.name}/servers", {"csr": csr, "purpose": "mta"},
                    token=d.admin_token)
    assert r.status == 201, r.body
    issued[(f"mx1.{d.name}", "mta")] = r.json()["key_id"]
    got, _ = listing()
    assert got == issued
    r = client.get(f"/v1/keys/{old}")
    assert r.status == 200 and r.json()["status"] == "superseded"

    # Server certificates are not user certificates: no address lookup finds them.
    r = client.get(f"/v1/addresses/postmaster@{d.name}")
    assert r.status == 404

    # Wrong token: refused.
    r = client.get(f"/v1/domains/{d.name}/servers", token="x" * 43)
    assert r.status == 401 and r.error_code() == "unauthorized"
