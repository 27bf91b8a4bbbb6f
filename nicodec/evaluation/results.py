"""Result files: per-image CSV rows and rate-distortion curves in CompressAI's JSON layout.

The per-image CSV is the source of truth (it is what `eval` resumes from); curves are averages
over images, written as ``{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...],
...}}`` so that our files and the published anchors (``shared/anchors/kodak/*.json``) can be
plotted and compared by the same code.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nicodec.errors import NicodecError
from nicodec.metrics import ms_ssim_db

__all__ = [
    "CSV_FIELDS",
    "Curve",
    "PointResult",
    "aggregate",
    "load_curve",
    "load_curves",
    "point_key",
    "read_rows",
    "append_rows",
    "save_curve",
]

CSV_FIELDS = ("codec", "quality", "image", "width", "height", "bytes", "bpp", "psnr", "msssim", "enc_s", "dec_s")


def quality_str(q: float) -> str:
    """Canonical text of a quality value, so 30, 30.0 and "30" name the same point."""
    return format(float(q), ".6g")


def point_key(codec: str, quality: float | str, image: str) -> tuple[str, str, str]:
    """The identity of one measured point, used for resuming."""
    return codec, quality_str(float(quality)), image


@dataclass(frozen=True)
class PointResult:
    """One (codec, quality, image) measurement: a row of the per-image CSV."""

    codec: str
    quality: float
    image: str
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    msssim: float
    enc_s: float
    dec_s: float

    @property
    def key(self) -> tuple[str, str, str]:
        return point_key(self.codec, self.quality, self.image)

    def as_row(self) -> dict[str, str]:
        row = {k: getattr(self, k) for k in CSV_FIELDS}
        row["quality"] = quality_str(self.quality)
        for k in ("bpp", "psnr", "msssim", "enc_s", "dec_s"):
            row[k] = repr(float(row[k]))
        return {k: str(v) for k, v in row.items()}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> PointResult:
        return cls(
            codec=row["codec"],
            quality=float(row["quality"]),
            image=row["image"],
            width=int(row["width"]),
            height=int(row["height"]),
            bytes=int(row["bytes"]),
            bpp=float(row["bpp"]),
            psnr=float(row["psnr"]),
            msssim=float(row["msssim"]),
            enc_s=float(row["enc_s"]),
            dec_s=float(row["dec_s"]),
        )


def read_rows(path: Path) -> list[PointResult]:
    """All rows of a per-image CSV (missing file: none). Later duplicates of a point win."""
    if not path.exists():
        return []
    rows: dict[tuple[str, str, str], PointResult] = {}
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                try:
                    p = PointResult.from_row(row)
                except (KeyError, TypeError, ValueError):
                    continue  # a line cut short by an interrupted run: recompute that point
                rows[p.key] = p
    except OSError as e:
        raise NicodecError(f"cannot read {path}: {e.strerror or e}") from None
    return list(rows.values())


def append_rows(path: Path, rows: Iterable[PointResult]) -> None:
    """Append rows to the per-image CSV (writing the header for a new file), flushing each line."""
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow(r.as_row())
            f.flush()


@dataclass
class Curve:
    """A rate-distortion curve averaged over images, sorted by bpp.

    `psnr`, `msssim` or `msssim_db` may be empty for published curves that lack them.
    """

    name: str
    bpp: list[float]
    psnr: list[float] = field(default_factory=list)
    msssim: list[float] = field(default_factory=list)
    msssim_db: list[float] = field(default_factory=list)
    enc_s: list[float] = field(default_factory=list)
    dec_s: list[float] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    description: str = ""
    source: str = ""  # file it was read from, if any

    def metric(self, name: str) -> list[float]:
        """The quality values for 'psnr' or 'msssim_db' (the two axes we plot and BD-compare)."""
        return {"psnr": self.psnr, "msssim_db": self.msssim_db}[name]

    def to_json(self) -> dict:
        res: dict[str, list[float]] = {"bpp": self.bpp}
        for key, vals in (
            ("psnr-rgb", self.psnr),
            ("ms-ssim-rgb", self.msssim),
            ("ms-ssim-rgb-db", self.msssim_db),
            ("encoding_time", self.enc_s),
            ("decoding_time", self.dec_s),
            ("quality", self.quality),
        ):
            if vals:
                res[key] = vals
        return {"name": self.name, "description": self.description, "results": res}


def _floats(res: dict, *keys: str) -> list[float]:
    for k in keys:
        if k in res:
            return [float(v) for v in res[k]]
    return []


def load_curve(path: Path) -> Curve:
    """Read a CompressAI-layout JSON file (ours or a published anchor)."""
    try:
        data = json.loads(Path(path).read_text())
        res = data["results"]
        bpp = [float(v) for v in res["bpp"]]
    except OSError as e:
        raise NicodecError(f"cannot read anchor {path}: {e.strerror or e}") from None
    except (ValueError, KeyError, TypeError):
        raise NicodecError(f"{path} is not a results file in CompressAI's layout (needs results.bpp)") from None
    psnr = _floats(res, "psnr-rgb", "psnr")
    msssim = _floats(res, "ms-ssim-rgb", "ms-ssim")
    msssim_db = _floats(res, "ms-ssim-rgb-db", "ms-ssim-db-rgb", "ms-ssim-db")
    if msssim and not msssim_db:
        msssim_db = [ms_ssim_db(v) for v in msssim]
    curve = Curve(
        name=str(data.get("name") or Path(path).stem),
        bpp=bpp,
        psnr=psnr,
        msssim=msssim,
        msssim_db=msssim_db,
        enc_s=_floats(res, "encoding_time"),
        dec_s=_floats(res, "decoding_time"),
        quality=_floats(res, "quality"),
        description=str(data.get("description", "")),
        source=str(path),
    )
    for k in ("psnr", "msssim", "msssim_db", "enc_s", "dec_s", "quality"):
        if getattr(curve, k) and len(getattr(curve, k)) != len(bpp):
            raise NicodecError(f"{path}: results.{k} has a different length from results.bpp")
    return curve


def load_curves(paths: Iterable[str | Path]) -> list[Curve]:
    """Anchors from files and folders (every ``*.json`` inside a folder, sorted)."""
    curves = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(p.glob("*.json"))
            if not files:
                raise NicodecError(f"no .json results files in {p}")
            curves += [load_curve(f) for f in files]
        elif p.exists():
            curves.append(load_curve(p))
        else:
            raise NicodecError(f"anchor file not found: {p}")
    return curves


def save_curve(curve: Curve, path: Path) -> None:
    path.write_text(json.dumps(curve.to_json(), indent=2) + "\n")


def aggregate(name: str, rows: Iterable[PointResult], images: list[str], description: str = "") -> Curve:
    """Average per-image rows into a curve, one point per quality measured on every image.

    bpp, PSNR, MS-SSIM and times are means over images (CompressAI's convention); MS-SSIM in dB is
    taken of the mean MS-SSIM, as it is for the published curves that only store MS-SSIM.
    """
    wanted = set(images)
    by_q: dict[str, list[PointResult]] = defaultdict(list)
    for r in rows:
        if r.codec == name and r.image in wanted:
            by_q[quality_str(r.quality)].append(r)
    pts = []
    for q, rs in by_q.items():
        if len({r.image for r in rs}) < len(wanted):
            continue  # incomplete quality point: leave it out of the average rather than bias it
        n = len(rs)
        mean = lambda attr: math.fsum(getattr(r, attr) for r in rs) / n  # noqa: E731
        pts.append((mean("bpp"), mean("psnr"), mean("msssim"), mean("enc_s"), mean("dec_s"), float(q)))
    pts.sort()
    return Curve(
        name=name,
        bpp=[p[0] for p in pts],
        psnr=[p[1] for p in pts],
        msssim=[p[2] for p in pts],
        msssim_db=[ms_ssim_db(p[2]) for p in pts],
        enc_s=[p[3] for p in pts],
        dec_s=[p[4] for p in pts],
        quality=[p[5] for p in pts],
        description=description,
    )
