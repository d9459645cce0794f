"""Walk the journal read-only: hash chain, gap-free seqs, certificates and seals.

One pass in seq order over one read snapshot. Each ``key.epoch`` certificate
must be signed by the previous epoch's key (the first, and a recovery after a
lost key, by the device key) over the exact head before it; each seal must
sign the event hash at its seq with the key of the epoch live at that seq. A
seal past the last event means events were removed. Observers (read-model
replay, see ``daemon.trust.replay``) see every event in the same pass.

Speed: a body is JSON-parsed only when a check needs its content (certificates
and the kinds observers replay); for the rest the seq, ts and kind columns are
matched against the canonical body's tail, which the hash already covers. On a
journal of a few thousand events or more with observers the work is split
over two processes (see ``_verify_split``): one walks the chain, certificates
and seals and runs the cheap replays, the other replays the sales from its own
snapshot; the sales replay is cut into blocks of seqs that each process takes
as it gets to them, and the first fault of either wins.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import itertools
import json
import multiprocessing
import os
import re
import signal
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from daemon.journal.canonical import GENESIS_HASH, chain_hash, parse_data
from daemon.keys.device import verify_signature
from daemon.keys.epoch import CERT_KIND, DEVICE_SIGNER, check_certificate, unb64
from daemon.keys.signer import seal_message

FETCH_ROWS = 4096
MMAP_BYTES = 256 << 20
# The walk maps as much of the file as SQLite allows (2 GB in Debian's build):
# past the map every 512-byte page is a read() call, about 3.5 µs per event.
# Mapped pages count in the process's RSS but are the page cache's.
WALK_MMAP_BYTES = 1 << 40
# Below this many events one process does everything: forking and a second
# snapshot cost about what they save. Measured on 2 cores (wall, split
# against single): 500 events 0.12 s either way, 2 000 events 0.23-0.26 s
# against 0.28-0.38 s, 5 000 events 0.33-0.36 s against 0.52-0.54 s.
PARALLEL_MIN_EVENTS = 2_000
Fault = tuple[int, str]
# The writer stores bodies as BLOBs; a TEXT one was edited through SQL (cast,
# substr, ||), even when its bytes still hash right.
TEXT_BODY = "body is stored as TEXT, not the BLOB the journal writer wrote"
DataParser = Callable[[bytes, int], Any]


class Observer(Protocol):
    """Sees the events of the kinds it lists; names the first fault it finds.

    A fault is (seq, reason): usually the fed event's seq, but a read-model
    row that no event made is named by its own seq. `parsers` may give a
    faster decoder of the data part of a kind's body (see ``parse_body``).
    Optional attributes (see ``_Router``): `seq_range`, `unparsed`, `needs`.
    """

    kinds: frozenset[str]
    parsers: dict[str, DataParser]

    def feed(self, seq: int, ts: str, kind: str, record: dict[str, Any],
             digest: bytes) -> Fault | None: ...

    def finish(self) -> Fault | None: ...


ObserverFactory = Callable[..., Observer]
# A factory with `splittable = True` takes seq_range=(first, last) and checks
# only the rows of events in that range; before the range it is fed only the
# last certificate. The split walk cuts the journal into blocks of seqs (at
# least BLOCK_MIN_SEQS, at most about BLOCKS_PER_JOURNAL blocks) and the two
# processes share them out as they go (see ``_Claims``). A block costs about
# 1.2 M instructions (0.3 ms) of queries and set-up; the last one leaves the
# other process idle for up to a block's replay (256 sales: about 15 ms). The
# first CHILD_SHARE of the blocks are the chain walk's from the start; tests
# set CLAIMING False so that it replays no other block.
BLOCK_MIN_SEQS = 256
BLOCKS_PER_JOURNAL = 256
CHILD_SHARE = 0.0
CLAIMING = True
ALL_SEQS = (1, 1 << 62)


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
    unsealed: tuple[int, int] | None = None  # (epoch, cert seq) with no seal yet


Row = tuple[int, str, str, bytes, bytes, bytes]
SealRow = tuple[int, int, bytes, bytes]


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open the journal read-only; safe while the daemon writes it."""
    if not path.exists():
        raise FileNotFoundError(f"no journal at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    # reading pages through a map saves a copy per page; a walk reads every page
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    return conn


def _open_walk(path: Path) -> sqlite3.Connection:
    conn = open_readonly(path)
    conn.execute(f"PRAGMA mmap_size = {WALK_MMAP_BYTES}")
    return conn


def _fetched(cursor: sqlite3.Cursor) -> Iterator[Any]:
    """Return a cursor's rows, FETCH_ROWS a fetch, with no Python frame per row."""
    return itertools.chain.from_iterable(
        iter(functools.partial(cursor.fetchmany, FETCH_ROWS), []))


def _rows(conn: sqlite3.Connection) -> Iterator[Row]:
    return _fetched(conn.execute(
        "SELECT seq, ts, kind, body, prev_hash, hash FROM events ORDER BY seq"))


def _seals(conn: sqlite3.Connection) -> Iterator[SealRow]:
    if not has_table(conn, "seals"):
        return iter(())
    return _fetched(conn.execute(
        "SELECT seq, epoch, hash, signature FROM seals ORDER BY seq"))


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Tell whether the journal has a table (an older journal may lack a newer one)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (name,)).fetchone()
    return row is not None


