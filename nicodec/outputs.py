"""Where a command writes: every (input, output) pair planned and checked before anything is
read or written.

Checking each output just before writing it lets an earlier write destroy a later input
(``nicodec compress p.png p.nic --force`` wrote p.nic from p.png, then found p.nic was an input)
or one input's output replace another's (``compress q.png q.webp``: q.nic twice). So the whole
plan is checked first: an output that is any input of the command (the same path, a symlink to it
or a hard link of it) or that two inputs share is refused, ``--force`` or not, and existing
outputs without ``--force`` are refused before any work is done.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import NicodecError

STDIO = Path("-")  # as an input: standard input; as an output: standard output
Pair = tuple[Path, Path]  # (input, output)


def plan(inputs: list[str], output: str | None, name: Callable[[Path], str], force: bool) -> list[Pair]:
    """The (input, output) pairs of a command, checked as a whole (see the module docstring).

    Outputs go beside their inputs (``name(input)``), or ``output`` is the file for one input,
    the folder they all go into, or ``-`` (standard output, one input)."""
    pairs = _pairs(inputs, output, name)
    check(pairs, force)
    return pairs


def _pairs(inputs: list[str], output: str | None, name: Callable[[Path], str]) -> list[Pair]:
    sources = [Path(i) for i in inputs]
    if sources.count(STDIO) and len(sources) > 1:
        raise NicodecError("standard input (-) can only be the one input")
    if output == "-":
        if len(sources) > 1:
            raise NicodecError("standard output (-o -) takes one input")
        return [(sources[0], STDIO)]
    if output is None:
        if sources == [STDIO]:
            raise NicodecError("reading standard input: give -o FILE, or -o - for standard output")
        return [(src, src.with_name(name(src))) for src in sources]
    target = Path(output)
    if not target.is_dir():
        if output.endswith(("/", os.sep)):
            raise NicodecError(f"output folder {target} does not exist")
        if len(sources) > 1:
            raise NicodecError(f"with several inputs, -o names a folder, and {target} is not one")
        return [(sources[0], target)]
    return [(src, target / name(src)) for src in sources]


def check(pairs: list[Pair], force: bool) -> None:
    """Refuse the plan (NicodecError, one line) if it would overwrite an input, write one output
    twice, write binary data to a terminal, or (without ``force``) replace an existing file."""
    inputs = [src for src, _ in pairs if src != STDIO]
    input_paths = {_resolved(src): src for src in inputs}
    input_files = {key: src for src in inputs if (key := _file_key(src)) is not None}
    written: dict[Path, Path] = {}
    for src, out in pairs:
        if out == STDIO:
            if sys.stdout.isatty():
                raise NicodecError("refusing to write binary data to a terminal: redirect it, or give -o FILE")
            continue
        resolved = _resolved(out)
        same = input_paths.get(resolved) or input_files.get(_file_key(out))
        if same is not None:
            what = "" if resolved == _resolved(same) else f" ({out} is the same file as {same})"
            raise NicodecError(f"refusing to overwrite the input {same}{what}: choose another output")
        if resolved in written:
            raise NicodecError(f"{written[resolved]} and {src} would both be written to {out}")
        written[resolved] = src
        if out.is_dir():
            raise NicodecError(f"cannot write {out}: a folder is in the way")
        if not out.parent.is_dir():
            raise NicodecError(f"output folder {out.parent} does not exist")
    existing = [out for _, out in pairs if out != STDIO and os.path.lexists(out)]
    if existing and not force:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise NicodecError(f"{existing[0]} exists{more}: use --force to overwrite it")


def _resolved(path: Path) -> Path:
    return Path(os.path.normcase(path.resolve()))


def _file_key(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: hard links of one file share it."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
