"""`stallbox demo`: one command answers HTTP within 2 s and prints URL and code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_answers_within_two_seconds_and_sells(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "demo"
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "demo", "--state", str(state),
         "--port", str(port)], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True)
    try:
        answered = None
        while time.monotonic() - start < 10:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz",
                                            timeout=1) as resp:
                    answered = time.monotonic() - start
                    assert resp.status == 200
                    break
            except OSError:
                time.sleep(0.05)
        assert answered is not None and answered < 2.0, answered
        assert proc.stdout is not None
        url_line = proc.stdout.readline()
        code_line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in url_line
        code = code_line.split()[2]
        assert len(code) == 6 and code.isdigit()
        assert (state / "printer-port").is_symlink()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        if proc.stdout:
            proc.stdout.close()
