"""Give python-escpos a stable cache dir before it is imported.

python-escpos parses its printer capability database at import (about 0.7 s on
this machine) and caches the result in a pickle under
``ESCPOS_CAPABILITIES_PICKLE_DIR``; unset, it uses a *new* ``mkdtemp()`` every
time, so the cache never hits and a temp dir is left behind per start. Import
this module before ``escpos``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_VARIABLE = "ESCPOS_CAPABILITIES_PICKLE_DIR"


def _cache_dir() -> Path:
    # systemd sets CACHE_DIRECTORY for units with CacheDirectory=.
    base = os.environ.get("CACHE_DIRECTORY") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "stallbox" / "escpos"


def configure() -> None:
    """Point python-escpos at a persistent cache dir (or one shared temp dir)."""
    if _VARIABLE in os.environ:
        return
    for candidate in (_cache_dir(), Path(tempfile.gettempdir()) / "stallbox-escpos"):
        try:
            candidate.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            os.environ[_VARIABLE] = str(candidate)
            return


configure()
