"""Bulk onboarding: `anchorctl token issue --from FILE --out OUT` (anchorctl(1)).

A few hundred addresses, with bad lines among them, against the real key server: the
run is killed midway (SIGKILL) and run again; the second run issues only what the first
did not, never a second token for an address OUT already holds; every token in OUT is
the one the key server stored for that address; OUT is 0600; no token ever reaches the
terminal or the key server's log; bad lines are reported with their numbers and make the
exit status 1; progress is plain lines in a pipe and a redrawn bar on a terminal.
"""

import hashlib
import os
import pty
import re
import signal
import stat
import subprocess
import time

import pytest

import anchorlib
import ksfixtures as kf

VALID = 300


@pytest.fixture(scope="module")
def dom(keyserver, operator_token):
    base = anchorlib.mktemp_dir("anchor-bulk-")
    yield kf.register_domain(keyserver, base, kf.new_domain_name("bulk"), operator_token.token)
    anchorlib.remove_tree(base)


def ctl_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANCHOR_")
           or k in ("ANCHOR_BIN", "ANCHOR_SRC")}
    env.update(anchorlib.SANITIZER_ENV)
    env["TERM"] = "xterm"
    return env


def argv(ks, *args):
    return [str(a) for a in (anchorlib.binary("anchorctl"), "-s", ks.base_url, "--cacert",
                             ks.tls.ca, "token", "issue", *args)]


def run(ks, dom, *args, input=None):
    r = subprocess.run(argv(ks, *args), cwd=dom.base, env=ctl_env(), input=input,
                       capture_output=True, text=True, timeout=600)
    assert not anchorlib.sanitizer_report(r.stderr), r.stderr
    return r


def make_input(dom, path):
    """A CSV file: header, VALID good rows, and bad rows whose line numbers are returned."""
    rows = ["name,address,team"]
    bad = {}
    for i in range(VALID):
        rows.append(f"\"User, No. {i}\",u{i:04d}@{dom.name},ops")
        if i == 10:
            rows.append("Nobody,not-an-address,ops")
            bad[len(rows)] = "is not a mail address"
        if i == 20:
            rows.append(f"Elsewhere,someone@other-{dom.name},ops")
            bad[len(rows)] = f"is not in the domain {dom.name}"
        if i == 30:
            rows.append(f"Again,U0003@{dom.name.upper()},ops")
            bad[len(rows)] = "repeats line 5"
        if i == 40:
            rows.append("\"Broken,x@y,ops")
            bad[len(rows)] = "a quoted field is not closed"
    path.write_text("\n".join(rows) + "\n")
    return bad


