"""The config reference cannot drift from the parser or the commented example."""

from __future__ import annotations

from typing import Any

import pytest

from daemon import config as config_module
from scripts import gen_config_doc as gen


def _reading() -> tuple[gen.Reading, gen.Documented]:
    example = gen.EXAMPLE.read_text(encoding="utf-8")
    return gen.parser_reading(example), gen.documented(example)


def test_the_example_parses_as_it_is() -> None:
    gen.read_config(gen.EXAMPLE.read_text(encoding="utf-8"), gen.Reading())


def test_every_key_the_parser_reads_is_in_the_example() -> None:
    reading, doc = _reading()

    assert gen.undocumented(reading, doc) == []
    assert {"stall", "printer", "terminal", "keys"} <= reading.sections


def test_a_key_added_to_the_parser_alone_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = config_module._parse_discovery

    def with_new_key(sec: Any) -> Any:
        sec.get("beacon_s", int, 10)
        return original(sec)

    monkeypatch.setattr(config_module, "_parse_discovery", with_new_key)
    reading, doc = _reading()

    assert gen.undocumented(reading, doc) == ["discovery.beacon_s"]


def test_commented_keys_and_sections_are_read_too() -> None:
    reading, _ = _reading()

    assert ("terminal", "password") in reading.keys
    assert ("carbon", "epa_file") in reading.keys
    assert reading.keys[("terminal", "port")].default is ...


def test_operations_guide_holds_the_current_reference() -> None:
    text = gen.DOC.read_text(encoding="utf-8")

    assert gen.replace_block(text, gen.generate()) == text, (
        "docs/operations.md is stale: run python scripts/gen_config_doc.py")
