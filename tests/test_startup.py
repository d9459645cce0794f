"""Start-up tuning: daemon.cli collects garbage rarely until the daemon is ready."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                          capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


def test_cli_import_raises_the_threshold_and_settle_restores_the_default() -> None:
    out = _run("import gc; default = gc.get_threshold()\n"
               "import daemon.cli\nfrom daemon import _startup\n"
               "print(gc.get_threshold() == _startup.STARTUP_GC_THRESHOLD)\n"
               "_startup.settle(); print(gc.get_threshold() == default)\n"
               "gc.set_threshold(5, 5, 5); _startup.settle()\n"
               "print(gc.get_threshold())")
    # A threshold someone else set after start-up is left alone.
    assert out.splitlines() == ["True", "True", "(5, 5, 5)"]


def test_a_command_other_than_serve_runs_with_the_default_threshold() -> None:
    out = _run("import gc; default = gc.get_threshold()\n"
               "import daemon.cli\n"
               "try:\n    daemon.cli.main(['verify', '--state', '/nonexistent/x'])\n"
               "except SystemExit:\n    pass\n"
               "print(gc.get_threshold() == default)")
    assert out.splitlines()[-1] == "True"


def test_importing_the_server_leaves_the_collector_alone() -> None:
    out = _run("import gc; default = gc.get_threshold()\n"
               "import daemon.server\nprint(gc.get_threshold() == default)")
    assert out == "True"


def test_a_ready_server_freezes_start_ups_objects_and_commands_do_not() -> None:
    out = _run("import gc\nimport daemon.cli, daemon.server\n"
               "try:\n    daemon.cli.main(['verify', '--state', '/nonexistent/x'])\n"
               "except SystemExit:\n    pass\n"
               "print(gc.get_freeze_count())\n"
               "daemon.server._settle_gc(); print(gc.get_freeze_count() > 10_000)")
    assert out.splitlines()[-2:] == ["0", "True"]