def verify_journal(path: Path, device_public: bytes | None = None, *,
                   observers: Sequence[ObserverFactory] = (),
                   processes: int | None = None) -> VerifyResult:
    """Check every event, certificate and seal; stop at the first fault.

    Without device_public the chain and seals are still checked, but device-signed
    certificates cannot be, and the result says so in its warnings. processes=2
    splits the chain walk and the replay over two processes; None chooses two
    for a journal of PARALLEL_MIN_EVENTS or more when two cores are usable.
    """
    if processes is None:
        processes = 2 if observers and _cores() > 1 and _big(path) else 1
    if processes > 1 and observers:
        return _verify_split(path, device_public, observers)
    conn = _open_walk(path)
    try:
        conn.execute("BEGIN")  # one snapshot for the whole walk
        trust = _Trust(device_public)
        with _gc_paused():
            return _walk(_rows(conn), _seals(conn), trust, [f(conn) for f in observers])
    finally:
        conn.close()


def _cores() -> int:
    """Return how many cores this process may run on (its affinity, not the box's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _big(path: Path) -> bool:
    conn = open_readonly(path)
    try:
        head = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
    finally:
        conn.close()
    return (head or 0) >= PARALLEL_MIN_EVENTS


def _verify_split(path: Path, device_public: bytes | None,
                  observers: Sequence[ObserverFactory]) -> VerifyResult:
    """Walk the chain in a child process while this one replays the read models.

    The child is forked before this process opens the journal (SQLite forbids
    carrying a connection across fork) and opens its snapshot only after the
    replay's snapshot is taken, so every event the replay sees is one the child
    hash-checks too; events appended in between are checked but not replayed.
    The splittable replays are shared out by blocks of seqs (``_Claims``); the
    others run in the child, over the whole journal.
    """
    ctx = multiprocessing.get_context("fork")
    go_read, go_write = ctx.Pipe(duplex=False)
    result_read, result_write = ctx.Pipe(duplex=False)
    split = [f for f in observers if getattr(f, "splittable", False)]
    rest = [f for f in observers if f not in split]
    claims = _Claims(ctx)
    child = ctx.Process(target=_chain_child, args=(path, device_public, split, rest,
                                                   claims, go_read, result_write),
                        daemon=True)
    child.start()
    go_read.close()
    result_write.close()
    try:
        conn = _open_walk(path)
        try:
            conn.execute("BEGIN")
            claims.cut(conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0)
            try:  # the snapshot is taken: the child may open its own
                go_write.send(True)
            except BrokenPipeError:  # the child is gone already: say how
                _child_result(result_read, child)
            with _gc_paused():
                replayed = _replay_blocks(conn, split, claims) if split else None
        finally:
            conn.close()
        chain = _child_result(result_read, child)
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()
    if replayed is not None and (chain.ok or replayed[0] < (chain.bad_seq or 0)):
        return VerifyResult(replayed[0] - 1, replayed[0] - 1, replayed[0], replayed[1],
                            epochs=chain.epochs, warnings=chain.warnings)
    return chain


class _Claims:
    """The blocks of seqs whose splittable replays the two processes share out.

    Block j holds the `size` seqs from j * size + 1; the last one runs on past
    the head. Both processes take blocks in ascending order: the replay process
    the next nobody has taken, one after another; the chain process, as its
    walk enters a block, that block if it is still free (and the blocks of its
    reserved share). So the faster one takes more, and neither waits while
    the other has work, whatever the two processes cost per event and however
    the box's other load falls on them. No block past a fault is begun.
    """

    def __init__(self, ctx: Any) -> None:
        self._lock = ctx.Lock()
        self._shared = ctx.RawArray("q", 4)  # next free block, stop seq, size, last

    def cut(self, head: int) -> None:
        """Size the blocks for a journal of head events (replay process, first)."""
        size = max(BLOCK_MIN_SEQS, -(-head // BLOCKS_PER_JOURNAL))
        self._shared[:] = [0, ALL_SEQS[1], size, max(head - 1, 0) // size]
        self._shared[0] = self.reserved  # the first block anyone may claim

    @property
    def reserved(self) -> int:
        """Blocks before this one are the chain process's from the start."""
        return int(min((self._shared[3] + 1) * CHILD_SHARE, self._shared[3] + 1))

    def span(self, block: int) -> tuple[int, int]:
        size, last = self._shared[2], self._shared[3]
        return block * size + 1, (ALL_SEQS[1] if block >= last else (block + 1) * size)

    def block_of(self, seq: int) -> int:
        return min((seq - 1) // self._shared[2], self._shared[3])

    def take(self, block: int) -> bool:
        """Chain process, entering block: take it unless the other process has."""
        if block < self.reserved:
            return True
        if not CLAIMING:
            return False
        with self._lock:
            if self._shared[0] != block or self.span(block)[0] > self._shared[1]:
                return False
            self._shared[0] = block + 1
            return True

    def next_block(self) -> int | None:
        """Replay process: take the next free block; None when none is left."""
        with self._lock:
            block = self._shared[0]
            if block > self._shared[3] or self.span(block)[0] > self._shared[1]:
                return None
            self._shared[0] = block + 1
            return block

    def stop_at(self, seq: int) -> None:
        """A fault at seq: no block past it needs replaying."""
        with self._lock:
            self._shared[1] = min(self._shared[1], seq)


class _ChildBlocks:
    """The chain process's share of the splittable replays, block by block."""

    def __init__(self, conn: sqlite3.Connection | None, claims: _Claims | None,
                 split: Sequence[ObserverFactory]) -> None:
        """Without claims: a single walk, in no block (its end is past any seq)."""
        self.conn, self.claims, self.split = conn, claims, split
        self.end = 0 if claims else _NO_END  # the last seq of the walk's block
        self.observers: list[Observer] = []
        self.cert: tuple[int, str, str, dict[str, Any], bytes] | None = None

    def enter(self, seq: int) -> Fault | None:
        """Finish the block before seq, then take seq's block if it is free."""
        fault = _finish_observers(self.observers)
        if fault or self.claims is None:
            return fault
        block = self.claims.block_of(seq)
        first, self.end = self.claims.span(block)
        self.observers = []
        if self.claims.take(block):
            self.observers = [f(self.conn, seq_range=(first, self.end))
                              for f in self.split]
            if self.cert is not None:
                for observer in self.observers:
                    fault = fault or observer.feed(*self.cert)
        return fault


class WalkIncomplete(RuntimeError):
    """The walk could not finish (its other process died): nothing was found
    wrong, nothing was proved right either."""


def _child_result(receive: Any, child: Any) -> VerifyResult:
    try:
        result = receive.recv()
    except EOFError:
        child.join(5)
        code = child.exitcode
        result = (f"killed by signal {-code}" if code is not None and code < 0
                  else f"exit code {code}")
    if isinstance(result, VerifyResult):
        return result
    raise WalkIncomplete(f"the chain walk process ended before it finished "
                         f"({result})")


def _die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux), so a
    verify stopped by SIGTERM or SIGKILL leaves no walk reading the journal."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's exit ends it anyway
        return
    if os.getppid() == 1:  # the parent died before the call
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _chain_child(path: Path, device_public: bytes | None,
                 split: list[ObserverFactory], rest: list[ObserverFactory],
                 claims: _Claims, go: Any, out: Any) -> None:
    """Child process: wait for the replay's snapshot, then walk the chain.

    It also replays the splittable observers' rows in the blocks it takes, and
    every other observer's whole table (all in its own snapshot).
    """
    _die_with_parent()
    try:
        go.recv()
        conn = _open_walk(path)
        try:
            conn.execute("BEGIN")
            blocks = _ChildBlocks(conn, claims, split)
            with _gc_paused():
                result = _walk(_rows(conn), _seals(conn), _Trust(device_public),
                               [f(conn) for f in rest], blocks=blocks)
        finally:
            conn.close()
        if not result.ok:
            claims.stop_at(result.bad_seq or 0)
        out.send(result)
    except BaseException as err:  # the parent reports it; never a traceback here
        out.send(f"{type(err).__name__}: {err}")
    finally:
        out.close()


