"""Codec adapters: every codec we evaluate, classical or ours, behind one encode/decode interface.

A codec is named on the command line by a *spec*: ``jpeg``, ``jpeg444``, ``webp``, ``avif``,
``hevc``, ``jpegxl``, ``jpeg2000``, or ``nicodec:NAME_OR_PATH`` (a registry model such as
``meanscale`` or a ``.safetensors`` weights file, or ``overfit``, the per-image fitted codec, with
``:effort=fast|medium|slow``), each optionally followed by ``@q1,q2,...`` to replace the default
quality grid, e.g. ``webp@10,30,50``, ``nicodec:meanscale@1,2,3.5,6`` or ``nicodec:overfit:effort=fast@2,6``.

Adapters encode an HxWx3 uint8 RGB array to bytes and decode bytes back to such an array. Bytes
are the complete file a user would store (container headers included), so bpp is honest. All
adapters ask their library for a single thread so that timings compare like with like.
"""

from __future__ import annotations

import io
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nicodec.errors import NicodecError

__all__ = ["CLASSICAL", "CodecSpec", "ImageCodec", "build_codec", "library_versions", "parse_spec"]


class ImageCodec(ABC):
    """One codec with a quality knob; `quality` is the codec's own parameter (see `describe`)."""

    label: str  # short, filename-safe name used in result files, e.g. "webp" or "nicodec-meanscale"
    display: str  # human name for legends and tables
    knob: str  # what the quality number means, for the docs and the report
    default_grid: tuple[float, ...]
    q_range: tuple[float, float]

    @abstractmethod
    def encode(self, rgb: np.ndarray, quality: float) -> bytes: ...

    @abstractmethod
    def decode(self, data: bytes) -> np.ndarray: ...

    def check_grid(self, grid: tuple[float, ...]) -> None:
        lo, hi = self.q_range
        bad = [q for q in grid if not lo <= q <= hi]
        if bad:
            raise NicodecError(f"{self.label}: quality {bad[0]:g} is outside [{lo:g}, {hi:g}] ({self.knob})")

    def describe(self) -> str:
        return f"{self.display}; quality = {self.knob}"

    def identity(self) -> str:
        """What the measured points depend on besides (quality, image): when it changes, points
        saved under this label are stale and are measured again."""
        return self.describe()


def _pil_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _pil_encode(rgb: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format=fmt, **options)
    return buf.getvalue()


class Jpeg(ImageCodec):
    """Baseline JPEG via Pillow's libjpeg-turbo, optimised Huffman tables, no metadata."""

    knob = "libjpeg quality 1-100"
    q_range = (1, 100)
    def __init__(self, subsampling: str = "4:2:0"):
        self.subsampling = subsampling
        # ~0.10-2.1 bpp (4:2:0) / 0.15-2.0 bpp (4:4:4) on Kodak; quality 1-2 adds no lower rates
        top = 88 if subsampling == "4:2:0" else 85
        self.default_grid = (3, 5, 8, 12, 20, 30, 45, 60, 75, top)
        self.label = "jpeg" if subsampling == "4:2:0" else "jpeg444"
        self.display = f"JPEG {subsampling}"

    def encode(self, rgb: np.ndarray, quality: float) -> bytes:
        ss = {"4:4:4": 0, "4:2:0": 2}[self.subsampling]
        return _pil_encode(rgb, "JPEG", quality=int(round(quality)), subsampling=ss, optimize=True)

    def decode(self, data: bytes) -> np.ndarray:
        return _pil_decode(data)


class WebP(ImageCodec):
    """Lossy WebP (VP8, always 4:2:0) via Pillow's libwebp at its slowest/best method 6."""

    label, display = "webp", "WebP"
    knob = "libwebp quality 0-100 (method 6)"
    q_range = (0, 100)
    default_grid = (0, 2, 8, 15, 25, 40, 55, 70, 82, 90)  # ~0.11-2.1 bpp on Kodak

    def encode(self, rgb: np.ndarray, quality: float) -> bytes:
        return _pil_encode(rgb, "WEBP", quality=float(quality), method=6)

    def decode(self, data: bytes) -> np.ndarray:
        return _pil_decode(data)


