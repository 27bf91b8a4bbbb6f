"""Keep large tensors' memory in the process heap instead of fresh kernel pages.

Coding allocates and frees tensors of tens of megabytes, layer after layer (a synthesis
transform's feature maps; each overfit fitting iteration's ARM activations, 16 × 524,288 floats
for a 768×512 image). glibc serves blocks above its mmap threshold (at most 32 MiB, however it
adapts) with a fresh ``mmap`` and unmaps them on ``free``, so each such tensor costs a page fault
per 4 KiB on first touch, every time (40,000–57,000 faults per fitting iteration on kodim01:
``benchmarks/overfit_bench.py iteration --no-heap``).

* :func:`retained` (every overfit fit runs in it): freed blocks stay in the heap while inside,
  for the next iteration; on leaving, glibc's usual thresholds return and the free heap goes back
  to the OS.
* :func:`keep`: the same for the rest of the process, for programs that code many images (a
  server, a benchmark): an amortized decode then reuses the last one's pages instead of faulting
  in its feature maps again, at the price of holding the process's peak heap.

docs/overfit.md and docs/benchmarks.md give page faults and times with and without. Only on Linux
with glibc; anywhere else (macOS, Windows, musl) both do nothing. ``ENABLED = False`` turns them
off (benchmarks use it to measure what they buy).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Iterator

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
_RETAIN = 1 << 30  # blocks up to 1 GiB come from (and return to) the heap
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
ENABLED = True
_LOCK = threading.Lock()
_DEPTH = 0  # fits running now (threads of one process share the heap)
_KEPT = False


def _raise_thresholds() -> None:
    if not _LIBC.mallopt(_M_MMAP_THRESHOLD, _RETAIN):  # a glibc that caps it (at 32 MiB) refuses 1 GiB
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP)
    _LIBC.mallopt(_M_TRIM_THRESHOLD, _RETAIN)


def keep() -> bool:
    """Keep freed large blocks in the heap from now on (True where that is possible here)."""
    global _KEPT
    if _LIBC is None or not ENABLED:
        return False
    with _LOCK:
        _raise_thresholds()
        _KEPT = True
    return True


@contextlib.contextmanager
def retained() -> Iterator[None]:
    """Within: freed large blocks stay in the heap for the next tensors."""
    global _DEPTH
    if _LIBC is None or not ENABLED:
        yield
        return
    with _LOCK:
        if _DEPTH == 0:
            _raise_thresholds()
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0 and not _KEPT:
                _LIBC.mallopt(_M_MMAP_THRESHOLD, _AFTER_MMAP)
                _LIBC.mallopt(_M_TRIM_THRESHOLD, _AFTER_TRIM)
                _LIBC.malloc_trim(0)
