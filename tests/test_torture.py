"""The short torture run (fixed seed) is part of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
def test_short_torture_run_keeps_every_invariant() -> None:
    proc = subprocess.run(
        [sys.executable, "scripts/torture.py", "--minutes", "1", "--seed", "7"],
        cwd=REPO, capture_output=True, text=True, timeout=230)
    table = proc.stdout[proc.stdout.find("| invariant"):]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "| NO |" not in table
    assert "acknowledged sales in the journal exactly once | yes" in table
