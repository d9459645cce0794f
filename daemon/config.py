"""The stall's configuration: one TOML file read with tomllib and checked whole."""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from daemon.billing.pricing import TaxRate
from daemon.errors import StallboxError
from daemon.lan.settings import SessionSettings, TlsFiles, parse_sessions, parse_tls
from daemon.money import Currency
from device.printer.settings import CUT_MODES, FLOW_CONTROLS, PARITIES, PrinterSettings

if TYPE_CHECKING:
    from daemon.ereceipt.settings import EmailSettings
    from daemon.payments.settings import TerminalConfig
    from daemon.sales.settings import BillingSettings

MAX_CONFIG_BYTES = 256 * 1024
# Config text ends up on receipts, pages and in mail headers: no control
# characters (line breaks, tabs, escapes) and no Unicode line separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CODEPAGES = ("cp858", "cp437", "cp850", "cp852", "cp1252", "cp866")
STALL_KEYS = ("name", "currency", "pricing", "address", "vat_id", "locale", "id",
              "receipt_footer")
PRINTER_KEYS = ("port", "baudrate", "bytesize", "parity", "stopbits", "flow_control",
                "codepage", "profile", "columns", "cut")
BILLING_SECTIONS = ("cash", "packaging", "carbon", "contribution")
DEFAULT_RATES = {
    "standard": ("A", 1900, "19 %"),
    "reduced": ("B", 700, "7 %"),
    "zero": ("C", 0, "0 %"),
    "exempt": ("D", 0, "exempt"),
}


class ConfigError(StallboxError):
    """Raised when the config file is missing, unreadable or has a bad key."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"config: {key}: {why}")
        self.key = key
        self.why = why


@dataclass(frozen=True, slots=True)
class StallConfig:
    """Who is selling: the identity printed on every receipt."""

    name: str
    currency: Currency
    pricing: Literal["gross", "net"] = "gross"
    address: str = ""
    vat_id: str = ""
    locale: str = "de_DE"
    stall_id: str = "stall-1"
    tax_rates: Mapping[str, TaxRate] = field(default_factory=dict)
    receipt_footer: str = "Danke für Ihren Einkauf!"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, checked; nothing here is re-validated later."""

    stall: StallConfig
    host: str
    port: int
    state_dir: Path
    printer: PrinterSettings | None
    sync_url: str = ""
    sync_stall_id: str = "stall-1"
    sync_interval_s: int = 60
    max_body_bytes: int = 1024 * 1024
    pairing_code_ttl_s: int = 600
    source: str = "<defaults>"
    disk_reserve_mb: int = 64  # [state] reserve_mb: sales stop below this free
    discovery: DiscoveryConfig = field(default_factory=lambda: DiscoveryConfig())
    # [display] conversion_window_s: a sale of a promoted product this long after
    # it was shown on the till's display counts as a conversion (#8)
    display_conversion_window_s: int = 600
    epoch_max_s: int = 3600
    terminal: TerminalConfig | None = None  # [terminal]: daemon.payments.settings
    billing: BillingSettings = field(default_factory=lambda: _default_billing())
    sessions: SessionSettings = field(default_factory=SessionSettings)  # [pairing]
    tls: TlsFiles | None = None  # [http] tls_cert, tls_key
    email: EmailSettings | None = None  # [email]: e-receipts (daemon.ereceipt)


