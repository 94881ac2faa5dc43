"""Group keys held only wrapped (PROTOCOL.md §5.5), against the real key server and its
signer, with anchorctl on both sides: the admin makes the group's key and uploads it
wrapped to each member's encryption certificates; members fetch and unwrap it with a
request signed by their own key; a member removed is left out of the next generation.

One module-scoped world: a domain under the groups policy, three members, a sender
(sam) and an outsider, every user with an Ed25519 signing key and a P-256 encryption
key (the fast ones)."""

import base64
import json
import os
import re
import smtplib
import stat
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives import serialization

import ksfixtures as kf
import relayfixtures as rx  # noqa: F401
import routefixtures as rf
from relayfixtures import make_relay, py_sink  # noqa: F401

MSG = "Content-Type: text/plain; charset=utf-8\n\nThe budget is on the shared drive.\n"
TYP = "anchor-group-keys-request+jws"


class World:
    pass


def ctl(w, *args, env=None):
    return kf.run_ctl(w.ks, *args, cwd=w.base, env=env)


def admin(w, *args):
    return kf.run_ctl(w.ks, *args, cwd=w.base,
                      env={"ANCHOR_ADMIN_TOKEN": w.dom.admin_token})


def udir(w, who):
    return w.users / who


def fetch(w, who):
    return ctl(w, "group", "key", "fetch", w.group, "--as", w.addr[who], "--dir", udir(w, who))


def _fetch_all(w, members):
    with ThreadPoolExecutor(len(members)) as pool:
        return list(pool.map(lambda m: fetch(w, m), members))


def gkey(w, gen, who="m1"):
    """The group key of generation gen as who fetched it."""
    return udir(w, who) / f"{w.group}.g{gen}.enc.key"


def encrypt(w, to, name):
    """sam encrypts MSG to `to` (looked up through the key server), keeping its own copy."""
    out = w.base / name
    r = ctl(w, "mail", "encrypt", to, "--self", udir(w, "sam") / f"{w.addr['sam']}.default.enc.pem",
            "--in", w.msg, "--out", out, "--state", w.base / "sam-heads.json")
    assert r.rc == 0, r.err
    return out, r


def decrypt(w, key, path):
    return ctl(w, "mail", "decrypt", "--key", key, "--in", path,
               "--state", w.base / "heads.json")


@pytest.fixture(scope="module")
def w(keyserver, operator_token, tmp_path_factory, pg, db):
    w = World()
    w.ks, w.pg, w.db = keyserver, pg, db
    w.base = tmp_path_factory.mktemp("groupkeys")
    w.dom = kf.register_domain(keyserver, w.base, kf.new_domain_name("grp"),
                               operator_token.token, policy="groups")
    w.users = w.base / "users"
    w.users.mkdir()
    w.msg = w.base / "msg.txt"
    w.msg.write_text(MSG)
    # sam sends, and is no member: the outsider of the refusals
    w.addr = {n: f"{n}@{w.dom.name}" for n in ("m1", "m2", "m3", "sam")}
    w.group = f"team@{w.dom.name}"
    for addr in w.addr.values():
        # the signing key through the API (as `key enroll` would write its files)
        cert, key = kf.enroll_new(keyserver.client(), w.dom, addr)
        d = w.users / addr.split("@")[0]  # each user's files in a directory of its own
        d.mkdir()
        (d / f"{addr}.key").write_text(kf.key_pem(key))
        (d / f"{addr}.key").chmod(0o600)
        (d / f"{addr}.pem").write_text(cert["certificate"])
        (d / f"{addr}.chain.pem").write_text("".join(cert["chain"]))
    # each user's device key, authorised by its signing key (anchorctl; side by side)
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda n: ctl(w, "key", "enroll", w.addr[n], "--encryption",
                                           "--alg", "p256", "--dir", udir(w, n)), w.addr))
    assert all(r.rc == 0 for r in runs), [r.err for r in runs]
    r = admin(w, "group", "set", w.group, w.addr["m1"], w.addr["m2"], w.addr["m3"])
    assert r.rc == 0, r.err
    w.admin_dir = w.base / "admin"
    w.admin_dir.mkdir()
    r = admin(w, "group", "key", "create", w.group, "--alg", "p256", "--dir", w.admin_dir)
    assert r.rc == 0, r.err
    assert "generation 1" in r.out and "3 member(s)" in r.out, r.out
    fetched = _fetch_all(w, ("m1", "m2", "m3"))
    assert all(r.rc == 0 for r in fetched), [r.err for r in fetched]
    # mail to a member goes to the group's key (the groups policy), sent before rotation
    w.msg1, r = encrypt(w, w.addr["m1"], "msg1.p7m")
    assert "2 certificate(s)" in r.err, r.err  # the group's key and sam's own copy
    return w


