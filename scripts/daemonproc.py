"""Run `stallbox serve` as a real process (tests, benchmarks, torture runs)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 20.0
_SERVING = re.compile(r"serving on (http://\S+/)")


def write_config(path: Path, state_dir: Path, extra: str = "") -> Path:
    """Write a config for a daemon on a free loopback port."""
    path.write_text(
        f'[stall]\nname = "Crashtest"\n[http]\nhost = "127.0.0.1"\nport = 0\n'
        f'[state]\ndir = "{state_dir}"\n{extra}', encoding="utf-8")
    return path


def run_cli(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a stallbox CLI command to completion."""
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s)


class DaemonProcess:
    """One `stallbox serve` process; knows its URL once it logged readiness."""

    def __init__(self, config: Path, *, env: dict[str, str] | None = None,
                 launcher: tuple[str, ...] = ("-m", "daemon.cli"),
                 wrapper: tuple[str, ...] = (),
                 ready_timeout_s: float = READY_TIMEOUT_S) -> None:
        """wrapper runs the interpreter under another program (valgrind)."""
        self.config = config
        self.url = ""
        self.log: list[str] = []
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [*wrapper, sys.executable, *launcher, "serve", "--config", str(config)],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._ready.wait(ready_timeout_s):
            self.kill()
            raise RuntimeError("daemon not ready:\n" + "".join(self.log[-30:]))

    def _read_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            match = _SERVING.search(line)
            if match:
                self.url = match.group(1)
                self._ready.set()

    def stock_and_pair(self, state: Path, catalog: bytes, *, name: str,
                       timeout_s: float = 60.0) -> str:
        """Import catalog (CSV bytes) and pair a tablet named name, as staff
        would: the CLI for the import and the pairing code, HTTP for the token.
        Return the token. Blocking: from a coroutine, use asyncio.to_thread."""
        csv = state.parent / "catalog.csv"
        csv.write_bytes(catalog)
        for args in (("import-catalog", str(csv)), ("pair",)):
            done = run_cli(*args, "--state", str(state), timeout_s=timeout_s)
            if done.returncode != 0:
                raise RuntimeError(f"stallbox {args[0]} failed: {done.stderr}")
        code = done.stdout.split()[-1]
        request = urllib.request.Request(
            self.url + "api/v1/pair", headers={"Content-Type": "application/json"},
            data=json.dumps({"code": code, "name": name}).encode())
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(request, timeout=timeout_s) as resp:  # loopback: no proxy
            return str(json.load(resp)["token"])

    def kill(self) -> None:
        """SIGKILL the daemon: no cleanup, as a power cut would leave it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout_s)
        self._close()
        return code