def _replay_blocks(conn: sqlite3.Connection, split: Sequence[ObserverFactory],
                   claims: _Claims) -> Fault | None:
    """Replay the blocks this process takes, in ascending order; the first fault."""
    certs = conn.execute("SELECT seq, ts, kind, body, hash FROM events"
                         " WHERE kind = ? ORDER BY seq", (CERT_KIND,)).fetchall()
    while (block := claims.next_block()) is not None:
        first, last = claims.span(block)
        observers = [f(conn, seq_range=(first, last)) for f in split]
        before = [c for c in certs if c[0] < first][-1:]
        fault = _replay_only(conn, observers, first, last, before)
        if fault:
            claims.stop_at(fault[0])
            return fault
    return None


def _replay_only(conn: sqlite3.Connection, observers: list[Observer],
                 first: int, last: int, certs: list[Any]) -> Fault | None:
    """Feed observers certs, then the events of their kinds in [first, last],
    trusting the columns; the first fault of any, or of their finish.

    Only sound next to a chain walk over the same events: it checks neither
    hashes nor that the columns match the body.
    """
    router = _Router(observers)
    kinds = sorted(router.routes)
    marks = ",".join("?" * len(kinds))
    cursor = conn.execute("SELECT seq, ts, kind, body, hash FROM events"
                          f" WHERE seq BETWEEN ? AND ? AND kind IN ({marks})"
                          " ORDER BY seq", (first, last, *kinds))
    fault = _feed_rows(router, certs) or _feed_rows(router, _fetched(cursor))
    return fault or _finish_observers(observers)


