"""Internationalised names at the key server (PROTOCOL.md "Names"): one name, one record.

A domain registered under its A-label is found under its U-label, in any case, with a
trailing dot, percent-encoded; an enrollment token asked for a UTF-8 address in
decomposed form and upper case is bound to the canonical address (NFC, lowercase,
A-label domain).  Names that are not well-formed (invalid UTF-8, an xn-- label that is
no A-label, a control or bidi override in a local part) are refused with bad_name and
change nothing.  anchorctl finds the record under the U-label too."""

import json
from urllib.parse import quote

import pytest

import ksfixtures as kf


@pytest.fixture(scope="module")
def idn(keyserver, operator_token, tmp_path_factory):
    base = tmp_path_factory.mktemp("utf8names")
    label = "b\u00fccher-" + kf.new_domain_name("u").split(".")[0]
    uname = f"{label}.test"
    aname = label.encode("idna").decode() + ".test"
    assert aname.startswith("xn--")
    dom = kf.register_domain(keyserver, base, aname, operator_token.token)
    return dom, uname, aname, base


def test_u_and_a_label_are_one_domain(client, keyserver, idn):
    dom, uname, aname, base = idn
    obj, _ = kf.enroll_new(client, dom, f"alice@{aname}")
    kid = obj["key_id"]
    want = client.get(f"/v1/addresses/alice@{aname}")
    assert want.status == 200 and kid in want.text, want.body
    spellings = [
        f"alice@{aname}",
        f"ALICE@{aname.upper()}",
        f"alice@{aname}.",
        quote(f"alice@{uname}"),
        quote(f"Alice@{uname.upper()}"),         # "B\u00dcCHER": case folded in the U-label
    ]
    for s in spellings:
        r = client.get(f"/v1/addresses/{s}")
        assert r.status == 200, (s, r.status, r.body)
        assert r.json() == want.json(), s
    for s in (aname, quote(uname), quote(uname.upper() + ".")):
        r = client.get(f"/v1/domains/{s}")
        assert r.status == 200, (s, r.status, r.body)

    # anchorctl: the U-label argument finds the same record
    r = kf.run_ctl(keyserver, "lookup", "address", f"Alice@{uname}", "--json", cwd=base)
    assert r.rc == 0, (r.out, r.err)
    assert json.loads(r.out) == want.json()


def test_utf8_local_part_token_is_canonical(client, idn):
    dom, uname, aname, _ = idn
    # "Jo" + U+0308 (decomposed) in upper case, under the U-label
    r = client.post(f"/v1/domains/{quote(uname)}/tokens", {"address": f"JO\u0308RG@{uname}"},
                    token=dom.admin_token)
    assert r.status == 201, (r.status, r.body)
    assert r.json()["address"] == f"j\u00f6rg@{aname}"


@pytest.mark.parametrize("addr, what", [
    ("alice%40xn--zz.test", "an xn-- label that is no A-label"),
    ("j%C3rg%40example.test", "truncated UTF-8"),
    ("j%C0%AFrg%40example.test", "overlong"),
    ("j%ED%A0%80rg%40example.test", "surrogate"),
    ("j%C2%85rg%40example.test", "C1 control"),
    ("j%E2%80%AErg%40example.test", "bidi override"),
])
def test_bad_names_refused(client, addr, what):
    r = client.get(f"/v1/addresses/{addr}")
    assert r.status == 400, (what, r.status, r.body)
    # the HTTP gate refuses what is not UTF-8 once percent-decoded; pki/name the rest
    assert r.error_code() in ("bad_name", "invalid_utf8"), (what, r.body)


def test_bad_name_token_changes_nothing(client, idn):
    dom, _, aname, _ = idn
    r = client.post(f"/v1/domains/{aname}/tokens", {"address": f"j\u202erg@{aname}"},
                    token=dom.admin_token)
    assert r.status == 400 and r.error_code() == "bad_name", r.body
