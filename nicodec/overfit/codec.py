"""``OverfitCodec``: images to ``.nic`` files by fitting a model to each, and back.

Streams of an ``overfit`` file (container model ``overfit``, no weights: ``weights_id`` is zero):

    0  the overfit header (:mod:`.header`): architecture, and per tile the parameters' steps
    1  the networks' integers, tile after tile, each tile's ARM, upsampling and synthesis
       (constriction's range coder, :mod:`.coding`)
    2  the latents, tile after tile, grids coarsest first, in raster order (rANS, :mod:`.raster`)
    3  the alpha plane (zlib), as every .nic file

``param_crc`` is the CRC32 of the coding-table indices, which the decoder recomputes.
"""

from __future__ import annotations

import base64
import math
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .. import container, limits
from ..errors import CorruptFileError, NicodecError
from ..images import MODES, from_planes, pack_alpha, to_planes, unpack_alpha
from ..variable_rate import quality_lambda
from . import coding, compiled_synthesis, header, params, raster, tables
from .fit import FitConfig, fit
from .model import Architecture, Networks, grid_sizes, synthesize

NAME = "overfit"
WEIGHTS_ID = bytes(8)  # nothing to load: the decoder's networks are in the file
LAMBDAS = (0.00045, 0.0009, 0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)  # the amortized models' λ per quality
DEFAULT_QUALITY = 6.0
EFFORTS = {  # iterations; a 768×512 image costs 0.26–0.28 s each on 2 cores of our CPU (docs/overfit.md)
    "fast": FitConfig(iterations=300),
    "medium": FitConfig(iterations=1500),
    "slow": FitConfig(iterations=5000),
}
DEFAULT_EFFORT = "medium"
EVAL_GRID = (2.0, 4.0, 6.0, 8.0)  # qualities `nicodec eval` measures by default (each point is a whole fit)
BATCH_PIXELS_CUDA = 40_000_000  # pixels fitted at once on a GPU (~1 KB each: a 24-image Kodak curve of 4 points)
ARM_SHIFTS = range(3, 15)  # quantisation steps 2^−shift tried for each module (3: low rates want coarse ARMs)
SYNTHESIS_SHIFTS = range(3, 15)


@dataclass(frozen=True)
class OverfitConfig:
    """The architecture to fit and the effort used when a call names none."""

    arch: Architecture = Architecture()
    effort: str = DEFAULT_EFFORT
    efforts: dict = field(default_factory=lambda: dict(EFFORTS))


@dataclass
class TileCode:
    """One fitted tile as it is coded: quantised parameters, integer latents, and its output."""

    quant: dict[str, header.Quantisation]
    q: dict[str, np.ndarray]  # module → its integers, flat, in file order
    latents: list[Tensor]  # int64 (h_k, w_k), finest first
    x_hat: Tensor  # (3, h, w) float32: the synthesis output the decoder computes
    bits: dict[str, float] = field(default_factory=dict)


@dataclass
class OverfitDecoded:
    """What a decoder produced (or the encoder coded): the image, per tile the integer latents and
    the synthesis output (3, H, W) before clamping and rounding, and the bits per part."""

    image: Image.Image
    latents: list[list[Tensor]]
    x_hat: Tensor
    nic: container.NicFile
    header: header.Header
    bits: dict[str, float]


def starting_networks(a: Architecture, quality: float = DEFAULT_QUALITY) -> dict[str, Tensor] | None:
    """The networks learned over training photos (``init_state``, from benchmarks/overfit_pretrain.py)
    that a fit at ``quality`` starts from: those learned at the nearest λ, if they were learned for
    this architecture (else None: random networks)."""
    try:
        from . import init_state
    except ImportError:
        return None
    if init_state.ARCHITECTURE != a or not init_state.STATES:
        return None
    target = math.log(quality_to_lambda(quality))
    nearest = min(init_state.STATES, key=lambda q: abs(math.log(quality_to_lambda(q)) - target))
    raw = np.frombuffer(base64.b64decode("".join(init_state.STATES[nearest])), dtype="<f4")
    state, start = {}, 0
    for name, shape in init_state.SHAPES.items():
        n = int(np.prod(shape))
        state[name] = torch.from_numpy(raw[start : start + n].copy()).reshape(1, *shape)
        start += n
    return state


def quality_to_lambda(quality: float) -> float:
    """λ of ``quality`` ∈ [1, 10]: the amortized models' λ list, geometric in between."""
    return quality_lambda(LAMBDAS, quality)