@pytest.fixture(scope="module")
def rotated(w):
    """m3 leaves; the admin rotates; the others fetch; a message is sent after."""
    r = admin(w, "group", "set", w.group, w.addr["m1"], w.addr["m2"])
    assert r.rc == 0, r.err
    assert "run group key rotate" in r.out, r.out
    r = admin(w, "group", "key", "rotate", w.group, "--alg", "p256", "--dir", w.admin_dir)
    assert r.rc == 0, r.err
    assert "generation 2" in r.out and "2 member(s)" in r.out, r.out
    assert all(r.rc == 0 for r in _fetch_all(w, ("m1", "m2")))
    w.msg2, r = encrypt(w, w.addr["m2"], "msg2.p7m")
    assert "2 certificate(s)" in r.err, r.err  # the new key only: the old is superseded
    return w


def test_members_fetch_and_decrypt(w):
    for m in ("m1", "m2", "m3"):
        k = gkey(w, 1, m)
        assert k.exists()
        assert stat.S_IMODE(os.stat(k).st_mode) == 0o600
        r = decrypt(w, k, w.msg1)
        assert r.rc == 0, (m, r.err)
        assert "The budget is on the shared drive." in r.out
    # the sender's own copy
    r = decrypt(w, udir(w, "sam") / f"{w.addr['sam']}.default.enc.key", w.msg1)
    assert r.rc == 0, r.err


def test_fetch_again_keeps_what_it_has(w):
    before = gkey(w, 1).read_bytes()
    r = fetch(w, "m1")
    assert r.rc == 0, r.err
    assert gkey(w, 1).read_bytes() == before


def test_non_member_is_refused(w):
    r = fetch(w, "sam")
    assert r.rc == 1 and "not_a_member" in r.err, r.err
    # signed correctly by sam, for sam: still nothing
    r = _post(w, "sam", _request(w, "sam", issued=int(time.time()) + 2))
    assert r.status == 403 and r.json()["error"] == "not_a_member", r.body
    assert "keys" not in r.json()


def _chain(w, who):
    d = udir(w, who)
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?",
                      (d / f"{w.addr[who]}.pem").read_text() +
                      (d / f"{w.addr[who]}.chain.pem").read_text(), re.S)
    key = serialization.load_pem_private_key((d / f"{w.addr[who]}.key").read_bytes(), None)
    return key, pems


def _request(w, who, group=None, issued=None, signer=None):
    key, pems = _chain(w, signer or who)
    payload = {"type": "anchor-group-keys-request", "address": w.addr[who],
               "group": group or w.group,
               # milliseconds, as anchorctl signs: two requests in one second are no replay
               "issued": round(time.time(), 3) if issued is None else issued}
    return rf.sign(key, pems, payload, TYP)


def _post(w, who, body):
    return w.ks.client().post(f"/v1/domains/{w.dom.name}/groups/{w.group}/keys/{w.addr[who]}",
                              body, headers={"Content-Type": "application/json"})


