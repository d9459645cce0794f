"""`stallbox print-setup`: the running daemon prints its IP URL with a QR code."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.sales.receipt import LayoutLine
from daemon.setup_slip import slip_lines, till_urls
from device.printer.escpos import encode_lines
from device.printer.settings import PrinterSettings
from device.sim.escpos_decoder import decode, text_lines
from device.sim.printer import SimulatedPrinter
from scripts.daemonproc import DaemonProcess, run_cli, write_config

pytestmark = pytest.mark.slow


def test_bound_address_is_the_url_and_wildcards_list_lan_addresses() -> None:
    assert till_urls("127.0.0.1", 8080) == ["http://127.0.0.1:8080/"]
    assert till_urls("::1", 8080) == ["http://[::1]:8080/"]
    urls = till_urls("0.0.0.0", 8080)
    assert urls and all(u.startswith("http://") and ".local" not in u for u in urls)


def test_slip_encodes_a_native_qr_and_readable_text() -> None:
    lines = slip_lines("Kräuter & Kerzen", ["http://192.0.2.7:8080/"], 42)
    data = encode_lines(lines, PrinterSettings(port="/dev/null"))
    assert b"\x1d(k" in data  # GS ( k: the printer draws the QR itself
    text = "\n".join(text_lines(decode(data)))
    assert "http://192.0.2.7:8080/" in text and "Kräuter & Kerzen" in text
    assert isinstance(lines[-1], LayoutLine) and lines[-1].qr


def test_print_setup_reaches_the_printer_through_the_daemon(tmp_path: Path) -> None:
    with SimulatedPrinter(baudrate=115200, link_path=tmp_path / "printer") as sim:
        extra = f'[printer]\nport = "{sim.port_path}"\nbaudrate = 115200\n'
        config = write_config(tmp_path / "stallbox.toml", tmp_path / "state", extra)
        daemon = DaemonProcess(config)
        try:
            result = run_cli("print-setup", "--config", str(config))
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == daemon.url
            slip = sim.wait_for_receipts(1, timeout_s=10)[0]
            assert daemon.url in slip and "Till setup" in slip
        finally:
            daemon.terminate()


def test_print_setup_without_a_daemon_says_so(tmp_path: Path) -> None:
    result = run_cli("print-setup", "--state", str(tmp_path / "none"))
    assert result.returncode == 1
    assert "cannot reach the daemon" in result.stderr