def out_rows(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "address,token", lines[:2]
    return [tuple(line.split(",")) for line in lines[1:]]


def tokens_in_db(pg, db, dom):
    """{address: [token_hash, ...]} of the domain's enrollment tokens."""
    out = pg.psql("SELECT t.address, t.token_hash FROM enroll_tokens t JOIN domains d"
                  f" ON d.id = t.domain_id WHERE d.name = '{dom.name}'",
                  dbname=kf.dbname_of(db))
    rows = {}
    for line in out.strip().splitlines():
        addr, h = line.split("|")
        rows.setdefault(addr, []).append(h)
    return rows


def test_bulk_issue_interrupted_and_resumed(keyserver, dom, pg, db):
    src, out = dom.base / "users.csv", dom.base / "tokens.csv"
    bad = make_input(dom, src)

    # First run, killed once a good part of the tokens is out.
    p = subprocess.Popen(argv(keyserver, "--from", src, "--out", out), cwd=dom.base,
                         env=ctl_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if out.exists() and len(out.read_text().splitlines()) > 60:
            break
        time.sleep(0.05)
    assert p.poll() is None, "the run ended before it could be interrupted"
    p.send_signal(signal.SIGKILL)
    first_out, first_err = p.communicate(timeout=60)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    done_first = {a for a, _ in out_rows(out)}
    assert 60 <= len(done_first) < VALID, len(done_first)
    # The bad lines were reported (with their numbers) before any token went out.
    for n, why in bad.items():
        assert re.search(rf"^anchorctl: line {n}: .*{re.escape(why)}", first_err, re.M), (
            n, why, first_err)

    # Second run: resumes.
    r = run(keyserver, dom, "--from", src, "--out", out)
    assert r.returncode == 1, "bad lines make the exit status 1\n" + r.stderr
    m = re.search(r"^anchorctl: (\d+) tokens issued to .*, (\d+) already there, 0 failed, "
                  r"(\d+) bad lines, 0 not tried$", r.stderr, re.M)
    assert m, r.stderr
    issued, already, nbad = map(int, m.groups())
    assert nbad == len(bad) and already == len(done_first) and issued + already == VALID, (
        m.groups(), len(done_first))
    for n in bad:
        assert f"anchorctl: line {n}: " in r.stderr
    # In a pipe: plain progress lines, no carriage returns, no bar.
    assert re.search(r"^anchorctl: issuing tokens: \d+/\d+ done, 0 failed$", r.stderr, re.M)
    assert "\r" not in r.stderr and "[#" not in r.stderr

    rows = out_rows(out)
    want = {f"u{i:04d}@{dom.name}" for i in range(VALID)}
    assert sorted(a for a, _ in rows) == sorted(want), "every address once, no bad line"
    in_db = tokens_in_db(pg, db, dom)
    for addr, token in rows:
        # The token recorded is one the key server issued for that very address ...
        assert hashlib.sha256(token.encode()).hexdigest() in in_db[addr], addr
        # ... and nowhere else: not on the terminal, not in the key server's log.
        for text in (first_out, first_err, r.stdout, r.stderr, keyserver.stderr()):
            assert token not in text
    # One token per address, except perhaps the one whose answer the kill cut off.
    twice = [a for a, hs in in_db.items() if len(hs) > 1]
    assert len(twice) <= 1, twice
    assert set(in_db) == want

    # A third run has nothing left to do: it issues no token at all.
    before = tokens_in_db(pg, db, dom)
    r = run(keyserver, dom, "--from", src, "--out", out)
    assert r.returncode == 1 and f", {VALID} already there, " in r.stderr, r.stderr
    assert tokens_in_db(pg, db, dom) == before
    # The good lines alone, from standard input, one a line: exit 0.
    listing = "address\n" + "".join(f"{a}\n" for a in sorted(want))
    r = run(keyserver, dom, "--from", "-", "--out", out, input=listing)
    assert r.returncode == 0, r.stderr
    assert f"anchorctl: 0 tokens issued to {out}, {VALID} already there, 0 failed, 0 bad " \
           "lines, 0 not tried" in r.stderr
    assert tokens_in_db(pg, db, dom) == before


def test_bulk_issue_on_a_terminal(keyserver, dom):
    """On a terminal the progress is one bar redrawn in place."""
    out = dom.base / "tty-tokens.csv"
    listing = "".join(f"tty{i}@{dom.name}\n" for i in range(20))
    src = dom.base / "tty.txt"
    src.write_text(listing)
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv(keyserver, "--from", src, "--out", out), cwd=dom.base,
                             env=ctl_env(), stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        stdout, _ = p.communicate(timeout=120)
    finally:
        os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert p.returncode == 0, text
    assert "\rissuing tokens [##############################] 100% 20/20, 0 failed" in text
    assert stdout == b"", "tokens never go to standard output"
    assert len(out_rows(out)) == 20


def test_bulk_issue_refused_admin(keyserver, dom, tmp_path):
    """A wrong admin token: the first refusal stops the run, the summary says so, exit 1,
    and OUT records nothing."""
    out = tmp_path / "none.csv"
    src = tmp_path / "few.txt"
    src.write_text("".join(f"w{i}@{dom.name}\n" for i in range(5)))
    wrong = tmp_path / "wrong.token"
    wrong.write_text("x" * 43 + "\n")
    r = run(keyserver, dom, "--from", src, "--out", out, "--token-file", wrong)
    assert r.returncode == 1, r.stderr
    assert re.search(r"^anchorctl: line 1: w0@\S+: unauthorized: ", r.stderr, re.M), r.stderr
    assert "0 tokens issued" in r.stderr and "1 failed, 0 bad lines, 4 not tried" in r.stderr
    assert out_rows(out) == []


def test_bulk_issue_usage(keyserver, dom, tmp_path):
    src = tmp_path / "one.txt"
    src.write_text(f"a@{dom.name}\n")
    r = run(keyserver, dom, "--from", src)
    assert r.returncode == 2 and "--from needs --out FILE" in r.stderr, r.stderr
    r = run(keyserver, dom, f"a@{dom.name}", "--from", src, "--out", tmp_path / "o")
    assert r.returncode == 2 and "not both" in r.stderr, r.stderr
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("name,mail\nx,a@b\n")
    r = run(keyserver, dom, "--from", bad_csv, "--out", tmp_path / "o2")
    assert r.returncode == 1 and "line 1: a CSV file starts with a header" in r.stderr, r.stderr
    assert not (tmp_path / "o2").exists()
