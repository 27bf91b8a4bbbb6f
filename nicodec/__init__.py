"""nicodec — a learned lossy image codec.

    >>> import nicodec
    >>> data = nicodec.compress(image)             # the default model at its default quality
    >>> codec = nicodec.load("meanscale")          # shipped weights, or a .safetensors path
    >>> data = codec.compress(image, quality=4.5)  # PIL image, NumPy array or torch tensor
    >>> restored = nicodec.decompress(data)        # finds the model from the file header
    >>> fitted = nicodec.load("overfit").compress(image, quality=6, effort="medium")  # fitted per image, no weights
    >>> nicodec.register_pillow()                  # Image.open("x.nic"), image.save("x.nic", quality=4.5)
"""

from .codec import Codec
from .errors import CorruptFileError, NicodecError
from .limits import MAX_PIXELS
from .models import ARCHITECTURES, ModelConfig, build_model
from .pillow_plugin import register_pillow
from .zoo import DEFAULT_MODEL, compress, create, decompress, load, sample_image, shipped_weights

__version__ = "0.1.0"

__all__ = [
    "ARCHITECTURES", "Codec", "CorruptFileError", "DEFAULT_MODEL", "MAX_PIXELS", "ModelConfig", "NicodecError",
    "build_model", "compress", "create", "decompress", "load", "register_pillow", "sample_image", "shipped_weights",
    "__version__",
]
