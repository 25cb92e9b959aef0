"""The reference files tests compare with travel with the tests (tests/data), each with its
source, licence and checksum in tests/data/README.md, and no test reaches outside the
checkout for one: a clone placed anywhere runs every check instead of skipping it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .helpers import SHARED

TESTS = Path(__file__).parent
ROW = re.compile(r"^\| (?P<file>[^ |]+) \| (?P<what>[^|]+) \| (?P<source>[^|]+) \| "
                 r"(?P<licence>[^|]+) \| (?P<sha>[0-9a-f]{64}) \|$")


def rows() -> dict[str, dict[str, str]]:
    text = (SHARED / "README.md").read_text(encoding="utf-8")
    return {m["file"]: m.groupdict() for m in map(ROW.match, text.splitlines()) if m}


def test_every_reference_file_is_listed_with_source_licence_and_checksum() -> None:
    listed = rows()
    present = sorted(p.relative_to(SHARED).as_posix() for p in SHARED.rglob("*")
                     if p.is_file() and p.name != "README.md")
    assert present and sorted(listed) == present
    for name, row in listed.items():
        assert row["source"].strip() and row["licence"].strip(), name
        digest = hashlib.sha256((SHARED / name).read_bytes()).hexdigest()
        assert digest == row["sha"], f"{name} changed: update it from its source, then README"


def test_no_test_reads_reference_files_from_outside_the_checkout() -> None:
    outside = re.compile(r"REPO\.parent|\.\./shared|parent\.parent\s*/\s*\"shared\"")
    offenders = [p.name for p in TESTS.glob("*.py")
                 if p.name != Path(__file__).name and outside.search(p.read_text())]
    assert offenders == []
    assert SHARED.resolve().is_relative_to(TESTS.resolve())
