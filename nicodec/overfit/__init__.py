"""Overfitted per-image codec (Cool-chic / C3 family): latent grids and tiny networks fitted to
each image on R + λ·D, all of it coded into the file; no weights to ship or load.

    >>> from nicodec.overfit import OverfitCodec
    >>> codec = OverfitCodec()
    >>> data = codec.compress(image, quality=6.0, effort="medium", device="cpu", progress=True)
    >>> image = codec.decompress(data)
"""

from .codec import (DEFAULT_EFFORT, DEFAULT_QUALITY, EFFORTS, LAMBDAS, OverfitCodec, OverfitConfig,
                    OverfitDecoded, encode_many, mac_per_pixel, quality_to_lambda)
from .fit import FitConfig
from .model import Architecture

__all__ = ["Architecture", "DEFAULT_EFFORT", "DEFAULT_QUALITY", "EFFORTS", "FitConfig", "LAMBDAS", "OverfitCodec",
           "OverfitConfig", "OverfitDecoded", "encode_many", "mac_per_pixel", "quality_to_lambda"]