class _Section:
    """Typed, key-naming access to one TOML table; records which keys were used."""

    def __init__(self, name: str, table: Any,
                 known: Iterable[str] | None = None) -> None:
        if not isinstance(table, dict):
            raise ConfigError(name, "must be a table, e.g. [" + name + "]")
        self.name = name
        self.table: dict[str, Any] = table
        self.seen: set[str] = set()
        if known is not None:  # a typo is named before the key it hides is missed
            self.seen.update(known)
            self.check_unknown()
            self.seen.clear()

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        self.seen.add(key)
        full = f"{self.name}.{key}"
        if key not in self.table:
            if default is ...:
                typo = difflib.get_close_matches(
                    key, [k for k in self.table if k not in self.seen], 1, 0.6)
                if typo:
                    raise ConfigError(f"{self.name}.{typo[0]}",
                                      f"is not a known key; did you mean {key}?")
                raise ConfigError(full, "is required")
            return default
        value = self.table[key]
        if isinstance(value, bool) and bool not in _as_tuple(kind):
            raise ConfigError(full, f"must be {_kind_name(kind)}, not a boolean")
        if not isinstance(value, kind):
            raise ConfigError(full, f"must be {_kind_name(kind)}, got {value!r}"[:200])
        if type(value) is int and abs(value) >= 10**18:  # none needs more than int64
            raise ConfigError(full, "number too large")
        if _has_control(value):
            raise ConfigError(full, "must not contain control characters "
                              "(line breaks, tabs, escapes)")
        return value

    def choice(self, key: str, choices: tuple[str, ...] | Mapping[str, Any],
               default: str) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise ConfigError(f"{self.name}.{key}",
                              f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def int_range(self, key: str, low: int, high: int, default: int) -> int:
        value = self.get(key, int, default)
        if not low <= value <= high:
            got = str(value) if abs(value) < 10**30 else "a number too large"
            raise ConfigError(f"{self.name}.{key}",
                              f"must be between {low} and {high}; got {got}")
        return value

    def check_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.seen)
        if unknown:
            key = unknown[0]
            near = difflib.get_close_matches(key, sorted(self.seen), 1, 0.6)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigError(f"{self.name}.{key[:60]}", "is not a known key" + hint)


