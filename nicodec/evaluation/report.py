"""What a person looks at: BD-rate tables, rate-distortion plots and an HTML page with crops.

Plots are drawn with matplotlib's Agg backend (no display needed) as PNG and SVG; the HTML page
references them and the decoded crops by relative path, so the output folder can be moved or
zipped as a whole.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from dataclasses import dataclass
from pathlib import Path

from nicodec.errors import NicodecError
from nicodec.evaluation.bdrate import bd_psnr, bd_rate
from nicodec.evaluation.results import Curve, PointResult, quality_str

__all__ = [
    "BDRow", "bd_table", "format_bd_table", "format_points_table", "nearest_points", "pick_anchor", "plot_rd", "write_html",
]

METRICS = {"psnr": ("PSNR-RGB [dB]", "rd_psnr"), "msssim_db": ("MS-SSIM-RGB [dB]", "rd_msssim")}


@dataclass
class BDRow:
    """Bjøntegaard deltas of one curve against the anchor; None where they cannot be computed."""

    name: str
    bd_rate_psnr: float | None
    bd_psnr: float | None
    bd_rate_msssim: float | None
    bd_msssim_db: float | None


def pick_anchor(curves: list[Curve], name: str | None) -> Curve:
    """The curve called `name` (its name, label or file stem, case-insensitive); default the first."""
    if not curves:
        raise NicodecError("no curves to compare against")
    if name is None:
        return curves[0]
    want = name.lower()
    for c in curves:
        stems = {c.name.lower(), Path(c.source).stem.lower() if c.source else ""}
        if want in stems:
            return c
    known = ", ".join(sorted({c.name for c in curves} | {Path(c.source).stem for c in curves if c.source}))
    raise NicodecError(f"--anchor {name!r} matches no curve (known: {known})")


def _delta(fn, anchor: Curve, curve: Curve, metric: str) -> float | None:
    a, b = anchor.metric(metric), curve.metric(metric)
    if not a or not b:
        return None
    try:
        v = fn(anchor.bpp, a, curve.bpp, b)
    except NicodecError:
        return None  # too few points or no overlap: shown as "n/a"
    return v if math.isfinite(v) else None


def bd_table(curves: list[Curve], anchor: Curve) -> list[BDRow]:
    """BD-rate and BD-quality (PSNR and MS-SSIM in dB) of each curve against `anchor`."""
    rows = []
    for c in curves:
        if c is anchor:
            continue
        rows.append(
            BDRow(
                c.name,
                _delta(bd_rate, anchor, c, "psnr"),
                _delta(bd_psnr, anchor, c, "psnr"),
                _delta(bd_rate, anchor, c, "msssim_db"),
                _delta(bd_psnr, anchor, c, "msssim_db"),
            )
        )
    return rows


def _fmt(v: float | None, spec: str, unit: str) -> str:
    return "n/a" if v is None else f"{format(v, spec)} {unit}"


def format_bd_table(rows: list[BDRow], anchor: Curve) -> str:
    """A Markdown table (also readable as plain text)."""
    lines = [
        f"BD against anchor: {anchor.name}",
        "",
        "| codec | BD-rate PSNR | BD-PSNR | BD-rate MS-SSIM | BD-MS-SSIM |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {_fmt(r.bd_rate_psnr, '+.1f', '%')} | {_fmt(r.bd_psnr, '+.2f', 'dB')} "
            f"| {_fmt(r.bd_rate_msssim, '+.1f', '%')} | {_fmt(r.bd_msssim_db, '+.2f', 'dB')} |"
        )
    return "\n".join(lines)


def format_points_table(curve: Curve) -> str:
    """One Markdown table of a curve's averaged points (quality, bpp, PSNR, MS-SSIM, times)."""
    lines = [
        "| quality | bpp | PSNR [dB] | MS-SSIM | MS-SSIM [dB] | encode [s] | decode [s] |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i in range(len(curve.bpp)):
        lines.append(
            f"| {quality_str(curve.quality[i])} | {curve.bpp[i]:.4f} | {curve.psnr[i]:.2f} | {curve.msssim[i]:.4f} "
            f"| {curve.msssim_db[i]:.2f} | {curve.enc_s[i]:.3f} | {curve.dec_s[i]:.3f} |"
        )
    return "\n".join(lines)


def plot_rd(curves: list[Curve], anchors: list[Curve], out: Path, title: str = "") -> dict[str, list[Path]]:
    """bpp–PSNR and bpp–MS-SSIM(dB) figures of all curves (solid) and anchors (dashed), PNG + SVG.

    The x axis spans the evaluated curves' rates (anchors are clipped to it), so a published
    anchor reaching 4 bpp does not squash the curves being studied.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    files: dict[str, list[Path]] = {}
    own_bpp = [b for c in curves for b in c.bpp]
    xmax = 1.05 * max(own_bpp) if own_bpp else None
    for metric, (ylabel, stem) in METRICS.items():
        fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
        ys: list[float] = []
        for c, style in [(c, "-") for c in curves] + [(a, "--") for a in anchors]:
            y = c.metric(metric)
            if not y:
                continue
            ax.plot(c.bpp, y, style, marker="o" if style == "-" else ".", ms=4, lw=1.6, label=c.name)
            ys += [v for b, v in zip(c.bpp, y) if xmax is None or b <= xmax]
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(ylabel)
        ax.set_title(title or ylabel)
        ax.grid(True, alpha=0.3)
        if xmax is not None:
            ax.set_xlim(0, xmax)
        if ys:
            lo, hi = min(ys), max(ys)
            ax.set_ylim(lo - 0.03 * (hi - lo + 1), hi + 0.03 * (hi - lo + 1))
        if ax.lines:
            ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        files[metric] = []
        for ext in ("png", "svg"):
            path = out / f"{stem}.{ext}"
            fig.savefig(path)
            files[metric].append(path)
        plt.close(fig)
    return files


def nearest_points(
    curves: list[Curve], rows: list[PointResult], image: str, target_bpp: float
) -> list[tuple[Curve, PointResult]]:
    """For each curve, its measured point on `image` whose bpp is nearest `target_bpp`."""
    picks = []
    for c in curves:
        qs = {quality_str(q) for q in c.quality}
        cand = [r for r in rows if r.codec == c.name and r.image == image and quality_str(r.quality) in qs]
        if cand:
            picks.append((c, min(cand, key=lambda r: abs(math.log(r.bpp / target_bpp)))))
    return picks


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.good{color:#0a7d28}.bad{color:#b3261e}
.plots img{max-width:49%}.crops{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0}figure img{image-rendering:pixelated;width:288px;height:auto;border:1px solid #999}
figcaption{font-size:.85em;max-width:288px}code{background:#f3f3f3;padding:0 .2em}
"""


def _cell(v: float | None, spec: str, unit: str, better_low: bool) -> str:
    if v is None:
        return "<td>n/a</td>"
    cls = "good" if (v < 0) == better_low else "bad"
    return f'<td class="{cls}">{format(v, spec)} {unit}</td>'


def write_html(
    out: Path,
    *,
    curves: list[Curve],
    anchors: list[Curve],
    anchor: Curve | None,
    bd_rows: list[BDRow],
    plots: dict[str, list[Path]],
    crops: list[tuple[str, Path, str]],
    info: dict[str, str],
) -> Path:
    """Write ``report.html`` into `out`; `crops` is (title, png path, caption) per tile."""
    out = Path(out)
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>nicodec evaluation</title>",
        f"<style>{_CSS}</style></head><body><h1>nicodec evaluation</h1>",
        "<p>" + " · ".join(f"<b>{e(k)}</b>: {e(v)}" for k, v in info.items()) + "</p>",
    ]
    if anchor is not None and bd_rows:
        parts.append(f"<h2>Bjøntegaard deltas against {e(anchor.name)}</h2>")
        parts.append("<p>Negative BD-rate: fewer bits than the anchor for the same quality (better).</p>")
        parts.append("<table><tr><th>codec</th><th>BD-rate (PSNR)</th><th>BD-PSNR</th>")
        parts.append("<th>BD-rate (MS-SSIM)</th><th>BD-MS-SSIM</th></tr>")
        for r in bd_rows:
            parts.append(
                f"<tr><td>{e(r.name)}</td>{_cell(r.bd_rate_psnr, '+.1f', '%', True)}"
                f"{_cell(r.bd_psnr, '+.2f', 'dB', False)}{_cell(r.bd_rate_msssim, '+.1f', '%', True)}"
                f"{_cell(r.bd_msssim_db, '+.2f', 'dB', False)}</tr>"
            )
        parts.append("</table>")
    parts.append("<h2>Rate–distortion</h2><div class='plots'>")
    for metric in METRICS:
        for p in plots.get(metric, []):
            if p.suffix == ".svg":
                parts.append(f"<img src='{e(p.relative_to(out).as_posix())}' alt='{e(metric)} plot'>")
    parts.append("</div>")
    if crops:
        parts.append("<h2>Crops at about the same rate</h2><div class='crops'>")
        for title, path, caption in crops:
            parts.append(
                f"<figure><img src='{e(path.relative_to(out).as_posix())}' alt='{e(title)}'>"
                f"<figcaption><b>{e(title)}</b><br>{e(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    parts.append("<h2>Measured points (mean over images)</h2>")
    for c in curves:
        parts.append(f"<details><summary><b>{e(c.name)}</b> — {e(c.description)}</summary><table>")
        parts.append(
            "<tr><th>quality</th><th>bpp</th><th>PSNR [dB]</th><th>MS-SSIM</th><th>MS-SSIM [dB]</th>"
            "<th>encode [s]</th><th>decode [s]</th></tr>"
        )
        for i in range(len(c.bpp)):
            parts.append(
                f"<tr><td>{quality_str(c.quality[i])}</td><td>{c.bpp[i]:.4f}</td><td>{c.psnr[i]:.2f}</td>"
                f"<td>{c.msssim[i]:.4f}</td><td>{c.msssim_db[i]:.2f}</td><td>{c.enc_s[i]:.3f}</td>"
                f"<td>{c.dec_s[i]:.3f}</td></tr>"
            )
        parts.append("</table></details>")
    if anchors:
        parts.append("<h2>Anchors</h2><ul>")
        for a in anchors:
            parts.append(f"<li>{e(a.name)} — {e(a.description)} <code>{e(a.source)}</code></li>")
        parts.append("</ul>")
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts.append(f"<p><small>Generated by <code>nicodec eval</code> on {stamp}.</small></p></body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