class Avif(ImageCodec):
    """AVIF (AV1 intra) 4:4:4 full range via pillow-avif-plugin's libavif + aom, speed 6, 1 thread.

    Speed 6 is libavif's default; slower speeds gain a few percent at many times the encode time,
    too slow for a 24-image sweep on 2 cores. aom is tuned for PSNR (``tune=psnr``), as the curves
    we compare against are; libavif's default SSIM tuning costs ~15 % BD-rate in PSNR.
    """

    label, display = "avif", "AVIF 4:4:4 (aom)"
    knob = "libavif quality 0-100 (aom, speed 6, tune psnr)"
    q_range = (0, 100)
    default_grid = (5, 15, 25, 35, 45, 55, 62, 70, 78, 85)  # ~0.08-2.1 bpp on Kodak
    speed = 6

    def __init__(self) -> None:
        try:
            import pillow_avif  # noqa: F401  registers the AVIF plugin with Pillow
        except ImportError:
            from PIL import features

            if not features.check("avif"):
                raise NicodecError("avif needs pillow-avif-plugin (pip install 'nicodec[eval]')") from None

    def encode(self, rgb: np.ndarray, quality: float) -> bytes:
        return _pil_encode(
            rgb,
            "AVIF",
            quality=int(round(quality)),
            subsampling="4:4:4",
            speed=self.speed,
            codec="aom",
            range="full",
            max_threads=1,
            advanced={"tune": "psnr"},
        )

    def decode(self, data: bytes) -> np.ndarray:
        return _pil_decode(data)


class Hevc(ImageCodec):
    """HEIC: HEVC intra 4:4:4 (x265 via pillow-heif/libheif), our stand-in for BPG 4:4:4.

    RGB is converted to full-range BT.601 YCbCr (libheif's default, as BPG's), chroma 4:4:4 is
    asked for with ``chroma=444`` and is confirmed by the decoder (tests check it). x265 is tuned
    for PSNR (libheif's default is SSIM) with its psycho-visual options off, as a codec measured in
    PSNR should be: on Kodak that saves ~25 % BD-rate against libheif's defaults. The HEIF boxes
    cost ~370 bytes per file that BPG's header does not (~0.008 bpp on a Kodak image: ~15 % of the
    file at 0.05 bpp, ~1.5 % at 0.5 bpp).
    """

    label, display = "hevc", "HEVC 4:4:4 (x265, HEIF)"
    knob = "libheif x265 quality 0-100 (tune psnr, no psy-rd)"
    X265 = {"tune": "psnr", "x265:psy-rd": "0", "x265:psy-rdoq": "0"}
    q_range = (0, 100)
    default_grid = (0, 5, 10, 15, 20, 25, 30, 36, 44, 52)  # ~0.05-1.9 bpp on Kodak

    def __init__(self) -> None:
        try:
            import pillow_heif
        except ImportError:
            raise NicodecError("hevc needs pillow-heif (pip install 'nicodec[eval]')") from None
        self._heif = pillow_heif

    def encode(self, rgb: np.ndarray, quality: float) -> bytes:
        buf = io.BytesIO()
        hf = self._heif.from_pillow(Image.fromarray(rgb, "RGB"))
        opts = {"chroma": 444, "tile_size": 0, "enc_params": dict(self.X265)}
        hf.save(buf, format="HEIF", quality=int(round(quality)), **opts)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return np.asarray(self.decode_heif(data).to_pillow().convert("RGB"))

    def decode_heif(self, data: bytes):
        """The libheif image (its ``info["chroma"]`` tells the stored chroma subsampling)."""
        return self._heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)


class JpegXL(ImageCodec):
    """JPEG XL (libjxl via imagecodecs), VarDCT at the default effort 7, one thread."""

    label, display = "jpegxl", "JPEG XL (libjxl)"
    knob = "libjxl quality 0-100 (effort 7)"
    q_range = (0, 100)
    default_grid = (5, 15, 25, 35, 45, 55, 65, 75, 85, 92)  # ~0.15-2.2 bpp; libjxl stops near 0.14

    def __init__(self) -> None:
        try:
            import imagecodecs
        except ImportError:
            raise NicodecError("jpegxl needs imagecodecs (pip install 'nicodec[eval]')") from None
        self._ic = imagecodecs

    def encode(self, rgb: np.ndarray, quality: float) -> bytes:
        return bytes(self._ic.jpegxl_encode(rgb, level=float(quality), effort=7, numthreads=1))

    def decode(self, data: bytes) -> np.ndarray:
        out = np.asarray(self._ic.jpegxl_decode(data, numthreads=1))
        return out[..., :3].astype(np.uint8) if out.ndim == 3 else np.stack([out] * 3, axis=-1)


