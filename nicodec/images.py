"""Turning what users pass (PIL images, NumPy arrays, torch tensors, files) into 8-bit planes.

The models code RGB; grayscale is coded as RGB and converted back; alpha is kept losslessly
beside the coded image. Anything else is converted when that loses nothing that matters
(palette, CMYK, YCbCr, 1-bit) or rejected with a message saying what to do.

Photos are coded as they are meant to be seen: an EXIF orientation is applied to the pixels (the
decoded image carries no EXIF to rotate it later), and an ICC colour profile travels with the file
unless it is sRGB, which every viewer assumes anyway (a 3 KB sRGB profile would cost more than
the latents of a small image).

Nothing is lost silently. Pillow opens a 16-bit RGB(A) PNG, TIFF or PPM as 8-bit "RGB"/"RGBA",
so the sample depth is read from the file itself before Pillow reduces it (:func:`sample_bits`),
and images deeper than 8 bits are refused, as are files of several frames (animations, pages;
:func:`frame_count`) unless the first frame is asked for.
"""

from __future__ import annotations

import io
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CorruptFileError, NicodecError

MODES = ("L", "LA", "RGB", "RGBA")  # what a .nic file can restore; index = code in the header
_ORIENTATION = 0x0112  # EXIF tag
_PROFILE_SPACE = {"L": "GRAY", "LA": "GRAY", "RGB": "RGB", "RGBA": "RGB"}  # ICC colour space a mode takes
_DEEP_MODES = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16, "I": 32, "F": 32}
# Pillow raw modes of more than 8 bits per sample: "RGB;16B" (16-bit RGB PNG), "RGBA;16L" (TIFF),
# "LA;16B", "I;16B", "F;32BF"... but not "BGR;16" / "RGB;16" (5-6-5 bits per pixel, in BMP)
_DEEP_RAWMODE = re.compile(r";(16|32|64)[BLN]|^(L|I|F);(16|32|64)")
_AUXILIARY_FRAMES = {"MPO", "PSD"}  # their extra frames are not images of their own: previews, depth maps, layers


@dataclass
class Planes:
    """rgb: (H, W, 3) uint8; alpha: (H, W) uint8 or None; mode: one of MODES; icc: the colour
    profile to keep with the image (None: sRGB)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    mode: str
    icc: bytes | None = None


def open_image(source: str | Path | io.BytesIO, name: str | None = None, first_frame: bool = False) -> Image.Image:
    """Open an image file (or an in-memory one, called ``name`` in errors), with a one-line error
    for anything Pillow cannot read, or that would lose data (:func:`check_source`). A file of
    several frames is refused unless ``first_frame``: then its first frame is returned."""
    label = name or source
    try:
        with Image.open(source) as image:
            check_source(image, str(label), first_frame)
            image.load()
            return image.copy() if frame_count(image) > 1 else image  # a copy holds the first frame only
    except FileNotFoundError:
        raise NicodecError(f"no such file: {label}") from None
    except IsADirectoryError:
        raise NicodecError(f"{label} is a directory, not an image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NicodecError(f"cannot read {label} as an image ({exc.__class__.__name__}: {exc})") from None
    except Image.DecompressionBombError as exc:
        raise NicodecError(f"{label}: {exc}") from None


def check_source(image: Image.Image, label: str = "image", first_frame: bool = False) -> None:
    """Refuse a PIL image whose coding would lose data silently: samples deeper than 8 bits
    (seen from the file before Pillow reduces them, see :func:`sample_bits`), or several frames
    (unless ``first_frame``: the caller codes frame 0)."""
    bits = sample_bits(image)
    if bits > 8:
        raise NicodecError(
            f"{label} has {bits}-bit samples; nicodec codes 8-bit images and does not reduce them silently: "
            f"convert it to 8 bits first (e.g. magick IN -depth 8 OUT.png)")
    frames = frame_count(image)
    if frames > 1 and not first_frame:
        raise NicodecError(
            f"{label} has {frames} frames (an animation or pages) and a .nic file holds one image: "
            f"pass --first-frame to code the first (API: image.copy() of the frame you want)")


def sample_bits(image: Image.Image) -> int:
    """Bits per sample of the image as its file stores them (8 when it says nothing more).

    Pillow opens a 16-bit RGB or RGBA PNG (TIFF, PPM, ...) in the 8-bit modes "RGB"/"RGBA" and
    reduces the samples on loading, so the mode alone does not tell: the raw modes of the tiles
    still to be decoded do ("RGB;16B"), as do a PPM's maximum value and TIFF's BitsPerSample.
    Once an image is loaded (or made in memory) its mode is all there is, and 8-bit modes are 8 bits.
    """
    stored = 8  # what the tiles still to be decoded say
    for tile in getattr(image, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args and isinstance(args[0], str) else ""
        deep = _DEEP_RAWMODE.search(rawmode)
        if deep:
            stored = max(stored, int(deep.group(1) or deep.group(3)))
        if tile[0] == "ppm" and isinstance(args, tuple) and len(args) > 1 and isinstance(args[1], int) and args[1] > 255:
            stored = max(stored, 16)  # PPM/PGM with a maximum value above 255: two bytes per sample
    bits = stored if stored > 8 else _DEEP_MODES.get(image.mode, 8)
    tags = getattr(image, "tag_v2", None)
    depth = tags.get(258) if tags is not None else None  # TIFF BitsPerSample
    for d in depth if isinstance(depth, tuple) else (depth,):
        if isinstance(d, int) and d > bits:
            bits = d
    return bits


def frame_count(image: Image.Image) -> int:
    """Frames of an image that are images of their own (animation frames, pages); MPO previews
    and depth maps and PSD layers are not, and count as one."""
    if image.format in _AUXILIARY_FRAMES:
        return 1
    try:
        frames = int(getattr(image, "n_frames", 1))
    except (TypeError, ValueError, OSError, EOFError, SyntaxError):  # a damaged file cannot always count them
        return 1
    return max(frames, 1)


def to_planes(image: Image.Image | np.ndarray | torch.Tensor) -> Planes:
    """Normalise any supported input to 8-bit planes; raises NicodecError for unsupported ones
    (and for PIL images that would lose data, :func:`check_source`)."""
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if isinstance(image, torch.Tensor):
        image = _tensor_to_array(image)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise NicodecError(f"cannot compress a {type(image).__name__}: pass a PIL image, NumPy array or torch tensor")


def _from_pil(image: Image.Image) -> Planes:
    check_source(image)
    icc = image.info.get("icc_profile") or None
    if orientation(image) != 1:
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info or image.palette.mode == "RGBA" else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode == "La":
        image = image.convert("LA")
    elif mode == "RGBa":
        image = image.convert("RGBA")
    elif mode not in MODES:
        try:
            image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
        except ValueError:
            raise NicodecError(f"unsupported image mode {mode!r}") from None
    planes = _from_array(np.asarray(image), image.mode)
    planes.icc = icc if icc and _profile_to_keep(icc, planes.mode) else None
    return planes


def orientation(image: Image.Image) -> int:
    """The EXIF orientation (1–8; 1 is upright), 1 where the EXIF data is missing or unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns on damaged EXIF; it is only metadata
            value = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # Pillow raises SyntaxError, struct.error, ... on damaged EXIF
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _profile_to_keep(icc: bytes, mode: str) -> bool:
    """Whether an ICC profile says something about ``mode``'s pixels that sRGB does not.

    Dropped: sRGB itself (whatever its bytes: the test is what it does to colours), profiles
    for another colour space than the coded one (a CMYK profile after conversion to RGB), and
    profiles Little CMS cannot read.
    """
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow without Little CMS: keep what the image came with
        return True
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != _PROFILE_SPACE[mode]:
            return False
        if _PROFILE_SPACE[mode] == "GRAY":
            return True
        srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
        levels = np.linspace(0, 255, 7).round().astype(np.uint8)
        probe = np.stack(np.meshgrid(levels, levels, levels), -1).reshape(1, -1, 3)  # 343 colours
        seen = ImageCms.profileToProfile(Image.fromarray(probe), profile, srgb, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return False
    return int(np.abs(np.asarray(seen, np.int16) - probe).max()) > 1


def _tensor_to_array(tensor: torch.Tensor) -> np.ndarray:
    t = tensor.detach().cpu()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise NicodecError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise NicodecError(f"expected a (C, H, W) tensor with C in 1, 3, 4; got shape {tuple(tensor.shape)}")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()):
            raise NicodecError("image tensor contains NaN or infinity")
        t = torch.round(t.clamp(0, 1) * 255).to(torch.uint8)
    elif t.dtype != torch.uint8:
        raise NicodecError(f"integer tensors must be uint8, got {t.dtype}")
    return t.permute(1, 2, 0).numpy()