def _feed_rows(router: _Router, rows: Iterable[Any]) -> Fault | None:
    for seq, ts, kind, body, digest in rows:
        targets, parse = router.targets(kind, seq, body)
        if not targets:
            continue
        if isinstance(body, str):
            return seq, TEXT_BODY
        data = None
        if parse:
            try:
                tail = _canonical_tail(seq, ts, kind).encode("utf-8")
                data = _decode_data(router.parsers, kind, bytes(body), tail)
            except ValueError as err:
                return seq, f"body is not canonical JSON: {err}"
        record = {"data": data, "kind": kind, "seq": seq, "ts": ts}
        for observer in targets:
            fault = observer.feed(seq, ts, kind, record, bytes(digest))
            if fault:
                return fault
    return None


class _Router:
    """Which observers see an event, and whether any of them needs its body.

    An observer sees the events of its `kinds` whose seq is in its optional
    `seq_range` (certificates always); kinds in its optional `unparsed` set
    reach it with data None, for observers that need only the seq and kind.
    An optional `needs` maps a kind to a text its bodies must hold to matter
    to the observer (a key, quoted): a body without it, and without any
    backslash that could spell it escaped, need not be fed to that observer,
    and is not when that spares decoding it (feeding it anyway is harmless).
    The answer for a kind holds over a span of seqs (all of them, unless some
    observer has a range), so it is worked out once per kind and span.
    """

    def __init__(self, observers: Sequence[Observer],
                 parsed: frozenset[str] = frozenset()) -> None:
        self.routes: dict[str, list[_Route]] = {}
        self.parsers: dict[str, DataParser] = {}
        self._parsed = parsed  # kinds whose data the caller needs itself
        self._plans: dict[str, _Plan] = {}
        for observer in observers:
            first, last = getattr(observer, "seq_range", ALL_SEQS)
            unparsed = getattr(observer, "unparsed", frozenset())
            needs = getattr(observer, "needs", {})
            for kind in observer.kinds:
                span = ALL_SEQS if kind == CERT_KIND else (first, last)
                self.routes.setdefault(kind, []).append(
                    (observer, *span, kind not in unparsed, needs.get(kind)))
            self.parsers.update(getattr(observer, "parsers", {}))

    def targets(self, kind: str, seq: int, body: Any) -> tuple[list[Observer], bool]:
        plan = self._plans.get(kind)
        if plan is None or not plan[0] <= seq <= plan[1]:
            plan = self._plans[kind] = self._plan(kind, seq)
        if plan[4] is None or not isinstance(body, bytes):
            return plan[2], plan[3]
        escaped = b"\\" in body
        hit = [r for r in plan[4] if r[4] is None or escaped or r[4] in body]
        return [r[0] for r in hit], kind in self._parsed or any(r[3] for r in hit)

    def _plan(self, kind: str, seq: int) -> _Plan:
        """Return the observers of kind at seq and the span of seqs they hold for."""
        low, high, hit = 0, _NO_END, []
        for route in self.routes.get(kind, ()):
            first, last = route[1], route[2]
            if first <= seq <= last:
                hit.append(route)
                low, high = max(low, first), min(high, last)
            elif seq < first:
                high = min(high, first - 1)
            else:
                low = max(low, last + 1)
        parse = kind in self._parsed or any(r[3] for r in hit)
        # sifting pays only when it may spare the decoding: else all are fed
        spared = not (kind in self._parsed or any(r[3] and r[4] is None for r in hit))
        sieve = hit if spared and any(r[4] is not None for r in hit) else None
        return low, high, [r[0] for r in hit], parse, sieve


