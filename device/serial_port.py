"""Blocking serial transport: open, write, read, close. Callers use a thread.

Only bytes cross this module; framing lives in the protocol modules. pyserial
reports a vanished USB adapter as an EIO on write or as "readiness to read but
returned no data" on read; both become PortGone here, so callers can tell a
missing device from a stalled one.
"""

from __future__ import annotations

import errno
import logging
import termios
import time

import serial

from device.printer.settings import PARITIES, PrinterSettings

_LOGGER = logging.getLogger(__name__)

# Bytes per write call. The write timeout applies to each chunk, so it means
# "no progress for that long" rather than "the whole job in that time": a long
# receipt at 9600 baud is slow, not stalled. 1024 bytes take ~1.1 s at 9600.
WRITE_CHUNK = 1024
DRAIN_POLL_S = 0.01
_MISSING_ERRNOS = {errno.ENOENT, errno.ENODEV, errno.ENXIO}
# termios.error is not an OSError, yet a vanished pty or adapter raises it.
_IO_ERRORS = (serial.SerialException, OSError, termios.error)


class SerialPortError(OSError):
    """Base of the transport's errors; the port is closed when one is raised."""


class PortMissing(SerialPortError):
    """Raised when the port cannot be opened because the device is not there."""


class PortUnusable(SerialPortError):
    """Raised when the port exists but cannot be opened (permissions, busy)."""


class PortGone(SerialPortError):
    """Raised when an open port vanished (adapter unplugged) during I/O."""

    def __init__(self, message: str, *, written: int = 0) -> None:
        super().__init__(message)
        self.written = written


class WriteStalled(SerialPortError, TimeoutError):
    """Raised when a write made no progress within the write timeout."""

    def __init__(self, message: str, *, written: int = 0) -> None:
        super().__init__(message)
        self.written = written


class SerialPort:
    """One serial port with a printer's line settings."""

    def __init__(self, settings: PrinterSettings) -> None:
        self.settings = settings
        self._serial: serial.Serial | None = None

    @property
    def is_open(self) -> bool:
        """Return True while the port is open."""
        return self._serial is not None

    def open(self) -> None:
        """Open the port if it is not open yet."""
        if self._serial is not None:
            return
        port = serial.serial_for_url(self.settings.port, do_not_open=True)
        _configure(port, self.settings)
        try:
            port.open()
        except (serial.SerialException, OSError) as err:
            raise _open_error(self.settings.port, err) from err
        self._serial = port
        _LOGGER.info("opened %s at %d baud", self.settings.port, port.baudrate)

    def write(self, data: bytes) -> None:
        """Write all bytes, or raise WriteStalled / PortGone and close the port."""
        port = self._require()
        written = 0
        try:
            for start in range(0, len(data), WRITE_CHUNK):
                chunk = data[start : start + WRITE_CHUNK]
                port.write(chunk)
                written += len(chunk)
            self._drain(port)
        except serial.SerialTimeoutException as err:
            self._discard_output()
            raise WriteStalled(
                f"write to {self.settings.port} stalled", written=written
            ) from err
        except _IO_ERRORS as err:
            self.close()
            message = f"{self.settings.port} vanished: {err}"
            raise PortGone(message, written=written) from err
        _LOGGER.debug("wrote %d bytes to %s", len(data), self.settings.port)

    def _drain(self, port: serial.Serial) -> None:
        """Wait until the UART sent what the kernel holds, or it stops moving.

        pyserial's flush() is tcdrain(), which waits forever on a printer
        that holds CTS low; this gives up after the write timeout without
        progress instead.
        """
        last, since = -1, time.monotonic()
        while (left := port.out_waiting) > 0:
            if left != last:
                last, since = left, time.monotonic()
            elif time.monotonic() - since > self.settings.write_timeout_s:
                raise serial.SerialTimeoutException("output stopped draining")
            time.sleep(DRAIN_POLL_S)

    def read(self, size: int, timeout_s: float) -> bytes:
        """Read up to size bytes, waiting at most timeout_s for the first."""
        port = self._require()
        try:
            if port.timeout != timeout_s:
                port.timeout = timeout_s  # pyserial re-applies termios on set
            data = bytes(port.read(size))
            if data and port.in_waiting:
                data += bytes(port.read(port.in_waiting))
        except _IO_ERRORS as err:
            self.close()
            raise PortGone(f"{self.settings.port} vanished: {err}") from err
        return data

    def discard_input(self) -> None:
        """Drop bytes received but not read yet (late or stray answers)."""
        port = self._require()
        try:
            port.reset_input_buffer()
        except _IO_ERRORS as err:
            self.close()
            raise PortGone(f"{self.settings.port} vanished: {err}") from err

    def close(self) -> None:
        """Close the port; closing a closed port does nothing."""
        port, self._serial = self._serial, None
        if port is None:
            return
        try:
            port.close()
        except _IO_ERRORS as err:
            _LOGGER.debug("closing %s: %s", self.settings.port, err)
        _LOGGER.info("closed %s", self.settings.port)

    def _require(self) -> serial.Serial:
        if self._serial is None:
            raise PortGone(f"{self.settings.port} is not open")
        return self._serial

    def _discard_output(self) -> None:
        """Drop what the kernel still holds, then close: the job is cut off."""
        port = self._serial
        if port is not None:
            try:
                port.reset_output_buffer()
            except _IO_ERRORS as err:
                _LOGGER.debug("discarding output: %s", err)
        self.close()


def _configure(port: serial.Serial, settings: PrinterSettings) -> None:
    port.baudrate = settings.baudrate
    port.bytesize = settings.bytesize
    port.parity = PARITIES[settings.parity]
    port.stopbits = settings.stopbits
    port.rtscts = settings.flow_control == "rtscts"
    port.xonxoff = settings.flow_control == "xonxoff"
    port.dsrdtr = settings.flow_control == "dsrdtr"
    port.write_timeout = settings.write_timeout_s
    port.timeout = settings.status_timeout_s
    port.exclusive = True


def _open_error(path: str, err: Exception) -> SerialPortError:
    code = getattr(err, "errno", None)
    if code in _MISSING_ERRNOS:
        return PortMissing(f"{path} is not there")
    return PortUnusable(f"cannot open {path}: {err}")

