"""A command plans all its outputs before writing any: no input is ever overwritten, no output is
written twice, whatever --force says; a standard output that cannot be written is a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nicodec
from nicodec.cli import main


@pytest.fixture
def workspace(tmp_path, rng):
    codec = nicodec.create("factorized", N=8, M=8, levels=3, seed=0)
    weights = tmp_path / "tiny.safetensors"
    codec.save(weights)
    for name in ("p.png", "q.png"):
        Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(tmp_path / name)
    return tmp_path, weights


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _refused(argv, weights, capsys, message: str) -> None:
    assert main([*argv, "--model", str(weights)]) == 2, argv
    err = capsys.readouterr().err
    assert err.startswith("nicodec: error:") and err.count("\n") == 1 and message in err, err


def test_an_input_named_like_another_inputs_output_is_never_overwritten_even_with_force(workspace, capsys):
    tmp, weights = workspace
    Image.new("RGB", (8, 8), "red").save(tmp / "p.nic", format="JPEG")  # a JPEG that happens to be called p.nic
    before = _contents(tmp)
    for force in ([], ["--force"]):
        _refused(["compress", str(tmp / "p.png"), str(tmp / "p.nic"), *force], weights, capsys, "input")
    assert _contents(tmp) == before


def test_decompress_never_overwrites_an_input_that_is_another_inputs_output(workspace, capsys):
    tmp, weights = workspace
    assert main(["compress", str(tmp / "p.png"), "-o", str(tmp / "x.nic"), "--model", str(weights)]) == 0
    Image.new("RGB", (8, 8)).save(tmp / "x.decoded.png")  # also an input below
    capsys.readouterr()
    before = _contents(tmp)
    _refused(["decompress", str(tmp / "x.nic"), str(tmp / "x.decoded.png"), "--force"], weights, capsys, "input")
    assert _contents(tmp) == before


def test_two_inputs_sharing_an_output_are_refused_before_anything_is_written(workspace, capsys):
    tmp, weights = workspace
    Image.open(tmp / "q.png").save(tmp / "q.webp", lossless=True)
    before = _contents(tmp)
    for force in ([], ["--force"]):
        _refused(["compress", str(tmp / "q.png"), str(tmp / "q.webp"), *force], weights, capsys, "would both be written")
    assert _contents(tmp) == before  # no q.nic at all: nothing written before the refusal


def test_an_output_that_is_a_hard_link_or_symlink_of_an_input_is_refused(workspace, capsys):
    tmp, weights = workspace
    os.link(tmp / "p.png", tmp / "linked.nic")
    os.symlink(tmp / "q.png", tmp / "symlinked.nic")
    before = _contents(tmp)
    _refused(["compress", str(tmp / "p.png"), "-o", str(tmp / "linked.nic"), "--force"], weights, capsys, "same file")
    _refused(["compress", str(tmp / "q.png"), "-o", str(tmp / "symlinked.nic"), "--force"], weights, capsys, "input")
    assert _contents(tmp) == before


def test_existing_outputs_are_refused_up_front_without_force(workspace, capsys):
    tmp, weights = workspace
    (tmp / "q.nic").write_bytes(b"keep me")
    _refused(["compress", str(tmp / "p.png"), str(tmp / "q.png")], weights, capsys, "q.nic exists: use --force")
    assert not (tmp / "p.nic").exists() and (tmp / "q.nic").read_bytes() == b"keep me"  # p.nic not written either
    assert main(["compress", str(tmp / "p.png"), str(tmp / "q.png"), "--force", "--model", str(weights)]) == 0
    assert (tmp / "q.nic").read_bytes()[:4] == b"\x89NIC"


class _FullStream:
    """A standard output on a full disk: every write and flush fails, as on /dev/full."""

    buffer = property(lambda self: self)

    def write(self, data):
        raise OSError(28, "No space left on device")

    flush = write

    def isatty(self) -> bool:
        return False


def test_a_standard_output_that_cannot_be_written_is_a_one_line_error_and_leaves_no_file(workspace, monkeypatch, capsys):
    tmp, weights = workspace
    assert main(["compress", str(tmp / "q.png"), "--model", str(weights)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _FullStream())
    cases = [
        (["compress", str(tmp / "p.png"), "--model", str(weights)], tmp / "p.nic"),  # the report line fails
        (["compress", str(tmp / "p.png"), "-o", "-", "--model", str(weights)], None),  # the data fails
        (["info", str(tmp / "q.nic")], None),
    ]
    for argv, output in cases:
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == "nicodec: error: cannot write to standard output: No space left on device\n", argv
        assert output is None or not output.exists()
    assert not [p.name for p in tmp.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_behind_standard_output_is_the_same_error_from_a_real_process(workspace):
    tmp, weights = workspace
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "nicodec", "compress", str(tmp / "p.png"), "--model", str(weights)],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "nicodec: error: cannot write to standard output: No space left on device\n"
    assert not (tmp / "p.nic").exists() and not [p.name for p in tmp.iterdir() if p.name.startswith(".")]
