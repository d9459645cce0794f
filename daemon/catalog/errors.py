"""Errors of the catalog importer."""

from __future__ import annotations

from daemon.errors import InputError


class CatalogError(InputError):
    """Raised when a catalog file as a whole cannot be read; ask for another file."""


class RowError(CatalogError):
    """Raised inside a format parser for one bad row; it becomes a Rejection."""
