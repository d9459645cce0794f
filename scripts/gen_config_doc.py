#!/usr/bin/env python3
"""Generate the config reference in docs/operations.md from the parser itself.

The commented example daemon/stallbox.example.toml is parsed by
daemon.config.parse_config while every key the parser reads is recorded with
its type, default, range or choices; the meaning comes from the example's
comments. Keys the example shows only as comments (`# key = value`) and
sections it shows only as comments (`# [terminal]`) are read in a second pass
with those lines switched on, so they are documented too.

    python scripts/gen_config_doc.py          # rewrite the block in operations.md
    python scripts/gen_config_doc.py --check  # exit 1 if the block is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from daemon import config as config_module  # noqa: E402
from daemon.config import ConfigError, parse_config  # noqa: E402

EXAMPLE = REPO / "daemon" / "stallbox.example.toml"
DOC = REPO / "docs" / "operations.md"
START, END = "<!-- config:start -->", "<!-- config:end -->"
_COMMENTED = re.compile(r'^#\s?(\[[\w."]+\]|[A-Za-z_][\w-]*\s*=\s*\S.*)$')
_KEY_LINE = re.compile(r'^#?\s?([A-Za-z_][\w-]*|"[^"]*")\s*=\s*(.*)$')
_HEADER = re.compile(r"^#?\s?\[([\w.\"]+)\]")
MAX_PROBES = 50


@dataclass
class Key:
    """One config key as the parser reads it."""

    section: str
    name: str
    kind: str = ""
    default: Any = ...
    rule: str = ""
    meaning: str = ""


@dataclass
class Reading:
    """Everything the parser asked for while parsing one or more configs."""

    sections: set[str] = field(default_factory=set)
    keys: dict[tuple[str, str], Key] = field(default_factory=dict)


class _RecordingTable(dict[str, Any]):
    """The top-level TOML table; remembers which sections the parser asked for."""

    def __init__(self, data: dict[str, Any], reading: Reading) -> None:
        super().__init__(data)
        self.reading = reading

    def get(self, key: str, default: Any = None) -> Any:
        self.reading.sections.add(key)
        return super().get(key, default)


@contextmanager
def recording(reading: Reading) -> Iterator[None]:
    """Patch the parser's section reader to record every key, type and default."""
    section = config_module._Section
    originals = section.get, section.choice, section.int_range

    def get(self: Any, key: str, kind: Any, default: Any = ...) -> Any:
        entry = reading.keys.setdefault((self.name, key), Key(self.name, key))
        entry.kind, entry.default = _kind(kind), default
        return originals[0](self, key, kind, default)

    def choice(self: Any, key: str, choices: Any, default: str) -> str:
        entry = reading.keys.setdefault((self.name, key), Key(self.name, key))
        entry.rule = "one of " + ", ".join(f"`{c}`" for c in choices)
        return originals[1](self, key, choices, default)

    def int_range(self: Any, key: str, low: int, high: int, default: int) -> int:
        entry = reading.keys.setdefault((self.name, key), Key(self.name, key))
        entry.rule = f"{low} to {high}"
        return originals[2](self, key, low, high, default)

    section.get, section.choice, section.int_range = get, choice, int_range
    try:
        yield
    finally:
        section.get, section.choice, section.int_range = originals


def _kind(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "string", int: "integer", float: "number", bool: "boolean",
             dict: "table", list: "list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def switched_on(text: str) -> str:
    """Return the example with its commented-out keys and sections switched on."""
    return "\n".join(m.group(1) if (m := _COMMENTED.match(line)) else line
                     for line in text.splitlines())


def _drop(data: dict[str, Any], dotted: str) -> bool:
    """Remove the key a ConfigError names (its longest existing prefix)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        table: Any = data
        for part in parts[: cut - 1]:
            table = table.get(part) if isinstance(table, dict) else None
        if isinstance(table, dict) and parts[cut - 1] in table:
            del table[parts[cut - 1]]
            return True
    return False


def read_config(text: str, reading: Reading, *, lenient: bool = False) -> None:
    """Parse text, recording; when lenient, a refused value is dropped and retried."""
    data = tomllib.loads(text)
    with recording(reading):
        for _ in range(MAX_PROBES):
            try:
                parse_config(_RecordingTable(data, reading), base_dir=REPO)
                return
            except ConfigError as err:
                if not lenient or not _drop(data, err.key):
                    raise
    raise RuntimeError("the example needs too many probes to parse")


def parser_reading(example: str) -> Reading:
    """Return every section and key the parser reads, from both passes."""
    reading = Reading()
    read_config(example, reading)
    read_config(switched_on(example), reading, lenient=True)
    return reading


@dataclass
class Documented:
    """What the example says: sections in order, their prose, each key's line."""

    sections: dict[str, str] = field(default_factory=dict)
    keys: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)