# (observer, first seq, last seq, parsed, needed text or None)
_Route = tuple[Any, int, int, bool, bytes | None]
# (first seq, last seq, observers, parse, routes to sieve by body or None)
_Plan = tuple[int, int, list[Any], bool, list[_Route] | None]
_NO_END = 1 << 63


def _finish_observers(observers: list[Observer]) -> Fault | None:
    faults = [f for f in (o.finish() for o in observers) if f]
    return min(faults) if faults else None


class _gc_paused:  # noqa: N801 - used like a function
    """Pause the cyclic GC: decoded bodies make no cycles, and its passes cost
    a tenth of the replay."""

    def __enter__(self) -> None:
        self._was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was:
            gc.enable()


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
          prev: bytes = GENESIS_HASH, blocks: _ChildBlocks | None = None
          ) -> VerifyResult:
    blocks = blocks or _ChildBlocks(None, None, ())
    seal = next(seals, None)
    seal_at = seal[0] if seal is not None else _NO_END
    expected_seq, count, sealed, sealed_seq = first_seq, 0, 0, 0
    parsed = frozenset({CERT_KIND})
    router = _Router(observers, parsed)
    targets_of, parsers = router.targets, router.parsers
    block_end = blocks.end
    for seq, ts, kind, body, prev_hash, digest in rows:
        if seq > block_end:  # the split walk enters its next block of seqs
            found = blocks.enter(seq)
            if found:
                return _fail(count, found[0], found[1], trust)
            router = _Router([*observers, *blocks.observers], parsed)
            targets_of, parsers = router.targets, router.parsers
            block_end = blocks.end
        targets, parse = targets_of(kind, seq, body)
        fault, record = _check_event(expected_seq, prev, seq, ts, kind, body,
                                     prev_hash, digest, parsers if parse else None)
        if fault:
            return _fail(count, expected_seq, fault, trust)
        digest = bytes(digest)
        if kind == CERT_KIND:
            if seal is not None or sealed:  # none at all: "not signed" below
                fault = _epoch_sealed(trust)
            fault = fault or _check_cert(trust, record, seq, prev)
            blocks.cert = (seq, ts, kind, record, digest)
        if not fault and seal_at <= seq:
            fault = _check_seal(trust, seal, seq, digest)  # type: ignore[arg-type]
            seal, sealed, sealed_seq = next(seals, None), sealed + 1, seq
            seal_at = seal[0] if seal is not None else _NO_END
            trust.unsealed = None
        if fault:
            return _fail(count, expected_seq, fault, trust)
        if targets:
            if record is None:
                record = {"data": None, "kind": kind, "seq": seq, "ts": ts}
            for observer in targets:
                found = observer.feed(seq, ts, kind, record, digest)
                if found:
                    return _fail(count, found[0], found[1], trust)
        expected_seq, prev, count = seq + 1, digest, count + 1
    observers = [*observers, *blocks.observers]
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
    fault = _finish_observers(observers)
    if fault:
        return _fail(count, fault[0], fault[1], trust)
    if sealed and (missing := _epoch_sealed(trust)):
        return _fail(count, trust.unsealed[1], missing, trust)  # type: ignore[index]
    if trust.device_public is not None and count and not sealed:
        return _fail(count, 1, "no seal at all: the journal is not signed", trust)
    if head > sealed_seq and sealed:
        trust.warnings.append(f"seqs {sealed_seq + 1}-{head} are not sealed yet "
                              "(sealed within seconds while the daemon runs)")
    return VerifyResult(count, head, seals=sealed, epochs=len(trust.keys),
                        sealed_seq=sealed_seq, warnings=tuple(trust.warnings))


