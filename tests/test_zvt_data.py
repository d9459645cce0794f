"""Readers for the ZVT data under ../shared/data/zvt (read in place, never copied)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ZVT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "zvt"
ECRTERM_VECTORS = ZVT_DATA / "ecrterm_test_vectors.txt"
BEZAHL_ONLINE = ZVT_DATA / "bezahl-online_testdata"

_HEADER = re.compile(r"^== (?P<source>\S+)\s+(?P<name>.*)$")


@dataclass(frozen=True)
class Vector:
    """One hex vector from the ecrterm extraction."""

    source: str
    name: str
    raw: bytes
    negative: bool


def ecrterm_vectors() -> list[Vector]:
    """Return every vector in ecrterm_test_vectors.txt, in file order."""
    vectors: list[Vector] = []
    header: tuple[str, str] | None = None
    pending: bytes | None = None
    negative = False
    for line in ECRTERM_VECTORS.read_text(encoding="utf-8").splitlines():
        match = _HEADER.match(line)
        if match:
            if header and pending is not None:
                vectors.append(Vector(*header, pending, negative))
            header, pending, negative = (match["source"], match["name"]), None, False
        elif line.startswith("HEX "):
            pending = bytes.fromhex(line[4:].strip())
        elif "NOTE NEGATIVE" in line:
            negative = True
    if header and pending is not None:
        vectors.append(Vector(*header, pending, negative))
    return vectors


def serial_frames() -> list[Vector]:
    """Return the vectors that are complete serial frames (DLE STX ...)."""
    return [v for v in ecrterm_vectors() if v.raw.startswith(b"\x10\x02")]


def bezahl_online(name: str) -> bytes:
    """Return one raw APDU captured from the bezahl-online test terminal."""
    return (BEZAHL_ONLINE / name).read_bytes()


def bezahl_online_names() -> list[str]:
    """Return the names of all captured APDU files."""
    return sorted(p.name for p in BEZAHL_ONLINE.glob("*.hex"))


def test_shared_data_is_where_the_tests_expect_it() -> None:
    """Fail loudly if the shared ZVT data moved, rather than skipping."""
    assert len(ecrterm_vectors()) == 53
    assert len(serial_frames()) == 12
    assert len(bezahl_online_names()) == 16
