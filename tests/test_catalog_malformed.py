"""Bad input: truncation, wrong encodings, junk, limits, hostile text."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from daemon.catalog.csvread import MAX_REJECTIONS
from daemon.catalog.errors import CatalogError
from daemon.catalog.importer import MAX_CATALOG_BYTES, parse_catalog
from daemon.catalog.model import ParseResult
from daemon.money import Currency

CATALOGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "catalogs"
EUR = Currency.of("EUR")
HEADER = "sku,name,price,tax_class\n"


def parse(data: bytes, max_bytes: int = MAX_CATALOG_BYTES) -> ParseResult:
    return parse_catalog(data, currency=EUR, max_bytes=max_bytes)


def test_truncated_inside_a_quoted_field() -> None:
    result = parse(f'{HEADER}A,Apfel,1.00,\nB,"Birne, sü'.encode())
    assert [p.sku for p in result.products] == ["A"]
    assert [(r.row, r.reason) for r in result.rejected] == [
        (3, "file ends inside a quoted field: it looks truncated")]


def test_truncated_final_row_without_newline() -> None:
    result = parse(f"{HEADER}A,Apfel,1.00,\nB,Bir".encode())
    assert [r.row for r in result.rejected] == [3]
    assert "the file ends without a newline: truncated?" in result.rejected[0].reason


def test_real_export_cut_in_a_multiline_body() -> None:
    data = (CATALOGS / "shopify" / "septembrea_candles_crafts_products_export.csv"
            ).read_bytes()
    cut = data.index(b"Lorem", len(data) // 2)  # inside a quoted HTML body
    result = parse(data[:cut])
    assert 0 < len(result.products) < 12
    assert result.rejected[-1].reason.startswith("file ends inside a quoted field")
    assert result.rejected[-1].row == len(result.products) + 2


def test_latin1_is_refused_with_byte_offset_and_row() -> None:
    data = f"{HEADER}A,Apfel,1.00,\n".encode() + "B,Crème,2.00,\n".encode("latin-1")
    offset = data.index(b"\xe8")
    result = parse(data)
    assert result.products == [] and result.format == "unknown"
    assert [(r.row, r.reason) for r in result.rejected] == [
        (3, f"file is not UTF-8 (byte 0xE8 at offset {offset})")]


def test_not_utf8_row_counts_records_not_lines() -> None:
    data = ('\ufeffsku,name,price\nA,"Apfel\r\nmit\nZeilen",1.00\n'.encode()
            + 'B,"Brûlée",2.00\n'.encode("latin-1"))
    offset = data.index(b"\xfb")
    result = parse(data)
    assert [(r.row, r.reason) for r in result.rejected] == [
        (3, f"file is not UTF-8 (byte 0xFB at offset {offset})")]


def test_real_export_saved_as_windows_1252() -> None:
    text = (CATALOGS / "shopify" / "fr_parispousse_plants_products_export.csv"
            ).read_text(encoding="utf-8")
    result = parse(text.encode("cp1252", errors="replace"))
    assert len(result.rejected) == 1
    assert result.rejected[0].reason.startswith("file is not UTF-8 (byte 0x")


@pytest.mark.parametrize(("encoding", "reason"), [
    ("utf-16", "file is UTF-16, not UTF-8"),
    ("utf-32", "file is UTF-32, not UTF-8"),
    ("utf-16-le", "file contains NUL bytes"),
])
def test_utf16_and_utf32_are_refused(encoding: str, reason: str) -> None:
    result = parse(f"{HEADER}A,Apfel,1.00,\n".encode(encoding))
    assert result.products == []
    assert result.rejected[0].row == 1
    assert result.rejected[0].reason.startswith(reason)


def test_ten_megabytes_of_random_bytes_answer_fast() -> None:
    junk = random.Random(4).randbytes(10 * 1024 * 1024)
    started = time.monotonic()
    result = parse(junk)
    assert time.monotonic() - started < 2
    assert result.products == []
    assert result.rejected[0].reason.startswith("file is not UTF-8")


@pytest.mark.parametrize("head", ["", "a;b;c\n", "sku,name,price\n",
                                  "Handle,Title,Variant Price\n"])
def test_ten_megabytes_of_text_junk_answer_fast(head: str) -> None:
    alphabet = b'abc,;"\n1. '
    table = bytes(alphabet[i % len(alphabet)] for i in range(256))
    junk = random.Random(head).randbytes(10 * 1024 * 1024).translate(table)
    data = head.encode() + junk
    started = time.monotonic()
    try:
        result = parse(data)
    except CatalogError as err:
        assert err.detail
    else:
        assert result.rejected
    assert time.monotonic() - started < 2


def test_junk_rows_under_a_real_header_stop_at_the_rejection_cap() -> None:
    rows = "".join(f"S{i},Name {i},not-a-price,\n" for i in range(5000))
    with pytest.raises(CatalogError, match="more than 500 rows rejected"):
        parse((HEADER + rows).encode())
    assert MAX_REJECTIONS == 500


def test_oversized_file_is_refused_before_reading() -> None:
    with pytest.raises(CatalogError, match="more than the 100 byte limit"):
        parse(b"x" * 101, max_bytes=100)
    started = time.monotonic()
    with pytest.raises(CatalogError, match="byte limit"):
        parse(b"\xff" * (MAX_CATALOG_BYTES + 1))
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"\n\n  \r\n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(CatalogError, match="file is empty"):
        parse(data)


@pytest.mark.parametrize("header", [
    "sku,name,price", "Handle,Title,Variant Price",
    "Token,Item Name,Variation Name,Price",
    "ID,Type,SKU,Name,Published,Regular price",
])
def test_header_only_file_is_an_empty_catalog(header: str) -> None:
    result = parse(header.encode() + b"\n")
    assert result.format != "unknown"
    assert (result.products, result.rejected, result.skipped) == ([], [], 0)


def test_wrong_field_count_in_the_middle() -> None:
    result = parse(f"{HEADER}A,Apfel,1.00,\nB,Birne\nC,Quitte,2.00,\n".encode())
    assert [p.sku for p in result.products] == ["A", "C"]
    assert [(r.row, r.reason) for r in result.rejected] == [
        (3, "row has 2 fields, the header has 4")]


def test_broken_quoting_stops_reading_with_a_reason() -> None:
    result = parse(f'{HEADER}A,"Apfel"x,1.00,\nB,Birne,1.00,\n'.encode())
    assert result.products == []
    assert result.rejected[0].row == 2
    assert "rows after this one were not read" in result.rejected[0].reason


def test_field_over_the_csv_limit() -> None:
    body = "x" * 200_000
    result = parse(f'{HEADER}A,"{body}",1.00,\n'.encode())
    assert result.rejected[0].row == 2
    assert "longer than 131072 characters" in result.rejected[0].reason


@pytest.mark.parametrize("name", [
    '=HYPERLINK("http://example.invalid","x")', "+41 Kerze", "-Rabatt-", "@SUM(A1)",
    "<script>alert(1)</script>", 'Bio "Äpfel" \'lose\'',
    "\u200fשמן זית", "Tom &lt;b&gt; Jerry",
])
def test_hostile_names_stay_data(name: str) -> None:
    cell = '"' + name.replace('"', '""') + '"'
    result = parse(f"{HEADER}A,{cell},1.00,\n".encode())
    assert result.rejected == []
    expected = name.replace("&lt;", "<").replace("&gt;", ">")
    assert result.products[0].name == expected


@pytest.mark.parametrize("code", ["\x1b", "\x07", "\x1bd\x01"])
def test_control_codes_in_names_are_refused(code: str) -> None:
    """ESC and friends would drive the receipt printer instead of printing."""
    result = parse(f"{HEADER}A,Apfel{code}d,1.00,\n".encode())
    assert result.products == []
    assert result.rejected[0].reason.startswith("text contains control code U+00")


def test_line_breaks_fold_and_escaped_controls_vanish() -> None:
    # NEL is a line break like \n; html.unescape drops "&#27;" (HTML5 rule).
    result = parse(f'{HEADER}A,"Apfel\x85\n\tsaft&#27;",1.00,\n'.encode())
    assert result.products[0].name == "Apfel saft"


def test_too_heavy_and_garbled_weights() -> None:
    data = (b"sku,name,price,weight_g\nA,Apfel,1.00,1e999999\n"
            b"B,Birne,1.00,12.5\nC,Quitte,1.00,99999999999\n")
    reasons = {r.row: r.reason for r in parse(data).rejected}
    assert set(reasons) == {2, 3, 4}


# ---- names that wreck the till: bidi overrides, overlong text, price 0 ------

@pytest.mark.parametrize("mark", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
                                  "\u2066", "\u2067", "\u2068", "\u2069"])
def test_bidi_controls_are_stripped_from_names_variants_categories(
        mark: str) -> None:
    data = ("sku,name,price,tax_class,category,variant\n"
            f"A,Kerze {mark}gnp.exe,1.00,standard,Ker{mark}zen,gr{mark}oß\n").encode()
    result = parse(data)
    assert result.rejected == []
    product = result.products[0]
    assert (product.name, product.category, product.variant) == (
        "Kerze gnp.exe", "Kerzen", "groß")


def test_right_to_left_text_and_marks_are_kept() -> None:
    result = parse(f"{HEADER}A,\u200fשמן זית,1.00,\n".encode())
    assert result.products[0].name == "\u200fשמן זית"


@pytest.mark.parametrize("column", ["name", "variant"])
def test_overlong_name_or_variant_rejects_the_row(column: str) -> None:
    from daemon.catalog.fields import MAX_NAME_CHARS

    long = "K" * 5000
    name, variant = (long, "") if column == "name" else ("Kerze", long)
    data = ("sku,name,price,tax_class,variant\n"
            "A,Apfel,1.00,standard,\n"
            f"B,{name},1.00,standard,{variant}\n").encode()
    result = parse(data)
    assert [p.sku for p in result.products] == ["A"]
    [rejection] = result.rejected
    assert rejection.row == 3
    assert f"{column} is 5000 characters, at most {MAX_NAME_CHARS}" \
        in rejection.reason
    fits = "K" * MAX_NAME_CHARS
    assert parse(f"{HEADER}A,{fits},1.00,\n".encode()).products[0].name == fits


def test_zero_priced_active_products_warn_but_import() -> None:
    data = (f"{HEADER}A,Apfel,0.00,\nB,Birne,1.00,\nC,Quitte,0,\n").encode()
    result = parse(data)
    assert [p.sku for p in result.products] == ["A", "B", "C"]
    assert result.rejected == []
    [warning] = [w for w in result.warnings if "priced 0" in w]
    assert "2 active product(s)" in warning and "rows 2, 4" in warning
    assert not any("priced 0" in w
                   for w in parse(f"{HEADER}B,Birne,1.00,\n".encode()).warnings)
