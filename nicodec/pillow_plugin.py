"""Pillow plugin: ``Image.open("photo.nic")`` and ``image.save("photo.nic", quality=4.5)``.

Registered by :func:`register_pillow` — importing nicodec changes nothing in Pillow — as
pillow-heif's ``register_heif_opener()`` registers HEIF. Opening reads and checks the container
(size, mode, ICC profile) and decodes nothing: the model is loaded and the pixels decoded on
``load()``, as Pillow does for every format. Pillow's own decompression-bomb guard
(``Image.MAX_IMAGE_PIXELS``) checks the size at open, as for any format.

Saving takes ``quality`` (in [1, levels]), ``model`` (a registered name, ``"overfit"``, a weights
file or a :class:`~nicodec.Codec`), ``refine``, ``max_bytes``, ``effort`` (model overfit: fast,
medium, slow) and ``icc_profile``; like Pillow's other
single-image formats it writes the current frame, and ``save_all`` is refused for an animation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO

from PIL import Image, ImageFile

from . import container
from .codec import Codec
from .errors import NicodecError
from .images import MODES, frame_count

FORMAT = "NIC"
EXTENSION = ".nic"
MIME = "image/x-nic"

_codecs: list[Codec] = []  # given to register_pillow: decode files made with weights not shipped


class PillowError(NicodecError, OSError):
    """A nicodec error raised through Pillow: a NicodecError with its one-line message, and an
    OSError, as Pillow's own errors for unreadable or unwritable images are."""


def register_pillow(models: Iterable[Codec | str | Path] = ()) -> None:
    """Teach Pillow the ``.nic`` format: ``Image.open`` (lazy), ``Image.save`` (format "NIC" or
    the ``.nic`` extension) and the MIME type. ``models``: codecs (or weights files) to decode
    files made with weights that are not shipped; shipped weights are found from the header."""
    from . import zoo

    for model in models:
        codec = model if isinstance(model, Codec) or hasattr(model, "compress") else zoo.load(model)
        if codec not in _codecs:
            _codecs.append(codec)
    Image.register_open(FORMAT, NicImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_save_all(FORMAT, _save_all)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


def _accept(prefix: bytes) -> bool:
    return prefix[: len(container.MAGIC)] == container.MAGIC


class NicImageFile(ImageFile.ImageFile):
    """A ``.nic`` file opened by Pillow: size, mode and ICC profile from the container; the
    pixels on ``load()``."""

    format = FORMAT
    format_description = "nicodec learned image"

    def _open(self) -> None:
        data = self.fp.read()
        try:
            nic = container.unpack(data)
        except NicodecError as exc:
            raise PillowError(str(exc)) from None
        self._size = (nic.width, nic.height)
        self._mode = MODES[nic.mode]
        if container.ICC in nic.metadata:
            self.info["icc_profile"] = nic.metadata[container.ICC]
        self.info["nic_model"] = nic.model
        self.info["nic_quality"] = nic.quality
        self._nic_data: bytes | None = data

    def load(self):
        if self._nic_data is not None:
            decoded = _decode(self._nic_data)
            self.im = decoded.im
            self._nic_data = None
            self.tile = []
            if self._exclusive_fp and self.fp is not None:
                self.fp.close()
            self.fp = None
        return Image.Image.load(self)


def _decode(data: bytes) -> Image.Image:
    """The decoded image; the size was vetted by Pillow's own guard on opening."""
    from . import zoo

    try:
        nic = container.unpack(data)
        codec = next((c for c in _codecs if c.name == nic.model and c.weights_id == nic.weights_id), None)
        return zoo.decompress(data, codec, max_pixels=None)
    except NicodecError as exc:
        raise PillowError(str(exc)) from None


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from . import zoo

    options = im.encoderinfo
    model = options.get("model", zoo.DEFAULT_MODEL)
    frame = im.copy() if frame_count(im) > 1 else im  # the current frame, as Pillow's single-image formats save
    if "icc_profile" in options and options["icc_profile"] != frame.info.get("icc_profile"):
        frame = frame.copy()
        frame.info["icc_profile"] = options["icc_profile"]
    try:
        codec = model if isinstance(model, Codec) or hasattr(model, "compress") else zoo.load(model)
        effort = {"effort": options["effort"]} if "effort" in options else {}
        if effort and codec.name != zoo.OVERFIT:
            raise NicodecError(f"effort applies to model overfit only, not {codec.name}")
        data = codec.compress(frame, quality=options.get("quality"), refine=options.get("refine", 0),
                              max_bytes=options.get("max_bytes"), **effort)
    except NicodecError as exc:
        raise PillowError(str(exc)) from None
    fp.write(data)


def _save_all(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    frames = frame_count(im) + len(im.encoderinfo.get("append_images", ()))
    if frames > 1:
        raise PillowError(f"a .nic file holds one image, not {frames} frames: save them one by one")
    _save(im, fp, filename)
