"""Read CSV bytes from shop exports: UTF-8 (with or without BOM), `,` or `;`.

Rows are numbered as a spreadsheet shows them: the header is row 1 and every
CSV record after it counts one, however many physical lines a quoted
multi-line HTML body spans. Blank lines count as rows but carry no data.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from daemon.catalog.errors import CatalogError
from daemon.catalog.model import Rejection

_log = logging.getLogger(__name__)

_BOMS_UTF16_32 = {
    b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16",
}
_DELIMITERS = (",", ";", "\t")

# Past this many refused rows the file is almost surely not what the owner
# meant to upload; listing thousands of reasons helps nobody.
MAX_REJECTIONS = 500


@dataclass(frozen=True, slots=True)
class Row:
    """One data record: its spreadsheet row number and cells by header name."""

    number: int
    cells: dict[str, str]

    def get(self, *names: str) -> str:
        """Return the stripped value of the first named column present, else ''."""
        for name in names:
            value = self.cells.get(name)
            if value is not None:
                return value.strip()
        return ""


@dataclass(slots=True)
class Table:
    """A decoded CSV file: normalised header names and its data rows."""

    header: list[str]
    rows: list[Row] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    # Indexes of the columns whose cells rows keep.
    kept: list[int] = field(default_factory=list)

    def has(self, *names: str) -> bool:
        """Return whether every named column is in the header."""
        return all(name in self.header for name in names)


def normalise_header(name: str) -> str:
    """Return a header cell lower-cased with single spaces, for matching."""
    return " ".join(name.replace("\ufeff", "").split()).casefold()


def decode(data: bytes) -> str | Rejection:
    """Decode UTF-8 (BOM optional); any other encoding becomes one Rejection."""
    for bom, name in _BOMS_UTF16_32.items():
        if data.startswith(bom):
            return Rejection(1, f"file is {name}, not UTF-8: export it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        return _not_utf8(data, err.start)
    text = text.removeprefix("\ufeff")
    if "\x00" in text[:4096]:
        return Rejection(1, "file contains NUL bytes: is it UTF-16 without a BOM?")
    return text


def _not_utf8(data: bytes, offset: int) -> Rejection:
    """Describe the first byte that is not UTF-8 and the row it sits in."""
    before = data[:offset].decode("utf-8", errors="replace")
    # Line breaks outside quotes end records: the text between the 2nd and
    # 3rd quote, 4th and 5th... is outside, as the csv module reads it too.
    outside = before.split('"')[0::2]
    breaks = sum(p.count("\n") + p.count("\r") - p.count("\r\n") for p in outside)
    row = breaks + 1
    return Rejection(
        row, f"file is not UTF-8 (byte 0x{data[offset]:02X} at offset {offset})"
    )


def sniff_delimiter(text: str) -> str:
    """Return `,`, `;` or tab: whichever the header line uses most outside quotes."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for char in text[:65536]:
        if char == '"':
            quoted = not quoted
        elif char in "\r\n" and not quoted:
            break
        elif char in counts and not quoted:
            counts[char] += 1
    best = max(_DELIMITERS, key=lambda d: counts[d])
    if counts[best] == 0:
        raise CatalogError("no column separator (, or ;) in the first line")
    return best


def read_table(text: str,
               check: Callable[[Table], Callable[[str], bool]] | None = None,
               ) -> Table:
    """Split decoded text into header and rows; structural faults are rejections.

    `check` sees the table right after its header is read, so a file that is
    no catalog is refused before its rows are parsed; it returns which
    columns to keep, so HTML bodies and ad columns never fill memory.
    """
    if not text.strip():
        raise CatalogError("file is empty")
    records = _records(text, sniff_delimiter(text))
    _, first = next(records)
    if isinstance(first, str):
        raise CatalogError(f"the header line is not valid CSV: {first}")
    table = Table(_unique([normalise_header(cell) for cell in first]))
    if not any(table.header):
        raise CatalogError("the first line is not a header")
    keep = check(table) if check else bool
    table.kept = [i for i, name in enumerate(table.header) if keep(name)]
    for number, cells in records:
        _add_row(table, number, cells)
        if len(table.rejected) > MAX_REJECTIONS:
            raise CatalogError(
                f"more than {MAX_REJECTIONS} malformed rows (row {number}: "
                f"{table.rejected[-1].reason}); is this the right file?")
    _note_missing_newline(table, text)
    return table


def _unique(names: list[str]) -> list[str]:
    """Suffix repeated column names ("price#2") so the first one is the one read."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


def _records(text: str, delimiter: str) -> Iterator[tuple[int, list[str] | str]]:
    """Yield (row number, cells), or a csv error text that ends the reading."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        strict=True)
    number = 0
    while True:
        number += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield number, str(err)
            return
        yield number, cells


def _add_row(table: Table, number: int, cells: list[str] | str) -> None:
    """Append a well-formed row or record why it is not one."""
    width = len(table.header)
    if isinstance(cells, str):
        table.rejected.append(Rejection(number, _syntax_reason(cells)))
        return
    if not any(cell.strip() for cell in cells):
        return
    if len(cells) > width and not any(c.strip() for c in cells[width:]):
        cells = cells[:width]
    if len(cells) != width:
        table.rejected.append(Rejection(
            number, f"row has {len(cells)} fields, the header has {width}"))
        return
    header = table.header
    table.rows.append(Row(number, {header[i]: cells[i] for i in table.kept}))


def _syntax_reason(error: str) -> str:
    """Turn a csv module error into a reason a shop owner can act on."""
    if "unexpected end of data" in error:
        return "file ends inside a quoted field: it looks truncated"
    if "field larger than field limit" in error:
        return "a field is longer than 131072 characters; rows after it unread"
    return f"malformed CSV ({error}); rows after this one were not read"


def _note_missing_newline(table: Table, text: str) -> None:
    """Mark a short last row in a file without a final newline as truncated."""
    if text.endswith(("\n", "\r")) or not table.rejected:
        return
    last = table.rejected[-1]
    if "fields, the header has" in last.reason and (
        not table.rows or last.row > table.rows[-1].number
    ):
        table.rejected[-1] = Rejection(
            last.row, f"{last.reason}; the file ends without a newline: truncated?")
