"""Hand freed heap back to the operating system after a restore.

A restore reads through large fetch buffers and short-lived batches; glibc keeps what they
freed in its arenas, so the resident size of a partition actor (what capacity planning sees)
would stay at the restore's peak. A no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
from contextlib import suppress

__all__ = ["release_freed_memory"]


def release_freed_memory() -> None:
    """``malloc_trim(0)``: return free heap pages to the OS."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
