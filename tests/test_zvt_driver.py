"""ZVT driver against the simulated terminal, through real pseudo-terminals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from device.sim.zvt_terminal import ZvtTerminalSim
from device.terminal import zvt_apdu as z
from device.terminal.base import (
    LinkDown,
    PaymentStatus,
    Prompt,
    TerminalBusy,
)
from device.terminal.link import LinkSettings
from device.terminal.zvt import ZvtSettings, ZvtTerminal, ZvtTimeouts
from tests.cardhelpers import running_zvt

pytestmark = pytest.mark.timeout(60)

FAST = ZvtTimeouts(
    ack_s=0.5, accept_s=2.0, message_s=1.5, abort_wait_s=5.0, reopen_s=2.0
)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[ZvtTerminalSim]:
    with running_zvt(tmp_path) as terminal:
        yield terminal


@pytest.fixture
async def driver(sim: ZvtTerminalSim) -> AsyncIterator[ZvtTerminal]:
    settings = ZvtSettings(LinkSettings(str(sim.link_path)), timeouts=FAST)
    terminal = ZvtTerminal(settings)
    yield terminal
    await terminal.close()


def commands(sim: ZvtTerminalSim) -> list[bytes]:
    """Return the command bytes the simulator received, acks left out."""
    return [a[:2] for a in sim.received if a != z.POSITIVE_ACK]


async def test_approved_payment_with_prompts_and_receipt(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    prompts: list[Prompt] = []
    result = await driver.authorise(1990, "EUR", "sale-1", prompts.append)
    await asyncio.sleep(0)  # prompts arrive through call_soon_threadsafe

    assert result.status is PaymentStatus.APPROVED
    assert (result.amount_minor, result.currency, result.brand) == (1990, "EUR", "Visa")
    assert result.masked_pan == "******1234"
    assert (result.receipt_no, result.trace, result.terminal_id) == (1, 1, "29001006")
    assert "Zahlung erfolgt" in result.print_lines
    assert [p.text for p in prompts] == ["Karte einstecken", "PIN eingeben"]
    assert commands(sim) == [z.CMD_REGISTRATION, z.CMD_AUTHORISATION]


async def test_declined_is_a_result(sim: ZvtTerminalSim, driver: ZvtTerminal) -> None:
    result = await driver.authorise(513, "EUR", "sale-2")

    assert result.status is PaymentStatus.DECLINED
    assert result.result_code == 0x05
    assert result.masked_pan is None


async def test_customer_abort_on_terminal(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    result = await driver.authorise(266, "EUR", "sale-3")
    assert result.status is PaymentStatus.ABORTED


async def test_cashier_abort_reaches_terminal(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    sim.behaviour.prompt_repeats = 50
    sim.behaviour.step_delay_s = 0.05
    first_prompt = asyncio.Event()
    payment = asyncio.create_task(
        driver.authorise(1000, "EUR", "sale-4", lambda _p: first_prompt.set())
    )
    await first_prompt.wait()
    await driver.abort()

    result = await payment
    assert result.status is PaymentStatus.ABORTED
    assert z.CMD_ABORT in commands(sim)
    assert (await driver.status()).ready


async def test_nak_then_resend(sim: ZvtTerminalSim, driver: ZvtTerminal) -> None:
    await driver.status()  # registered
    sim.behaviour.nak_frames = 2
    result = await driver.authorise(700, "EUR", "sale-5")

    assert result.status is PaymentStatus.APPROVED
    assert sim.behaviour.nak_frames == 0  # both NAKs were spent on resends
    assert commands(sim).count(z.CMD_AUTHORISATION) == 1


async def test_corrupted_crc_from_terminal_is_nakked_and_resent(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    await driver.status()
    sim.behaviour.corrupt_crc_frames = 2
    result = await driver.authorise(800, "EUR", "sale-6")

    assert result.status is PaymentStatus.APPROVED
    assert sim.behaviour.corrupt_crc_frames == 0


async def test_byte_by_byte_and_coalesced_acks(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    sim.behaviour.byte_by_byte = True
    sim.behaviour.coalesce_ack = True
    result = await driver.authorise(900, "EUR", "sale-7")
    assert result.status is PaymentStatus.APPROVED


async def test_busy_terminal(sim: ZvtTerminalSim, driver: ZvtTerminal) -> None:
    await driver.status()
    sim.behaviour.busy = True
    with pytest.raises(TerminalBusy):
        await driver.authorise(1000, "EUR", "sale-8")

    state = await driver.status()
    assert not state.ready and "busy" in state.message


async def test_second_payment_while_one_runs_is_busy(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    sim.behaviour.prompt_repeats = 10
    first = asyncio.create_task(driver.authorise(1000, "EUR", "sale-9"))
    await asyncio.sleep(0.2)
    with pytest.raises(TerminalBusy):
        await driver.authorise(1000, "EUR", "sale-9-double")
    assert (await first).status is PaymentStatus.APPROVED
    assert commands(sim).count(z.CMD_AUTHORISATION) == 1


async def test_link_drop_after_approval_is_unknown_then_resolved(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    sim.behaviour.drop_link_after = "status_info"
    result = await driver.authorise(2450, "EUR", "sale-10")

    assert result.status is PaymentStatus.UNKNOWN
    assert result.amount_minor == 2450

    resolved = await driver.last_transaction()  # reopens the replugged port
    assert resolved.status is PaymentStatus.APPROVED
    assert (resolved.amount_minor, resolved.receipt_no) == (2450, 1)
    assert commands(sim).count(z.CMD_REGISTRATION) == 2


async def test_link_drop_before_outcome_resolves_to_no_payment(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    await driver.authorise(100, "EUR", "sale-11")
    sim.behaviour.drop_link_after = "prompt"
    result = await driver.authorise(2000, "EUR", "sale-12")

    assert result.status is PaymentStatus.UNKNOWN
    last = await driver.last_transaction()
    assert (last.amount_minor, last.receipt_no) == (100, 1)  # not the 20,00


async def test_silent_terminal_times_out_to_unknown(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    sim.behaviour.silent_after = "command"
    result = await driver.authorise(1500, "EUR", "sale-13")
    assert result.status is PaymentStatus.UNKNOWN
    sim.wake()


async def test_absent_port_raises_link_down_with_nothing_sent(
    tmp_path: Path,
) -> None:
    settings = ZvtSettings(LinkSettings(str(tmp_path / "nope")), timeouts=FAST)
    terminal = ZvtTerminal(settings)
    with pytest.raises(LinkDown) as err:
        await terminal.authorise(100, "EUR", "sale-14")
    assert not err.value.command_sent
    await terminal.close()


async def test_end_of_day_totals(sim: ZvtTerminalSim, driver: ZvtTerminal) -> None:
    await driver.authorise(1000, "EUR", "a")
    await driver.authorise(513, "EUR", "declined")
    await driver.authorise(250, "EUR", "b")
    result = await driver.end_of_day()

    assert result.status is PaymentStatus.APPROVED
    assert result.total_minor == 1250
    visa = next(t for t in result.totals if t.brand == "Visa")
    assert (visa.count, visa.amount_minor) == (2, 1250)


async def test_event_loop_not_blocked_during_payment(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    sim.behaviour.step_delay_s = 0.1
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await driver.authorise(1000, "EUR", "sale-15")
    ticker.cancel()
    assert ticks >= 10


async def test_slow_pin_entry_keeps_resetting_the_wait(
    sim: ZvtTerminalSim, driver: ZvtTerminal
) -> None:
    # 12 prompts 0.3 s apart: far longer than the 1.5 s silence allowed.
    sim.behaviour.prompt_repeats = 6
    sim.behaviour.step_delay_s = 0.3
    prompts: list[Prompt] = []
    result = await driver.authorise(4200, "EUR", "sale-16", prompts.append)
    await asyncio.sleep(0)

    assert result.status is PaymentStatus.APPROVED
    assert len(prompts) == 12
