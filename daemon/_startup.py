"""Collect garbage rarely while the daemon starts; daemon.cli imports this first.

Importing the daemon builds tens of thousands of objects that live as long as
the process: modules, classes, the methods dataclasses generate, routes. With
the default threshold (a collection every 700 allocations) the collector walks
them about 120 times before READY, some 50 ms of CPU on this box (#7). The
module is named to sort first among daemon.cli's own imports, so it runs
before the expensive ones.
"""

from __future__ import annotations

import gc

# A young-generation collection every 100 000 allocations: a handful before READY.
STARTUP_GC_THRESHOLD = (100_000, 50, 50)
_DEFAULT_GC_THRESHOLD = gc.get_threshold()
gc.set_threshold(*STARTUP_GC_THRESHOLD)


def settle() -> None:
    """Put the collector's default threshold back once start-up is done."""
    if gc.get_threshold() == STARTUP_GC_THRESHOLD:
        gc.set_threshold(*_DEFAULT_GC_THRESHOLD)


def freeze_long_lived() -> None:
    """A serving daemon, once READY: collect start-up's garbage, then freeze
    what is left. Those objects live as long as the process, so no later
    collection walks them again: a full collection walked them all, some
    milliseconds each time (the one-client sale p99 went from about 8 ms to
    2-3 ms, `python scripts/bench.py sale`). Not for one-shot commands, and
    never in a test process: frozen objects are never freed."""
    gc.collect()
    gc.freeze()
