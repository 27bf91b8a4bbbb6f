"""The held-out photos: a fixed part of the training folder that training never sees.

Why: a recipe tuned on Kodak's 24 images alone may be tuned to them; photos from the training
folder's own sources that no run trains on give a second, independent measure (docs/training.md,
"Held-out photos"). The rule is a pure function of the file names, so that every copy of the set
(the PNGs, the JPEG and AVIF packs carried to a GPU, which keep the names) holds out the same
photos: the ``round(fraction · n)`` distinct file stems with the smallest SHA-256 of their UTF-8
bytes. Hashing spreads the choice over the sources, which the names group (docs: SOURCES.md).
With the default 8 %, 24 of the 302 training photos are held out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path

HOLD_OUT = 0.08  # the fraction of photos held out by default: 24 of the 302


def held_out_stems(stems: Iterable[str], fraction: float = HOLD_OUT) -> frozenset[str]:
    """The stems held out of ``stems``: the ``round(fraction · n)`` with the smallest SHA-256."""
    if not 0 <= fraction < 1:
        raise ValueError(f"the held-out fraction must be in [0, 1), got {fraction}")
    unique = sorted(set(stems))
    count = round(len(unique) * fraction)
    return frozenset(sorted(unique, key=lambda s: hashlib.sha256(s.encode()).hexdigest())[:count])


def split(files: Sequence[Path], fraction: float = HOLD_OUT) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files) of ``files``, each in the given order; a file is held out
    when its stem is (so ``a.png`` and ``a.jpg`` go the same way)."""
    held = held_out_stems((f.stem for f in files), fraction)
    return [f for f in files if f.stem not in held], [f for f in files if f.stem in held]
