"""Every guide command marked `<!-- doc-test: NAME -->` (doccmds.py) is run by a test:
some test file names the marker.  A marked block nobody runs fails here, so a guide's
tested commands cannot silently stop being tested."""

import anchorlib
import doccmds


def test_every_marked_guide_command_is_run_by_a_test():
    tests = "".join(p.read_text() for p in (anchorlib.SRC / "tests" / "integration").glob(
        "test_*.py") if p.name != "test_doc_commands.py")
    found = doccmds.markers()
    assert found, "no guide marks a command for testing"
    missing = [f"{g}: {m}" for g, m in found if f'"{m}"' not in tests]
    assert not missing, f"marked guide commands that no test runs: {missing}"
