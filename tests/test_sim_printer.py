"""The simulated printer through a real pty and pyserial on the host side."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.sales.receipt import render_text
from device.printer import status
from device.printer.escpos import encode_receipt
from device.printer.settings import PrinterSettings
from device.sim.printer import SimulatedPrinter, uart_resample
from tests.receipt_samples import market_receipt

REPO = Path(__file__).resolve().parents[1]
QUERY_ALL = b"".join(status.request(kind) for kind in status.StatusKind)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatedPrinter]:
    with SimulatedPrinter(link_path=tmp_path / "printer") as printer:
        yield printer


def _open(path: str, baud: int = 9600, **kwargs: object) -> serial.Serial:
    return serial.Serial(path, baud, timeout=0.3, write_timeout=0.5, **kwargs)


def _ask(port: serial.Serial) -> dict[int, bytes]:
    port.reset_input_buffer()
    answers: dict[int, bytes] = {}
    for kind in status.StatusKind:
        port.write(status.request(kind))
        answers[kind] = port.read(1)
    return answers


def test_prints_what_the_host_sends(sim: SimulatedPrinter) -> None:
    receipt = market_receipt()
    with _open(sim.port_path) as port:
        port.write(encode_receipt(receipt, PrinterSettings(port=sim.port_path)))

        printed = sim.wait_for_receipts(1)
    assert printed == [render_text(receipt, 42, codepage="cp858")]


def test_answers_status_by_state(sim: SimulatedPrinter) -> None:
    with _open(sim.port_path) as port:
        assert status.parse(_ask(port)).online is True
        sim.set_paper_out(True)
        parsed = status.parse(_ask(port))
        assert parsed.paper_end and parsed.online is False
        sim.set_paper_out(False)
        sim.set_cover_open(True)
        assert status.parse(_ask(port)).cover_open
        sim.set_cover_open(False)
        sim.set_online(False)
        assert status.parse(_ask(port)).online is False


def test_offline_printer_holds_the_job_until_online(sim: SimulatedPrinter) -> None:
    sim.set_online(False)
    with _open(sim.port_path) as port:
        port.write(b"\x1b@held\n\x1dV\x00")
        port.flush()
        with pytest.raises(TimeoutError):
            sim.wait_for_receipts(1, timeout_s=0.3)
        sim.set_online(True)
        assert sim.wait_for_receipts(1) == ["held\n"]


def test_stalled_printer_blocks_writes(sim: SimulatedPrinter) -> None:
    sim.set_stalled(True)
    with _open(sim.port_path) as port, pytest.raises(serial.SerialTimeoutException):
        port.write(b"x" * 256 * 1024)  # more than the pty buffers


def test_stalled_printer_sends_xoff_to_xonxoff_hosts(sim: SimulatedPrinter) -> None:
    with _open(sim.port_path, xonxoff=True) as port:
        sim.set_stalled(True)
        with pytest.raises(serial.SerialTimeoutException):
            port.write(b"\x1b@small\n\x1dV\x00")
        port.reset_output_buffer()
        sim.set_stalled(False)
        port.write(b"\x1b@after\n\x1dV\x00")
        assert sim.wait_for_receipts(1) == ["after\n"]


def test_unplug_makes_the_port_vanish_and_replug_restores_it(
    sim: SimulatedPrinter,
) -> None:
    port = _open(sim.port_path)
    sim.unplug()

    assert not os.path.exists(sim.port_path)
    with pytest.raises(serial.SerialException):
        port.write(b"lost\n")
        port.read(1)
    port.close()
    sim.replug()
    with _open(sim.port_path) as again:
        again.write(b"\x1b@back\n\x1dV\x00")
        assert sim.wait_for_receipts(1) == ["back\n"]


def test_baud_mismatch_garbles_status_answers(tmp_path: Path) -> None:
    with (
        SimulatedPrinter(baudrate=19200, link_path=tmp_path / "p") as sim,
        _open(sim.port_path, 9600) as port,
    ):
        parsed = status.parse(_ask(port))
    assert status.looks_misconfigured(parsed)


def test_baud_mismatch_prints_garbage_not_the_receipt(tmp_path: Path) -> None:
    data = encode_receipt(market_receipt(), PrinterSettings(port="x"))
    with (
        SimulatedPrinter(baudrate=19200, link_path=tmp_path / "p") as sim,
        _open(sim.port_path, 9600) as port,
    ):
        port.write(data)
        port.flush()
        with pytest.raises(TimeoutError):
            sim.wait_for_receipts(1, timeout_s=0.5)


def test_garbled_switch_without_speed_difference(sim: SimulatedPrinter) -> None:
    sim.set_garbled(True)
    with _open(sim.port_path) as port:
        assert status.looks_misconfigured(status.parse(_ask(port)))
        sim.set_garbled(False)
        assert status.parse(_ask(port)).online is True


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=64), st.sampled_from([1200, 9600, 19200, 115200]))
def test_resampling_at_the_same_rate_is_lossless(data: bytes, baud: int) -> None:
    assert uart_resample(data, baud, baud) == data


@pytest.mark.parametrize(("tx", "rx"), [(19200, 9600), (9600, 19200), (9600, 38400),
                                        (115200, 9600), (9600, 115200)])
def test_every_status_byte_breaks_its_fixed_bits_across_a_mismatch(
    tx: int, rx: int
) -> None:
    for value in range(256):
        if status.is_status_byte(value):
            garbled = uart_resample(bytes([value]), tx, rx)
            assert not (len(garbled) == 1 and status.is_status_byte(garbled[0]))


def test_runs_as_a_script() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "device.sim.printer"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            path = proc.stdout.readline().strip()
            assert path.startswith("/dev/pts/")
            with _open(path) as port:
                port.write(b"\x10\x04\x01")
                assert port.read(1) == b"\x12"
        finally:
            proc.terminate()
            proc.wait(timeout=5)