def test_forged_replayed_and_mismatched_requests(w, tmp_path):
    # replay: the same signed request twice; the second is refused.
    body = _request(w, "m2")
    r = _post(w, "m2", body)
    assert r.status == 200, r.body
    assert [k["generation"] for k in r.json()["keys"]][0] == 1
    r = _post(w, "m2", body)
    assert r.status == 409 and r.json()["error"] == "replayed", r.body
    # signed by another member's key for m2's wraps
    r = _post(w, "m2", _request(w, "m2", signer="m1"))
    assert r.status == 403 and r.json()["error"] == "not_current_key", r.body
    # a self-made certificate claiming m1: not under the domain's root
    kf.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
               "-nodes", "-keyout", tmp_path / "f.key", "-out", tmp_path / "f.pem",
               "-subj", "/CN=m1", "-addext", f"subjectAltName=email:{w.addr['m1']}",
               "-days", "2", check=True)
    fkey = serialization.load_pem_private_key((tmp_path / "f.key").read_bytes(), None)
    forged = rf.sign(fkey, [(tmp_path / "f.pem").read_text(), w.dom.issuer_pem,
                            w.dom.root_pem],
                     {"type": "anchor-group-keys-request", "address": w.addr["m1"],
                      "group": w.group, "issued": int(time.time())}, TYP)
    r = _post(w, "m1", forged)
    assert r.status in (400, 422) and r.json()["error"] in ("jws_signature", "bad_chain",
                                                             "pin_mismatch"), r.body
    # a request for another group, and a stale one
    r = _post(w, "m1", _request(w, "m1", group=f"other@{w.dom.name}"))
    assert r.status == 400 and r.json()["error"] == "request_mismatch", r.body
    r = _post(w, "m1", _request(w, "m1", issued=int(time.time()) - 3600))
    assert r.status == 400 and r.json()["error"] == "stale_request", r.body


def _rows(w, sql):
    return w.pg.psql(sql, dbname=kf.dbname_of(w.db))


def test_upload_refusals_store_nothing(w):
    c = w.ks.client()
    path = f"/v1/domains/{w.dom.name}/groups/{w.group}/keys"
    before = _rows(w, "SELECT count(*) FROM group_keys; SELECT count(*) FROM group_key_wraps")
    cur = json.loads(c.get(f"/v1/domains/{w.dom.name}/groups/{w.group}",
                           token=w.dom.admin_token).body)
    key_id = cur["key_id"]
    clear = base64.b64encode(
        serialization.load_pem_private_key(gkey(w, 1).read_bytes(), None).private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())).decode()
    members = [m["address"] for m in cur["members"]]
    good = _rows(w, "SELECT envelope FROM group_key_wraps LIMIT 1").strip()
    hist = c.get(f"/v1/addresses/{w.addr['m1']}/history").json()
    own_enc = [x["key_id"] for x in hist["certificates"] if x["purpose"] == "encryption"][0]
    cases = [
        # the clear key where a wrap belongs
        ({"key_id": key_id, "wraps": [{"member": m, "envelope": clear} for m in members]},
         w.dom.admin_token, 400, "bad_wrap"),
        # a member left out
        ({"key_id": key_id, "wraps": [{"member": members[0], "envelope": good}]},
         w.dom.admin_token, 400, "wraps_mismatch"),
        # an outsider given a wrap
        ({"key_id": key_id, "wraps": [{"member": m, "envelope": good}
                                      for m in members + [w.addr["sam"]]]},
         w.dom.admin_token, 400, "wraps_mismatch"),
        # a certificate that is not the group's
        ({"key_id": "0b6f5c0e-4d3a-4c8e-9a57-6a1f1d0e8a11",
          "wraps": [{"member": m, "envelope": good} for m in members]},
         w.dom.admin_token, 409, "not_group_key"),
        # a member's own encryption key offered as the group's (the seed rule: a user's
        # key is never the one the key server hands out)
        ({"key_id": own_enc, "wraps": [{"member": m, "envelope": good} for m in members]},
         w.dom.admin_token, 409, "not_group_key"),
        # no admin token
        ({"key_id": key_id, "wraps": [{"member": m, "envelope": good} for m in members]},
         None, 401, None),
    ]
    for body, token, status, code in cases:
        r = c.put(path, body, token=token)
        assert r.status == status, (code, r.status, r.body)
        if code:
            assert r.json()["error"] == code, r.body
    assert _rows(w, "SELECT count(*) FROM group_keys; "
                    "SELECT count(*) FROM group_key_wraps") == before


