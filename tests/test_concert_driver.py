"""Concert driver against the simulated terminal, through real pseudo-terminals."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from device.sim.concert_terminal import ConcertTerminalSim
from device.terminal.base import NotSupported, PaymentStatus
from device.terminal.concert_driver import (
    ConcertSettings,
    ConcertTerminal,
    ConcertTimeouts,
    concert_link,
)

pytestmark = pytest.mark.timeout(60)

FAST = ConcertTimeouts(enq_ack_s=0.5, frame_ack_s=0.5, reply_s=1.5, reopen_s=2.0)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ConcertTerminalSim]:
    terminal = ConcertTerminalSim(tmp_path / "ttyConcert")
    terminal.start()
    yield terminal
    terminal.stop()


@pytest.fixture
async def driver(sim: ConcertTerminalSim) -> AsyncIterator[ConcertTerminal]:
    terminal = ConcertTerminal(
        ConcertSettings(concert_link(str(sim.link_path)), timeouts=FAST)
    )
    yield terminal
    await terminal.close()


async def test_approved_after_the_reply(
    sim: ConcertTerminalSim, driver: ConcertTerminal
) -> None:
    result = await driver.authorise(1250, "EUR", "sale-1")

    assert result.status is PaymentStatus.APPROVED
    assert result.amount_minor == 1250
    assert sim.requests[0].amount_minor == 1250


async def test_refused(sim: ConcertTerminalSim, driver: ConcertTerminal) -> None:
    result = await driver.authorise(513, "EUR", "sale-2")
    assert result.status is PaymentStatus.DECLINED


async def test_nak_then_resend(
    sim: ConcertTerminalSim, driver: ConcertTerminal
) -> None:
    sim.behaviour.nak_frames = 2
    result = await driver.authorise(700, "EUR", "sale-3")

    assert result.status is PaymentStatus.APPROVED
    assert len(sim.requests) == 1


async def test_acknowledged_amount_is_not_an_approval(
    sim: ConcertTerminalSim, driver: ConcertTerminal
) -> None:
    sim.behaviour.drop_link_before_reply = True
    result = await driver.authorise(900, "EUR", "sale-4")

    assert result.status is PaymentStatus.UNKNOWN
    assert (await driver.authorise(100, "EUR", "sale-5")).status is (
        PaymentStatus.APPROVED
    )


async def test_status_and_unsupported_functions(
    sim: ConcertTerminalSim, driver: ConcertTerminal
) -> None:
    assert (await driver.status()).ready
    with pytest.raises(NotSupported):
        await driver.last_transaction()
    with pytest.raises(NotSupported):
        await driver.end_of_day()
