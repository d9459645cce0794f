"""The terminal service: the one task that owns the card terminal's driver.

Every command to the terminal goes through ``_lock``, so a payment, a status
enquiry and an end-of-day never interleave. A payment is journaled before
the terminal is asked; its outcome is journaled with the sale's change in one
transaction. A link drop, timeout or crash leaves it UNKNOWN: never retried,
only enquired about (last transaction) at start and when the link comes back,
else settled by a person. Prompts go to whoever watches the payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from daemon.errors import ConflictError, NotFoundError, RetryLaterError
from daemon.journal.store import Tx
from daemon.payments import card_refund, card_sale, intents, matching, reconcile
from daemon.payments.card_sale import CardSaleOutcome, CardSaleRequest
from daemon.runtime import Stallbox
from daemon.sales import refunds
from daemon.sales.refunds import PlannedRefund, RefundOutcome, RefundRequest
from device.terminal.base import (
    CommandRejected,
    LinkDown,
    NotSupported,
    PaymentResult,
    PaymentStatus,
    Prompt,
    Terminal,
    TerminalBusy,
    TerminalError,
)

if TYPE_CHECKING:
    from daemon.payments.settings import TerminalConfig

logger = logging.getLogger(__name__)
T = TypeVar("T")

RECONNECT_POLL_S = 2.0  # status enquiry interval while the link is down
STOP_WAIT_S = 5.0  # how long shutdown waits for a payment to end by itself
WATCH_HEARTBEAT_S = 15.0  # a watcher gets the state at least this often
OUTCOMES = {PaymentStatus.APPROVED: "approved", PaymentStatus.DECLINED: "declined",
            PaymentStatus.ABORTED: "aborted", PaymentStatus.UNKNOWN: "unknown"}
NOT_STARTED = (LinkDown, TerminalBusy, CommandRejected, NotSupported)


@dataclass(slots=True)
class _Flight:
    """The payment the terminal is working on."""

    intent_id: str
    amount_minor: int
    currency: str
    kind: str = "payment"  # or a card refund: "refund" (06 31), "reversal" (06 30)
    receipt_no: int | None = None  # the payment a reversal cancels
    prompt: str = ""
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class LinkState:
    """What the last command or enquiry said about the terminal."""

    state: str = "starting"  # starting, ready, busy, unreachable, error
    message: str = "not checked yet"
    last_error: str = ""  # kept after recovery, for /healthz
    checked_monotonic: float = 0.0
    last_eod: dict[str, Any] | None = None
    watchers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = field(
        default_factory=dict)


class TerminalService:
    """Card payments, status, resolution and end-of-day over one terminal."""

    def __init__(self, box: Stallbox, config: TerminalConfig,
                 driver: Terminal | None = None) -> None:
        self.box = box
        self.config = config
        if driver is None:
            # Imported here: the ZVT/Concert drivers and pyserial cost start-up
            # time, and settings imports them only with a [terminal] (#7).
            from daemon.payments.settings import build_driver

            driver = build_driver(config)
        self.driver = driver
        self.link = LinkState()
        self._lock = asyncio.Lock()
        self._flight: _Flight | None = None
        self._resolve_wanted = True
        self._keepalive: asyncio.Task[None] | None = None
        # Told every change of an intent at once, in order: each prompt as
        # {"id", "type", "outcome": "pending", "amount_minor", "prompt"}, each
        # outcome as the whole intent (the customer display, #8).
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @property
    def name(self) -> str:
        """Return the terminal's name on intents."""
        return self.config.name

    async def start(self) -> None:
        """Mark attempts a crash cut off as unknown, then watch the link."""
        cut_off = await self.box.reader.run(
            lambda c: [*intents.with_outcome(c, "pending"),
                       *card_refund.with_outcome(c, "pending")])
        for intent in cut_off:
            if intent["terminal"] == self.name:
                await self._settle(intent["id"], "unknown", {
                    "message": "the daemon stopped during the payment"}, [])
        self._keepalive = asyncio.create_task(self._watch_link())

    async def stop(self) -> None:
        """Let a running payment end (briefly), stop watching, close the port."""
        flight = self._flight
        if flight is not None and flight.task is not None:
            done, _ = await asyncio.wait({flight.task}, timeout=STOP_WAIT_S)
            if not done:
                logger.warning("stopping during payment %s: it will be unknown",
                               flight.intent_id)
                flight.task.cancel()
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        await self.driver.close()

    # --- payments ---

    async def sell(self, request: CardSaleRequest) -> CardSaleOutcome:
        """Journal a pending card sale and its intent, then ask the terminal."""
        self._check_accepting()
        stall, billing = self.box.config.stall, card_sale.billing_of(self.box.config)
        outcome = await self.box.journal.transact(
            lambda tx: card_sale.open_card_sale(tx, request, stall, billing,
                                                self._prices()))
        if outcome.created and outcome.intent_id is not None:
            self._launch(outcome.intent_id, outcome.amount_minor)
        return outcome

    async def retry(self, sale_id: str) -> str:
        """Start another attempt for a pending sale whose last one charged nothing."""
        self._check_accepting()
        intent_id, amount_minor = await self.box.journal.transact(
            lambda tx: card_sale.new_attempt(tx, sale_id, self.name))
        self._launch(intent_id, amount_minor)
        return intent_id

    async def refund(self, sale_id: str, request: RefundRequest) -> RefundOutcome:
        """Journal a refund; a card part is paid back through the terminal."""
        self._check_accepting()
        reversal_ok = self.config.protocol == "zvt"  # Concert V2 has no reversal

        def card(tx: Tx, plan: PlannedRefund) -> RefundOutcome:
            return card_refund.open_card_refund(tx, plan, self.name, reversal_ok)

        outcome = await self.box.journal.transact(
            lambda tx: refunds.create_refund(tx, sale_id, request, card))
        part = outcome.refund.get("card")
        if outcome.created and part:
            receipt_no = await self._receipt_no(part["intent_id"])
            self._launch(part["intent_id"], part["amount_minor"], part["kind"],
                         receipt_no)
        elif outcome.created and self.box.printer is not None:
            self.box.printer.wake()
        return outcome

    async def _receipt_no(self, refund_intent_id: str) -> int | None:
        """Return the receipt number of the payment a card refund pays back."""
        def read(conn: Any) -> int | None:
            refund = card_refund.get_intent(conn, refund_intent_id)
            paid = intents.get_intent(conn, refund["payment_id"])
            number = paid["result"].get("receipt_no")
            return number if isinstance(number, int) else None

        return await self.box.reader.run(read)

    def _launch(self, intent_id: str, amount_minor: int, kind: str = "payment",
                receipt_no: int | None = None) -> None:
        currency = self.box.config.stall.currency.code
        flight = _Flight(intent_id, amount_minor, currency, kind, receipt_no)
        self._flight = flight
        flight.task = asyncio.create_task(self._pay(flight), name=intent_id)

    async def _pay(self, flight: _Flight) -> None:
        intent_id = flight.intent_id
        self._publish_flight(flight)  # "tap card now" before the first prompt
        try:
            async with self._lock:
                self._set_link("busy", "payment in progress")
                outcome, result, lines = await self._authorise(flight)
        finally:
            self._flight = None
        await self._settle(intent_id, outcome, result, lines)
        if outcome == "unknown":
            self._resolve_wanted = True

    async def _authorise(self, flight: _Flight
                         ) -> tuple[str, dict[str, Any], list[str]]:
        """Ask the terminal; map every way it can end to an outcome."""
        on_prompt = self._prompt_handler(flight)
        try:
            result = await self._ask(flight, on_prompt)
        except NOT_STARTED as err:
            self._note_link_error(err)
            return "aborted", {"message": f"nothing was charged: {err}"}, []
        except (TerminalError, OSError) as err:
            logger.warning("payment %s ended unreadably: %s", flight.intent_id, err)
            return "unknown", {"message": str(err)[:200]}, []
        self._set_link("ready", "ready")
        if result.status is PaymentStatus.UNKNOWN:
            self._set_link("unreachable", result.message or "link lost")
        outcome = OUTCOMES[result.status]
        return outcome, intents.stored_result(result), list(result.print_lines)

    async def _ask(self, flight: _Flight,
                   on_prompt: Callable[[Prompt], None]) -> PaymentResult:
        """Send the flight's command: authorisation, refund or reversal."""
        if flight.kind == "refund":
            return await self.driver.refund(flight.amount_minor, flight.currency,
                                            on_prompt)
        if flight.kind == "reversal" and flight.receipt_no is not None:
            return await self.driver.reversal(flight.receipt_no, on_prompt)
        if flight.kind == "reversal":
            raise NotSupported("the payment has no receipt number to reverse")
        return await self.driver.authorise(
            flight.amount_minor, flight.currency, flight.intent_id, on_prompt)

    def _prompt_handler(self, flight: _Flight) -> Callable[[Prompt], None]:
        def on_prompt(prompt: Prompt) -> None:
            flight.prompt = prompt.text[:80]
            self._publish_flight(flight)

        return on_prompt

    async def _settle(self, intent_id: str, outcome: str, result: dict[str, Any],
                      lines: list[str]) -> dict[str, Any]:
        printed = self.config.print_receipt
        flow = card_refund if card_refund.is_refund_intent(intent_id) else card_sale
        intent = await self._transact(lambda tx: flow.settle(
            tx, intent_id, outcome, result, lines, printed))
        logger.info("%s %s %s", intent["type"], intent_id, outcome)
        self._after_change(intent)
        return intent

    async def _transact(self, fn: Callable[[Tx], T]) -> T:
        """Journal even while the daemon drains: an outcome must not be lost."""
        return await self.box.journal.transact(fn)

    def _after_change(self, intent: dict[str, Any]) -> None:
        if intent["outcome"] == "approved" and self.box.printer is not None:
            self.box.printer.wake()
        self._publish(intent["id"], intent)

    async def cancel(self, intent_id: str) -> dict[str, Any]:
        """Abort the attempt in flight and wait until the terminal is idle."""
        flight = self._flight
        if flight is None or flight.intent_id != intent_id:
            intent = await self.intent(intent_id)
            if intent["outcome"] == "pending":
                raise ConflictError("this payment is not running here; wait a "
                                    "moment and look again")
            return intent
        await self.driver.abort()
        if flight.task is not None:
            await asyncio.wait({flight.task},
                               timeout=self.config.response_timeout_s)
        return await self.intent(intent_id)

    async def resolve(self, intent_id: str, outcome: str, by: str,
                      note: str) -> dict[str, Any]:
        """Journal a person's decision on an unknown payment."""
        how = f"confirmed from the terminal's slip: {note}" if note else \
            "confirmed from the terminal's slip"
        printed = self.config.print_receipt
        flow = card_refund if card_refund.is_refund_intent(intent_id) else card_sale
        intent = await self._transact(lambda tx: flow.resolve(
            tx, intent_id, outcome, by, how, {}, printed))
        self._after_change(intent)
        return intent

    async def pay_rest_in_cash(self, sale_id: str, tendered_minor: int,
                               by: str) -> None:
        """Complete a sale whose card part was refused with cash for that part."""
        self._check_accepting()
        await self._transact(lambda tx: card_sale.pay_rest_in_cash(
            tx, sale_id, tendered_minor, by))
        if self.box.printer is not None:
            self.box.printer.wake()

    async def cancel_sale(self, sale_id: str, by: str) -> None:
        """Cancel a pending card sale whose attempts charged nothing."""
        prices = self._prices()
        release = prices.release if prices is not None else None
        await self._transact(lambda tx: card_sale.cancel_sale(tx, sale_id, by,
                                                              release))

    def _prices(self) -> Any:
        """Return the live-price step of the sale flow (#8), or None."""
        live = getattr(self.box, "live", None)
        return live.pricing if live is not None else None

    # --- reading and watching ---

    async def intent(self, intent_id: str) -> dict[str, Any]:
        """Return one intent (payment or card refund) with the current prompt."""
        flow = card_refund if card_refund.is_refund_intent(intent_id) else intents
        intent = await self.box.reader.run(lambda c: flow.get_intent(c, intent_id))
        return self.with_prompt(intent)

    async def for_sale(self, sale_id: str) -> dict[str, Any] | None:
        """Return the newest intent of a sale, or None."""
        intent = await self.box.reader.run(
            lambda c: intents.latest_for_sale(c, sale_id))
        return self.with_prompt(intent) if intent else None

    async def unknown(self) -> list[dict[str, Any]]:
        """Return the payments and card refunds waiting for a person."""
        return await self.box.reader.run(
            lambda c: [*intents.with_outcome(c, "unknown"),
                       *card_refund.with_outcome(c, "unknown")])

    def with_prompt(self, intent: dict[str, Any]) -> dict[str, Any]:
        """Add the terminal's current prompt when the intent is the one running."""
        flight = self._flight
        running = flight is not None and flight.intent_id == intent["id"]
        intent["prompt"] = flight.prompt if running and flight else ""
        return intent

    async def watch(self, intent_id: str) -> AsyncIterator[dict[str, Any]]:
        """Yield the intent now and at each change, until it is final."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.link.watchers.setdefault(intent_id, set()).add(queue)
        try:
            intent = await self.intent(intent_id)
            while True:
                yield intent
                if intent["outcome"] != "pending":
                    return
                try:
                    async with asyncio.timeout(WATCH_HEARTBEAT_S):
                        intent = await queue.get()
                except TimeoutError:
                    intent = await self.intent(intent_id)
        finally:
            self._drop_watcher(intent_id, queue)

    def _drop_watcher(self, intent_id: str,
                      queue: asyncio.Queue[dict[str, Any]]) -> None:
        watchers = self.link.watchers.get(intent_id, set())
        watchers.discard(queue)
        if not watchers:
            self.link.watchers.pop(intent_id, None)

    def _publish_flight(self, flight: _Flight) -> None:
        self._tell({"id": flight.intent_id, "outcome": "pending",
                    "type": "payment" if flight.kind == "payment" else "refund",
                    "amount_minor": flight.amount_minor, "prompt": flight.prompt})
        if self.link.watchers.get(flight.intent_id):
            task = asyncio.create_task(self.intent(flight.intent_id))
            task.add_done_callback(
                lambda t: None if t.exception() else
                self._to_watchers(flight.intent_id, t.result()))

    def _publish(self, intent_id: str, intent: dict[str, Any]) -> None:
        self._to_watchers(intent_id, intent)
        self._tell(intent)

    def _to_watchers(self, intent_id: str, intent: dict[str, Any]) -> None:
        for queue in self.link.watchers.get(intent_id, set()):
            queue.put_nowait(intent)

    def _tell(self, intent: dict[str, Any]) -> None:
        """Tell the listeners, in the order things happened (prompts unread)."""
        for listener in self.listeners:
            try:
                listener(intent)
            except Exception:  # a display's fault must not stop a payment
                logger.exception("payment listener failed on %s", intent["id"])

    # --- link, resolution, end-of-day ---

    def status(self) -> dict[str, Any]:
        """Return the terminal's state for the API and the devices page."""
        flight = self._flight
        age = time.monotonic() - self.link.checked_monotonic
        return {"protocol": self.config.protocol, "name": self.name,
                "port": self.config.port, "state": self.link.state,
                "message": self.link.message, "last_error": self.link.last_error,
                "checked_s_ago": round(age, 1) if self.link.checked_monotonic else None,
                "payment_in_flight": flight.intent_id if flight else None,
                "prompt": flight.prompt if flight else "",
                "last_end_of_day": self.link.last_eod}

    async def _watch_link(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a bug here must not end the keepalive for good
                logger.exception("terminal check failed")
            up = self.link.state in ("ready", "busy")
            await asyncio.sleep(self.config.keepalive_s if up else
                                min(RECONNECT_POLL_S, self.config.keepalive_s))

    async def check(self) -> None:
        """Run a status enquiry when idle; resolve unknown payments when it answers."""
        if self._lock.locked():
            return
        async with self._lock:
            was_up = self.link.state == "ready"
            await self._enquire()
            if self.link.state != "ready":
                return
            if self._resolve_wanted or not was_up:
                self._resolve_wanted = not await self._resolve_newest()

    async def _enquire(self) -> None:
        try:
            state = await self.driver.status()
        except TerminalError as err:
            self._note_link_error(err)
            return
        self._set_link("ready" if state.ready else "busy", state.message or "ready")

    def _note_link_error(self, err: Exception) -> None:
        if isinstance(err, TerminalBusy):
            self._set_link("busy", str(err))
        elif isinstance(err, LinkDown):
            self._set_link("unreachable", str(err))
        else:
            self._set_link("error", str(err))

    def _set_link(self, state: str, message: str) -> None:
        if state != self.link.state:
            log = logger.warning if state in ("unreachable", "error") else logger.info
            log("terminal %s: %s (%s)", self.name, state, message)
        self.link.state, self.link.message = state, message[:200]
        if state in ("unreachable", "error"):
            self.link.last_error = message[:200]
        self.link.checked_monotonic = time.monotonic()

    async def _resolve_newest(self) -> bool:
        """Ask for the last transaction if the newest attempt is unknown.

        Return True when there is nothing more the terminal can tell.
        """
        newest = await self.box.reader.run(self._newest_intent)
        if newest is None or newest["outcome"] != "unknown":
            return True
        try:
            last = await self.driver.last_transaction()
        except NotSupported:
            return True
        except TerminalError as err:
            self._note_link_error(err)
            return False
        return await self._apply_last(newest, last)

    def _newest_intent(self, conn: Any) -> dict[str, Any] | None:
        """Return the terminal's newest payment or card refund attempt."""
        row = conn.execute("SELECT id, seq FROM payment_intents WHERE terminal = ?"
                           " UNION ALL SELECT id, seq FROM refund_intents WHERE"
                           " terminal = ? ORDER BY seq DESC LIMIT 1",
                           (self.name, self.name)).fetchone()
        if row is None:
            return None
        flow = card_refund if card_refund.is_refund_intent(row[0]) else intents
        return flow.get_intent(conn, row[0])

    async def _apply_last(self, intent: dict[str, Any], last: PaymentResult) -> bool:
        booked = await self.box.reader.run(
            lambda c: intents.booked_numbers(c, self.name))
        decision = matching.decide(intent, last, booked)
        if decision is None:
            logger.info("terminal cannot tell the outcome of %s: a person decides",
                        intent["id"])
            return True
        printed = self.config.print_receipt
        stored = intents.stored_result(last)
        flow = card_refund if intent["type"] == "refund" else card_sale
        settled = await self._transact(lambda tx: flow.resolve(
            tx, intent["id"], decision, "terminal", "last-transaction enquiry",
            stored, printed))
        self._after_change(settled)
        return True

    async def end_of_day(self, by: str) -> dict[str, Any]:
        """Close the terminal's batch and journal how it compares."""
        if self._flight is not None:
            raise ConflictError("a card payment is in progress; end-of-day after it")
        async with self._lock:
            try:
                result = await self.driver.end_of_day()
            except NotSupported as err:
                raise ConflictError(f"{err}: it closes its batch by itself") from err
            except TerminalError as err:
                self._note_link_error(err)
                raise RetryLaterError(f"terminal end-of-day failed: {err}") from err
        if result.status is not PaymentStatus.APPROVED:
            raise RetryLaterError(f"the terminal refused end-of-day: {result.message}")
        report = await self._transact(
            lambda tx: reconcile.record_end_of_day(tx, self.name, result, by))
        self.link.last_eod = report
        return report

    def _check_accepting(self) -> None:
        if not self.box.accepting:
            raise RetryLaterError("the daemon is shutting down")


async def start_terminal(box: Stallbox) -> TerminalService | None:
    """Start the terminal service when a terminal is configured."""
    config = getattr(box.config, "terminal", None)
    if config is None:
        return None
    service = TerminalService(box, config)
    await service.start()
    return service


def require(service: TerminalService | None) -> TerminalService:
    """Return the service or say that no terminal is configured."""
    if service is None:
        raise NotFoundError("no card terminal is configured ([terminal] in the "
                            "config)")
    return service

