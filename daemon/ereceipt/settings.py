"""The [email] config section: where receipt mail goes out, and how long
addresses stay readable."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.config import ConfigError, _Section

PASSWORD_ENV = "STALLBOX_SMTP_PASSWORD"
MAX_PASSWORD_BYTES = 1024
EMAIL_KEYS = ("host", "port", "starttls", "from", "username", "password_file",
              "retention_days", "max_attempts", "timeout_s")


@dataclass(frozen=True, slots=True)
class EmailSettings:
    """SMTP submission settings; the password is read when a mail goes out."""

    host: str
    port: int = 587
    starttls: bool = True
    sender: str = ""
    username: str = ""
    password_file: Path | None = None
    retention_days: int = 30
    max_attempts: int = 6
    timeout_s: int = 30

    def password(self) -> str:
        """Return the SMTP password: the file's first line, else the environment."""
        if self.password_file is not None:
            raw = self.password_file.read_bytes()[:MAX_PASSWORD_BYTES]
            return raw.decode("utf-8").splitlines()[0] if raw.strip() else ""
        return os.environ.get(PASSWORD_ENV, "")

    def __repr__(self) -> str:  # never a password, and the file only by name
        return f"EmailSettings(host={self.host!r}, port={self.port})"


def parse_email(table: Any, base_dir: Path) -> EmailSettings | None:
    """Check [email]; None when the section is absent (e-receipts are off)."""
    if table is None:
        return None
    from daemon.ereceipt.address import AddressError, check_address

    sec = _Section("email", table, EMAIL_KEYS)
    host = sec.get("host", str)
    if not host or len(host) > 253 or any(c.isspace() for c in host):
        raise ConfigError("email.host", "must be a host name or address")
    try:
        sender = check_address(sec.get("from", str))
    except AddressError as err:
        raise ConfigError("email.from", str(err)) from err
    password_file = sec.get("password_file", str, "")
    if password_file:
        _check_password_file(base_dir / password_file)
    settings = EmailSettings(
        host=host, port=sec.int_range("port", 1, 65535, 587),
        starttls=sec.get("starttls", bool, True), sender=sender,
        username=sec.get("username", str, ""),
        password_file=base_dir / password_file if password_file else None,
        retention_days=sec.int_range("retention_days", 0, 3650, 30),
        max_attempts=sec.int_range("max_attempts", 1, 20, 6),
        timeout_s=sec.int_range("timeout_s", 1, 300, 30))
    sec.check_unknown()
    return settings


def _check_password_file(path: Path) -> None:
    """Refuse at start a password file the outbox could not read; never its text."""
    key = "email.password_file"
    try:
        if not path.is_file():
            raise ConfigError(key, f"{str(path)[:200]} is not a file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_PASSWORD_BYTES + 1)
    except OSError as err:
        raise ConfigError(key, f"cannot read {str(path)[:200]} "
                          f"({err.strerror})") from err
    if len(raw) > MAX_PASSWORD_BYTES:
        raise ConfigError(key, f"larger than {MAX_PASSWORD_BYTES} bytes; it holds "
                          "the password on its first line")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(key, "is not UTF-8 text") from err
