"""The shell commands of the guides (docs/*.md), run by the tests as written.

A fenced ```sh block preceded by the line `<!-- doc-test: NAME -->` is a guide's
command that a test runs: blocks(path)[NAME] is its text, and run() runs it with bash
after replacing the guide's example names (mx.example.com, /etc/anchor/...) by the test
world's, so that the guide and the software cannot drift apart.  test_doc_commands.py
checks that every marked block is run by some test."""

import os
import re
import anchorlib

DOCS = anchorlib.SRC / "docs"
MARK = re.compile(r"^<!-- doc-test: ([a-z0-9-]+) -->\n```(?:sh|console)\n(.*?)^```",
                  re.M | re.S)


def blocks(name):
    """{marker: block text} of docs/<name>."""
    text = (DOCS / name).read_text()
    return {m.group(1): m.group(2) for m in MARK.finditer(text)}


def markers():
    """[(guide, marker)] over every guide."""
    return [(p.name, m) for p in sorted(DOCS.glob("*.md")) for m in blocks(p.name)]


def run(guide, marker, subst, env=None, cwd=None, timeout=120):
    """Run the block with each key of subst replaced by its value (longest first), with
    the build's programs first on PATH.  Returns anchorlib.Result of the whole block
    (bash -e: the first failing command ends it)."""
    text = blocks(guide)[marker]
    for k in sorted(subst, key=len, reverse=True):
        text = text.replace(k, str(subst[k]))
    full = {k: "" for k in os.environ if k.startswith("ANCHOR_")
            and k not in ("ANCHOR_BIN", "ANCHOR_SRC")}
    full["PATH"] = f"{anchorlib.BIN}:/usr/bin:/bin:/usr/sbin:/sbin"
    full.update(env or {})
    return anchorlib.run_program(["bash", "-e", "-c", text], env=full, cwd=cwd,
                                 timeout=timeout)
