"""The e-receipt outbox: send queued receipt mails over SMTP, retry with
backoff; and the shredder, which erases day keys once they may go.

Blocking SMTP runs in a worker thread (smtplib); the loop only waits. Logs
name the sale, never the address, the token or the server's reply text.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import time
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from daemon.ereceipt import store
from daemon.ereceipt.settings import EmailSettings
from daemon.keys.datakeys import DataKeys, ShreddedError, TokenError

_LOG = logging.getLogger(__name__)
FIRST_RETRY_S = 30.0  # then four times longer each attempt, at most MAX_RETRY_S
MAX_RETRY_S = 3600.0
IDLE_WAKE_S = 60.0  # look for due retries at least this often
SHRED_TICK_S = 3600.0
RECEIPT_COLUMNS = 42


class SendError(Exception):
    """Raised when a mail was not accepted; reason is one of FAILURE_REASONS."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


def retry_after_s(attempt: int) -> float:
    """Return the wait before the attempt after `attempt` (1-based)."""
    return min(FIRST_RETRY_S * 4 ** (attempt - 1), MAX_RETRY_S)


def build_message(settings: EmailSettings, address: str, stall_name: str,
                  sale_id: str, receipt: str) -> EmailMessage:
    """Return the receipt mail: plain text, the receipt exactly as printed."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = address
    message["Subject"] = f"Your receipt from {stall_name}"
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2])
    message.set_content(f"{receipt}\n\nSale {sale_id}. You asked for this receipt "
                        "by e-mail at the stall; your address is kept only until "
                        "the stall's records are sent off and then made "
                        "unreadable.\n")
    return message


def submit(settings: EmailSettings, message: EmailMessage, address: str,
           password: str | None = None) -> None:
    """Hand one message to the SMTP server (blocking; run in a thread).

    password None reads it from the settings here.
    """
    try:
        with smtplib.SMTP(settings.host, settings.port,
                          timeout=settings.timeout_s) as smtp:
            smtp.ehlo()
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if settings.username:
                smtp.login(settings.username, settings.password()
                           if password is None else password)
            smtp.send_message(message, from_addr=settings.sender,
                              to_addrs=[address])
    except smtplib.SMTPAuthenticationError as err:
        raise SendError("auth", False) from err
    except smtplib.SMTPNotSupportedError as err:  # no STARTTLS offered
        raise SendError("tls", False) from err
    except smtplib.SMTPRecipientsRefused as err:
        codes = [code for code, _ in err.recipients.values()]
        raise SendError(*_by_code(min(codes, default=550))) from err
    except smtplib.SMTPResponseException as err:
        raise SendError(*_by_code(err.smtp_code)) from err
    except ssl.SSLError as err:
        raise SendError("tls", False) from err
    except (TimeoutError, smtplib.SMTPException, OSError) as err:
        raise SendError("connection", False) from err


def _by_code(code: int) -> tuple[str, bool]:
    """5xx is a refusal for good (RFC 5321 4.2.1); anything else may pass later."""
    return ("rejected", True) if 500 <= code < 600 else ("temporary", False)


class EmailOutbox:
    """Sends queued receipt mails; wake() when one was queued."""

    def __init__(self, box: Any, settings: EmailSettings) -> None:
        self.box, self.settings = box, settings
        self.keys = DataKeys(box.config.state_dir)
        self._wake = asyncio.Event()
        self._due: dict[str, float] = {}  # sale id -> monotonic time of next try

    def wake(self) -> None:
        """Look at the queue now."""
        self._wake.set()

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            try:
                await self.send_due()
            except Exception:  # noqa: BLE001 - the outbox must outlive one failure
                _LOG.warning("e-receipt outbox pass failed; retrying", exc_info=True)
            try:
                async with asyncio.timeout(self._next_wait_s()):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def _next_wait_s(self) -> float:
        now = time.monotonic()
        waits = [max(0.0, due - now) for due in self._due.values()]
        return min([IDLE_WAKE_S, *waits])

    async def send_due(self) -> int:
        """Try every queued mail whose retry time has come; return how many."""
        rows = await self.box.reader.run(store.queued)
        now, tried = time.monotonic(), 0
        for sale_id, token, attempts in rows:
            if self._due.get(sale_id, 0.0) > now:
                continue
            tried += 1
            try:
                await self._send_one(sale_id, token, attempts + 1)
            except Exception as err:  # noqa: BLE001 - one mail must not stop the rest
                # not even recording the failure worked (the journal refused):
                # wait as after a failed attempt, then try this mail again
                self._due[sale_id] = time.monotonic() + retry_after_s(attempts + 1)
                _LOG.warning("e-receipt of sale %s: attempt not recorded (%s)",
                             sale_id, type(err).__name__)
        return tried

    async def _send_one(self, sale_id: str, token: str, attempt: int) -> None:
        try:
            await self._deliver(sale_id, token)
        except SendError as err:
            await self._failed(sale_id, attempt, err)
            return
        except Exception as err:  # noqa: BLE001 - counted as a failed attempt
            # only the type: a message could quote the address
            _LOG.warning("e-receipt of sale %s could not be built or sent: %s",
                         sale_id, type(err).__name__)
            await self._failed(sale_id, attempt, SendError("config", False))
            return
        await self.box.journal.transact(lambda tx: store.mark_sent(tx, sale_id,
                                                                   attempt))
        self._due.pop(sale_id, None)
        _LOG.info("e-receipt of sale %s sent (attempt %d)", sale_id, attempt)

    async def _deliver(self, sale_id: str, token: str) -> None:
        """Open the address, build the mail and hand it over; raise on failure."""
        try:
            address = await asyncio.to_thread(self.keys.decrypt, token, sale_id)
        except (ShreddedError, TokenError) as err:
            raise SendError("shredded", True) from err
        password = ""
        try:
            if self.settings.username:
                password = await asyncio.to_thread(self.settings.password)
        except (OSError, UnicodeError) as err:  # [email] password_file unreadable
            raise SendError("config", False) from err
        receipt = await self.box.reader.run(lambda c: _receipt_text(c, sale_id))
        message = build_message(self.settings, address, self.box.config.stall.name,
                                sale_id, receipt)
        await asyncio.to_thread(submit, self.settings, message, address, password)

    async def _failed(self, sale_id: str, attempt: int, err: SendError) -> None:
        final = err.permanent or attempt >= self.settings.max_attempts
        await self.box.journal.transact(
            lambda tx: store.mark_failed(tx, sale_id, attempt, err.reason, final))
        if final:
            self._due.pop(sale_id, None)
            _LOG.warning("e-receipt of sale %s not sent: %s (gave up after attempt "
                         "%d)", sale_id, err.reason, attempt)
            return
        self._due[sale_id] = time.monotonic() + retry_after_s(attempt)
        _LOG.info("e-receipt of sale %s: %s on attempt %d; retrying in %.0f s",
                  sale_id, err.reason, attempt, retry_after_s(attempt))


def _receipt_text(conn: Any, sale_id: str) -> str:
    from daemon.sales.queries import receipt_text

    return receipt_text(conn, sale_id, RECEIPT_COLUMNS, None)


async def shred_due(box: Any, keys: DataKeys, retention_days: int,
                    today: date) -> list[str]:
    """Erase each day key past retention whose e-mail sales all synced.

    today is the day whose key new requests use (UTC, as they name it): its
    key is never erased, whatever the retention, only earlier days'. A key
    is erased first and journaled after; a key found gone but not journaled
    (a crash in between) is journaled on the next pass; a day is journaled
    once. A day key no request row uses any more (its only request was
    replaced, or the request never committed) waits for nothing but retention.
    """
    acked = None
    if box.config.sync_url:
        from sync import cursor

        acked = (await box.reader.run(cursor.load)).acked_seq
    ready = await box.reader.run(lambda c: store.shreddable_days(c, acked))
    used = await box.reader.run(_days_in_use)
    cutoff = min(today - timedelta(days=retention_days), today - timedelta(days=1))
    with_key = {d.isoformat() for d in await asyncio.to_thread(keys.days)}
    erased = sorted(d for d in with_key if (d in ready or d not in used)
                    and date.fromisoformat(d) <= cutoff)
    for day in erased:
        await asyncio.to_thread(keys.shred, date.fromisoformat(day))
    unrecorded = await box.reader.run(lambda c: _unrecorded(c, with_key))
    recorded = await box.reader.run(_shredded_days)
    for day in sorted((set(erased) | unrecorded) - recorded):
        await box.journal.transact(lambda tx, d=day: store.record_shred(tx, d))
    if erased:
        _LOG.info("shredded the e-mail data keys of %d day(s)", len(erased))
    return erased


def _days_in_use(conn: Any) -> set[str]:
    return {day for (day,) in conn.execute("SELECT DISTINCT day FROM email_receipts")}


def _shredded_days(conn: Any) -> set[str]:
    return {day for (day,) in conn.execute("SELECT day FROM shredded_days")}


def _unrecorded(conn: Any, with_key: set[str]) -> set[str]:
    """Return days with e-mail rows whose key is gone but no shred was journaled."""
    rows = conn.execute("SELECT DISTINCT day FROM email_receipts WHERE day NOT IN"
                        " (SELECT day FROM shredded_days)").fetchall()
    return {day for (day,) in rows if day not in with_key}


async def shred_timer(box: Any, keys: DataKeys, retention_days: int) -> None:
    """Run shred_due every SHRED_TICK_S."""
    while True:
        try:
            await shred_due(box, keys, retention_days, datetime.now(UTC).date())
        except Exception:  # noqa: BLE001 - the timer must outlive one failed pass
            _LOG.warning("shredding e-mail data keys failed; retrying",
                         exc_info=True)
        await asyncio.sleep(SHRED_TICK_S)