def check_quality(quality: float | None) -> float:
    q = DEFAULT_QUALITY if quality is None else quality
    try:
        q = float(np.float32(q))  # the file stores float32: code with exactly that value
    except (TypeError, ValueError):
        raise NicodecError(f"quality must be a number, got {quality!r}") from None
    if not 1 <= q <= len(LAMBDAS):
        raise NicodecError(f"quality must be in [1, {len(LAMBDAS)}] for overfit, got {quality}")
    return q


class OverfitCodec:
    """Compress an image by fitting latent grids and tiny networks to it (no weights needed).

    The same surface as :class:`nicodec.Codec` (``name``, ``levels``, ``default_quality``,
    ``weights_id``, ``device``, ``to``, ``compress``, ``decompress``), so that ``nicodec.load("overfit")``,
    the CLI, ``nicodec eval`` and the Pillow plugin treat it as any other model; ``effort`` is its own."""

    name = NAME
    levels = len(LAMBDAS)
    default_quality = DEFAULT_QUALITY
    weights_id = WEIGHTS_ID
    eval_grid = EVAL_GRID

    def __init__(self, config: OverfitConfig | None = None, device: str | torch.device = "cpu"):
        self.config = config or OverfitConfig()
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return f"OverfitCodec({self.config.arch}, effort={self.config.effort}, device={self.device})"

    def to(self, device: str | torch.device) -> "OverfitCodec":
        """A codec fitting on ``device`` (``"cuda"``, ``"cpu"``); decoding always runs on the CPU
        (the latents' decoder is a compiled CPU loop; the synthesis is ~400 MAC/pixel)."""
        return OverfitCodec(self.config, fitting_device(device))

    def fit_config(self, effort: str | FitConfig | None) -> FitConfig:
        if isinstance(effort, FitConfig):
            return effort
        name = self.config.effort if effort is None else effort
        if not isinstance(name, str) or name not in self.config.efforts:
            raise NicodecError(f"effort must be one of {', '.join(self.config.efforts)}, got {effort!r}")
        return self.config.efforts[name]

    def compress(self, image, quality: float | None = None, effort: str | FitConfig | None = None,
                 device: str | torch.device | None = None, progress: bool = False, *, refine: int = 0,
                 max_bytes: int | None = None, fast: bool = False) -> bytes:
        """Fit a model to ``image`` (PIL image, (H, W[, C]) uint8 array or (C, H, W) tensor) at
        ``quality`` ∈ [1, 10] and return the ``.nic`` bytes. ``effort`` (fast, medium, slow) sets
        the iterations; ``device`` where the fitting runs (cpu, cuda; default the codec's);
        ``progress`` a progress bar on stderr. ``refine``, ``max_bytes`` and ``fast`` are the
        amortized models' options: refinement is what this codec does anyway, a size budget would
        cost a fit per trial, and there is no analysis transform to run in bfloat16 — asking for
        them is an error."""
        _check_amortized_options(refine, max_bytes, fast)
        return self.encode(image, quality, effort, device, progress)[0]

    def encode(self, image, quality: float | None = None, effort: str | FitConfig | None = None,
               device: str | torch.device | None = None, progress: bool = False) -> tuple[bytes, OverfitDecoded]:
        """Like :meth:`compress`, also returning what the encoder coded (latents, synthesis output)."""
        return encode_many([(image, quality)], effort, self.device if device is None else device, progress, self)[0]

    def decompress(self, data: bytes, max_pixels: int | None = limits.MAX_PIXELS, fast: bool = False) -> Image.Image:
        """Decode ``.nic`` bytes of an overfit file to a PIL image. A file declaring more than
        ``max_pixels`` pixels is refused before anything is allocated (None: no limit); ``fast``
        changes nothing (the synthesis is already small)."""
        return self.decode(data, max_pixels).image

    def decode(self, data: bytes, max_pixels: int | None = limits.MAX_PIXELS) -> OverfitDecoded:
        """Decode ``.nic`` bytes of an overfit file; CorruptFileError (one line) on any damage."""
        nic = container.unpack(data)
        limits.check_decodable(nic, max_pixels)
        if nic.model != NAME:
            raise NicodecError(f"file was made with model {nic.model!r}, not {NAME!r}")
        if nic.weights_id != WEIGHTS_ID or len(nic.streams) != 4 or nic.version != container.VERSION_EXACT:
            raise CorruptFileError("corrupt .nic file (not an overfit file)")
        if not 1 <= nic.quality <= len(LAMBDAS):
            raise CorruptFileError("corrupt .nic file (quality outside [1, 10])")
        hdr = header.unpack(nic.streams[0], nic.height, nic.width)
        try:
            coder, reader = coding.Coder(nic.streams[1]), raster.Reader(nic.streams[2])
            codes = [decode_tile(coder, reader, hdr.arch, quant, box[2:]) for quant, box in
                     zip(hdr.tiles, header.tile_boxes(nic.height, nic.width))]
            coder.check_exhausted()
            reader.finish()
        except NicodecError:
            raise
        except Exception as exc:  # constriction or shape errors on a damaged stream
            raise CorruptFileError(f"corrupt .nic file (cannot decode: {exc.__class__.__name__})") from None
        if _crc(reader.tables) != nic.param_crc:
            raise CorruptFileError("decoder derived different coding tables than the encoder (corrupt file?)")
        bits = dict(coder.bits, latents=reader.bits)
        return _assemble(nic, hdr, codes, bits)

    def describe(self, data: bytes) -> dict:
        """What ``nicodec info`` shows: architecture, grids, steps, decoder MAC/pixel, bits per part."""
        d = self.decode(data)
        a, nic = d.header.arch, d.nic
        pixels = nic.width * nic.height
        boxes = header.tile_boxes(nic.height, nic.width)
        parameters = sum(int(np.prod(s)) for m in header.MODULES for s in params.module_shapes(a, m).values())
        return {
            "model": NAME, "quality": nic.quality, "lambda": quality_to_lambda(nic.quality),
            "width": nic.width, "height": nic.height, "tiles": len(boxes),
            "grids": [list(s) for s in grid_sizes(boxes[0][2], boxes[0][3], a.grids)],
            "arm": f"{a.arm_inputs} inputs → {a.arm_width} × {a.arm_layers} → 2, {a.passes} passes per grid",
            "synthesis": f"{a.grids} → {a.synthesis_width} → 3, two 3×3 residual layers",
            "parameters_per_tile": parameters,
            "steps": [{m: q.shift for m, q in t.items()} for t in d.header.tiles],
            "mac_per_pixel": round(mac_per_pixel(a, nic.height, nic.width), 1),
            "parameter_bits": round(d.bits["parameters"], 1), "latent_bits": round(d.bits["latents"], 1),
            "bpp": 8 * len(data) / pixels,
        }


