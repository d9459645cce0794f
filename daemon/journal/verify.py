"""Walk the journal read-only: hash chain, gap-free seqs, certificates and seals.

One pass in seq order over one read snapshot. Each ``key.epoch`` certificate
must be signed by the previous epoch's key (the first, and a recovery after a
lost key, by the device key) over the exact head before it; each seal must
sign the event hash at its seq with the key of the epoch live at that seq. A
seal past the last event means events were removed. Observers (read-model
replay, see ``daemon.trust.replay``) see every event in the same pass.

Speed: a body is JSON-parsed only when a check needs its content (certificates
and the kinds observers replay); for the rest the seq, ts and kind columns are
matched against the canonical body's tail, which the hash already covers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from daemon.journal.canonical import GENESIS_HASH, chain_hash, parse_canonical
from daemon.keys.device import verify_signature
from daemon.keys.epoch import CERT_KIND, DEVICE_SIGNER, check_certificate, unb64
from daemon.keys.signer import seal_message

FETCH_ROWS = 4096


class Observer(Protocol):
    """Sees every event of a walk; names the first one it disagrees with.

    The walk parses only bodies of the kinds some observer lists in `kinds`;
    for other events `record` is None.
    """

    kinds: frozenset[str]

    def feed(self, seq: int, ts: str, kind: str, record: dict[str, Any] | None,
             digest: bytes) -> str: ...

    def finish(self) -> tuple[int, str] | None: ...


ObserverFactory = Callable[[sqlite3.Connection], Observer]


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of a walk: how many events were checked and the first fault."""

    events: int
    head_seq: int
    bad_seq: int | None = None
    reason: str = ""
    seals: int = 0
    epochs: int = 0
    sealed_seq: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.bad_seq is None


@dataclass(slots=True)
class _Trust:
    """What the walk knows about keys so far."""

    device_public: bytes | None
    keys: dict[int, bytes] = field(default_factory=dict)
    epoch: int = 0
    stall_id: str | None = None
    warnings: list[str] = field(default_factory=list)