def _has_control(value: Any) -> bool:
    """Return True when a string, or one in a list, has a control character.

    A table is not searched: its own _Section checks each value it reads.
    """
    if isinstance(value, str):
        return _CONTROL.search(value) is not None
    if isinstance(value, list):
        return any(_has_control(v) for v in value)
    return False


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number",
             bool: "true or false", dict: "a table", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def load_config(path: Path) -> Config:
    """Read and check a TOML config file; raise ConfigError naming the bad key."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(str(path), f"cannot read the file ({err.strerror})") from err
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), f"file larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), "file is not UTF-8") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), f"not valid TOML: {err}") from err
    except ValueError as err:  # an integer of more than 4300 digits
        raise ConfigError(_huge_number_key(raw.decode("utf-8")) or str(path),
                          "number too large") from err
    return parse_config(data, base_dir=path.parent, source=str(path))


def _huge_number_key(text: str) -> str | None:
    """Return the dotted key of the first line holding a 1000-digit number."""
    table = ""
    for line in text.splitlines():
        head = re.match(r"\s*\[+\s*([^\]]*?)\s*\]", line)
        if head:
            table = head.group(1).replace('"', "")
            continue
        assign = re.match(r"\s*([^=\s]+)\s*=.*[0-9_]{1000}", line)
        if assign:
            key = assign.group(1).replace('"', "")[:60]
            return f"{table}.{key}" if table else key
    return None


def parse_config(data: Mapping[str, Any], *, base_dir: Path,
                 source: str = "<dict>") -> Config:
    """Check a config already parsed from TOML."""
    known = {"stall", "http", "state", "printer", "sync", "tax", "pairing", "keys",
             "terminal",
             "discovery", "display", "email",
             *BILLING_SECTIONS}
    for key in data:
        if key not in known:
            raise ConfigError(key, "is not a known section")
    stall = _parse_stall(_Section("stall", data.get("stall", {}), STALL_KEYS),
                         _Section("tax", data.get("tax", {})))
    http = _Section("http", data.get("http", {}))
    host = _parse_host(http.get("host", str, "127.0.0.1"))
    port = http.int_range("port", 0, 65535, 8080)
    max_body = http.int_range("max_body_bytes", 1024, 64 * 1024 * 1024, 1024 * 1024)
    tls = parse_tls(http, base_dir)
    http.check_unknown()
    state = _Section("state", data.get("state", {}))
    state_raw = state.get("dir", str, "/var/lib/stallbox")
    if not state_raw.strip():
        raise ConfigError("state.dir", "must not be empty")
    state_dir = base_dir / Path(state_raw)
    reserve_mb = state.int_range("reserve_mb", 0, 1024 * 1024, 64)
    state.check_unknown()
    printer = _parse_printer(data.get("printer"))
    sync = _Section("sync", data.get("sync", {}))
    sync_url = _parse_url(sync.get("url", str, ""))
    sync_stall_id = _sync_stall_id(sync, stall.stall_id)
    sync_interval_s = sync.int_range("interval_s", 5, 86400, 60)
    sync.check_unknown()
    pairing = _Section("pairing", data.get("pairing", {}))
    code_ttl = pairing.int_range("code_ttl_s", 30, 86400, 600)
    sessions = parse_sessions(pairing)
    pairing.check_unknown()
    keys = _Section("keys", data.get("keys", {}))
    epoch_max_s = keys.int_range("epoch_max_s", 60, 86400, 3600)
    keys.check_unknown()
    discovery = _parse_discovery(_Section("discovery", data.get("discovery", {})))
    display = _Section("display", data.get("display", {}))
    conversion_window_s = display.int_range("conversion_window_s", 10, 86400, 600)
    display.check_unknown()
    from daemon.sales.settings import parse_billing  # imports this module

    billing = parse_billing(data, stall.currency, base_dir)
    terminal = None
    if data.get("terminal") is not None:  # its drivers cost start-up time (#7)
        from daemon.payments.settings import parse_terminal  # imports this module

        terminal = parse_terminal(data["terminal"], stall.currency)
    from daemon.ereceipt.settings import parse_email  # imports this module

    email = parse_email(data.get("email"), base_dir)
    return Config(stall=stall, host=host, port=port, state_dir=state_dir,
                  printer=printer, sync_url=sync_url, sync_stall_id=sync_stall_id,
                  sync_interval_s=sync_interval_s, max_body_bytes=max_body,
                  pairing_code_ttl_s=code_ttl, source=source,
                  disk_reserve_mb=reserve_mb, billing=billing,
                  discovery=discovery,
                  display_conversion_window_s=conversion_window_s,
                  epoch_max_s=epoch_max_s, terminal=terminal,
                  sessions=sessions, tls=tls, email=email)


def _default_billing() -> BillingSettings:
    """Return the billing settings of an empty config (no rounding, no fees)."""
    from daemon.sales.settings import parse_billing

    return parse_billing({}, Currency.of("EUR"), Path("."))


def _parse_stall(sec: _Section, tax: _Section) -> StallConfig:
    name = sec.get("name", str)
    if not name.strip() or len(name) > 80:
        raise ConfigError("stall.name", "must be 1 to 80 characters")
    code = sec.get("currency", str, "EUR")
    try:
        currency = Currency.of(code)
    except StallboxError as err:
        raise ConfigError("stall.currency", str(err)) from err
    stall = StallConfig(
        name=name,
        currency=currency,
        pricing=cast(Literal["gross", "net"],
                     sec.choice("pricing", ("gross", "net"), "gross")),
        address=_short(sec, "address", 200),
        vat_id=_short(sec, "vat_id", 40),
        locale=_short(sec, "locale", 20, "de_DE"),
        stall_id=_stall_id(sec),
        tax_rates=_parse_rates(tax),
        receipt_footer=_short(sec, "receipt_footer", 200, "Danke für Ihren Einkauf!"),
    )
    sec.check_unknown()
    return stall


def _short(sec: _Section, key: str, limit: int, default: str = "") -> str:
    value = sec.get(key, str, default)
    if len(value) > limit:
        raise ConfigError(f"{sec.name}.{key}", f"longer than {limit} characters")
    return value


def _stall_id(sec: _Section) -> str:
    value = sec.get("id", str, "stall-1")
    allowed = all(c.isalnum() or c in "-_." for c in value)
    if not value or len(value) > 64 or not allowed:
        raise ConfigError("stall.id", "must be 1-64 letters, digits, '-', '_' or '.'")
    return value


def _parse_rates(tax: _Section) -> dict[str, TaxRate]:
    """Read [tax] rates as basis points, e.g. standard = 1900 for 19 %."""
    rates = {}
    for tax_class, (code, default_bp, default_label) in DEFAULT_RATES.items():
        bp = tax.int_range(f"{tax_class}_bp", 0, 10000, default_bp)
        label = default_label if bp == default_bp else _bp_label(bp, tax_class)
        rates[tax_class] = TaxRate(tax_class=tax_class, code=code, rate_bp=bp,
                                   label=label)
    tax.check_unknown()
    return rates


def _bp_label(bp: int, tax_class: str) -> str:
    if tax_class == "exempt":
        return "exempt"
    whole, frac = divmod(bp, 100)
    return f"{whole} %" if not frac else f"{whole},{frac:02d}".rstrip("0") + " %"


@dataclass(frozen=True, slots=True)
class DiscoveryConfig:
    """Whether and where to announce the till pages by mDNS."""

    enabled: bool = False
    interfaces: tuple[str, ...] = ()  # empty: all but loopback and bridges
    name: str = ""  # instance name; empty: the stall's name


def _parse_discovery(sec: _Section) -> DiscoveryConfig:
    enabled = sec.get("enabled", bool, False)
    interfaces = sec.get("interfaces", list, [])
    if not all(isinstance(i, str) and 0 < len(i) <= 15 for i in interfaces):
        raise ConfigError("discovery.interfaces",
                          "must be a list of interface names, e.g. [\"wlan0\"]")
    name = _short(sec, "name", 50)
    sec.check_unknown()
    return DiscoveryConfig(enabled=enabled, interfaces=tuple(interfaces), name=name)


def _parse_host(host: str) -> str:
    if host in ("localhost", ""):
        return host or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError as err:
        raise ConfigError("http.host", f"must be an IP address; got {host!r}") from err
    return host


def _sync_stall_id(sec: _Section, default: str) -> str:
    value = sec.get("stall_id", str, default)
    allowed = all(c.isalnum() or c in "-_." for c in value)
    if not value or len(value) > 64 or not allowed:
        raise ConfigError("sync.stall_id",
                          "must be 1-64 letters, digits, '-', '_' or '.'")
    return value


def _parse_url(url: str) -> str:
    if url and not url.startswith(("http://", "https://")):
        raise ConfigError("sync.url", "must start with http:// or https://")
    return url


def _parse_printer(table: Any) -> PrinterSettings | None:
    if table is None:
        return None
    sec = _Section("printer", table, PRINTER_KEYS)
    port = sec.get("port", str)
    if not port.startswith("/"):
        raise ConfigError("printer.port", "must be an absolute device path, "
                          "e.g. /dev/serial/by-id/usb-...")
    checks: list[tuple[str, Callable[[], Any]]] = [
        ("baudrate", lambda: _baud(sec)),
        ("bytesize", lambda: sec.int_range("bytesize", 5, 8, 8)),
        ("parity", lambda: sec.choice("parity", PARITIES, "none")),
        ("stopbits", lambda: _stopbits(sec)),
        ("flow_control", lambda: sec.choice("flow_control", FLOW_CONTROLS, "none")),
        ("codepage", lambda: sec.choice("codepage", CODEPAGES, "cp858")),
        ("profile", lambda: _short(sec, "profile", 40, "default")),
        ("columns", lambda: sec.int_range("columns", 24, 80, 42)),
        ("cut", lambda: sec.choice("cut", CUT_MODES, "gs_v")),
    ]
    values = {key: check() for key, check in checks}
    sec.check_unknown()
    return PrinterSettings(port=port, **values)


def _baud(sec: _Section) -> int:
    rates = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400)
    value = sec.get("baudrate", int, 9600)
    if value not in rates:
        raise ConfigError("printer.baudrate",
                          f"must be one of {', '.join(map(str, rates))}; got {value}")
    return value


def _stopbits(sec: _Section) -> float:
    value = sec.get("stopbits", (int, float), 1)
    if value not in (1, 1.5, 2):
        raise ConfigError("printer.stopbits", f"must be 1, 1.5 or 2; got {value}")
    return float(value)
