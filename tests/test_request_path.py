"""The request path's shortcuts refuse and allow exactly what the long way did."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest

from daemon.errors import InputError
from daemon.ops import disk as disk_module
from daemon.ops.disk import DiskGuard
from daemon.web.schema import Str

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _long_way(spec: Str, value: str) -> str | None:
    """Return the refusal the check made before its ASCII shortcut, or None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "surrogate"
    if spec.printable and _CONTROL.search(value):
        return "control"
    return None


def _refusal(spec: Str, value: str) -> str | None:
    try:
        spec.check(value, "x")
    except InputError as err:
        return "surrogate" if "surrogate" in err.detail else \
            "control" if "control character" in err.detail else err.detail
    return None


@pytest.mark.parametrize("printable", [True, False])
def test_every_character_is_refused_or_allowed_as_before(printable: bool) -> None:
    spec = Str(0, 10, printable=printable)
    for code in range(0x110000):
        char = chr(code)
        for value in (char, f"ab{char}cd"):
            assert _refusal(spec, value) == _long_way(spec, value), hex(code)


def test_the_refusal_names_the_character_and_the_field() -> None:
    with pytest.raises(InputError) as err:
        Str(0, 10).check("a\x1bb", "lines[0].sku")
    assert err.value.field == "lines[0].sku"
    assert "U+001B" in err.value.detail
    with pytest.raises(InputError) as err:
        Str(0, 10).check("a\ud800", "client_ref")
    assert "lone surrogate at character 1" in err.value.detail


def test_a_missing_state_dir_is_read_once_a_second_and_quietly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Any] = []
    real = disk_module.os.statvfs

    def counting(path: Any) -> Any:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(disk_module.os, "statvfs", counting)
    guard = DiskGuard(tmp_path / "absent", reserve_bytes=1)
    with caplog.at_level(logging.WARNING):
        for _ in range(100):
            guard.check()  # nothing to fill yet: never refuses
    assert len(calls) == 1
    assert not caplog.records
    (tmp_path / "absent").mkdir()
    guard.refresh(force=True)
    assert guard.free_bytes > 0 and not guard.low
