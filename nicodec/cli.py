"""The ``nicodec`` command: compress, decompress, info, models, demo (+ train, eval, ... from
their own modules, registered through ``_REGISTRARS``).

Exit status: 0 success, 2 user error (one line on stderr), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
import time
import warnings
from pathlib import Path

from .errors import NicodecError

_REGISTRARS: list[str] = ["nicodec.evaluation.cli", "nicodec.training.cli"]  # modules with register(subparsers) adding more subcommands


def _codec(model: str):
    from . import zoo

    return zoo.load(model)


STDIO = Path("-")  # as an input: standard input; as an output: standard output


def _check_output(path: Path, force: bool, *inputs: Path) -> None:
    if path == STDIO:
        if sys.stdout.isatty():
            raise NicodecError("refusing to write binary data to a terminal: redirect it, or give -o FILE")
        return
    if any(path.resolve() == p.resolve() for p in inputs if p != STDIO):
        raise NicodecError(f"refusing to overwrite the input {path}")
    if path.exists() and not force:
        raise NicodecError(f"{path} exists: use --force to overwrite it")
    if not path.parent.is_dir():
        raise NicodecError(f"output folder {path.parent} does not exist")


def _read_bytes(path: Path) -> bytes:
    if path == STDIO:
        data = sys.stdin.buffer.read()
        if not data:
            raise NicodecError("nothing to read on standard input")
        return data
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NicodecError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise NicodecError(f"{path} is a directory") from None
    except OSError as exc:
        raise NicodecError(f"cannot read {path}: {exc.strerror}") from None


def _outputs(inputs: list[str], output: str | None, name) -> list[tuple[Path, Path]]:
    """(input, output) pairs: outputs beside their inputs (``name(src)``), or ``-o``: the output
    file for one input, the folder they go into for one or several."""
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
    pairs = [(src, target / name(src)) for src in sources]
    seen: dict[Path, Path] = {}
    for src, out in pairs:
        if out in seen:
            raise NicodecError(f"{seen[out]} and {src} would both be written to {out}")
        seen[out] = src
    return pairs


def _each(pairs: list[tuple[Path, Path]], work) -> int:
    """Run ``work(src, out)`` on every pair. With several, a failing file is reported on one line
    and the others still run; the exit status says whether any failed."""
    if len(pairs) == 1:
        work(*pairs[0])
        return 0
    failed = 0
    for src, out in pairs:
        try:
            work(src, out)
        except NicodecError as exc:
            print(f"nicodec: error: {exc}", file=sys.stderr)
            failed += 1
    if failed:
        print(f"nicodec: {failed} of {len(pairs)} files failed", file=sys.stderr)
    return 2 if failed else 0


def cmd_compress(args) -> int:
    pairs = _outputs(args.input, args.output, lambda src: src.with_suffix(".nic").name)
    codec = _codec(args.model)
    return _each(pairs, lambda src, out: _compress_one(codec, src, out, args))


def _compress_one(codec, src: Path, out: Path, args) -> None:
    from . import container
    from .codec import UnrefinedWarning
    from .images import open_image, orientation

    _check_output(out, args.force, src)
    image = open_image(io.BytesIO(_read_bytes(src)), name="standard input") if src == STDIO else open_image(src)
    w, h = image.size
    budget = args.max_bytes if args.bpp is None else _bpp_budget(args.bpp, w * h)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnrefinedWarning)
        data = codec.compress(image, quality=args.quality, refine=args.refine, max_bytes=budget,
                              progress=sys.stderr.isatty())
    seconds = time.perf_counter() - start
    unrefined = any(issubclass(warning.category, UnrefinedWarning) for warning in caught)
    refine_note = "" if not args.refine else (
        ", unrefined (the refined file did not fit)" if unrefined else f", refined {args.refine} steps")
    _write(out, data)
    nic = container.unpack(data)
    notes = refine_note + (", turned upright (EXIF orientation)" if orientation(image) != 1 else "")
    if container.ICC in nic.metadata:
        notes += f", ICC profile kept ({len(nic.metadata[container.ICC]):,} bytes)"
    _report(
        f"{_shown(src)} ({nic.width}x{nic.height} {image.mode}) -> {_shown(out, 'stdout')}: {len(data):,} bytes, {len(data) * 8 / (w * h):.4f} bpp, "
        f"{codec.name} quality {nic.quality:g}{f' (fitted to {budget:,} bytes)' if budget else ''}"
        f"{notes}, {seconds:.2f} s", out
    )


def _write(out: Path, data: bytes) -> None:
    """``data`` to standard output, or atomically to the file ``out``; a failed write (a full
    disk, a directory in the way, a closed pipe) is a one-line error that leaves nothing behind."""
    from .weights import atomic_write_bytes

    try:
        if out == STDIO:
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            atomic_write_bytes(out, data)
    except OSError as exc:
        raise NicodecError(f"cannot write {_shown(out, 'stdout')}: {exc.strerror or exc}") from None


def _shown(path: Path, stream: str = "stdin") -> str:
    return f"<{stream}>" if path == STDIO else str(path)


def _report(line: str, out: Path) -> None:
    """What a command did, on stdout unless stdout carries the data."""
    print(line, file=sys.stderr if out == STDIO else sys.stdout)


def _bpp_budget(bpp: float, pixels: int) -> int:
    if not bpp > 0:
        raise NicodecError(f"--bpp must be positive, got {bpp}")
    return max(1, int(bpp * pixels / 8))


def cmd_decompress(args) -> int:
    pairs = _outputs(args.input, args.output, lambda src: src.stem + ".decoded.png")
    codec = _codec(args.model) if args.model else None
    return _each(pairs, lambda src, out: _decompress_one(codec, src, out, args.force))


def _decompress_one(codec, src: Path, out: Path, force: bool) -> None:
    from . import zoo

    _check_output(out, force, src)
    data = _read_bytes(src)
    start = time.perf_counter()
    image = zoo.decompress(data, codec)
    seconds = time.perf_counter() - start
    fmt = "PNG" if out == STDIO or not out.suffix else _format_for(out)
    icc = {"icc_profile": image.info["icc_profile"]} if "icc_profile" in image.info else {}
    encoded = io.BytesIO()
    try:
        image.save(encoded, format=fmt, **icc)
    except (ValueError, KeyError, OSError) as exc:  # e.g. alpha into JPEG
        raise NicodecError(f"cannot write {out} as {fmt}: {exc}") from None
    _write(out, encoded.getvalue())
    w, h = image.size
    _report(f"{_shown(src)} ({len(data):,} bytes) -> {_shown(out, 'stdout')}: {w}x{h} {image.mode}, {seconds:.2f} s", out)


def _format_for(path: Path) -> str:
    from PIL import Image

    Image.init()
    fmt = Image.EXTENSION.get(path.suffix.lower())
    if fmt is None:
        raise NicodecError(f"unknown image extension {path.suffix!r} for {path}")
    return fmt


def cmd_info(args) -> int:
    from . import container
    from .images import MODES

    src = Path(args.input)
    data = _read_bytes(src)
    nic = container.unpack(data)
    pixels = nic.width * nic.height
    print(f"file:       {src}")
    print(f"format:     .nic version {nic.version}")
    print(f"model:      {nic.model} (weights {nic.weights_id.hex()})")
    print(f"quality:    {nic.quality:g}")
    print(f"image:      {nic.width}x{nic.height} {MODES[nic.mode]}")
    print(f"size:       {len(data):,} bytes, {len(data) * 8 / pixels:.4f} bpp")
    lengths = ", ".join(f"{len(s):,}" for s in nic.streams[:-1])
    streams = len(nic.streams) + bool(nic.metadata)
    print(f"streams:    {lengths} bytes; alpha {len(nic.streams[-1]):,} bytes; header {container.header_size(streams)} bytes")
    for tag, value in nic.metadata.items():
        what = "ICC profile" if tag == container.ICC else f"metadata {tag!r}"
        print(f"{'metadata:':<12}{what}, {len(value):,} bytes")
    return 0


def cmd_models(args) -> int:
    from . import releases
    from .codec import default_quality
    from .models import ARCHITECTURES, ScaleHyperprior
    from .weights import megabytes, read_metadata, stored_bytes
    from .zoo import DEFAULT_MODEL

    for name, cls in ARCHITECTURES.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        tag = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{tag}\n    {doc}")
        found = [r for r in releases.releases() if r.architecture == name]
        if not found:
            print("    weights: not shipped in this build")
        for release in reversed(found):
            meta = read_metadata(release.path)
            c = meta["config"]
            lambdas = meta.get("lambdas") or []
            trained = f" (λ {lambdas[0]:g}–{lambdas[-1]:g} {meta.get('distortion', 'mse')})" if lambdas else ""
            own, shared, lender = stored_bytes(release.path)
            size = f"{megabytes(own)} MB" + (f" + {megabytes(shared)} MB shared with {lender}" if lender else "")
            current = " — current" if release is found[-1] else ""
            print(f"    release {release.release} ({release.date}){current}: {release.path.name}, id {release.weights_id}")
            print(f"        N={c['N']} M={c['M']}, quality 1–{c['levels']}{trained}, default {default_quality(meta, c['levels']):g}, "
                  f"{size}; codes .nic version {1 if issubclass(cls, ScaleHyperprior) and not c.get('integer_hyper') else 3}")
    return 0


def cmd_demo(args) -> int:
    import numpy as np

    from . import zoo
    from .images import open_image

    sample = zoo.SAMPLE
    image = open_image(sample).convert("RGB")
    if args.model in zoo.shipped_weights() or Path(args.model).suffix == ".safetensors":
        codec = zoo.load(args.model)
        what = f"{codec.name} ({'shipped weights' if args.model in zoo.shipped_weights() else args.model})"
    else:
        codec = zoo.create(args.model, N=64, M=96, levels=6)
        what = f"{codec.name} UNTRAINED (no shipped weights in this build: numbers are meaningless)"
    w, h = image.size
    print(f"sample: {sample.name}, {w}x{h}; model: {what}")
    qualities = [args.quality] if args.quality is not None else [1.0, codec.default_quality, float(codec.levels)]
    reference = np.asarray(image, dtype=np.float64)
    for q in qualities:
        t0 = time.perf_counter()
        data = codec.compress(image, quality=q)
        t1 = time.perf_counter()
        decoded = zoo.decompress(data, codec)
        t2 = time.perf_counter()
        mse = np.mean((np.asarray(decoded, dtype=np.float64) - reference) ** 2)
        psnr = 10 * np.log10(255**2 / mse) if mse > 0 else float("inf")
        print(
            f"quality {q:4.2f}: {len(data):7,} bytes  {len(data) * 8 / (w * h):.4f} bpp  PSNR {psnr:6.2f} dB  "
            f"encode {t1 - t0:.2f} s  decode {t2 - t1:.2f} s"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .zoo import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="nicodec", description="Learned lossy image compression.")
    parser.add_argument("--version", action="version", version=f"nicodec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("compress", help="compress an image to a .nic file")
    p.add_argument("input", nargs="+", help="image file(s) (PNG, JPEG, ...); - reads standard input")
    p.add_argument("-o", "--output", help="output .nic file, the folder outputs go into, or - for standard "
                   "output (default: each INPUT with .nic suffix)")
    p.add_argument("-m", "--model", default=DEFAULT_MODEL, help="model name or weights .safetensors file")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=float, help="quality in [1, levels] (fractional allowed)")
    rate.add_argument("--max-bytes", type=int, metavar="N", help="the highest quality whose file fits in N bytes")
    rate.add_argument("--bpp", type=float, help="the highest quality whose file takes at most BPP bits per pixel")
    p.add_argument(
        "-r", "--refine", type=int, default=0, metavar="STEPS",
        help="encode with STEPS steps of latent refinement (50 steps: 7-10 %% fewer bits at the same quality "
        "on Kodak; ~1 s per step for a 768x512 image on 2 CPU cores); default 0 (off)",
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decode a .nic file to an image")
    p.add_argument("input", nargs="+", help=".nic file(s); - reads standard input")
    p.add_argument("-o", "--output", help="output image, format from its suffix; the folder outputs go "
                   "into as PNG; or - for PNG on standard output (default: each INPUT.decoded.png)")
    p.add_argument("-m", "--model", help="weights .safetensors file, for files made with weights not shipped here")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(func=cmd_decompress)

    p = sub.add_parser("info", help="show a .nic file's header")
    p.add_argument("input")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("models", help="list architectures and shipped weights")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="compress the bundled sample image and report size, bpp, PSNR, time")
    p.add_argument("-m", "--model", default=DEFAULT_MODEL)
    p.add_argument("-q", "--quality", type=float)
    p.set_defaults(func=cmd_demo)

    for module in _REGISTRARS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NicodecError as exc:
        print(f"nicodec: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nicodec: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a bare traceback for users; NICODEC_DEBUG=1 shows it
        if os.environ.get("NICODEC_DEBUG"):
            raise
        print(f"nicodec: internal error: {exc.__class__.__name__}: {exc} (NICODEC_DEBUG=1 shows details)", file=sys.stderr)
        return 1