def _split_comment(rest: str) -> tuple[str, str]:
    """Split `value   # comment` (two or more spaces before the #)."""
    parts = re.split(r"\s{2,}#\s?", rest, maxsplit=1)
    return parts[0].strip(), parts[1].strip() if len(parts) > 1 else ""


def documented(example: str) -> Documented:
    """Read sections, section prose, and each key's example value and comment."""
    doc, section, prose = Documented(), "", ""
    for raw in example.splitlines():
        line = raw.strip()
        if header := _HEADER.match(line):
            section = header.group(1).replace('"', "")
            doc.sections.setdefault(section, prose)
            parent, _, last = section.rpartition(".")
            doc.keys[(parent, last)] = ("(table)", _split_comment(line)[1])
            prose = ""
        elif key := _KEY_LINE.match(line):
            value, comment = _split_comment(key.group(2))
            doc.keys[(section, key.group(1).strip('"'))] = (value, comment or prose)
            prose = ""
        elif line.startswith("#") and section:
            text = line.lstrip("#").strip().strip("- ")
            if not any(k[0] == section for k in doc.keys):
                doc.sections[section] = f"{doc.sections[section]} {text}".strip()
            else:
                prose = f"{prose} {text}".strip()
    return doc


def undocumented(reading: Reading, doc: Documented) -> list[str]:
    """Return the sections and keys the parser reads that the example never shows."""
    prefixes = {s.split(".")[0] for s in doc.sections} | set(doc.sections)
    missing = [f"[{s}]" for s in sorted(reading.sections - prefixes)]
    return missing + [f"{s}.{k}" for s, k in sorted(reading.keys)
                      if (s, k) not in doc.keys]


def _toml(value: Any) -> str:
    """Format a default as TOML would spell it, in backticks."""
    if value is ...:
        return "required"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, dict):
        return "`{}`"
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _row(key: Key, example: tuple[str, str]) -> str:
    """Return one table row; the example's value is shown when it is no default."""
    value, meaning = example
    shown = f"`{key.name}`"
    if value not in ("(table)", _toml(key.default).strip("`")):
        meaning = f"{meaning} (example: `{value}`)".strip()
    meaning = (meaning or "(not described in the example)").replace("|", r"\|")
    return (f"| {shown} | {key.kind} | {_toml(key.default)} | {key.rule} "
            f"| {meaning} |")


def reference(reading: Reading, doc: Documented) -> str:
    """Return the Markdown reference: one table per section, in the example's order."""
    out = [f"<!-- generated by scripts/gen_config_doc.py from {EXAMPLE.name}; "
           "do not edit by hand -->"]
    for section, prose in doc.sections.items():
        keys = [k for k in reading.keys.values() if k.section == section]
        if not keys:
            continue
        order = list(doc.keys)
        keys.sort(key=lambda k: order.index((section, k.name))
                  if (section, k.name) in order else len(order))
        out += ["", f"#### `[{section}]`", ""] + ([prose, ""] if prose else [])
        out += ["| key | type | default | allowed | meaning |",
                "|---|---|---|---|---|"]
        out += [_row(k, doc.keys.get((section, k.name), ("", ""))) for k in keys]
    return "\n".join(out)


def generate() -> str:
    """Return the reference for the current parser and example."""
    example = EXAMPLE.read_text(encoding="utf-8")
    return reference(parser_reading(example), documented(example))


def replace_block(text: str, block: str) -> str:
    """Return text with the part between the config markers replaced by block."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main() -> int:
    """Rewrite or check the generated block of docs/operations.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/operations.md is not up to date")
    args = parser.parse_args()
    text = DOC.read_text(encoding="utf-8")
    updated = replace_block(text, generate())
    if args.check:
        if updated != text:
            print(f"{DOC} is stale: run scripts/gen_config_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
