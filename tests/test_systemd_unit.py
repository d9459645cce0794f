"""systemd/stallbox.service: systemd-analyze verify passes, security scores it."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNIT = REPO / "systemd" / "stallbox.service"
STOCK_UNITS = Path("/usr/lib/systemd/system")
ANALYZE_TIMEOUT_S = 60.0
# `systemd-analyze security` exposure, 0 (locked down) to 10; quoted in README.
MAX_EXPOSURE = 2.0
# systemd 252's @system-service names syscalls newer than its libseccomp knows.
KNOWN_NOISE = re.compile(r"Failed to parse system call|Too many levels of symbolic")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A throwaway root holding the unit, its executable and the stock units."""
    exe = tmp_path / "opt/stallbox/bin/stallbox"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    units = tmp_path / "etc/systemd/system"
    units.mkdir(parents=True)
    shutil.copy(UNIT, units / UNIT.name)
    (tmp_path / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree(STOCK_UNITS, tmp_path / "usr/lib/systemd/system", symlinks=True)
    return tmp_path


def analyze(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("systemd-analyze"), "install Debian's systemd (scripts/test.sh)"
    return subprocess.run(
        ["systemd-analyze", *args, f"--root={root}",
         f"/etc/systemd/system/{UNIT.name}"],
        capture_output=True, text=True, timeout=ANALYZE_TIMEOUT_S)


def _complaints(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if line.strip() and not KNOWN_NOISE.search(line)]


def test_systemd_analyze_verify_passes(root: Path) -> None:
    result = analyze(root, "verify")
    assert result.returncode == 0, result.stderr
    assert _complaints(result.stderr) == []


def test_verify_would_catch_a_typo(root: Path) -> None:
    unit = root / "etc/systemd/system" / UNIT.name
    unit.write_text(unit.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    assert any("WatchdogSecs" in line
               for line in _complaints(analyze(root, "verify").stderr))


def test_security_exposure_is_low(root: Path) -> None:
    result = analyze(root, "security", "--offline=true")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def _service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_the_unit_says_what_issue_7_asks() -> None:
    service = _service()
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["Restart"] == "on-failure"
    assert service["User"] == "stallbox"
    assert service["DevicePolicy"] == "closed"
    assert service["CapabilityBoundingSet"] == ""
    families = set(service["RestrictAddressFamilies"].split())
    assert families == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    text = UNIT.read_text()
    assert "Wants=network-online.target" in text
    assert "Requires=" not in text


def test_stop_timeout_covers_the_drain() -> None:
    from daemon.server import SHUTDOWN_TIMEOUT_S
    from device.printer.worker import STOP_TIMEOUT_S

    stop_s = int(_service()["TimeoutStopSec"])
    assert stop_s > SHUTDOWN_TIMEOUT_S + STOP_TIMEOUT_S
