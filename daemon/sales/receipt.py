"""The receipt as a document: one model rendered to ESC/POS and to text."""

from __future__ import annotations

import dataclasses
import textwrap
import unicodedata
from dataclasses import dataclass, field

from daemon.money import Currency


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    """One sold line: quantity, name and its gross amount in minor units."""

    qty: int
    name: str
    unit_minor: int
    amount_minor: int
    tax_code: str
    discount_minor: int = 0  # this line's own discount, shown under it


@dataclass(frozen=True, slots=True)
class TaxRow:
    """Tax for one rate over the receipt's total at that rate."""

    code: str
    rate_label: str
    net_minor: int
    tax_minor: int
    gross_minor: int


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """One tender: its label and amount, e.g. ('Cash', 2000)."""

    label: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """Everything a printed receipt shows, already computed; rendering adds nothing."""

    header: tuple[str, ...]
    sale_id: str
    seq: int
    time_local: str
    currency: str
    lines: tuple[ReceiptLine, ...]
    taxes: tuple[TaxRow, ...]
    total_minor: int
    payments: tuple[PaymentRow, ...]
    change_minor: int
    footer: tuple[str, ...] = ()
    reprint: bool = False
    notes: tuple[str, ...] = field(default=())
    sale_discount_minor: int = 0
    sale_discount_label: str = ""
    rounding_minor: int = 0  # cash rounding, booked as its own line
    carbon: tuple[str, ...] = ()  # the carbon block's text (billing.carbon)
    methodology_url: str = ""  # printed, and as a QR code when absolute
    qr: str = ""  # signed excerpt (daemon.trust.excerpt), printed as a QR code
    terminal_lines: tuple[str, ...] = ()  # the card terminal's slip (#3)
    refund_of: str = ""  # set on a refund slip: the sale it pays back (#4)


@dataclass(frozen=True, slots=True)
class LayoutLine:
    """One printed line: its text, already padded to the paper, and its style.

    `centered` says the text was centered by padding; a page may center it
    with CSS instead. `replaced` lists characters the code page lacked.
    """

    text: str
    bold: bool = False
    double_height: bool = False
    centered: bool = False
    replaced: tuple[str, ...] = ()
    qr: str = ""  # when set, the printer prints this as a QR code below the text


MIN_COLUMNS = 20
MAX_COLUMNS = 80
REPRINT_BANNER = "*** REPRINT ***"
REFUND_BANNER = "*** REFUND ***"
# Narrower than this, a tax row puts its label above its numbers.
MIN_TAX_LABEL = 6
REPLACEMENT = "?"
QR_LABEL = "Check this receipt (QR code):"

# Stand-ins for characters a code page lacks, tried before accents are dropped.
_TRANSLITERATIONS: dict[str, str] = {
    "€": "EUR", "…": "...", "™": "TM", "œ": "oe", "Œ": "OE", "ß": "ss",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"',
    "–": "-", "—": "-", "‐": "-", "‑": "-", "•": "*", "·": ".", "\u00a0": " ",
    "×": "x", "½": "1/2", "¼": "1/4", "¾": "3/4", "°": "o", "Ł": "L", "ł": "l",
    "Đ": "D", "đ": "d", "ı": "i", "Ø": "O", "ø": "o", "Æ": "AE", "æ": "ae",
}


