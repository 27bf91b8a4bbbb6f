"""nicodec.heap: when glibc's thresholds are raised and restored (a fake libc records the calls)."""

from __future__ import annotations

import pytest

from nicodec import heap


class FakeLibc:
    """Records mallopt / malloc_trim calls; ``cap``: refuse mmap thresholds above it (as some glibcs do)."""

    def __init__(self, cap: int | None = None):
        self.calls, self.cap = [], cap

    def mallopt(self, param, value):
        self.calls.append((param, value))
        return 0 if self.cap is not None and param == heap._M_MMAP_THRESHOLD and value > self.cap else 1

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))
        return 1


@pytest.fixture
def libc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(heap, "_LIBC", fake)
    monkeypatch.setattr(heap, "_KEPT", False)
    return fake


def test_heap_thresholds_are_raised_for_the_outermost_fit_and_restored_after(libc, monkeypatch):
    with heap.retained():
        with heap.retained():  # a second fit at the same time (another thread) changes nothing
            assert libc.calls == [(heap._M_MMAP_THRESHOLD, heap._RETAIN), (heap._M_TRIM_THRESHOLD, heap._RETAIN)]
        assert len(libc.calls) == 2
    assert libc.calls[2:] == [(heap._M_MMAP_THRESHOLD, heap._AFTER_MMAP), (heap._M_TRIM_THRESHOLD, heap._AFTER_TRIM),
                              ("trim", 0)]
    assert heap._DEPTH == 0
    monkeypatch.setattr(heap, "_LIBC", None)  # not glibc: nothing to do, and nothing fails
    with heap.retained():
        pass


def test_keep_holds_the_heap_for_the_rest_of_the_process(libc, monkeypatch):
    assert heap.keep()
    with heap.retained():
        pass
    assert all(value == heap._RETAIN for _, value in libc.calls)  # a fit ending does not undo keep()
    monkeypatch.setattr(heap, "ENABLED", False)
    assert not heap.keep()


def test_a_glibc_that_caps_the_mmap_threshold_gets_its_largest_one(libc):
    libc.cap = 32 << 20
    with heap.retained():
        assert libc.calls[:3] == [(heap._M_MMAP_THRESHOLD, heap._RETAIN), (heap._M_MMAP_THRESHOLD, 32 << 20),
                                  (heap._M_TRIM_THRESHOLD, heap._RETAIN)]
