"""One worker thread per terminal: blocking serial dialogues off the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from device.terminal.base import Prompt, PromptCallback, TerminalBusy

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TerminalWorker:
    """Run one terminal command at a time on a dedicated thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._executor: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._in_flight: asyncio.Future[object] | None = None

    @property
    def busy(self) -> bool:
        """Return True while a command runs."""
        return self._lock.locked()

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on the worker; TerminalBusy if one already runs."""
        if self._lock.locked():
            raise TerminalBusy("another terminal command is in progress")
        async with self._lock:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._worker(), fn, *args)
            self._in_flight = future  # type: ignore[assignment]
            try:
                return await future
            finally:
                self._in_flight = None

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the running command to end; return False on timeout."""
        in_flight = self._in_flight
        if in_flight is None or in_flight.done():
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.wait({in_flight})
        except TimeoutError:
            return False
        return True

    async def shutdown(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` on the worker, then stop the thread."""
        async with self._lock:
            executor, self._executor = self._executor, None
            if executor is not None:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(executor, cleanup)
                executor.shutdown(wait=True)

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._name)
        return self._executor


def threadsafe(on_prompt: PromptCallback | None) -> PromptCallback | None:
    """Wrap a prompt callback so the worker thread calls it on the loop."""
    if on_prompt is None:
        return None
    loop = asyncio.get_running_loop()

    def deliver(prompt: Prompt) -> None:
        loop.call_soon_threadsafe(on_prompt, prompt)

    return deliver