def printable(text: str, codepage: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Return text fit for paper in the code page, and the characters replaced.

    Control characters become '?', so product names cannot smuggle printer
    commands; invisible format characters (bidi marks, joiners) are dropped.
    Without a code page only that cleaning is done.
    """
    if text.isprintable() and (codepage is None or _encodable(text, codepage)):
        return text, ()  # the common case, without a look at each character
    out: list[str] = []
    replaced: list[str] = []
    for char in text:
        fitted = _fit_char(char, codepage)
        if fitted != char:
            replaced.append(char)
        out.append(fitted)
    return "".join(out), tuple(replaced)


def _fit_char(char: str, codepage: str | None) -> str:
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    if category == "Cc":
        return " " if char == "\t" else REPLACEMENT
    if codepage is None or _encodable(char, codepage):
        return char
    for candidate in (_TRANSLITERATIONS.get(char), _strip_accents(char)):
        if candidate and _encodable(candidate, codepage):
            return candidate
    return REPLACEMENT


def _encodable(text: str, codepage: str) -> bool:
    try:
        text.encode(codepage)
    except UnicodeEncodeError:
        return False
    return True


def _strip_accents(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


class _Page:
    """Collects laid-out lines for one paper width and code page."""

    def __init__(self, columns: int, codepage: str | None) -> None:
        self.columns = max(MIN_COLUMNS, min(MAX_COLUMNS, columns))
        self.codepage = codepage
        self.lines: list[LayoutLine] = []
        self._replaced: list[str] = []

    def fit(self, text: str) -> str:
        fitted, replaced = printable(text, self.codepage)
        self._replaced.extend(replaced)
        return fitted

    def add(self, text: str, **style: bool) -> None:
        replaced, self._replaced = tuple(self._replaced), []
        self.lines.append(LayoutLine(text.rstrip(), replaced=replaced, **style))

    def wrapped(self, text: str, **style: bool) -> None:
        for part in _wrap(self.fit(text), self.columns):
            self.add(part, **style)

    def centered(self, text: str, **style: bool) -> None:
        for part in _wrap(self.fit(text), self.columns):
            pad = (self.columns - len(part)) // 2
            self.add(" " * pad + part, centered=True, **style)

    def pair(self, left: str, right: str, **style: bool) -> None:
        right = self.fit(right)
        width = max(1, self.columns - len(right) - 1)
        parts = _wrap(self.fit(left), width)
        for part in parts[:-1]:
            self.add(part, **style)
        gap = self.columns - len(parts[-1]) - len(right)
        self.add(parts[-1] + " " * max(1, gap) + right, **style)

    def rule(self, char: str = "-") -> None:
        self.add(char * self.columns)

    def blank(self) -> None:
        self.add("")


def _wrap(text: str, width: int) -> list[str]:
    if len(text) <= width:
        return [text.rstrip()]
    parts = textwrap.wrap(text, width, break_long_words=True, drop_whitespace=True)
    return parts or [""]


def layout(
    receipt: Receipt, columns: int, *, codepage: str | None = None
) -> list[LayoutLine]:
    """Lay the receipt out as lines for paper `columns` characters wide."""
    page = _Page(columns, codepage)
    money = Currency.of(receipt.currency)
    if receipt.reprint:
        page.centered(REPRINT_BANNER, bold=True, double_height=True)
    if receipt.refund_of:
        page.centered(REFUND_BANNER, bold=True, double_height=True)
    _header(page, receipt)
    _sold_lines(page, receipt, money)
    _totals(page, receipt, money)
    _tax_rows(page, receipt, money)
    _carbon(page, receipt)
    _closing(page, receipt)
    return page.lines


def render_text(receipt: Receipt, columns: int, *, codepage: str | None = None) -> str:
    """Return the receipt as the plain text the printer prints."""
    lines = layout(receipt, columns, codepage=codepage)
    return "".join(line.text + "\n" for line in lines)


def _header(page: _Page, receipt: Receipt) -> None:
    for index, text in enumerate(receipt.header):
        first = index == 0
        page.centered(text, bold=first, double_height=first)
    page.blank()
    page.pair(f"No. {receipt.seq}", receipt.time_local)
    if receipt.refund_of:
        page.wrapped(f"Refund {receipt.sale_id}")
        page.wrapped(f"of sale {receipt.refund_of}")
    else:
        page.wrapped(f"Sale {receipt.sale_id}")
    page.rule()


def _sold_lines(page: _Page, receipt: Receipt, money: Currency) -> None:
    for line in receipt.lines:
        amount = f"{money.format(line.amount_minor)} {line.tax_code}"
        if line.qty == 1 and not line.discount_minor:
            page.pair(line.name, amount)
            continue
        page.wrapped(line.name)
        page.pair(f"  {line.qty} x {money.format(line.unit_minor)}", amount)
        if line.discount_minor:
            page.pair("  Discount", money.format(-line.discount_minor))
    page.rule()
    if receipt.sale_discount_minor:
        label = f"Discount {receipt.sale_discount_label}".strip()
        page.pair(label, money.format(-receipt.sale_discount_minor))
        page.rule()


def _totals(page: _Page, receipt: Receipt, money: Currency) -> None:
    total = money.format(receipt.total_minor)
    label = "REFUNDED" if receipt.refund_of else "TOTAL"
    page.pair(f"{label} {money.code}", total, bold=True, double_height=True)
    if receipt.rounding_minor:
        sign = "+" if receipt.rounding_minor > 0 else ""
        page.pair("Cash rounding", sign + money.format(receipt.rounding_minor))
    for payment in receipt.payments:
        page.pair(payment.label, money.format(payment.amount_minor))
    if not receipt.refund_of:
        page.pair("Change", money.format(receipt.change_minor))
    page.rule()


def _tax_rows(page: _Page, receipt: Receipt, money: Currency) -> None:
    if not receipt.taxes:
        return
    rows = [
        (f"{t.code} {t.rate_label}", *(money.format(v) for v in _tax_values(t)))
        for t in receipt.taxes
    ]
    cells = [cell for row in rows for cell in row[1:]]
    number_w = max(7, *(len(cell) + 1 for cell in cells))
    label_w = page.columns - 3 * number_w
    if label_w < MIN_TAX_LABEL:
        number_w, label_w = page.columns // 3, 0
    for label, *numbers in [("VAT", "Net", "Tax", "Gross"), *rows]:
        label = page.fit(label)
        if not label_w:
            page.add(label)
        text = label[:label_w].ljust(label_w)
        page.add(text + "".join(page.fit(n).rjust(number_w) for n in numbers))
    page.rule()


def _tax_values(row: TaxRow) -> tuple[int, int, int]:
    return row.net_minor, row.tax_minor, row.gross_minor


def _carbon(page: _Page, receipt: Receipt) -> None:
    """Print the carbon block: estimate, range, method, data, methodology link."""
    if not receipt.carbon:
        return
    for text in receipt.carbon:
        page.wrapped(text)
    url = receipt.methodology_url
    if url:
        page.wrapped("Methodology:")
        page.wrapped(url)
        if url.startswith(("http://", "https://")):
            page.lines[-1] = dataclasses.replace(page.lines[-1], qr=url)
    page.rule()


def _closing(page: _Page, receipt: Receipt) -> None:
    for text in receipt.terminal_lines:
        page.wrapped(text)
    if receipt.terminal_lines:
        page.rule()
    for note in receipt.notes:
        page.wrapped(note)
    if receipt.notes:
        page.blank()
    for text in receipt.footer:
        page.centered(text)
    if receipt.qr:
        page.blank()
        page.centered(QR_LABEL)
        for start in range(0, len(receipt.qr), page.columns):
            page.add(page.fit(receipt.qr[start:start + page.columns]))
        page.lines[-1] = dataclasses.replace(page.lines[-1], qr=receipt.qr)
    if receipt.refund_of:
        page.blank()
        page.centered(REFUND_BANNER, bold=True, double_height=True)
    if receipt.reprint:
        page.blank()
        page.centered(REPRINT_BANNER, bold=True, double_height=True)