class Jpeg2000(ImageCodec):
    """JPEG 2000 codestream (OpenJPEG via Pillow): 9/7 wavelet, irreversible colour transform.

    The knob is OpenJPEG's target compression ratio (``opj_compress -r``): 24 bits per pixel
    divided by the target bpp, so *larger* numbers mean *lower* quality.
    """

    label, display = "jpeg2000", "JPEG 2000 (OpenJPEG)"
    knob = "OpenJPEG compression ratio (24 / target bpp)"
    q_range = (1, 10000)
    default_grid = (480, 240, 160, 100, 70, 48, 32, 24, 16, 12)  # 0.05-2 bpp by construction

    def encode(self, rgb: np.ndarray, quality: float) -> bytes:
        return _pil_encode(
            rgb,
            "JPEG2000",
            quality_mode="rates",
            quality_layers=[float(quality)],
            irreversible=True,
            mct=1,
            no_jp2=True,
        )

    def decode(self, data: bytes) -> np.ndarray:
        return _pil_decode(data)


class NicodecModel(ImageCodec):
    """One of our learned models: `nicodec.load(name_or_path)`; quality is a float in [1, levels].
    ``refine`` > 0 encodes with that many steps of latent refinement (nicodec.refinement).
    ``effort``: model overfit's fit (fast, medium, slow); ``device``: where the model's encoder
    runs (overfit: where it fits; the point's ``enc_s`` is that fit's wall-clock time)."""

    knob = "nicodec quality, a float in [1, levels]"

    def __init__(self, target: str, refine: int = 0, effort: str | None = None, device: str | None = None):
        import nicodec

        self._nicodec = nicodec
        self.refine = refine
        self.model = nicodec.load(target, device)
        overfit = target == "overfit"
        if effort is not None and not overfit:
            raise NicodecError(f"nicodec:{target}: effort applies to nicodec:overfit only")
        self.effort = (effort or self.model.config.effort) if overfit else None
        if overfit:
            self.model.fit_config(self.effort)  # a bad effort fails here, before any point
        self.levels = int(self.model.levels)
        self.q_range = (1.0, float(self.levels))
        n = max(8, self.levels) if self.levels > 1 else 1  # every trained level once there are 8 or more
        grid = getattr(self.model, "eval_grid", None)  # overfit: a few qualities (each point is a whole fit)
        self.default_grid = grid or tuple(round(1 + i * (self.levels - 1) / max(1, n - 1), 4) for i in range(n))
        stem = Path(target).stem if target.endswith(".safetensors") else target
        self.label = "nicodec-" + _safe(stem) + (f"-refine{refine}" if refine else "") + (f"-{self.effort}" if overfit else "")
        self.display = f"nicodec {stem}" + (f" (refine {refine})" if refine else "") + (f" (effort {self.effort})" if overfit else "")

    def identity(self) -> str:
        text = f"{self.describe()}; weights {self.model.weights_id.hex()}" + (f"; refine {self.refine}" if self.refine else "")
        if self.effort is not None:
            fit = self.model.fit_config(self.effort)
            text += f"; effort {self.effort} ({fit.iterations} iterations); {self.model.config.arch}"
        return text

    def encode(self, rgb: np.ndarray, quality: float) -> bytes:
        if self.effort is not None:
            return bytes(self.model.compress(rgb, quality=float(quality), effort=self.effort))
        return bytes(self.model.compress(rgb, quality=float(quality), refine=self.refine))

    def decode(self, data: bytes) -> np.ndarray:
        return np.asarray(self._nicodec.decompress(data, codec=self.model).convert("RGB"))


CLASSICAL = {
    "jpeg": lambda: Jpeg("4:2:0"),
    "jpeg444": lambda: Jpeg("4:4:4"),
    "webp": WebP,
    "avif": Avif,
    "hevc": Hevc,
    "jpegxl": JpegXL,
    "jpeg2000": Jpeg2000,
}


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


@dataclass(frozen=True)
class CodecSpec:
    """A parsed ``--codec`` argument: which codec, and the quality grid if one was given."""

    text: str
    kind: str  # a key of CLASSICAL, or "nicodec"
    target: str = ""  # model name or weights path for kind "nicodec"
    grid: tuple[float, ...] | None = None
    refine: int = 0  # latent refinement steps for kind "nicodec"
    effort: str | None = None  # model overfit's effort, for kind "nicodec"
    device: str | None = None  # where a nicodec model's encoder runs (``nicodec eval --device``)