def _from_array(array: np.ndarray, mode: str | None = None) -> Planes:
    a = array
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            if not np.isfinite(a).all():
                raise NicodecError("image array contains NaN or infinity")
            a = np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
        else:
            raise NicodecError(f"arrays must be uint8 (0..255) or float (0..1), got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise NicodecError(f"expected an (H, W), (H, W, C) array with C in 1..4; got shape {array.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise NicodecError("image is empty (zero width or height)")
    channels = a.shape[2]
    color = a[:, :, :1].repeat(3, axis=2) if channels <= 2 else a[:, :, :3]
    alpha = a[:, :, -1] if channels in (2, 4) else None
    mode = mode or {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    return Planes(np.ascontiguousarray(color), None if alpha is None else np.ascontiguousarray(alpha), mode)


def from_planes(rgb: np.ndarray, alpha: np.ndarray | None, mode: str, icc: bytes | None = None) -> Image.Image:
    """The PIL image of ``mode`` that :func:`to_planes` would have turned into these planes
    (with its ICC profile in ``info["icc_profile"]``, which Pillow writes into PNG, JPEG, WebP...)."""
    if mode in ("L", "LA"):
        gray = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        image = Image.fromarray(gray if mode == "L" else np.dstack([gray, alpha]), mode)
    else:
        image = Image.fromarray(rgb if mode == "RGB" else np.dstack([rgb, alpha]), mode)
    if icc:
        image.info["icc_profile"] = icc
    return image


def pack_alpha(alpha: np.ndarray | None) -> bytes:
    """The alpha stream of a ``.nic`` file: raw 8-bit rows, zlib-compressed (empty: no alpha)."""
    return b"" if alpha is None else zlib.compress(np.ascontiguousarray(alpha, np.uint8).tobytes(), 9)


def unpack_alpha(stream: bytes, width: int, height: int, mode: str) -> np.ndarray | None:
    """The alpha plane of an image of ``mode`` from its stream; CorruptFileError if it does not fit."""
    if mode not in ("LA", "RGBA"):
        if stream:
            raise CorruptFileError("corrupt .nic file (alpha data for an opaque image)")
        return None
    try:
        raw = zlib.decompressobj().decompress(stream, width * height + 1)
    except zlib.error:
        raise CorruptFileError("corrupt .nic file (alpha plane)") from None
    if len(raw) != width * height:
        raise CorruptFileError("corrupt .nic file (alpha plane has the wrong size)")
    return np.frombuffer(raw, np.uint8).reshape(height, width)