Row = tuple[int, str, str, bytes, bytes, bytes]
SealRow = tuple[int, int, bytes, bytes]


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open the journal read-only; safe while the daemon writes it."""
    if not path.exists():
        raise FileNotFoundError(f"no journal at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def _rows(conn: sqlite3.Connection) -> Iterator[Row]:
    cursor = conn.execute(
        "SELECT seq, ts, kind, body, prev_hash, hash FROM events ORDER BY seq")
    while rows := cursor.fetchmany(FETCH_ROWS):
        yield from rows


def _seals(conn: sqlite3.Connection) -> Iterator[SealRow]:
    if not _has_table(conn, "seals"):
        return
    cursor = conn.execute("SELECT seq, epoch, hash, signature FROM seals ORDER BY seq")
    while rows := cursor.fetchmany(FETCH_ROWS):
        yield from rows


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (name,)).fetchone()
    return row is not None


def verify_journal(path: Path, device_public: bytes | None = None, *,
                   observers: Sequence[ObserverFactory] = ()) -> VerifyResult:
    """Check every event, certificate and seal; stop at the first fault.

    Without device_public the chain and seals are still checked, but device-signed
    certificates cannot be, and the result says so in its warnings.
    """
    conn = open_readonly(path)
    try:
        conn.execute("BEGIN")  # one snapshot for the whole walk
        trust = _Trust(device_public)
        return _walk(_rows(conn), _seals(conn), trust, [f(conn) for f in observers])
    finally:
        conn.close()


def verify_batch(rows: Sequence[Row], seals: Sequence[SealRow], *,
                 prev_hash: bytes, epoch_keys: dict[int, bytes], stall_id: str,
                 device_public: bytes | None = None) -> VerifyResult:
    """Check one sync batch against what the receiver already trusts.

    rows continue the chain after prev_hash; epoch_keys holds every epoch key
    certified so far (the batch's own certificates are added to it); the batch
    must end with a seal, so a cut-off batch fails.
    """
    trust = _Trust(device_public, dict(epoch_keys), max(epoch_keys, default=0),
                   stall_id)
    first = rows[0][0] if rows else 1
    result = _walk(iter(rows), iter(seals), trust, [], first, prev_hash)
    if result.ok and rows and result.sealed_seq != rows[-1][0]:
        return _fail(result.events, rows[-1][0] + 1, "the batch does not end with "
                     "a seal of its last event", trust)
    epoch_keys.update(trust.keys)
    return result


def _walk(rows: Iterator[Row], seals: Iterator[SealRow], trust: _Trust,
          observers: list[Observer], first_seq: int = 1,
          prev: bytes = GENESIS_HASH) -> VerifyResult:
    seal = next(seals, None)
    expected_seq, count, sealed, sealed_seq = first_seq, 0, 0, 0
    parsed = frozenset({CERT_KIND}).union(*(o.kinds for o in observers))
    for seq, ts, kind, body, prev_hash, digest in rows:
        fault, record = _check_event(expected_seq, prev, seq, ts, kind, body,
                                     prev_hash, digest, kind in parsed)
        if not fault and kind == CERT_KIND:
            fault = _check_cert(trust, record, seq, prev)
        if not fault and seal is not None and seal[0] <= seq:
            fault = _check_seal(trust, seal, seq, bytes(digest))
            seal, sealed, sealed_seq = next(seals, None), sealed + 1, seq
        for observer in observers:
            fault = fault or observer.feed(seq, ts, kind, record, digest)
        if fault:
            return _fail(count, expected_seq, fault, trust)
        expected_seq, prev, count = seq + 1, bytes(digest), count + 1
    return _finish(count, expected_seq - 1, seal, sealed, sealed_seq, trust, observers)


def _fail(count: int, seq: int, reason: str, trust: _Trust) -> VerifyResult:
    return VerifyResult(count, seq - 1, seq, reason, epochs=len(trust.keys),
                        warnings=tuple(trust.warnings))


def _finish(count: int, head: int, seal: SealRow | None,
            sealed: int, sealed_seq: int, trust: _Trust,
            observers: list[Observer]) -> VerifyResult:
    if seal is not None:
        return _fail(count, head + 1, f"a seal signs seq {seal[0]} but the journal "
                     f"ends at seq {head}: events were removed (truncation)", trust)
    for observer in observers:
        fault = observer.finish()
        if fault:
            return _fail(count, fault[0], fault[1], trust)
    if trust.device_public is not None and count and not sealed:
        return _fail(count, 1, "no seal at all: the journal is not signed", trust)
    if head > sealed_seq and sealed:
        trust.warnings.append(f"seqs {sealed_seq + 1}-{head} are not sealed yet "
                              "(sealed within seconds while the daemon runs)")
    return VerifyResult(count, head, seals=sealed, epochs=len(trust.keys),
                        sealed_seq=sealed_seq, warnings=tuple(trust.warnings))


def _check_event(expected_seq: int, prev: bytes, seq: int, ts: str, kind: str,
                 body: bytes, prev_hash: bytes, digest: bytes,
                 parse: bool) -> tuple[str, Any]:
    if isinstance(body, str):  # an edit through SQL text functions
        body = body.encode("utf-8")
    if seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {seq}", None
    if bytes(prev_hash) != prev:
        return "prev_hash does not match the previous event's hash", None
    if chain_hash(prev, bytes(body)) != bytes(digest):
        return "hash does not match SHA-256(prev_hash ‖ body)", None
    if not parse:
        if not bytes(body).endswith(_canonical_tail(seq, ts, kind)):
            return "seq, ts or kind columns differ from the signed body", None
        return "", None
    try:
        record = parse_canonical(bytes(body))
    except ValueError as err:
        return f"body is not canonical JSON: {err}", None
    if (record.get("seq"), record.get("ts"), record.get("kind")) != (seq, ts, kind):
        return "seq, ts or kind columns differ from the signed body", None
    return "", record


def _canonical_tail(seq: int, ts: str, kind: str) -> bytes:
    """Return how a canonical body ends: its sorted keys after "data"."""
    text = (f',"kind":{json.dumps(kind, ensure_ascii=False)},"seq":{seq},'
            f'"ts":{json.dumps(ts, ensure_ascii=False)}}}')
    return text.encode("utf-8")


def _check_cert(trust: _Trust, record: dict[str, Any], seq: int, prev: bytes) -> str:
    cert = record.get("data")
    if not isinstance(cert, dict):
        return "epoch certificate is not an object"
    try:
        epoch, public = int(cert["epoch"]), unb64(str(cert["public_key"]))
        head_ok = (cert["head_seq"], cert["head_hash"]) == (seq - 1, prev.hex())
        signer = str(cert["signer"])
    except (KeyError, TypeError, ValueError) as err:
        return f"epoch certificate is malformed: {err!r}"
    if epoch != max(trust.keys, default=0) + 1 or len(public) != 32:
        return f"epoch certificate for epoch {epoch} is out of order or damaged"
    if not head_ok:
        return "epoch certificate does not certify the head before it"
    if trust.stall_id not in (None, cert.get("stall_id")):
        return "epoch certificate names another stall"
    fault = _check_cert_signer(trust, cert, signer)
    if not fault:
        trust.keys[epoch], trust.epoch, trust.stall_id = public, epoch, cert["stall_id"]
    return fault


def _check_cert_signer(trust: _Trust, cert: dict[str, Any], signer: str) -> str:
    if signer == DEVICE_SIGNER:
        if trust.keys:
            trust.warnings.append(f"epoch {cert['epoch']} was certified by the device "
                                  "key: the previous epoch key was lost")
        if trust.device_public is None:
            trust.warnings.append(f"epoch {cert['epoch']}: device key not given, "
                                  "its certificate was not checked")
            return ""
        public = trust.device_public
    elif signer == str(trust.epoch) and trust.epoch in trust.keys:
        public = trust.keys[trust.epoch]
    else:
        return f"epoch certificate signed by {signer!r}, not the previous epoch"
    if not check_certificate(cert, public):
        return f"epoch {cert['epoch']} certificate signature is invalid"
    return ""


def _check_seal(trust: _Trust, seal: SealRow, seq: int,
                digest: bytes) -> str:
    seal_seq, epoch, sealed_hash, signature = seal
    if seal_seq != seq:
        return f"a seal names seq {seal_seq}, which is not in the journal"
    if epoch != trust.epoch or epoch not in trust.keys:
        return f"seal signed by epoch {epoch}, but epoch {trust.epoch} is live here"
    if bytes(sealed_hash) != digest:
        return "seal's hash differs from the event's hash"
    message = seal_message(trust.stall_id or "", epoch, seq, digest)
    if not verify_signature(trust.keys[epoch], bytes(signature), message):
        return f"seal signature of epoch {epoch} is invalid"
    return ""