def parse_spec(text: str) -> CodecSpec:
    """Parse ``NAME[@q1,q2,...]`` (``nicodec:TARGET[:refine=N][:effort=E][@...]`` for our models);
    raises NicodecError naming the valid codecs on a bad name."""
    body, grid = text.strip(), None
    if "@" in body:
        head, tail = body.rsplit("@", 1)
        try:
            grid = tuple(float(v) for v in tail.split(",") if v.strip())
        except ValueError:
            raise NicodecError(f"bad quality grid in codec spec {text!r}: expected numbers like @10,30,50") from None
        if not grid or not all(math.isfinite(q) for q in grid):
            raise NicodecError(f"bad quality grid in codec spec {text!r}: expected numbers like @10,30,50")
        body = head
    if body.startswith("nicodec:"):
        target, refine, effort = body[len("nicodec:") :], 0, None
        if ":effort=" in target:
            target, effort = target.rsplit(":effort=", 1)
            if not effort.isalpha():
                raise NicodecError(f"bad effort in codec spec {text!r}: expected :effort=fast, medium or slow")
        if ":refine=" in target:
            target, steps = target.rsplit(":refine=", 1)
            if not steps.isdigit():
                raise NicodecError(f"bad refinement in codec spec {text!r}: expected :refine=STEPS, e.g. :refine=50")
            refine = int(steps)
        if not target:
            raise NicodecError("codec spec 'nicodec:' needs a model name or a .safetensors path")
        return CodecSpec(text, "nicodec", target, grid, refine, effort)
    if body.lower() in CLASSICAL:
        return CodecSpec(text, body.lower(), "", grid)
    names = ", ".join(list(CLASSICAL) + ["nicodec:NAME", "nicodec:PATH.safetensors"])
    raise NicodecError(f"unknown codec {body!r} (known: {names})")


_CACHE: dict[CodecSpec, ImageCodec] = {}


def build_codec(spec: CodecSpec) -> ImageCodec:
    """The adapter for `spec`. Classical adapters are built once per process; models come from
    `nicodec.load`, which caches weights per file version (a rewritten file is read again)."""
    if spec.kind == "nicodec":
        codec: ImageCodec = NicodecModel(spec.target, spec.refine, spec.effort, spec.device)
    else:
        key = CodecSpec(spec.text, spec.kind, spec.target, None)
        if key not in _CACHE:
            _CACHE[key] = CLASSICAL[spec.kind]()
        codec = _CACHE[key]
    if spec.grid is not None:
        codec.check_grid(spec.grid)
    return codec


def grid_of(spec: CodecSpec, codec: ImageCodec) -> tuple[float, ...]:
    return spec.grid if spec.grid is not None else codec.default_grid


def library_versions() -> dict[str, str]:
    """Versions of the libraries behind the classical codecs, for reports and docs."""
    import PIL
    from PIL import features

    v = {
        "Pillow": PIL.__version__,
        "libjpeg-turbo": str(features.version_feature("libjpeg_turbo") or features.version("jpg")),
        "libwebp": str(features.version("webp")),
        "OpenJPEG": str(features.version("jpg_2000")),
    }
    try:
        import pillow_avif
        from pillow_avif import _avif

        v["pillow-avif-plugin"] = pillow_avif.__version__
        v["libavif"] = str(getattr(_avif, "libavif_version", "?"))
        v["aom"] = _aom_version()
    except ImportError:
        pass
    try:
        import pillow_heif

        info = pillow_heif.libheif_info()
        v["pillow-heif"] = pillow_heif.__version__
        v["libheif"] = str(info.get("libheif"))
        v["x265"] = str(info.get("encoders", {}).get("x265", info.get("HEIF", "?")))
    except ImportError:
        pass
    try:
        import imagecodecs

        v["imagecodecs"] = imagecodecs.__version__
        v["libjxl"] = str(imagecodecs.jpegxl_version())
    except (ImportError, AttributeError):
        pass
    return v


def _aom_version() -> str:
    try:
        from pillow_avif import AvifImagePlugin

        return str(AvifImagePlugin.get_codec_version("aom"))
    except Exception:  # version lookups are informative only
        return "?"
