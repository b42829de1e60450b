"""The process's long-lived objects (catalog indexes, peers), kept out of the cycle
collector's way.

An index of 100,000 records holds a few hundred thousand container objects (every
record's codes, numbers and marks) that live until the cache drops it. Each full pass of
the cycle collector walks all of them while holding the interpreter lock: 125 ms for one
such index, about half a second with the cache's four, and the event loop answers nothing
meanwhile (``/api/health`` took 0.32-0.64 s at the start of an upload once one to four
indexes were cached, 25-33 ms with them frozen: ``benchmarks/upload_speed.py``). Nothing
in them makes reference cycles (a full pass after four indexes and their peers were
dropped found none), so
they need no collector: once built they join its permanent generation, which it never
walks. Reference counting still frees them when the cache lets go (measured: the frozen
count falls back by the index's objects and the memory comes back).
"""

from __future__ import annotations

import gc


def settle_long_lived() -> None:
    """Move every object alive now out of the cycle collector's passes (``gc.freeze``):
    called once a long-lived value (an index, a peer set) is built or loaded. Objects that
    die later are still freed by reference counting; only a reference cycle among them
    would stay (none is made by the matching code)."""
    gc.freeze()
