"""Enforce mode cannot be got around through the From field (PROTOCOL.md §12.2,
"Authors"): anchor-relay, a real key server and NSD (the world of
test_relay_inbound.py), and a real SMTP client (Python's smtplib) sending each
variant an attacker would try to the inbound port.

Every forged message below names alice@anch.rin.test (an anchored domain in enforce
mode) as, or among, its authors in a form some mail reader shows, and carries no
signature of that domain: each must be refused after DATA with 550 5.7.1 and never
reach the next hop.  Most of them were accepted (250, delivered as "unknown" with the
forged From intact) before the relay read the From field as RFC 5322 says and checked
every author domain.  Legitimate mail in the same forms still passes, and a
testing-mode domain is never refused.
"""

import re
import smtplib
import time

import pytest

import relayfixtures as rx
from relayfixtures import make_relay, py_sink  # noqa: F401
from test_relay_inbound import (  # noqa: F401  (world is a fixture)
    ALICE, ANCH, BOB, LEGACY, TRIAL, arrived, dkim_results, message, relay_for, signed,
    tier, world)

pytestmark = [
    pytest.mark.skipif(not rx.relay_available(), reason="anchor-relay is not built"),
]

_n = iter(range(1, 10**6))


def raw_message(head_lines, body=b"Hello Bob.\r\n"):
    """A message (bytes, CRLF) from header lines given exactly (bytes or str), with a
    unique Message-ID and the usual other fields; returns (data, message-id)."""
    mid = f"<forge{next(_n)}@client.test>"
    lines = [h.encode() if isinstance(h, str) else h for h in head_lines]
    lines += [f"To: <{BOB}>".encode(), b"Subject: quarterly numbers",
              b"Date: Mon, 23 Nov 2026 10:00:00 +0000", f"Message-ID: {mid}".encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body, mid


def smtp_send(relay, data, sender="env@attacker.test", to=BOB):
    """One transaction with smtplib: (code, text) of the reply to the message."""
    with smtplib.SMTP("127.0.0.1", relay.inbound_port, local_hostname="client.test",
                      timeout=60) as s:
        s.ehlo()
        opts = ["BODY=8BITMIME"] if s.has_extn("8bitmime") and re.search(
            rb"[\x80-\xff]", data) else []
        code, text = s.mail(sender, opts)
        assert code == 250, (code, text)
        code, text = s.rcpt(to)
        assert code == 250, (code, text)
        code, text = s.data(data)
        return code, text.decode(errors="replace")


def wait_text(relay, needle, timeout=10.0):
    """The relay's log holds needle (it is written just after the reply)."""
    deadline = time.monotonic() + timeout
    while needle not in relay.text():
        assert time.monotonic() < deadline, (needle, relay.text()[-3000:])
        time.sleep(0.05)


FOLD = "\r\n "
LONG_NAME = FOLD.join(["Accounts Payable Department"] * 400)  # ~ 11 kB, folded

# (id, From-related header lines, what the refusal must say)
ENFORCED = f"{re.escape(ANCH)} publishes an anchor in enforce mode"
FORGERIES = [
    # what the issue reported
    ("two-from-fields", ["From: <x@attacker.test>", f"From: <{ALICE}>"],
     "the message has 2 From fields"),
    ("two-mailboxes", [f"From: x@attacker.test, {ALICE}"], ENFORCED),
    ("two-mailboxes-named", [f'From: "IT" <x@attacker.test>, "Alice" <{ALICE}>'],
     ENFORCED),
    ("group", [f"From: g: {ALICE};"], "is a group"),
    ("group-two", [f"From: Staff: x@attacker.test, {ALICE};"], "is a group"),
    ("trailing-dot", [f"From: <{ALICE}.>"], ENFORCED),
    ("no-from-sender", [f"Sender: {ALICE}"], "no From field"),
    ("no-from-at-all", [], "no From field"),
    # the obsolete syntax a reader still shows as alice@anch.rin.test
    ("obs-domain-blanks", ["From: alice@anch . rin . test"], ENFORCED),
    ("obs-domain-comment", ["From: Alice <alice@anch(see).rin.test>"], ENFORCED),
    ("folded-in-domain", [f"From: Alice <alice@anch{FOLD}.rin.test>"], ENFORCED),
    ("obs-route-chained", [f"From: <@attacker.test:x@attacker.test:{ALICE}>"],
     "closing the address"),
    ("route-trailing-dot", [f"From: <@a.example,@b.example:{ALICE}.>"], ENFORCED),
    # words where the grammar has none: which one is the author?
    ("addr-then-angle", [f"From: {ALICE} <x@attacker.test>"], "'<' after an address"),
    ("angle-then-addr", [f"From: <x@attacker.test> {ALICE}"], "after an address"),
    ("bare-name-addr", [f"From: x@attacker.test <{ALICE}>"], "'<' after an address"),
    ("semicolon-list", [f"From: x@attacker.test; {ALICE}"], "';'"),
    # encoded words, 8 bits, controls
    ("encoded-domain", ["From: alice@=?utf-8?q?anch.rin.test?="], "not a host name"),
    ("encoded-word-with-at", [f"From: =?utf-8?q?{ALICE}?= <x@attacker.test>"],
     "not a host name"),
    ("ideographic-dots", ["From: alice@anch\u3002rin\u3002test".encode()], "non-ASCII"),
    ("fullwidth-domain", ["From: alice@\uff41nch.rin.test".encode()], "non-ASCII"),
    ("nul-in-domain", [f"From: {ALICE}\0<x@attacker.test>".encode()], "0x00"),
    ("nul-hides-second", [f"From: x@attacker.test\0, {ALICE}".encode()], "0x00"),
    ("vertical-tab", [f"From: x@attacker.test\x0b{ALICE}".encode()], "0x0b"),
    # header names a reader may take for From
    ("field-name-vt", ["From: <x@attacker.test>", f"From\x0b: <{ALICE}>"],
     "header field name"),
    ("field-name-nul", ["From: <x@attacker.test>", f"From\0: <{ALICE}>".encode()],
     "header field name"),
    ("field-name-nbsp", ["From: <x@attacker.test>", f"From\xa0: <{ALICE}>".encode()],
     "header field name"),
    # size
    ("long-display-name", [f"From: {LONG_NAME} <{ALICE}>"], ENFORCED),
    ("two-from-same", [f"From: <{ALICE}>", f"From: <{ALICE}>"], "2 From fields"),
    # forms the relay refused before too (kept: they must stay refused); every case
    # above was accepted with 250 and delivered as "unknown", forged From intact
    ("obs-local-part", ["From: alice . smith @ anch.rin.test"], ENFORCED),
    ("folded-after-at", [f"From: alice@{FOLD}{ANCH}"], ENFORCED),
    ("case-and-blank-name", [f"fROM : Alice <{ALICE.upper()}>"], ENFORCED),
    ("obs-route", [f"From: <@a,@b:{ALICE}>"], ENFORCED),
    ("address-in-quoted-name", [f'From: "x@attacker.test" <{ALICE}>'], ENFORCED),
    ("address-in-comment", [f"From: {ALICE} (x@attacker.test)"], ENFORCED),
    ("encoded-name", [f"From: =?utf-8?q?x=40attacker.test?= <{ALICE}>"], ENFORCED),
    ("eight-bit-name", [f"From: J\u00fcrgen <{ALICE}>".encode()], ENFORCED),
]


@pytest.mark.parametrize("case", FORGERIES, ids=[c[0] for c in FORGERIES])
def test_forged_from_refused(world, make_relay, py_sink, case):
    name, lines, why = case
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop)
    data, mid = raw_message(lines)
    code, text = smtp_send(relay, data)
    assert code == 550, (name, code, text)
    assert text.startswith("5.7.1 "), text
    assert re.search(why, text), (why, text)
    wait_text(relay, "refused: ")
    # nothing was delivered; a legitimate message afterwards is
    ok, okmid = message("someone@nowhere.example")
    assert smtp_send(relay, ok)[0] == 250
    arrived(sink, okmid)
    assert not any(mid.encode() in m.data for m in sink.messages()), name


