"""The fuzz corpus: damaged ``.nic`` files and weights files made deterministically from tiny
valid ones, and the harness that feeds them all to nicodec under a memory limit.

``python tests/fuzz_corpus.py`` builds the corpus, limits its own address space
(``RLIMIT_AS``) to what it has after setting up plus ``--limit-mb``, runs every case and prints
one JSON line: the number of cases, what each ended in, the failures (any exception that is not
a NicodecError, or a MemoryError anywhere in an error's chain) and the growth of its peak memory.
``tests/test_fuzz.py`` runs it in CI.

The mutations reach past the checksum: most of them recompute the CRC, so that the decoder
itself meets bit flips, edited header fields (huge or tiny sizes, other modes and qualities,
stream counts), swapped, dropped, truncated or foreign streams, and zlib bombs in the alpha and
metadata streams.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import shutil
import struct
import sys
import tempfile
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

FUZZ_MAX_PIXELS = 1 << 16  # the decoder's limit for the corpus: sizes above it are refused from the header
HUGE_SIZES = [(32768, 32768), (32768, 8192), (20000, 10000), (13400, 13400)]  # above the default limit too


# --- the container, written independently of nicodec's writer so that anything can be damaged ---

def _header():
    from nicodec import container

    return [name for name, _ in container.HEADER], struct.Struct("<" + "".join(code for _, code in container.HEADER))


def parse(data: bytes) -> tuple[dict, list[bytes]]:
    names, head = _header()
    fields = dict(zip(names, head.unpack_from(data)))
    n = fields["n_streams"]
    lengths = struct.unpack_from(f"<{n}I", data, head.size)
    payload = data[head.size + 4 * n + 4:]
    streams, offset = [], 0
    for length in lengths:
        streams.append(payload[offset:offset + length])
        offset += length
    return fields, streams


def build(fields: dict, streams: list[bytes], lengths: list[int] | None = None) -> bytes:
    """A file of these fields and streams with a correct CRC (``lengths`` may lie)."""
    names, head = _header()
    fields = {**fields, "n_streams": len(lengths if lengths is not None else streams) % 256}
    data = head.pack(*(fields[name] for name in names))
    lengths = [len(s) for s in streams] if lengths is None else lengths
    data += struct.pack(f"<{len(lengths)}I", *(v % 2**32 for v in lengths))
    payload = b"".join(streams)
    return data + struct.pack("<I", zlib.crc32(payload, zlib.crc32(data))) + payload


def fix_crc(data: bytes) -> bytes:
    """``data`` with the CRC recomputed where its (possibly damaged) header puts it."""
    names, head = _header()
    if len(data) < head.size:
        return data
    n = data[head.size - 1]
    at = head.size + 4 * n
    if len(data) < at + 4:
        return data
    crc = zlib.crc32(data[at + 4:], zlib.crc32(data[:at]))
    return data[:at] + struct.pack("<I", crc) + data[at + 4:]


# --- damaged .nic files ---

def _flip(data: bytes, rng: random.Random, bits: int, start: int = 4) -> bytes:
    damaged = bytearray(data)
    for _ in range(bits):
        position = rng.randrange(start, len(damaged))
        damaged[position] ^= 1 << rng.randrange(8)
    return bytes(damaged)


_ZLIB_BOMB = zlib.compress(bytes(1 << 24), 9)  # 16 MB of zeros in ~16 KB


def damaged_files(data: bytes, rng: random.Random, levels: int) -> Iterator[tuple[str, bytes]]:
    """About 100 damaged versions of one valid file, labelled by kind."""
    fields, streams = parse(data)
    model_streams, alpha = streams[:-1 - (fields["version"] == 2)], streams[-1 - (fields["version"] == 2)]
    metadata = streams[-1:] if fields["version"] == 2 else []

    def edit(**changes) -> bytes:
        return build({**fields, **changes}, streams)

    for i in range(24):
        yield "bit flips, CRC fixed", fix_crc(_flip(data, rng, 1 + i % 4))
    for i in range(4):
        yield "bit flips", _flip(data, rng, 1 + i)
    for _ in range(8):
        yield "truncated", data[: rng.randrange(len(data))]
    yield "empty", b""
    yield "trailing bytes", data + b"\0\0\0\0"
    for side in (0, 1, 2, 15, 16, 17, 63, 64, 65, 255, 256, 257, 32767, 32768, 32769, 2**31, 2**32 - 1):
        yield "width", edit(width=side)
        yield "height", edit(height=side)
    for width, height in ((256, 256), (255, 257), (1, 65536), (65536, 1), (300, 300), *HUGE_SIZES):
        yield "size", edit(width=width, height=height)
    for mode in (0, 1, 2, 3, 4, 255):
        yield "mode", edit(mode=mode)
    for quality in (float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.0, 0.999, levels + 1e-3, 1e30, -1.0, 1.5):
        yield "quality", edit(quality=quality)
    for version in (0, 3, 255):
        yield "version", edit(version=version)
    for model in (b"factorized", b"hyperprior", b"meanscale", b"\xff" * 16, b"", b"x" * 16):
        yield "model", edit(model=model)
    yield "weights id", edit(weights_id=bytes(8))
    yield "param crc", edit(param_crc=fields["param_crc"] ^ 1)
    # streams: reordered, dropped, duplicated, emptied, foreign
    yield "streams reversed", build(fields, streams[::-1])
    yield "no model stream", build(fields, [alpha, *metadata])
    yield "model stream twice", build(fields, [*model_streams, *model_streams, alpha, *metadata])
    yield "no streams", build(fields, [])
    yield "extra stream", build(fields, [*streams, b"\0" * 8])
    yield "seventeen streams", build(fields, [b""] * 17)
    for i in range(len(model_streams)):
        for name, stream in (("empty", b""), ("zeros", bytes(64)), ("random", rng.randbytes(4 * rng.randrange(1, 64))),
                             ("odd length", model_streams[i][:-1]), ("halved", model_streams[i][: len(model_streams[i]) // 8 * 4])):
            changed = list(streams)
            changed[i] = stream
            yield f"model stream {name}", build(fields, changed)
            if name in ("empty", "zeros"):  # a flat image: a handful of bytes for many pixels
                yield f"model stream {name}, large", build({**fields, "width": 256, "height": 256}, changed)
                yield f"model stream {name}, huge", build({**fields, "width": 32768, "height": 32768}, changed)
    if len(model_streams) > 1:
        yield "model streams swapped", build(fields, [*model_streams[::-1], alpha, *metadata])
    alpha_at = len(model_streams)
    for name, stream in (("zlib bomb", _ZLIB_BOMB), ("garbage", rng.randbytes(100)), ("empty", b""),
                         ("short", zlib.compress(bytes(10))), ("one byte", b"\x78")):
        changed = list(streams)
        changed[alpha_at] = stream
        for mode in (1, 3, 2):
            yield f"alpha {name}", build({**fields, "mode": mode}, changed)
        yield f"alpha {name}, large", build({**fields, "mode": 3, "width": 256, "height": 256}, changed)
        yield f"alpha {name}, huge", build({**fields, "mode": 3, "width": 32768, "height": 32768}, changed)
    for name, stream in (("zlib bomb", _ZLIB_BOMB), ("garbage", rng.randbytes(50)), ("empty", b""),
                         ("long record", zlib.compress(b"ICC \xff\xff\xff\x7f")), ("short record", zlib.compress(b"ICC")),
                         ("two tags", zlib.compress(b"ICC \x01\x00\x00\x00xXtra\x00\x00\x00\x00"))):
        yield f"metadata {name}", build({**fields, "version": 2}, [*model_streams, alpha, stream])
    yield "lengths lie", build(fields, streams, [len(s) + 4 for s in streams])
    yield "lengths huge", build(fields, streams, [2**32 - 1] * len(streams))


# --- damaged weights files ---

def _save(path: Path, tensors: dict, meta) -> None:
    from safetensors.torch import save_file

    raw = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors, str(path), metadata={"nicodec": raw})


def weights_cases(folder: Path, rng: random.Random) -> Iterator[tuple[str, Path]]:
    """Damaged weights files (about 150), each in its own file; a borrowing one with its lender beside."""
    from safetensors.torch import load_file

    import nicodec
    from nicodec.training.transfer import transfer_model
    from nicodec.weights import load_weights, read_metadata, save_weights

    base = folder / "base"
    base.mkdir()
    lender = base / "meanscale.safetensors"
    nicodec.create("meanscale", N=8, M=12, levels=3, seed=0).save(lender)
    factorized = transfer_model(load_weights(lender)[0], "factorized")
    factorized.update()
    save_weights(base / "factorized.safetensors", factorized, {"trained": True}, lender=lender)
    tensors, meta = load_file(str(lender)), read_metadata(lender)
    counter = iter(range(10**6))

    def case(tensors: dict, meta) -> Path:
        path = folder / f"w{next(counter)}.safetensors"
        _save(path, tensors, meta)
        return path

    yield "valid", lender
    for raw in ("", "{", "null", "[]", "1", '"x"', "{}", '{"format": "nicodec-weights-1"}', "\u00ff", "1" * 5000,
                json.dumps({**meta, "config": None}), json.dumps(meta)[:-1]):
        yield "metadata not usable JSON", case(tensors, raw)
    for key in ("format", "architecture", "config"):
        yield f"metadata without {key}", case(tensors, {k: v for k, v in meta.items() if k != key})
    for value in ("8", 8.0, True, None, -1, 0, 1025, 2500, 10**30, [8], {"n": 8}):
        for key in ("N", "M", "levels"):
            yield f"config {key} = {value!r}", case(tensors, {**meta, "config": {**meta["config"], key: value}})
    for key in ("N", "M", "levels"):
        yield f"config without {key}", case(tensors, {**meta, "config": {k: v for k, v in meta["config"].items() if k != key}})
    yield "config unknown key", case(tensors, {**meta, "config": {**meta["config"], "K": 3}})
    yield "config huge", case(tensors, {**meta, "config": {"N": 2500, "M": 2500, "levels": 3}})
    yield "config large, tensors small", case(tensors, {**meta, "config": {"N": 1024, "M": 1024, "levels": 64}})
    for arch in ("factorized", "hyperprior", "nope", 3, None, ""):
        yield f"architecture {arch!r}", case(tensors, {**meta, "architecture": arch})
    for key, value in (("lambdas", "x"), ("lambdas", [1, "a"]), ("lambdas", [float("nan")]), ("lambdas", [-1.0]),
                       ("distortion", 3), ("default_quality", "six"), ("format", "other"), ("extra", {"any": "thing"})):
        yield f"metadata {key} = {value!r}", case(tensors, {**meta, key: value})
    names = sorted(tensors)
    for name in rng.sample(names, 6):
        yield "tensor missing", case({k: v for k, v in tensors.items() if k != name}, meta)
        t = tensors[name]
        yield "tensor reshaped", case({**tensors, name: t.reshape(-1)}, meta)
        yield "tensor grown", case({**tensors, name: torch.cat([t.reshape(-1), t.reshape(-1)])}, meta)
        yield "tensor as int32", case({**tensors, name: t.to(torch.int32)}, meta)
        yield "tensor as bool", case({**tensors, name: t != 0}, meta)
        yield "tensor as float64", case({**tensors, name: t.double()}, meta)
        yield "tensor as bfloat16", case({**tensors, name: t.bfloat16()}, meta)
        if t.is_floating_point() and t.numel():
            yield "tensor NaN", case({**tensors, name: torch.full_like(t, float("nan"))}, meta)
            yield "tensor huge", case({**tensors, name: torch.full_like(t, 1e30)}, meta)
    yield "extra tensor", case({**tensors, "x.weight": torch.zeros(3)}, meta)
    yield "no tensors", case({}, meta)
    raw = lender.read_bytes()
    header_length = struct.unpack_from("<Q", raw)[0]
    for i in range(15):
        path = folder / f"w{next(counter)}.safetensors"
        path.write_bytes(raw[: rng.randrange(len(raw))])
        yield "truncated", path
    for i in range(15):
        path = folder / f"w{next(counter)}.safetensors"
        path.write_bytes(_flip(raw, rng, 1 + i % 3, start=8)[: 8 + header_length] + raw[8 + header_length:])
        yield "header bit flips", path
    for value in (0, 2**63, 2**40, len(raw)):
        path = folder / f"w{next(counter)}.safetensors"
        path.write_bytes(struct.pack("<Q", value) + raw[8:])
        yield "header length", path
    path = folder / f"w{next(counter)}.safetensors"
    path.write_bytes(rng.randbytes(100))
    yield "random bytes", path
    yield "a folder", base
    # borrowing files: their lender missing, changed, or of another shape; what they borrow damaged
    borrower_meta = read_metadata(base / "factorized.safetensors")
    borrower_tensors = load_file(str(base / "factorized.safetensors"))
    for label, lender_model, borrowed in (
        ("lender intact", "same", borrower_meta["borrowed"]),
        ("lender missing", None, borrower_meta["borrowed"]),
        ("lender changed", nicodec.create("meanscale", N=8, M=12, levels=3, seed=1), borrower_meta["borrowed"]),
        ("lender of another size", nicodec.create("meanscale", N=4, M=12, levels=3, seed=1), borrower_meta["borrowed"]),
        ("lender other architecture", nicodec.create("factorized", N=8, M=12, levels=3, seed=1), borrower_meta["borrowed"]),
        ("borrows unknown tensors", "same", {**borrower_meta["borrowed"], "tensors": ["a", "b"]}),
        ("borrows nothing", "same", {**borrower_meta["borrowed"], "tensors": []}),
        ("borrows from a path", "same", {**borrower_meta["borrowed"], "from": "../base/meanscale.safetensors"}),
        ("borrows from itself", "same", {**borrower_meta["borrowed"], "from": "factorized.safetensors"}),
        ("borrowed list damaged", "same", {**borrower_meta["borrowed"], "tensors": "g_a.0.weight"}),
        ("borrowed digest missing", "same", {k: v for k, v in borrower_meta["borrowed"].items() if k != "digest"}),
        ("borrowed not a dict", "same", ["meanscale.safetensors"]),
    ):
        family = folder / f"family{next(counter)}"
        family.mkdir()
        if lender_model == "same":
            shutil.copy(lender, family / "meanscale.safetensors")
        elif lender_model is not None:
            lender_model.save(family / "meanscale.safetensors")
        path = family / "factorized.safetensors"
        _save(path, borrower_tensors, {**borrower_meta, "borrowed": borrowed})
        yield label, path


# --- the harness ---

def _memory_error_in(exc: BaseException) -> bool:
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, MemoryError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def run(limit_mb: int) -> dict:
    from PIL import Image

    import nicodec

    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    warnings.simplefilter("ignore")  # overflow in garbage latents, Pillow's bomb warnings: not the point here
    rng = random.Random(26)
    np_rng = np.random.default_rng(26)
    codecs = {arch: nicodec.create(arch, N=8, M=12, levels=3, seed=0) for arch in ("factorized", "hyperprior", "meanscale")}
    nicodec.register_pillow(codecs.values())
    Image.MAX_IMAGE_PIXELS = FUZZ_MAX_PIXELS // 2  # Pillow refuses above twice this, as nicodec does above FUZZ_MAX_PIXELS
    images = [
        Image.fromarray(np_rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)),
        Image.fromarray(np_rng.integers(0, 256, (33, 20, 4), dtype=np.uint8), "RGBA"),
        Image.fromarray(np.tile(np.arange(70, dtype=np.uint8), (16, 1)), "L"),
        Image.fromarray(np_rng.integers(0, 256, (9, 12, 2), dtype=np.uint8), "LA"),
    ]
    from icc import icc_profile  # tests/icc.py: a real Display P3 profile (kept: version 2 files)

    images[0].info["icc_profile"] = icc_profile()
    valid = [(codec, codec.compress(image, quality=1 + 0.5 * i)) for codec in codecs.values() for i, image in enumerate(images)]
    from nicodec.overfit import FitConfig, OverfitCodec  # files that carry their own decoder (a few fitting steps)

    overfit = OverfitCodec()
    valid += [(overfit, overfit.compress(image, quality=3 + 2 * i, effort=FitConfig(iterations=4))) for i, image in enumerate(images[:2])]
    overfit.decompress(valid[-1][1])  # its compiled decoding loop, before the memory limit
    folder = Path(tempfile.mkdtemp(prefix="nicodec-fuzz-"))
    try:
        weights = list(weights_cases(folder, rng))
        cases: list[tuple[str, Callable[[], object]]] = []
        for codec, data in valid:
            for i, (label, damaged) in enumerate(damaged_files(data, rng, codec.levels)):
                cases.append((label, lambda d=damaged, c=codec: c.decompress(d, max_pixels=FUZZ_MAX_PIXELS)))
                if i % 10 == 0:  # the model found from the header (shipped weights: a mismatch), the default limit
                    cases.append((f"{label} (no codec)", lambda d=damaged: nicodec.decompress(d, max_pixels=FUZZ_MAX_PIXELS)))
                if i % 10 == 5:  # through Pillow
                    cases.append((f"{label} (Pillow)", lambda d=damaged: Image.open(io.BytesIO(d)).load()))
            for width, height in HUGE_SIZES:
                fields, streams = parse(data)
                huge = build({**fields, "width": width, "height": height}, streams)
                cases.append(("huge size, default limit", lambda d=huge, c=codec: c.decompress(d)))
        for label, path in weights:
            cases.append((f"weights: {label}", lambda p=path: nicodec.load(str(p))))

        baseline = _address_space()
        limit = baseline + limit_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        outcomes: Counter = Counter()
        failures = []
        slowest = (0.0, "")
        start = time.perf_counter()
        for label, attempt in cases:
            t0 = time.perf_counter()
            group = "weights" if label.startswith("weights:") else "files"
            try:
                attempt()
                outcomes[f"{group}: decoded"] += 1
            except nicodec.NicodecError as exc:
                outcomes[f"{group}: {type(exc).__name__}"] += 1
                if _memory_error_in(exc):
                    failures.append((label, f"{type(exc).__name__}: {exc} (from a MemoryError)"))
            except Image.DecompressionBombError:
                outcomes["files: Pillow's bomb guard"] += 1
            except BaseException as exc:  # the point: nothing else may come out
                failures.append((label, f"{type(exc).__name__}: {exc}"))
            slowest = max(slowest, (time.perf_counter() - t0, label))
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {
        "cases": len(cases), "outcomes": dict(outcomes), "failures": failures[:50], "failure_count": len(failures),
        "seconds": round(seconds, 2), "slowest": [round(slowest[0], 3), slowest[1]],
        "address_space_limit_mb": limit // 2**20, "peak_rss_growth_mb": round((peak - rss_before) / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-mb", type=int, default=1024, help="address space allowed above the set-up process")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    print(json.dumps(run(args.limit_mb)))


if __name__ == "__main__":
    main()
