"""One lock order for every change of a certificate (PROTOCOL.md §9): the domain's row
first, then the certificate rows.

Issuance, enrollment and renewal lock the domain and then the name's certificate rows;
revocation used to lock the certificate row first and the domain only at its log append,
so a revocation and a renewal (or an enrollment) of one name at once could each wait for
the other until PostgreSQL aborted one ("deadlock detected", a 500).  Here revocations,
renewals, enrollments and erasures of the same names run at once, many rounds, against
the real key server with several HTTP threads: no answer may be a 5xx, the key server's
log must not mention a deadlock, and every name ends in one consistent state.
"""

import threading
import time

import pytest

import anchorlib
import ksfixtures as kf
import routefixtures as rf

TYP = "anchor-renew-request+jws"
NAMES = 6
ROUNDS = 4


@pytest.fixture(scope="module")
def ks(make_keyserver):
    return make_keyserver(extra={"renew_window": "400d", "renew_min_interval": "0",
                                 "http_threads": "12"})


@pytest.fixture(scope="module")
def dom(ks, operator_token):
    base = anchorlib.mktemp_dir("anchor-lockorder-")
    return kf.register_domain(ks, base, kf.new_domain_name("lock"), operator_token.token)


def renew_body(key, cert, addr):
    _, csr = kf.make_csr(addr, key=key)
    payload = {"type": "anchor-renew-request", "name": addr, "purpose": "smime", "csr": csr,
               "issued": int(time.time())}
    return rf.sign(key, [cert["certificate"], *cert["chain"]], payload, TYP)


def run_all(calls):
    """Start every call at once (a barrier), return their answers in order."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def go(i):
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r is not None for r in results), "a request did not come back"
    return results


def certs_of(pg, db, dom, addr):
    """[(key_id, status)] of addr's certificate rows, straight from the database."""
    out = pg.psql("SELECT c.key_id, c.status FROM certificates c JOIN domains d"
                  f" ON d.id = c.domain_id WHERE d.name = '{dom.name}' AND c.name = '{addr}'"
                  " ORDER BY c.issued_at", dbname=kf.dbname_of(db))
    return [tuple(line.split("|")) for line in out.strip().splitlines()]


def no_deadlock(ks):
    text = ks.stderr()
    assert "deadlock detected" not in text, text[-4000:]


def answer(r):
    return (r.status, r.error_code() if r.status >= 400 else "")


def test_revoke_against_renew_and_enroll(ks, dom, pg, db):
    """Per name and round: a revocation of the current key by the domain admin, a renewal
    signed by that key and an enrollment with a fresh token, all at once."""
    for rnd in range(ROUNDS):
        setup = []
        for i in range(NAMES):
            addr = f"u{i}r{rnd}@{dom.name}"
            cert, key = kf.enroll_new(ks.client(), dom, addr)
            token = kf.issue_token(ks.client(), dom, addr)
            setup.append((addr, cert, renew_body(key, cert, addr), token,
                          kf.make_csr(addr)[1]))
        calls = []
        for addr, cert, body, token, csr in setup:
            kid = cert["key_id"]
            calls.append(lambda kid=kid: ks.client().post(
                f"/v1/keys/{kid}/revoke", {"reason": "keyCompromise"}, token=dom.admin_token))
            calls.append(lambda body=body: ks.client().post(
                f"/v1/domains/{dom.name}/renew", body,
                headers={"Content-Type": "application/json"}))
            calls.append(lambda token=token, csr=csr: kf.enroll(ks.client(), dom.name, token,
                                                                csr))
        results = run_all(calls)
        for n, (addr, cert, _, _, _) in enumerate(setup):
            revoke, renew, enroll = results[3 * n:3 * n + 3]
            assert answer(revoke) == (200, ""), (addr, revoke.status, revoke.body)
            assert answer(enroll) == (201, ""), (addr, enroll.status, enroll.body)
            assert answer(renew) in ((201, ""), (403, "key_revoked"),
                                     (403, "key_superseded")), (addr, renew.status, renew.body)
            rows = dict(certs_of(pg, db, dom, addr))
            assert rows[cert["key_id"]] == "revoked", rows
            assert list(rows.values()).count("current") == 1, rows
            # The enrollment or the renewal, whichever came last, is the current one.
            issued = [enroll.json()["key_id"]] + ([renew.json()["key_id"]]
                                                 if renew.status == 201 else [])
            assert sorted(rows) == sorted([cert["key_id"]] + issued), rows
            current = [k for k, s in rows.items() if s == "current"]
            r = ks.client().get(f"/v1/addresses/{addr}")
            assert r.status == 200, r.body
            assert [c["key_id"] for c in r.json()["certificates"]] == current
    no_deadlock(ks)


def test_erase_against_renew(ks, dom, pg, db):
    """Erasure revokes every certificate of the address (after locking the domain now):
    at once with a renewal of it, one of the two wins cleanly."""
    setup = []
    for i in range(NAMES * 2):
        addr = f"gone{i}@{dom.name}"
        cert, key = kf.enroll_new(ks.client(), dom, addr)
        setup.append((addr, cert, renew_body(key, cert, addr)))
    calls = []
    for addr, _, body in setup:
        calls.append(lambda addr=addr: ks.client().post(
            f"/v1/domains/{dom.name}/erase", {"address": addr}, token=dom.admin_token))
        calls.append(lambda body=body: ks.client().post(
            f"/v1/domains/{dom.name}/renew", body,
            headers={"Content-Type": "application/json"}))
    results = run_all(calls)
    for n, (addr, cert, _) in enumerate(setup):
        erase, renew = results[2 * n:2 * n + 2]
        assert answer(erase) == (200, ""), (addr, erase.status, erase.body)
        assert answer(renew) in ((201, ""), (403, "key_revoked"),
                                 (403, "not_current_key")), (addr, renew.status, renew.body)
        # Whichever came first, nothing names the address any more: the erasure revoked
        # the renewed certificate too, or the renewal found the key's row unlinked.
        assert certs_of(pg, db, dom, addr) == []
        revoked = erase.json()["certificates_revoked"]
        assert revoked == (2 if renew.status == 201 else 1), (addr, revoked, renew.body)
    no_deadlock(ks)


def test_erase_against_enroll(ks, dom, pg, db):
    """An enrollment locks its token's row; an erasure deletes the address's tokens under
    the domain's lock: the enrollment now takes the domain first too."""
    setup = []
    for i in range(NAMES * 2):
        addr = f"late{i}@{dom.name}"
        cert, _ = kf.enroll_new(ks.client(), dom, addr)
        setup.append((addr, kf.issue_token(ks.client(), dom, addr), kf.make_csr(addr)[1]))
    calls = []
    for addr, token, csr in setup:
        calls.append(lambda addr=addr: ks.client().post(
            f"/v1/domains/{dom.name}/erase", {"address": addr}, token=dom.admin_token))
        calls.append(lambda token=token, csr=csr: kf.enroll(ks.client(), dom.name, token,
                                                            csr))
    results = run_all(calls)
    for n, (addr, _, _) in enumerate(setup):
        erase, enroll = results[2 * n:2 * n + 2]
        assert answer(erase) == (200, ""), (addr, erase.status, erase.body)
        # Enrolled first (then erased with the rest), or its token was erased first.
        assert answer(enroll) in ((201, ""), (404, "token_unknown")), (
            addr, enroll.status, enroll.body)
        revoked = erase.json()["certificates_revoked"]
        assert revoked == (2 if enroll.status == 201 else 1), (addr, revoked, enroll.body)
        assert certs_of(pg, db, dom, addr) == []
    no_deadlock(ks)