def _check_event(expected_seq: int, prev: bytes, seq: int, ts: str, kind: str,
                 body: bytes, prev_hash: bytes, digest: bytes,
                 parsers: dict[str, DataParser] | None) -> tuple[str, Any]:
    if seq != expected_seq:
        return f"sequence gap: expected seq {expected_seq}, found {seq}", None
    if isinstance(body, str):
        return TEXT_BODY, None
    if type(body) is not bytes:  # a receiver's row may hold a bytearray or view
        body, prev_hash, digest = bytes(body), bytes(prev_hash), bytes(digest)
    if prev_hash != prev:
        return "prev_hash does not match the previous event's hash", None
    if chain_hash(prev, body) != digest:
        return "hash does not match SHA-256(prev_hash ‖ body)", None
    tail = _canonical_tail(seq, ts, kind).encode("utf-8")
    if not body.endswith(tail):
        return "seq, ts or kind columns differ from the signed body", None
    if parsers is None:
        return "", None
    try:
        data = _decode_data(parsers, kind, body, tail)
    except ValueError as err:
        return f"body is not canonical JSON: {err}", None
    return "", {"data": data, "kind": kind, "seq": seq, "ts": ts}


def _decode_data(parsers: dict[str, DataParser], kind: str, body: bytes,
                 tail: bytes) -> Any:
    """Decode the data of a body that ends with tail, by kind's parser if any."""
    return parsers.get(kind, parse_body)(body, len(body) - len(tail))


def parse_body(body: bytes, end: int) -> Any:
    """Decode the data part of a body, which must span bytes [8, end).

    The default DataParser; the caller has checked what follows end (kind, seq
    and ts). An observer's own parser must decode the same value and refuse
    what this refuses (see ``daemon.journal.canonical.parse_data``).
    """
    text = body.decode("utf-8")
    return parse_data(text, len(text) - len(body[end:].decode("utf-8")))


def _canonical_tail(seq: int, ts: str, kind: str) -> str:
    """Return how a canonical body ends: its sorted keys after "data"."""
    if _PLAIN.match(kind) and _PLAIN.match(ts):  # nothing to escape: skip dumps
        return f',"kind":"{kind}","seq":{seq},"ts":"{ts}"}}'
    return (f',"kind":{json.dumps(kind, ensure_ascii=False)},"seq":{seq},'
            f'"ts":{json.dumps(ts, ensure_ascii=False)}}}')


_PLAIN = re.compile(r"[A-Za-z0-9_.:+-]*\Z")


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
        trust.unsealed = (epoch, seq)
    return fault


def _epoch_sealed(trust: _Trust) -> str:
    """Name the epoch certified in this walk that no seal of its own followed.

    A rotation journals the certificate and seals the head with the new key
    in one commit, so every epoch holds at least one seal; one without any
    lost its seal(s) after the fact.
    """
    if trust.unsealed is None:
        return ""
    epoch, cert_seq = trust.unsealed
    return (f"epoch {epoch} (certified at seq {cert_seq}) has no seal: its "
            "rotation committed one, so seals were removed")


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
