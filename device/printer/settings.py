"""Serial and paper settings of a receipt printer, as the config gives them."""

from __future__ import annotations

from dataclasses import dataclass

CUT_MODES = ("gs_v", "esc_m", "esc_i", "none")
FLOW_CONTROLS = ("none", "rtscts", "xonxoff", "dsrdtr")
PARITIES = {"none": "N", "even": "E", "odd": "O", "mark": "M", "space": "S"}


@dataclass(frozen=True, slots=True)
class PrinterSettings:
    """Where the printer is and how to talk to it.

    port: a device path, ideally /dev/serial/by-id/... so a replugged
    USB-serial adapter keeps its name; a pty path works the same way.
    baudrate: bits per second on the line, e.g. 9600 or 115200.
    write_timeout_s: how long one write may stall before the job is parked.
    """

    port: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "none"
    stopbits: float = 1
    flow_control: str = "none"
    codepage: str = "cp858"
    profile: str = "default"
    columns: int = 42
    cut: str = "gs_v"
    write_timeout_s: float = 5.0
    status_timeout_s: float = 0.5
