"""Small declarative JSON body schemas: one source for checking and for OpenAPI."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daemon.errors import InputError


class DuplicateKeyError(ValueError):
    """A JSON object names one key twice: which value was meant is unknowable."""


class NumberTooLongError(ValueError):
    """A JSON integer longer than any value Stallbox reads."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)  # in C; only a repeat (fewer keys) walks the pairs
    if len(found) == len(pairs):
        return found
    found = {}
    for key, value in pairs:
        if key in found:
            raise DuplicateKeyError(f"key {key[:40]!r} appears twice in one object")
        found[key] = value
    return found


def loads_strict(raw: bytes | str) -> Any:
    """Decode JSON from outside, refusing an object that repeats a key.

    Python's decoder keeps the last of repeated keys; another reader may keep
    the first, so a body such as {"consent": true, "consent": false} would mean
    different things to different parts of the chain.
    """
    if isinstance(raw, bytes | bytearray):  # what json.loads does with bytes
        raw = raw.decode(json.detect_encoding(raw), "surrogatepass")
    elif not isinstance(raw, str) or raw.startswith("\ufeff"):
        return json.loads(raw)  # its TypeError, or its error for a UTF-8 BOM
    return _STRICT.decode(raw)


MAX_INT_DIGITS = 40  # far past any amount or count; int64 has 19


def _bounded_int(text: str) -> int:
    """Read a JSON integer of at most MAX_INT_DIGITS digits (Python's own limit,
    4 300, raises a bare ValueError deep in the decoder)."""
    if len(text) > MAX_INT_DIGITS and len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise NumberTooLongError(f"a number has more than {MAX_INT_DIGITS} digits")
    return int(text)


# One decoder for every call: json.loads with hooks builds a new decoder and
# scanner per call, about a quarter of decoding a sale's body.
_STRICT = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_int=_bounded_int)


def parse_json_body(raw: bytes) -> Any:
    """Decode a request body; malformed JSON is an InputError on the body."""
    try:
        return loads_strict(raw)
    except (DuplicateKeyError, NumberTooLongError) as err:
        raise InputError(f"body is not valid JSON: {err}", field="body") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"body is not valid JSON: {err}", field="body") from err
    except RecursionError as err:  # [[[[... past the interpreter's stack
        raise InputError("body nested too deeply", field="body") from err

# Unicode category Cc: C0 controls (NUL, ESC, line breaks...), DEL, C1 controls.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
CONTROL_FREE = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"  # the same, as an OpenAPI pattern


class Spec:
    """A type a JSON value must have; check() returns it or raises naming the path."""

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def openapi(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Spec):
    """A string of bounded length, optionally one of a fixed set.

    Every string must be valid Unicode: JSON can escape a lone surrogate
    ("\\ud800"), which Python decodes but no UTF-8 encoder (journal, receipt,
    database) accepts. Strings are also printable unless printable=False:
    ids, names and references end up on receipts, in logs and as journal keys,
    where NUL, ESC or a line break is never meant. Only free multi-line text
    (a pasted receipt) opts out.
    """

    min_len: int = 0
    max_len: int = 200
    choices: tuple[str, ...] = ()
    printable: bool = True

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise InputError(f"{path} must be a string", field=path)
        # ASCII holds no surrogate, and its only unprintable characters are
        # the controls: a printable ASCII string (ids, skus) needs no more
        if not (value.isascii() and value.isprintable()):
            self._check_text(value, path)
        if not self.min_len <= len(value) <= self.max_len:
            raise InputError(f"{path} must be {self.min_len} to {self.max_len} "
                             "characters", field=path)
        if self.choices and value not in self.choices:
            raise InputError(f"{path} must be one of {', '.join(self.choices)}",
                             field=path)
        return value

    def _check_text(self, value: str, path: str) -> None:
        """Refuse lone surrogates and, when printable, control characters."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InputError(f"{path} is not valid Unicode (lone surrogate at "
                             f"character {err.start})", field=path) from err
        control = _CONTROL.search(value) if self.printable else None
        if control:
            raise InputError(f"{path} contains control character "
                             f"U+{ord(control[0]):04X}", field=path)

    def openapi(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string", "minLength": self.min_len,
                               "maxLength": self.max_len}
        if self.choices:
            out["enum"] = list(self.choices)
        elif self.printable:
            out["pattern"] = CONTROL_FREE
        return out


@dataclass(frozen=True)
class Int(Spec):
    """An integer (never a float or a boolean) within bounds."""

    minimum: int = 0
    maximum: int = 10**12

    def check(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{path} must be an integer", field=path)
        if not self.minimum <= value <= self.maximum:
            raise InputError(f"{path} must be between {self.minimum} and "
                             f"{self.maximum}", field=path)
        return value

    def openapi(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Arr(Spec):
    """A list of items of one spec, with a bounded count."""

    item: Spec
    min_items: int = 0
    max_items: int = 100

    def check(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise InputError(f"{path} must be a list", field=path)
        if not self.min_items <= len(value) <= self.max_items:
            raise InputError(f"{path} must have {self.min_items} to "
                             f"{self.max_items} items", field=path)
        return [self.item.check(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def openapi(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.openapi(),
                "minItems": self.min_items, "maxItems": self.max_items}


@dataclass(frozen=True)
class Obj(Spec):
    """An object with known fields; unknown fields are refused by name."""

    fields: Mapping[str, Spec]
    optional: frozenset[str] = field(default_factory=frozenset)

    def check(self, value: Any, path: str = "body") -> dict[str, Any]:
        if not isinstance(value, dict):
            raise InputError(f"{path} must be a JSON object", field=path)
        for key in value:
            if key not in self.fields:
                name = key if path == "body" else f"{path}.{key}"
                raise InputError(f"unknown field {name[:80]!r}", field=name[:80])
        out = {}
        prefix = "" if path == "body" else f"{path}."
        for key, spec in self.fields.items():
            if key in value:
                out[key] = spec.check(value[key], prefix + key)
            elif key not in self.optional:
                raise InputError(f"{prefix}{key} is required", field=prefix + key)
        return out

    def openapi(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False,
                "properties": {k: s.openapi() for k, s in self.fields.items()},
                "required": [k for k in self.fields if k not in self.optional]}


@dataclass(frozen=True)
class Bool(Spec):
    """A JSON true or false (never 0, 1 or a string)."""

    def check(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise InputError(f"{path} must be true or false", field=path)
        return value

    def openapi(self) -> dict[str, Any]:
        return {"type": "boolean"}