def test_database_holds_no_clear_key(w):
    """Nothing the key server stored holds a group's private key: every wrap is a CMS
    enveloped structure, and the key's PKCS#8 bytes (as a member unwrapped them) appear
    nowhere in the tables, in any encoding."""
    dump = _rows(w, "SELECT k::text FROM group_keys k; SELECT w::text FROM group_key_wraps w;"
                    " SELECT c::text FROM certificates c")
    assert "PRIVATE KEY" not in dump
    der = serialization.load_pem_private_key(gkey(w, 1).read_bytes(), None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    envs = _rows(w, "SELECT envelope FROM group_key_wraps").split()
    assert len(envs) >= 3
    for env in envs:
        raw = base64.b64decode(env)
        assert der not in raw and der[-40:] not in raw
        p = kf.openssl("cms", "-cmsout", "-inform", "DER", "-print", input=raw)
        assert p.returncode == 0, p.stderr_text
        assert re.search(rb"contentType: (id-smime-ct-authEnvelopedData|pkcs7-envelopedData)",
                         p.stdout), p.stdout[:300]
    for enc in (der.hex(), base64.b64encode(der).decode(), base64.b64encode(der[-40:]).decode()):
        assert enc not in dump


def test_removed_member_reads_old_mail_not_new(rotated):
    w = rotated
    # the members left read the new message with the new key
    for m in ("m1", "m2"):
        r = decrypt(w, gkey(w, 2, m), w.msg2)
        assert r.rc == 0, (m, r.err)
        assert "The budget is on the shared drive." in r.out
    # the removed member: nothing of generation 2, and its old key does not open it
    r = fetch(w, "m3")
    assert r.rc == 1 and "not_a_member" in r.err, r.err
    assert not gkey(w, 2, "m3").exists()
    r = decrypt(w, gkey(w, 1, "m3"), w.msg2)
    assert r.rc == 1 and "not_for_you" in r.err, r.err
    assert r.out == ""
    # but what was sent before the rotation stays readable by whoever had the key
    r = decrypt(w, gkey(w, 1, "m3"), w.msg1)
    assert r.rc == 0, r.err
    # the key server gave m1 both generations, m3 none of the second
    wraps = _rows(w, f"SELECT k.generation || ' ' || x.member FROM group_key_wraps x JOIN "
                     f"group_keys k ON k.id = x.group_key_id WHERE k.group_address = "
                     f"'{w.group}' ORDER BY 1").split("\n")
    assert f"2 {w.addr['m3']}" not in wraps and f"1 {w.addr['m3']}" in wraps
    assert f"2 {w.addr['m1']}" in wraps


def test_group_view_after_rotation(rotated):
    w = rotated
    r = w.ks.client().get(f"/v1/domains/{w.dom.name}/groups/{w.group}",
                          token=w.dom.admin_token)
    assert r.status == 200, r.body
    doc = r.json()
    assert doc["generation"] == 2 and doc["rotation_needed"] is False
    assert sorted(m["address"] for m in doc["members"]) == [w.addr["m1"], w.addr["m2"]]
    r = w.ks.client().get(f"/v1/domains/{w.dom.name}/groups/{w.group}")
    assert r.status in (401, 403), r.body


# --------------------------------------------------------------------------
# Inbound gateway decryption in anchor-relay (PROTOCOL.md §12.11)

def _inbound(relay, rcpt, data):
    """One real SMTP conversation with the relay's inbound listener."""
    with smtplib.SMTP("127.0.0.1", relay.inbound_port, timeout=15) as s:
        s.ehlo("client.test")
        s.sendmail("someone@x.test", [rcpt], data)


def _wire(w, path, subject, extra=""):
    """The encrypted entity anchorctl wrote, as a message with envelope headers."""
    body = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head = (f"From: <someone@x.test>\r\nTo: <{w.addr['m1']}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}.{time.time_ns()}@x>\r\n{extra}")
    return head.encode() + body


def test_gateway_decryption(rotated, make_relay, py_sink):
    """The relay holds both generations (as a member fetched them) in its signer: mail
    sent before and after the rotation arrives decrypted and marked; a garbled ciphertext
    and a message to nobody's key arrive as they came, marked failed; plain mail passes
    untouched; a sender's own X-Anchor-Decrypted is removed."""
    w = rotated
    keys = []
    for gen in (1, 2):
        k = w.base / f"relay-g{gen}.key"
        k.write_bytes(gkey(w, gen).read_bytes())
        k.chmod(0o600)
        keys.append(f"{w.dom.name}:{k}:{udir(w, 'm1') / f'{w.group}.g{gen}.enc.pem'}")
    sink = py_sink()
    relay = make_relay(inbound_next_hop=sink.hop, local_domains=w.dom.name,
                       gateway_decrypt_keys=",".join(keys))
    garbled = _wire(w, w.msg2, "garbled")
    garbled = garbled[:len(garbled) * 2 // 3] + b"\r\n"
    sams = w.base / "to-sam.p7m"  # encrypted to sam's key only: the domain's keys are no use
    r = ctl(w, "mail", "encrypt", w.addr["sam"], "--self",
            udir(w, "sam") / f"{w.addr['sam']}.default.enc.pem", "--in", w.msg, "--out", sams,
            "--state", w.base / "sam-heads.json")
    assert r.rc == 0, r.err
    sends = [("before rotation", _wire(w, w.msg1, "before rotation")),
             ("after rotation", _wire(w, w.msg2, "after rotation")),
             ("garbled", garbled),
             ("not ours", _wire(w, sams, "not ours")),
             ("plain", (f"From: <someone@x.test>\r\nTo: <{w.addr['m1']}>\r\nSubject: plain\r\n"
                        "X-Anchor-Decrypted: gateway; cert=forged\r\n\r\nhello\r\n").encode())]
    for _, data in sends:
        _inbound(relay, w.addr["m1"], data)
    got = {}
    for m in sink.wait_for(len(sends), timeout=30):
        got[m.header("Subject")[0]] = m
    fpr = {gen: kf.cert_fingerprint((udir(w, "m1") / f"{w.group}.g{gen}.enc.pem").read_text())
           for gen in (1, 2)}
    for subject, gen in (("before rotation", 1), ("after rotation", 2)):
        m = got[subject]
        assert m.header("X-Anchor-Decrypted") == [f"gateway; cert={fpr[gen]}"], m.text
        assert b"The budget is on the shared drive." in m.data
        assert b"pkcs7-mime" not in m.data and m.header("Content-Type")[0].startswith(
            "text/plain"), m.text
    assert got["garbled"].header("X-Anchor-Decrypted")[0].startswith("failed; reason="), \
        got["garbled"].text
    assert b"pkcs7-mime" in got["garbled"].data
    assert got["not ours"].header("X-Anchor-Decrypted") == ["failed; reason=not_for_you"]
    assert b"pkcs7-mime" in got["not ours"].data
    assert got["plain"].header("X-Anchor-Decrypted") == []
    assert b"hello" in got["plain"].data
    # the keys stayed in the signer: the relay's log names fingerprints, never key text
    assert "PRIVATE KEY" not in relay.text()


def test_erasure_takes_the_wraps_along(rotated):
    """Erasing the removed member (PROTOCOL.md §10.1) leaves no wrap naming it.  Last in
    the file: m3 is gone afterwards."""
    w = rotated
    count = f"SELECT count(*) FROM group_key_wraps WHERE member = '{w.addr['m3']}'"
    assert _rows(w, count).strip() == "1"
    r = w.ks.client().post(f"/v1/domains/{w.dom.name}/erase", {"address": w.addr["m3"]},
                           token=w.dom.admin_token)
    assert r.status == 200, r.body
    assert _rows(w, count).strip() == "0"
