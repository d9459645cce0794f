"""The running appliance: journal, readers, pairing and devices behind one object."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daemon import pairing
from daemon.catalog.apply import ImportOutcome, ImportRejected, apply_import
from daemon.catalog.importer import parse_catalog
from daemon.config import Config
from daemon.errors import FatalError, RetryLaterError
from daemon.journal.readers import Reader
from daemon.journal.store import Journal, Tx
from daemon.journal.verify import open_readonly
from daemon.lan.sessions import Lan, TabletSession
from daemon.sales import queries
from daemon.sales.service import SaleOutcome, SaleRequest, create_sale
from daemon.sales.settings import catalog_checks
from daemon.trust.lifecycle import key_timer, last_certified, open_signer

_LOG = logging.getLogger(__name__)
JOURNAL_FILE = "journal.sqlite3"


@dataclass(slots=True)
class Health:
    """What /healthz and the status pages report about the journal."""

    integrity: str = "checking"  # "checking", "ok" or the first problem found
    started_monotonic: float = 0.0


class Stallbox:
    """Everything one stall's daemon owns while it runs."""

    journal: Journal
    reader: Reader

    def __init__(self, config: Config) -> None:
        self.config = config
        self.lan = Lan(config)  # tablet sessions, manager PIN, guess limits (#6)
        self.accepting = True
        self.health = Health(started_monotonic=time.monotonic())
        self.printer: Any = None  # set by daemon.printing when a printer is configured
        self.bound_port: int | None = None  # set by daemon.server once HTTP is bound
        self.sync: Any = None  # set by sync.service when [sync] url is configured
        # Each raises to refuse new sales, e.g. below the disk reserve (#7).
        self.guards: list[Callable[[], None]] = []
        self.live: Any = None  # daemon.live.LiveSelling, set when the app starts
        self.terminal: Any = None  # daemon.payments.service, when [terminal] is set
        # Called on the loop once a catalog import is durable (display, #8).
        self.catalog_listeners: list[Callable[[], None]] = []
        self._check_task: asyncio.Task[None] | None = None
        self._check_conn: sqlite3.Connection | None = None
        self._key_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the journal, load tokens and start the background integrity check."""
        path = self.config.state_dir / JOURNAL_FILE
        self.journal = await asyncio.to_thread(Journal.open, path)
        self.reader = Reader(path)
        await self.lan.open(self.journal, self.reader)
        await self._open_keys()
        self._check_task = asyncio.create_task(self._quick_check())
        _LOG.info("journal open at seq %d (%s)", self.journal.head_seq, path)

    async def stop(self) -> None:
        """Refuse new work, let queued transactions finish, close the journal."""
        self.accepting = False
        if self._check_conn is not None:  # a stop never waits for the check
            self._check_conn.interrupt()
        if self._check_task:
            self._check_task.cancel()
        if self._key_task:
            self._key_task.cancel()
        await self.journal.close()
        await asyncio.to_thread(self.reader.close)

    async def _open_keys(self) -> None:
        certified = await self.reader.run(last_certified)
        signer = await open_signer(self.journal, self.config.state_dir,
                                   self.config.stall.stall_id, certified)
        self._key_task = asyncio.create_task(
            key_timer(self.journal, signer, self.config.epoch_max_s))

    async def _quick_check(self) -> None:
        # quick_check reads the whole file; on a 1 M-sale journal (4.7 GB) that
        # takes minutes, so it runs after the daemon is ready, on a connection
        # of its own rather than in a reader thread, and stop() interrupts it
        # (a SIGTERM must not wait for it, #7). Sales wait only if it finds damage.
        result = await asyncio.to_thread(self._run_quick_check)
        if result is None:  # interrupted by stop()
            return
        self.health.integrity = result
        if result != "ok":
            self.accepting = False
            _LOG.error("journal quick_check failed: %s; sales refused", result)

    def _run_quick_check(self) -> str | None:
        conn = open_readonly(self.journal.path)
        conn.execute("PRAGMA mmap_size = 0")  # a mapped 4.7 GB file would count as RSS
        self._check_conn = conn
        try:
            return str(conn.execute("PRAGMA quick_check").fetchone()[0])
        except sqlite3.OperationalError:  # interrupted
            return None
        finally:
            self._check_conn = None
            conn.close()

    def _check_accepting(self) -> None:
        if not self.accepting:
            if self.health.integrity not in ("ok", "checking"):
                raise FatalError("journal damaged: " + self.health.integrity)
            raise RetryLaterError("the daemon is shutting down")
        for guard in self.guards:
            guard()

    async def sell(self, request: SaleRequest) -> SaleOutcome:
        """Journal a cash sale and wake the printer."""
        self._check_accepting()
        prices = self.live.pricing if self.live is not None else None
        outcome = await self.journal.transact(
            lambda tx: create_sale(tx, request, self.config.stall,
                                   self.config.billing, prices),
            may_run_inline=True)
        if outcome.created and self.printer is not None:
            self.printer.wake()
        return outcome

    async def issue_pairing_code(self) -> str:
        """Journal a new one-time pairing code and return it."""
        ttl = self.config.pairing_code_ttl_s
        return await self.journal.transact(lambda tx: pairing.issue_code(tx, ttl))

    @property
    def tokens(self) -> dict[str, TabletSession]:
        """Live tablet sessions by token hash (daemon.lan.sessions keeps them)."""
        return self.lan.tokens

    async def pair(self, code: str, name: str, client: str) -> str:
        """Exchange a code for a token, counting every try against the client."""
        return await self.lan.pair(code, name, client)

    def tablet_for(self, token: str) -> str | None:
        """Return the paired tablet's name for a live token, or None."""
        session = self.lan.session_for(token)
        return session.name if session is not None else None

    async def import_catalog(self, data: bytes, *, skip_invalid: bool,
                             include_inactive: bool = False) -> ImportOutcome:
        """Parse a catalog file off the loop, then apply it in one transaction."""
        self._check_accepting()
        parsed = await asyncio.to_thread(
            parse_catalog, data, currency=self.config.stall.currency,
            include_inactive=include_inactive, **catalog_checks(self.config))

        def apply(tx: Tx) -> ImportOutcome:
            for listener in self.catalog_listeners:
                tx.after_commit(listener)
            return apply_import(tx, parsed, skip_invalid=skip_invalid)

        return await self.journal.transact(apply)

    async def products(self, q: str, category: str, limit: int) -> list[dict[str, Any]]:
        """Search the catalog as the till does, with live prices while valid."""
        items = await self.reader.run(
            lambda c: queries.search_products(c, q, category, limit))
        return self.live.board.annotate(items) if self.live is not None else items

    async def categories(self) -> list[str]:
        """List the catalog's categories for the till grid."""
        return await self.reader.run(queries.categories)

    async def sales(self, before_seq: int | None, limit: int) -> list[dict[str, Any]]:
        """List sales newest first, one page at a time."""
        return await self.reader.run(
            lambda c: queries.list_sales(c, before_seq, limit))

    async def sale(self, sale_id: str) -> dict[str, Any]:
        """Return one sale or raise NotFoundError."""
        sale = await self.reader.run(lambda c: queries.get_sale(c, sale_id))
        if self.printer is not None:  # print.done may still be deferred (#7)
            self.printer.overlay(sale["print_jobs"])
        return sale

    async def sale_id_for_ref(self, client_ref: str) -> str | None:
        """Return the id of the sale a client_ref became, or None."""
        def find(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT id FROM sales WHERE client_ref = ?",
                               (client_ref,)).fetchone()
            return str(row[0]) if row else None

        return await self.reader.run(find)

    async def receipt_text(self, sale_id: str) -> str:
        """Return the sale's receipt as the printer prints it."""
        printer = self.config.printer
        columns = printer.columns if printer else 42
        codepage = printer.codepage if printer else None
        return await self.reader.run(
            lambda c: queries.receipt_text(c, sale_id, columns, codepage))

    async def reprint(self, sale_id: str) -> int:
        """Queue an explicit reprint (marked REPRINT) and return its job id."""
        self._check_accepting()
        job_id = await self.journal.transact(
            lambda tx: queries.queue_reprint(tx, sale_id))
        if self.printer is not None:
            self.printer.wake()
        return job_id

    def healthz(self) -> dict[str, Any]:
        """Return the health document; cheap, no database access."""
        printer = self.printer.state_dict() if self.printer else {"state": "none"}
        status = "ok" if self.accepting else "degraded"
        sync = self.sync.state_dict() if self.sync else {
            "state": "disabled", "acked_seq": 0, "backlog": self.journal.head_seq}
        return {"status": status, "journal_seq": self.journal.head_seq, "sync": sync,
                "journal_integrity": self.health.integrity, "printer": printer,
                "uptime_s": int(time.monotonic() - self.health.started_monotonic)}


async def import_summary(box: Stallbox, data: bytes, *, skip_invalid: bool,
                         include_inactive: bool) -> dict[str, Any]:
    """Import a catalog and describe the outcome for the CLI and control socket."""
    try:
        outcome = await box.import_catalog(data, skip_invalid=skip_invalid,
                                           include_inactive=include_inactive)
    except ImportRejected as err:
        return {"refused": True, "detail": err.detail, "imported": 0, "changed": 0,
                "skipped": 0, "format": "",
                "rejected": [[r.row, r.reason] for r in err.rejected]}
    return {"refused": False, "imported": outcome.imported,
            "changed": outcome.changed, "skipped": outcome.skipped,
            "format": outcome.format,
            "rejected": [[r.row, r.reason] for r in outcome.rejected]}