def test_forged_from_refused_even_if_other_author_signed(world, make_relay, py_sink):
    """Every author domain is checked: a valid signature of the attacker's own domain
    (here the testing-mode domain's) does not cover alice's enforce-mode domain."""
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop)
    for head in ([f"From: x@{TRIAL}, {ALICE}"], [f"From: {ALICE}, x@{TRIAL}"]):
        data, _ = raw_message(head)
        code, text = smtp_send(relay, signed(data, world.trial_key))
        assert code == 550 and re.search(ENFORCED, text), (head, code, text)
    # both domains signed, each author verified: several authors are still refused
    data, _ = raw_message([f"From: x@{TRIAL}, {ALICE}"])
    code, text = smtp_send(relay, signed(signed(data, world.trial_key), world.signing["s1"]))
    assert code == 550 and "names 2 mailboxes" in text, (code, text)
    assert sink.messages() == []


LEGIT = [
    ("plain", f"From: <{ALICE}>"),
    ("display-name-and-comment", f"From: Alice Example (Sales) <{ALICE}> (work)"),
    ("quoted-name-with-comma", f'From: "Example, Alice" <{ALICE}>'),
    ("encoded-word-name", f"From: =?utf-8?q?Al=C3=AFce_Example?= <{ALICE}>"),
    ("encoded-word-name-b", f"From: =?UTF-8?B?QWxpY2UgRXhhbXBsZQ==?= <{ALICE}>"),
    ("folded", f"From: Alice Example{FOLD}<{ALICE}>"),
    ("upper-case-trailing-dot", f"From: Alice <{ALICE.upper()}.>"),
]


