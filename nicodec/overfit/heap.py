"""Keep a fit's large buffers in the process heap instead of fresh pages from the kernel.

Every fitting iteration allocates and frees tensors of tens of megabytes (the ARM's hidden layers
over every latent element: 16 × 524,288 floats for a 768×512 image). glibc serves blocks above
its mmap threshold (at most 32 MiB, however it adapts) with a fresh ``mmap`` and returns them on
``free``, so each such tensor costs a page fault per 4 KiB on first touch: a ReLU over 33 MB took
20 ms from fresh pages against 1.5 ms in place on an AMD EPYC core. While a fit runs we raise the
mmap and trim thresholds so freed blocks are reused; afterwards the defaults' behaviour returns
and the free heap goes back to the OS (docs/overfit.md gives iteration times with and without).

Only on Linux with glibc; anywhere else (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Iterator

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_RETAIN = 1 << 30  # blocks up to 1 GiB come from (and return to) the heap during a fit
_AFTER_MMAP, _AFTER_TRIM = 32 << 20, 64 << 20  # glibc's largest adaptive thresholds


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt thresholds to speak of
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except (OSError, AttributeError):
        return None


_LIBC = _glibc()
_LOCK = threading.Lock()
_DEPTH = 0  # fits running now (threads of one process share the heap)


@contextlib.contextmanager
def retained() -> Iterator[None]:
    """Within: freed large blocks stay in the heap for the next iteration's tensors."""
    global _DEPTH
    if _LIBC is None:
        yield
        return
    with _LOCK:
        if _DEPTH == 0:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _RETAIN)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, _RETAIN)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0:
                _LIBC.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM)
                _LIBC.malloc_trim(0)
