"""Exact money: integer minor units, currency exponents and decimal parsing."""

from __future__ import annotations

import re
from dataclasses import dataclass

from daemon.errors import InputError

# ISO 4217 minor-unit exponents for the currencies stalls use; others default to 2.
_EXPONENTS: dict[str, int] = {
    "EUR": 2, "CHF": 2, "GBP": 2, "USD": 2, "PLN": 2, "SEK": 2, "NOK": 2,
    "DKK": 2, "CZK": 2, "HUF": 2, "CAD": 2, "AUD": 2, "JPY": 0, "KRW": 0,
    "ISK": 0, "BHD": 3, "KWD": 3, "TND": 3,
}
_SYMBOLS: dict[str, str] = {"EUR": "€", "GBP": "£", "USD": "$", "JPY": "¥"}
_DECIMAL = re.compile(r"^\s*([+-]?)(\d{1,15})(?:[.,](\d{1,12}))?\s*$")
MAX_AMOUNT_MINOR = 10**13


@dataclass(frozen=True, slots=True)
class Currency:
    """A currency code with its ISO 4217 minor-unit exponent."""

    code: str
    exponent: int

    @classmethod
    def of(cls, code: str) -> Currency:
        """Return the currency for an ISO 4217 code."""
        code = code.upper()
        if not re.fullmatch(r"[A-Z]{3}", code):
            raise InputError(f"not an ISO 4217 currency code: {code!r}")
        return cls(code, _EXPONENTS.get(code, 2))

    @property
    def symbol(self) -> str:
        return _SYMBOLS.get(self.code, self.code)

    def format(self, amount_minor: int, *, decimal_sep: str = ",") -> str:
        """Format minor units as a plain decimal string, e.g. 1990 -> '19,90'."""
        sign = "-" if amount_minor < 0 else ""
        whole, frac = divmod(abs(amount_minor), 10**self.exponent)
        if self.exponent == 0:
            return f"{sign}{whole}"
        return f"{sign}{whole}{decimal_sep}{frac:0{self.exponent}d}"

    def parse(self, text: str) -> int:
        """Parse '5.7', '5,70' or '12' into minor units without floats.

        Digits beyond the exponent must be zero: '1.999' is refused rather than
        rounded, because a catalog price that does not fit the currency is a
        data error a person should see.
        """
        match = _DECIMAL.match(text)
        if not match:
            raise InputError(f"not a decimal amount: {text[:40]!r}")
        sign, whole, frac = match.groups()
        frac = frac or ""
        extra = frac[self.exponent:]
        if extra.strip("0"):
            raise InputError(
                f"{text.strip()!r} has more than {self.exponent} decimals "
                f"for {self.code}"
            )
        frac = frac[: self.exponent].ljust(self.exponent, "0")
        value = int(whole) * 10**self.exponent + (int(frac) if frac else 0)
        if value > MAX_AMOUNT_MINOR:
            raise InputError(f"amount too large: {text.strip()!r}")
        return -value if sign == "-" else value
