"""The LAN's settings: [pairing] session lifetimes and [http] TLS files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daemon.config import _Section


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """How long a tablet's token and a manager's elevation last."""

    token_ttl_h: int = 24
    expire_at_shift_close: bool = True
    manager_elevation_s: int = 300


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The installer's certificate chain and private key, PEM files."""

    cert: Path
    key: Path

    def context(self) -> ssl.SSLContext:
        """Return a server context for these files; raise ConfigError if unusable."""
        from daemon.config import ConfigError

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError("http.tls_cert", f"cannot load {self.cert} with "
                              f"{self.key}: {err}") from err
        return context


def parse_sessions(pairing: _Section) -> SessionSettings:
    """Read [pairing] token_ttl_h, expire_at_shift_close, manager_elevation_s."""
    return SessionSettings(
        token_ttl_h=pairing.int_range("token_ttl_h", 1, 24 * 366, 24),
        expire_at_shift_close=pairing.get("expire_at_shift_close", bool, True),
        manager_elevation_s=pairing.int_range("manager_elevation_s", 30, 3600, 300))


def parse_tls(http: _Section, base_dir: Path) -> TlsFiles | None:
    """Read [http] tls_cert and tls_key: both or neither, relative to the config."""
    from daemon.config import ConfigError

    cert = http.get("tls_cert", str, "")
    key = http.get("tls_key", str, "")
    if not cert and not key:
        return None
    if not cert or not key:
        missing = "tls_key" if cert else "tls_cert"
        raise ConfigError(f"http.{missing}", "is required when the other TLS file "
                          "is set")
    return TlsFiles(base_dir / Path(cert), base_dir / Path(key))