def fitting_device(device: str | torch.device) -> torch.device:
    """``device`` checked: cpu, or cuda where there is one (NicodecError otherwise)."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise NicodecError(f"unknown device {device!r}: use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NicodecError("--device cuda: no CUDA device here (this torch build or machine has none)")
    if device.type not in ("cpu", "cuda"):
        raise NicodecError(f"overfit fits on cpu or cuda, not {device}")
    return device


def _check_amortized_options(refine, max_bytes, fast) -> None:
    if refine not in (0, None) or isinstance(refine, bool):
        raise NicodecError("refine does not apply to model overfit (its encoder fits everything already): "
                           "use effort (fast, medium, slow)")
    if max_bytes is not None:
        raise NicodecError("a size budget (max_bytes, --bpp) is not supported by model overfit (each trial would be "
                           "a whole fit): give a quality")
    if fast:
        raise NicodecError("fast does not apply to model overfit (no analysis transform): use effort fast")


def mac_per_pixel(a: Architecture, height: int, width: int) -> float:
    """Decoder multiply-accumulates per pixel: ARM, upsampling and synthesis (entropy decoding aside)."""
    total = 0
    for top, left, h, w in header.tile_boxes(height, width):
        sizes = grid_sizes(h, w, a.grids)
        elements = sum(gh * gw for gh, gw in sizes)
        arm = a.arm_inputs * a.arm_width + (a.arm_layers - 1) * a.arm_width**2 + 2 * a.arm_width
        up = sum((a.grids - 1 - k) * 2 * 4 * (sizes[k][0] * sizes[k][1]) for k in range(a.grids - 1))  # 4 taps, 2 passes
        syn = h * w * (a.grids * a.synthesis_width + a.synthesis_width * 3 + 2 * 27 * 3)
        total += elements * arm + up + syn
    return total / (height * width)


def _synthesis_params(a: Architecture, q: dict[str, np.ndarray], quant: dict[str, header.Quantisation]) -> dict[str, Tensor]:
    out = {}
    for module in ("up", "syn"):
        flat = params.dequantise(q[module], quant[module].shift)
        out.update({k: v[None] for k, v in params.unflatten(flat, params.module_shapes(a, module)).items()})
    return out


def _arm_integers(a: Architecture, q: np.ndarray) -> dict[str, Tensor]:
    flat = torch.from_numpy(np.asarray(q, np.float64))
    return params.unflatten(flat, params.module_shapes(a, "arm"))


def _crc(tables_in_order: list[np.ndarray]) -> int:
    crc = 0
    for t in tables_in_order:
        crc = zlib.crc32(np.ascontiguousarray(t, dtype="<i4").tobytes(), crc)
    return crc


def read_params(coder: coding.Coder, a: Architecture, quant: dict[str, header.Quantisation]) -> dict[str, np.ndarray]:
    """A tile's networks' integers (module → flat integers), read from the parameter stream."""
    q = {}
    for module in header.MODULES:
        count = sum(int(np.prod(s)) for s in params.module_shapes(a, module).values())
        q[module] = coder.params(None, quant[module].scale, quant[module].bound, count)
    return q


def decode_tile(coder: coding.Coder, reader: raster.Reader, a: Architecture, quant: dict[str, header.Quantisation],
                size: tuple[int, int]) -> TileCode:
    q = read_params(coder, a, quant)
    grids = reader.latents(_arm_integers(a, q["arm"]), quant["arm"].shift, a.arm_layers, grid_sizes(*size, a.grids),
                           a.coarse_context)
    latents = [torch.from_numpy(g) for g in grids]
    x_hat = _synthesis(a, q, quant, latents)
    return TileCode(quant, q, latents, x_hat)


def _synthesis(a: Architecture, q: dict, quant: dict, latents: list[Tensor]) -> Tensor:
    """What the decoder outputs (the encoder records the same): the compiled synthesis."""
    return compiled_synthesis.synthesize(_synthesis_params(a, q, quant), [y.numpy() for y in latents])


def _assemble(nic: container.NicFile, hdr: header.Header, codes: list[TileCode], bits: dict) -> OverfitDecoded:
    x_hat = torch.empty(3, nic.height, nic.width)
    for (top, left, h, w), code in zip(header.tile_boxes(nic.height, nic.width), codes):
        x_hat[:, top : top + h, left : left + w] = code.x_hat
    rgb = torch.round(x_hat.clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    mode = MODES[nic.mode]
    alpha = unpack_alpha(nic.streams[-1], nic.width, nic.height, mode)
    image = from_planes(rgb, alpha, mode, nic.metadata.get(container.ICC))
    return OverfitDecoded(image, [c.latents for c in codes], x_hat, nic, hdr, bits)


def finalise(nets: Networks, index: int, latents: list[Tensor], x: Tensor, lam: float) -> TileCode:
    """Quantise set ``index`` of fitted networks (the steps that minimise R + λ·D, module by
    module) and round its latents: the tile as the decoder will see it (computed on the CPU)."""
    a = nets.a
    h, w = x.shape[-2:]
    ints = [torch.round(y[index, 0].detach().float().cpu()).clamp(-tables.LATENT_BOUND, tables.LATENT_BOUND).long()
            for y in latents]
    x = x.detach().float().cpu()
    arm_flat = params.flatten({k: v[index] for k, v in nets.arm.items()}, params.module_shapes(a, "arm"))
    syn = {k: v[index].detach().float().cpu() for k, v in nets.syn.items()}

    best = None
    for shift in ARM_SHIFTS:  # the ARM's step: its bits against the latents' bits
        q = params.quantise(arm_flat, shift)
        if q is None:
            continue
        quant, param_bits = params.quantisation(q, shift)
        table, symbol = raster.tables_and_symbols(_arm_integers(a, q), shift, a.arm_layers, ints, a.coarse_context)
        latent_bits = raster.bits(raster.cumulative(), table, symbol)
        cost = param_bits + latent_bits
        if best is None or cost < best[0]:
            best = (cost, quant, q, latent_bits, param_bits)
    _, arm_quant, arm_q, latent_bits, arm_bits = best
    quant, q, bits = {"arm": arm_quant}, {"arm": arm_q}, {"arm": arm_bits, "latents": latent_bits}
    grids = [y.float()[None, None] for y in ints]
    for module in ("syn", "up"):  # then each synthesis module's step: its bits against λ·D
        shapes = params.module_shapes(a, module)
        flat = params.flatten(syn, shapes)
        best = None
        for shift in SYNTHESIS_SHIFTS:
            qm = params.quantise(flat, shift)
            if qm is None:
                continue
            qt, param_bits = params.quantisation(qm, shift)
            trial = dict(syn, **{k: v for k, v in params.unflatten(params.dequantise(qm, shift), shapes).items()})
            with torch.no_grad():
                mse = float((synthesize({k: v[None] for k, v in trial.items()}, grids)[0] - x).square().mean())
            cost = param_bits + lam * 255**2 * mse * h * w
            if best is None or cost < best[0]:
                best = (cost, qt, qm, trial, param_bits)
        _, quant[module], q[module], syn, bits[module] = best
    return TileCode(quant, q, ints, _synthesis(a, q, quant, ints), bits)


def encode_many(items: list[tuple], effort: str | FitConfig | None = None, device: str | torch.device = "cpu",
                progress: bool = False, codec: OverfitCodec | None = None,
                batch_pixels: int | None = None) -> list[tuple[bytes, OverfitDecoded]]:
    """Encode several (image, quality) pairs, fitting tiles of the same size together as batches
    of independent models on ``device`` (how a GPU codes a whole curve at once).

    ``batch_pixels`` bounds the pixels fitted at once (memory grows ~linearly with them): by
    default one tile at a time on a CPU (nothing to gain from batching there), BATCH_PIXELS_CUDA
    on a GPU."""
    codec = codec or OverfitCodec()
    device = fitting_device(device)
    config = codec.fit_config(effort)
    a = codec.config.arch
    jobs, prepared = [], []
    for i, (image, quality) in enumerate(items):
        planes = to_planes(image)
        q = check_quality(quality)
        h, w = planes.rgb.shape[:2]
        if max(h, w) > container.MAX_SIDE:
            raise NicodecError(f"image is {w}×{h}; the largest side a .nic file holds is {container.MAX_SIDE}")
        x = torch.from_numpy(planes.rgb.copy()).permute(2, 0, 1).float().div_(255)
        prepared.append((planes, q, header.tile_boxes(h, w)))
        for t, (top, left, th, tw) in enumerate(prepared[-1][2]):
            jobs.append((i, t, x[:, top : top + th, left : left + tw], quality_to_lambda(q)))
    codes: dict[tuple[int, int], TileCode] = {}
    by_size: dict[tuple[int, int], list] = {}
    for job in jobs:
        by_size.setdefault(tuple(job[2].shape[-2:]), []).append(job)
    if batch_pixels is None:
        batch_pixels = BATCH_PIXELS_CUDA if torch.device(device).type == "cuda" else 1
    batches = []
    for size, same in by_size.items():
        per = max(1, batch_pixels // (size[0] * size[1]))
        batches += [same[i : i + per] for i in range(0, len(same), per)]
    for batch in batches:
        x = torch.stack([j[2] for j in batch]).to(device)
        lam = torch.tensor([j[3] for j in batch], device=device)
        inits = [starting_networks(a, prepared[i][1]) for i, *_ in batch] if config.pretrained else []
        init = inits if inits and all(s is not None for s in inits) else None
        result = fit(x, lam, a, config, progress=progress, init=init)
        for g, (i, t, xt, lam_g) in enumerate(batch):
            codes[(i, t)] = finalise(result.nets, g, result.latents, xt, lam_g)
    out = []
    for i, (planes, q, boxes) in enumerate(prepared):
        h, w = planes.rgb.shape[:2]
        tiles = [codes[(i, t)] for t in range(len(boxes))]
        hdr = header.Header(a, [c.quant for c in tiles])
        coder = coding.Coder()
        coded = []
        for c in tiles:
            for module in header.MODULES:
                qt = c.quant[module]
                coder.params(c.q[module], qt.scale, qt.bound, len(c.q[module]))
            coded.append(raster.tables_and_symbols(_arm_integers(a, c.q["arm"]), c.quant["arm"].shift, a.arm_layers,
                                                   [y.numpy() for y in c.latents], a.coarse_context))
        table = np.concatenate([t for t, _ in coded])
        symbol = np.concatenate([s for _, s in coded])
        nic = container.NicFile(
            model=NAME, weights_id=WEIGHTS_ID, quality=q, width=w, height=h, mode=MODES.index(planes.mode),
            param_crc=_crc([t for t, _ in coded]),
            streams=[header.pack(hdr), coder.finish(), raster.encode(table, symbol), pack_alpha(planes.alpha)],
            metadata={container.ICC: planes.icc} if planes.icc else {},
        )
        data = container.pack(nic)
        bits = dict(coder.bits, latents=raster.bits(raster.cumulative(), table, symbol))
        out.append((data, _assemble(container.unpack(data), hdr, tiles, bits)))
    return out