@pytest.mark.parametrize("case", LEGIT, ids=[c[0] for c in LEGIT])
def test_signed_mail_from_alice_passes(world, make_relay, py_sink, case):
    _, head = case
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop)
    data, mid = raw_message([head])
    code, text = smtp_send(relay, signed(data, world.signing["s1"]))
    assert code == 250, (code, text)
    [m] = arrived(sink, mid)
    [res] = dkim_results(m)
    assert res.startswith(f"dkim=pass (anchored key) header.d={ANCH}"), res
    # the author was read, whatever its form: alice herself, verified
    assert tier(m).startswith(f"known (verified {ALICE} in good standing"), tier(m)
    assert m.header("From") == [head.split(":", 1)[1].replace(FOLD, " ").strip()]


def test_user_signature_with_display_name(world, make_relay, py_sink):
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop)
    data, mid = raw_message([f"From: =?utf-8?q?Al=C3=AFce?= (home) <{ALICE}>"])
    code, text = smtp_send(relay, signed(data, world.alice_key, identity=ALICE))
    assert code == 250, (code, text)
    [m] = arrived(sink, mid)
    assert dkim_results(m)[0].startswith("dkim=pass (user key)"), dkim_results(m)
    assert f"{ALICE}: user verified" in relay.text()


TESTING_FORMS = [
    f"From: <ceo@{TRIAL}>",
    f"From: CEO (Trial) <CEO@{TRIAL.upper()}.>",
    f"From: =?utf-8?q?C=C3=A9O?= <ceo@{TRIAL}>",
    f"From: ceo @ trial . rin . test",
]


def test_testing_mode_never_refused(world, make_relay, py_sink):
    """mode=testing: unsigned or wrongly signed, in every From form, delivered and
    marked unknown; verified when signed."""
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop)
    rogue = rx.dkim_keys(world.work / "rogue-fe", TRIAL, "t1", "ed25519")
    for head in TESTING_FORMS:
        for key in (None, rogue):
            data, mid = raw_message([head])
            code, text = smtp_send(relay, signed(data, key) if key else data)
            assert code == 250, (head, code, text)
            [m] = arrived(sink, mid)
            assert tier(m).startswith("unknown"), (head, tier(m))
        data, mid = raw_message([head])
        assert smtp_send(relay, signed(data, world.trial_key))[0] == 250
        [m] = arrived(sink, mid)
        assert tier(m).startswith(f"known (verified ceo@{TRIAL}"), (head, tier(m))


def test_legacy_and_display_name_forms_delivered(world, make_relay, py_sink):
    """What RFC 5322 reads as another author is that author's mail: a display name, a
    comment or a quoted local part that merely looks like alice's address does not make
    her domain an author (the mail reader shows the real address)."""
    sink = py_sink()
    relay = relay_for(world, make_relay, sink.hop)
    for head in [f'From: "{ALICE}" <x@attacker.test>',
                 f"From: ({ALICE}) x@attacker.test",
                 f'From: "{ALICE}"@attacker.test',
                 f"From: =?utf-8?q?alice=40anch.rin.test?= <x@attacker.test>",
                 f"From: Newsletter <news@{LEGACY}.>"]:
        data, mid = raw_message([head])
        code, text = smtp_send(relay, data)
        assert code == 250, (head, code, text)
        [m] = arrived(sink, mid)
        assert tier(m) == "unknown (unverified sender)", (head, tier(m))


def test_undiscoverable_author_domain_is_deferred(world, make_relay, py_sink):
    """An attacker who can break the lookup of an enforcing domain (its key server
    unreachable, or its DNS timing out) must not have that domain's unsigned mail taken
    as a legacy domain's: it is deferred with 451 4.7.5 while the anchor cannot be
    checked.  Before, a discovery failure counted as "no anchor" and the forged From was
    delivered (250, tier unknown).  A domain that does not exist (NXDOMAIN) is still
    a legacy domain."""
    import dnsfixtures as dx

    zones = dict(world.nsd.zones)
    root = zones.pop(".", None)  # Nsd adds its own
    assert root is not None
    text = zones[ANCH].read_text()
    dead = dx.closed_port()
    broken, n = re.subn(r"(IN\s+SRV\s+\d+\s+\d+\s+)\d+", rf"\g<1>{dead}", text)
    assert n >= 1, text
    path = world.work / "zones" / f"dead-{ANCH}.zone"
    path.write_text(broken)
    zones[ANCH] = path
    nsd = dx.Nsd(world.work / f"nsd-dead-{time.time_ns()}", zones).start()
    try:
        sink = py_sink()
        relay = relay_for(world, make_relay, sink.hop, dns_server=nsd.resolver)
        data, mid = raw_message([f"From: <{ALICE}>"])
        code, text = smtp_send(relay, data)
        assert code == 451, (code, text)
        assert text.startswith("4.7.5 ") and ANCH in text and "anchor" in text, text
        # a legacy domain and a name nobody registered are unaffected
        for sender in (f"someone@{LEGACY}", "someone@nowhere.example"):
            ok, okmid = message(sender)
            assert smtp_send(relay, ok)[0] == 250, sender
            arrived(sink, okmid)
        assert not any(mid.encode() in m.data for m in sink.messages())
    finally:
        nsd.stop()
