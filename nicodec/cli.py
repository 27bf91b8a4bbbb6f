"""The ``nicodec`` command: compress, decompress, info, models, demo (+ train, eval, ... from
their own modules, registered through ``_REGISTRARS``).

Exit status: 0 success, 2 user error (one line on stderr), 1 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import io
import math
import os
import sys
import time
import warnings
from pathlib import Path

from .errors import NicodecError
from .outputs import STDIO, plan

_REGISTRARS: list[str] = ["nicodec.evaluation.cli", "nicodec.training.cli"]  # modules with register(subparsers) adding more subcommands


def _codec(model: str, device: str | None = None):
    from . import zoo

    return zoo.load(model, device)


class StdoutError(NicodecError):
    """Standard output cannot be written (a full disk, a closed pipe): the whole command stops."""


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


def _each(pairs: list[tuple[Path, Path]], work) -> int:
    """Run ``work(src, out)`` on every pair (planned and checked by ``outputs.plan``). With several,
    a failing file is reported on one line and the others still run; the exit status says whether
    any failed. A standard output that cannot be written stops them all."""
    if len(pairs) == 1:
        work(*pairs[0])
        return 0
    failed = 0
    for src, out in pairs:
        try:
            work(src, out)
        except StdoutError:
            raise
        except NicodecError as exc:
            print(f"nicodec: error: {exc}", file=sys.stderr)
            failed += 1
    if failed:
        print(f"nicodec: {failed} of {len(pairs)} files failed", file=sys.stderr)
    return 2 if failed else 0


def cmd_compress(args) -> int:
    pairs = plan(args.input, args.output, lambda src: src.with_suffix(".nic").name, args.force)
    if args.bpp is not None and not (math.isfinite(args.bpp) and args.bpp > 0):
        raise NicodecError(f"--bpp must be a positive number of bits per pixel, got {args.bpp}")
    codec = _codec(args.model, args.device)
    if args.effort is not None and codec.name != "overfit":
        raise NicodecError(f"--effort applies to --model overfit only, not {codec.name}")
    return _each(pairs, lambda src, out: _compress_one(codec, src, out, args))


def _compress_one(codec, src: Path, out: Path, args) -> None:
    from . import container
    from .codec import UnrefinedWarning
    from .images import open_image, orientation

    source = io.BytesIO(_read_bytes(src)) if src == STDIO else src
    image = open_image(source, name="standard input" if src == STDIO else None, first_frame=args.first_frame)
    w, h = image.size
    budget = args.max_bytes if args.bpp is None else _bpp_budget(args.bpp, w * h)
    options = {} if args.effort is None else {"effort": args.effort}
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnrefinedWarning)
        data = codec.compress(image, quality=args.quality, refine=args.refine, max_bytes=budget, fast=args.fast,
                              progress=sys.stderr.isatty(), **options)
    seconds = time.perf_counter() - start
    unrefined = any(issubclass(warning.category, UnrefinedWarning) for warning in caught)
    refine_note = "" if not args.refine else (
        ", unrefined (the refined file did not fit)" if unrefined else f", refined {args.refine} steps")
    nic = container.unpack(data)
    notes = refine_note + (", turned upright (EXIF orientation)" if orientation(image) != 1 else "")
    if codec.name == "overfit":
        notes += f", effort {args.effort or codec.config.effort}"
    if container.ICC in nic.metadata:
        notes += f", ICC profile kept ({len(nic.metadata[container.ICC]):,} bytes)"
    _write(out, data, args.force,
           f"{_shown(src)} ({nic.width}x{nic.height} {image.mode}) -> {_shown(out, 'stdout')}: {len(data):,} bytes, {len(data) * 8 / (w * h):.4f} bpp, "
           f"{codec.name} quality {nic.quality:g}{f' (fitted to {budget:,} bytes)' if budget else ''}"
           f"{notes}, {seconds:.2f} s")


def _write(out: Path, data: bytes, force: bool, report: str) -> None:
    """``data`` to standard output, or atomically to the file ``out``, and the ``report`` line on
    whichever of stdout and stderr does not carry the data. All or nothing: a failed write (a full
    disk, a directory in the way, a closed pipe), or a report that cannot be printed, is a
    one-line error that leaves no output file behind (the report is printed before the rename)."""
    from .weights import atomic_write

    if out == STDIO:
        _to_stdout(lambda: (sys.stdout.buffer.write(data), sys.stdout.buffer.flush()))  # .buffer is not guarded
        print(report, file=sys.stderr)
        return
    if not force and os.path.lexists(out):  # made since the plan was checked
        raise NicodecError(f"{out} exists: use --force to overwrite it")

    def write(tmp: str) -> None:
        try:
            Path(tmp).write_bytes(data)
        except OSError as exc:
            raise NicodecError(f"cannot write {out}: {exc.strerror or exc}") from None
        print(report)
        sys.stdout.flush()  # a StdoutError here removes the temporary file: no output without its report

    try:
        atomic_write(out, write)
    except OSError as exc:
        raise NicodecError(f"cannot write {out}: {exc.strerror or exc}") from None


def _to_stdout(write):
    """``write()``, which writes to standard output; if that fails, say so in one line (and point
    stdout at /dev/null, so that Python's own flush at exit does not fail again)."""
    try:
        return write()
    except OSError as exc:
        _silence_stdout()
        raise StdoutError(f"cannot write to standard output: {exc.strerror or exc}") from None


def _silence_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (tests capture it)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _shown(path: Path, stream: str = "stdin") -> str:
    return f"<{stream}>" if path == STDIO else str(path)


def _bpp_budget(bpp: float, pixels: int) -> int:
    return max(1, int(min(bpp * pixels / 8, 2**62)))


def cmd_decompress(args) -> int:
    from .limits import pixel_limit

    pairs = plan(args.input, args.output, lambda src: src.stem + ".decoded.png", args.force)
    max_pixels = pixel_limit(args.max_pixels)
    codec = _codec(args.model, args.device) if args.model else None
    return _each(pairs, lambda src, out: _decompress_one(codec, src, out, args.force, max_pixels, args.device, args.fast))


def _decompress_one(codec, src: Path, out: Path, force: bool, max_pixels: int, device: str | None = None,
                    fast: bool = False) -> None:
    from . import zoo

    data = _read_bytes(src)
    start = time.perf_counter()
    image = zoo.decompress(data, codec, max_pixels=max_pixels, device=device, fast=fast)
    seconds = time.perf_counter() - start
    fmt = "PNG" if out == STDIO or not out.suffix else _format_for(out)
    icc = {"icc_profile": image.info["icc_profile"]} if "icc_profile" in image.info else {}
    encoded = io.BytesIO()
    try:
        image.save(encoded, format=fmt, **icc)
    except (ValueError, KeyError, OSError) as exc:  # e.g. alpha into JPEG
        raise NicodecError(f"cannot write {out} as {fmt}: {exc}") from None
    w, h = image.size
    _write(out, encoded.getvalue(), force,
           f"{_shown(src)} ({len(data):,} bytes) -> {_shown(out, 'stdout')}: {w}x{h} {image.mode}, {seconds:.2f} s")


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
    if nic.model == "overfit":
        _overfit_info(data)
    return 0


def _overfit_info(data: bytes) -> None:
    """What an overfit file's own networks are (it decodes the file: the sizes need the networks)."""
    from .overfit import OverfitCodec

    d = OverfitCodec().describe(data)
    grids = ", ".join(f"{h}x{w}" for h, w in d["grids"])
    print(f"grids:      {len(d['grids'])} latent grids per tile ({grids}), {d['tiles']} tile(s)")
    print(f"arm:        {d['arm']}")
    print(f"synthesis:  {d['synthesis']}")
    print(f"decoder:    {d['mac_per_pixel']:,.0f} MAC/pixel, {d['parameters_per_tile']:,} parameters per tile")
    steps = "; ".join(", ".join(f"{m} 2^-{s}" for m, s in tile.items()) for tile in d["steps"][:4])
    print(f"steps:      {steps}{' ...' if len(d['steps']) > 4 else ''}")
    total = d["parameter_bits"] + d["latent_bits"]
    print(f"bits:       parameters {d['parameter_bits']:,.0f}, latents {d['latent_bits']:,.0f} "
          f"({total / 8:,.0f} bytes coded, λ {d['lambda']:.5g})")


def cmd_models(args) -> int:
    from . import releases
    from .codec import default_quality
    from .models import ARCHITECTURES, ScaleHyperprior
    from .weights import megabytes, read_metadata, stored_bytes
    from .zoo import DEFAULT_MODEL

    from .overfit import OverfitCodec

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
    overfit = OverfitCodec()
    print(f"overfit\n    {(OverfitCodec.__doc__ or '').strip().splitlines()[0]}")
    print(f"    weights: none (each file holds its decoder); quality 1–{overfit.levels}, default "
          f"{overfit.default_quality:g}; --effort {', '.join(overfit.config.efforts)} (default {overfit.config.effort})")
    return 0


def cmd_demo(args) -> int:
    import numpy as np

    from . import zoo
    from .images import open_image

    sample = zoo.SAMPLE
    image = open_image(sample).convert("RGB")
    options = {}
    if args.model == zoo.OVERFIT:  # a fit per quality: one quality, the fast effort (minutes on a CPU)
        codec, options = zoo.load(args.model), {"effort": "fast"}
        what = "overfit (fitted to the image, effort fast; no weights)"
        args.quality = codec.default_quality if args.quality is None else args.quality
    elif args.model in zoo.shipped_weights() or Path(args.model).suffix == ".safetensors":
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
        data = codec.compress(image, quality=q, **options)
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
    from .limits import MAX_PIXELS
    from .zoo import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="nicodec", description="Learned lossy image compression.")
    parser.add_argument("--version", action="version", version=f"nicodec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("compress", help="compress an image to a .nic file")
    p.add_argument("input", nargs="+", help="image file(s) (PNG, JPEG, ...); - reads standard input")
    p.add_argument("-o", "--output", help="output .nic file, the folder outputs go into, or - for standard "
                   "output (default: each INPUT with .nic suffix)")
    p.add_argument("-m", "--model", default=DEFAULT_MODEL, help="model name (meanscale, or meanscale-r1 for release 1; "
                   "overfit: fitted to each image, slow to encode, docs/overfit.md) or weights .safetensors file")
    p.add_argument("--device", help="where the transforms run (for overfit: where it fits): cpu (default) or cuda; "
                   "files are the same bits either way (overfit: a fit on another device is another valid file)")
    p.add_argument("--effort", choices=("fast", "medium", "slow"), help="for --model overfit: iterations of the fit "
                   "(fast 300, medium 1500 (default), slow 5000; a 768x512 image costs ~0.4 s per iteration on one CPU core)")
    p.add_argument("--fast", action="store_true", help="analysis in bfloat16 where the CPU (AMX, AVX-512 BF16) or "
                   "GPU has it: faster, latents a little different")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=float, help="quality in [1, levels] (fractional allowed)")
    rate.add_argument("--max-bytes", type=int, metavar="N", help="the highest quality whose file fits in N bytes")
    rate.add_argument("--bpp", type=float, help="the highest quality whose file takes at most BPP bits per pixel")
    p.add_argument(
        "-r", "--refine", type=int, default=0, metavar="STEPS",
        help="encode with STEPS steps of latent refinement (50 steps: 7-10 %% fewer bits at the same quality "
        "on Kodak; ~1 s per step for a 768x512 image on 2 CPU cores); default 0 (off)",
    )
    p.add_argument("--first-frame", action="store_true",
                   help="code the first frame of an animation or multi-page file (refused otherwise)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output (never an input)")
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decode a .nic file to an image")
    p.add_argument("input", nargs="+", help=".nic file(s); - reads standard input")
    p.add_argument("-o", "--output", help="output image, format from its suffix; the folder outputs go "
                   "into as PNG; or - for PNG on standard output (default: each INPUT.decoded.png)")
    p.add_argument("-m", "--model", help="weights .safetensors file, for files made with weights not shipped here")
    p.add_argument("--device", help="where the transforms run: cpu (default) or cuda")
    p.add_argument("--fast", action="store_true", help="synthesis in bfloat16 where the CPU (AMX, AVX-512 BF16) or "
                   "GPU has it: faster, pixels within a few levels of the float32 reference")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                   help=f"refuse files declaring more than N pixels, before decoding (default {MAX_PIXELS:,}, "
                   "where Pillow refuses too: a guard against decompression bombs)")
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing output (never an input)")
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
    stdout, sys.stdout = sys.stdout, _GuardedStdout(sys.stdout)
    try:
        status = args.func(args)
        sys.stdout.flush()  # what info, models... printed: a full disk is an error now, not at exit
        return status
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
    finally:
        sys.stdout = stdout


class _GuardedStdout:
    """``sys.stdout`` while a command runs: a write or flush that fails (a full disk, a closed
    pipe) is a StdoutError, one line and exit status 2, wherever the command printed."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return _to_stdout(lambda: self._stream.write(text))

    def flush(self) -> None:
        _to_stdout(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)
