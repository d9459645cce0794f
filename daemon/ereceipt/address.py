"""Check a customer's e-mail address before it is sealed and journaled.

Deliberately narrower than RFC 5321: a dot-atom local part and a domain of
LDH labels (or an IDN, encoded to its ASCII form for SMTP) whose last label
is not all digits (RFC 3696 2: no top-level domain is), no quoted local
parts, no address literals (bracketed or bare), no comments. What passes
here can go into a message header and an SMTP RCPT command as it is.
"""

from __future__ import annotations

import re

from daemon.errors import InputError

MAX_ADDRESS = 254  # RFC 5321 4.5.3.1.3: a path of 256 octets with its brackets
MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 3.2.3 atext
_LOCAL = re.compile(rf"^{_ATOM}(\.{_ATOM})*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class AddressError(InputError):
    """Raised when an e-mail address is not one a receipt can be sent to."""


def check_address(raw: str) -> str:
    """Return the address as it will be used (domain lower-cased) or raise."""
    if not isinstance(raw, str) or not raw:
        raise AddressError("an e-mail address is required", field="email")
    if len(raw) > MAX_ADDRESS or any(ord(c) < 0x20 or ord(c) == 0x7f for c in raw):
        raise AddressError("not an e-mail address", field="email")
    local, at, domain = raw.rpartition("@")
    if not at or not local or len(local) > MAX_LOCAL or not _LOCAL.match(local):
        raise AddressError("not an e-mail address", field="email")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as err:
        raise AddressError("not an e-mail address", field="email") from err
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise AddressError("not an e-mail address", field="email")
    if labels[-1].isdigit():  # a@1.2.3.4: an address literal without brackets
        raise AddressError("not an e-mail address (an IP address is no mail "
                           "domain)", field="email")
    address = f"{local}@{ascii_domain}"
    if len(address) > MAX_ADDRESS:
        raise AddressError("not an e-mail address", field="email")
    return address
