"""Weights files that borrow tensors from another one beside them (nicodec/weights.py): the same
model, stored once; a missing or changed lender is a one-line error, never a different model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import nicodec
from nicodec.cli import main
from nicodec.errors import NicodecError
from nicodec.training.transfer import transfer_model
from nicodec.weights import lender_names, load_weights, read_metadata, save_weights, stored_bytes, weights_id

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def family(tmp_path) -> tuple[Path, Path, nicodec.Codec]:
    """A tiny meanscale file and a factorized model on its transforms (as the shipped ones are)."""
    lender = tmp_path / "meanscale.safetensors"
    meanscale = nicodec.create("meanscale", N=8, M=12, levels=2, seed=0)
    meanscale.save(lender)
    factorized = transfer_model(load_weights(lender)[0], "factorized")
    factorized.update()
    path = tmp_path / "factorized.safetensors"
    save_weights(path, factorized, {"trained": True}, lender=lender)
    return lender, path, nicodec.Codec(factorized, {})


def test_a_borrowing_file_holds_only_its_own_tensors_and_loads_as_the_same_model(family):
    lender, path, factorized = family
    with safe_open(str(path), framework="pt") as f:
        stored = set(f.keys())
    assert stored and all(k.startswith("y_model.") for k in stored)  # g_a, g_s and the gains are borrowed
    meta = read_metadata(path)
    assert meta["borrowed"]["from"] == "meanscale.safetensors" and len(meta["borrowed"]["tensors"]) > len(stored)
    loaded = nicodec.load(str(path))
    assert loaded.weights_id == factorized.weights_id
    image = nicodec.sample_image().crop((0, 0, 64, 48))
    assert loaded.compress(image, quality=1.5) == factorized.compress(image, quality=1.5)


def test_a_missing_or_changed_lender_is_an_error(family, tmp_path):
    lender, path, _ = family
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(path, alone / path.name)
    with pytest.raises(NicodecError, match="not beside it"):
        load_weights(alone / path.name)
    with pytest.raises(NicodecError, match="not beside it"):  # sizing it (nicodec models) checks the same
        stored_bytes(alone / path.name)
    nicodec.create("meanscale", N=8, M=12, levels=2, seed=1).save(lender)  # other transforms, same names
    with pytest.raises(NicodecError, match="has changed"):
        load_weights(path)


def test_damaged_borrowing_metadata_is_an_error(family):
    _, path, _ = family
    meta = read_metadata(path)
    meta["borrowed"] = {"from": meta["borrowed"]["from"]}  # the tensor list and digest lost
    save_file(load_file(str(path)), str(path), metadata={"nicodec": json.dumps(meta)})
    with pytest.raises(NicodecError, match="damaged metadata"):
        load_weights(path)
    meta["borrowed"] = {**read_metadata(path)["borrowed"], "from": "../elsewhere/meanscale.safetensors", "tensors": [], "digest": ""}
    save_file(load_file(str(path)), str(path), metadata={"nicodec": json.dumps(meta)})
    with pytest.raises(NicodecError, match="not a file name"):
        load_weights(path)


def test_lenders_must_be_beside_the_file(family, tmp_path):
    lender, path, factorized = family
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(NicodecError, match="same folder"):
        save_weights(elsewhere / "f.safetensors", factorized.model, lender=lender)
    stranger = nicodec.create("factorized", N=4, M=6, levels=1)
    with pytest.raises(NicodecError, match="nothing to borrow"):
        save_weights(tmp_path / "h.safetensors", stranger.model, lender=lender)


def test_the_script_shares_and_unshares_without_changing_the_model(family, tmp_path):
    lender, path, factorized = family
    full = tmp_path / "full.safetensors"
    script = [sys.executable, str(ROOT / "scripts" / "share_weights.py")]
    run = subprocess.run([*script, str(path), "--standalone", "-o", str(full)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "borrowed" not in read_metadata(full) and full.stat().st_size > 5 * path.stat().st_size
    lender.unlink()  # a standalone file needs nothing beside it
    assert weights_id(load_weights(full)[0]) == factorized.weights_id
    run = subprocess.run([*script, str(full), "--lender", str(tmp_path / "missing.safetensors")], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.startswith("share_weights: error:") and len(run.stderr.splitlines()) == 1


def test_the_shipped_models_store_meanscale_s_transforms_once(capsys):
    shipped = nicodec.shipped_weights()
    for name in ("factorized", "hyperprior", "meanscale"):
        meta = read_metadata(shipped[name])
        records = meta["borrowed"] if isinstance(meta["borrowed"], list) else [meta["borrowed"]]
        assert "meanscale.safetensors" in lender_names(meta["borrowed"]), name
        borrowed = {t for r in records if r["from"] == "meanscale.safetensors" for t in r["tensors"]}
        assert {k for k in borrowed if k.startswith(("g_a.", "g_s."))}, name
        model = nicodec.load(name).model
        lender = nicodec.load("meanscale").model.state_dict()
        assert all(torch.equal(model.state_dict()[k], lender[k]) for k in borrowed)
    total = sum(p.stat().st_size for p in shipped["meanscale"].parent.glob("*.safetensors"))  # every release
    assert total < 24e6, f"released weights take {total / 1e6:.1f} MB"
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.count("MB shared with meanscale.safetensors") == 5  # every file but meanscale's first


def test_a_file_can_borrow_from_several_lenders_but_only_what_each_stores_itself(family, tmp_path):
    lender, path, factorized = family  # path stores the gains and density, borrows the transforms
    only_own = tmp_path / "g.safetensors"
    save_weights(only_own, factorized.model, lender=path)
    assert set(read_metadata(only_own)["borrowed"]["tensors"]) == set(load_file(str(path)))
    both = tmp_path / "h.safetensors"
    save_weights(both, factorized.model, lender=[lender, path])
    records = read_metadata(both)["borrowed"]
    assert [r["from"] for r in records] == [lender.name, path.name]
    assert len(load_file(str(both))) == 0  # everything borrowed
    assert weights_id(load_weights(both)[0]) == factorized.weights_id
