"""Figures of the release report, drawn with matplotlib as inline SVG text.

Why SVG and not PNG: the figures are bars, heat maps and dots, which are a few kilobytes as
vector paths, stay sharp at any zoom and in print, and with ``svg.fonttype = "none"`` their
labels are real text (searchable with Ctrl-F, selectable, no embedded glyph outlines).
Each function returns one ``<svg>`` element ready to paste into HTML: no XML prolog, no
DOCTYPE, no metadata (matplotlib's names a web address and the date), no ``xmlns``
attributes (HTML gives inline SVG its namespace), and no ids on groups (matplotlib numbers
them from 1 in every figure, which would repeat across the page). The ids that remain
(clip paths, markers) are hashed with a salt unique to the figure, so they neither collide
nor change between runs: the same report renders to the same bytes.

The functions draw only the figures handed to them; they read no data of their own. Inputs
are checked, and a malformed one raises ``ValueError`` saying which key is wrong and how.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure

__all__ = [
    "PALETTE",
    "association_svg",
    "attacks_svg",
    "check_association",
    "check_plot",
    "distribution_svg",
    "rates_svg",
    "top_categories",
]

#: Colours shared with the page's legend: real (blue) and synthetic (orange) are told apart
#: by colour-blind readers too.
PALETTE = {"real": "#3b6fb6", "synthetic": "#e8872e", "control": "#8c959f", "main": "#cf222e"}
MAX_CATEGORIES = 15  # categorical columns with more labels show the top 15 by real share + "other"
MAX_TICK_LABELS = 12  # numeric columns with more bins label every k-th bin

_RC = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 8.5,
    "axes.titlesize": 9.5,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#57606a",
    "axes.labelcolor": "#1b1f24",
    "xtick.color": "#1b1f24",
    "ytick.color": "#1b1f24",
    "legend.frameon": False,
}
_LOCK = threading.Lock()  # rcParams are process-global; draw one figure at a time
_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


# --- SVG output --------------------------------------------------------------------------


def _to_svg(fig: Figure, salt: str, title: str) -> str:
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"synthgate-{salt}"}):
        fig.savefig(buf, format="svg", metadata=_METADATA)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", text)
    text = re.sub(r'(<g) id="[^"]*"', r"\1", text)
    # An accessible name for screen readers; the caller's text is escaped here.
    label = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1).strip()


# --- input checks ------------------------------------------------------------------------


def _share_list(value: Any, key: str, where: str, n: int) -> list[float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != n:
        got = len(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        raise ValueError(
            f"{where}[{key!r}] must be a list of {n} shares (one per label). Got {got!r}. "
            "Give one share in [0, 1] per label."
        )
    out = []
    for i, v in enumerate(value):
        if v is None:
            out.append(0.0)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}[{key!r}][{i}] must be a finite number. Got {v!r}.")
        out.append(float(v))
    return out


def check_plot(plot: Any, where: str = "plot") -> dict[str, Any]:
    """Validate a ``per_column[col]["plot"]`` dict and return a clean copy.

    Expected: ``{"type": "numeric"|"categorical", "labels": [str], "real": [share],
    "synthetic": [share], "null_real": float, "null_synthetic": float, "suppressed": int}``.
    Null shares and ``suppressed`` may be missing (read as 0); a null share is allowed too.
    """
    if not isinstance(plot, Mapping):
        raise ValueError(f"{where} must be a dict with type, labels, real and synthetic. Got {type(plot).__name__}.")
    kind = plot.get("type")
    if kind not in ("numeric", "categorical"):
        raise ValueError(f"{where}['type'] must be 'numeric' or 'categorical'. Got {kind!r}.")
    labels = plot.get("labels")
    if not isinstance(labels, Sequence) or isinstance(labels, str) or not labels:
        raise ValueError(f"{where}['labels'] must be a non-empty list of strings. Got {labels!r}.")
    labels = [str(x) for x in labels]
    clean = {
        "type": kind,
        "labels": labels,
        "real": _share_list(plot.get("real"), "real", where, len(labels)),
        "synthetic": _share_list(plot.get("synthetic"), "synthetic", where, len(labels)),
    }
    for key in ("null_real", "null_synthetic"):
        v = plot.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            raise ValueError(f"{where}[{key!r}] must be a share in [0, 1] or absent. Got {v!r}.")
        clean[key] = None if v is None else float(v)
    suppressed = plot.get("suppressed", 0) or 0
    if isinstance(suppressed, bool) or not isinstance(suppressed, (int, float)) or suppressed < 0:
        raise ValueError(f"{where}['suppressed'] must be a count >= 0. Got {suppressed!r}.")
    clean["suppressed"] = int(suppressed)
    return clean


def check_association(assoc: Any, where: str = "association") -> dict[str, Any]:
    """Validate ``{"columns": [name], "real": [[v]], "synthetic": [[v]], "measure": str}``."""
    if not isinstance(assoc, Mapping):
        raise ValueError(
            f"{where} must be a dict with columns, real, synthetic and measure. Got {type(assoc).__name__}."
        )
    columns = assoc.get("columns")
    if not isinstance(columns, Sequence) or isinstance(columns, str) or len(columns) < 2:
        raise ValueError(f"{where}['columns'] must list at least two column names. Got {columns!r}.")
    n = len(columns)
    out: dict[str, Any] = {"columns": [str(c) for c in columns], "measure": str(assoc.get("measure") or "association")}
    for key in ("real", "synthetic"):
        m = assoc.get(key)
        if (
            not isinstance(m, Sequence)
            or len(m) != n
            or any(not isinstance(row, Sequence) or len(row) != n for row in m)
        ):
            raise ValueError(
                f"{where}[{key!r}] must be a {n}x{n} matrix (a list of {n} rows of {n} numbers, one per column pair)."
            )
        rows = []
        for i, row in enumerate(m):
            vals = []
            for j, v in enumerate(row):
                if v is None:
                    vals.append(math.nan)
                elif isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"{where}[{key!r}][{i}][{j}] must be a number in [-1, 1]. Got {v!r}.")
                else:
                    vals.append(float(v))
            rows.append(vals)
        out[key] = rows
    return out


# --- column distributions ----------------------------------------------------------------


def top_categories(
    labels: list[str], real: list[float], synthetic: list[float], k: int = MAX_CATEGORIES
) -> tuple[list[str], list[float], list[float]]:
    """The ``k`` labels with the largest real share (ties keep their order) + one "other" bar.

    Lists of at most ``k + 1`` labels come back unchanged.
    """
    if len(labels) <= k + 1:  # an "other" bar must stand for at least two labels
        return list(labels), list(real), list(synthetic)
    order = sorted(range(len(labels)), key=lambda i: -real[i])
    keep, rest = order[:k], order[k:]
    return (
        [labels[i] for i in keep] + [f"other ({len(rest)} more)"],
        [real[i] for i in keep] + [sum(real[i] for i in rest)],
        [synthetic[i] for i in keep] + [sum(synthetic[i] for i in rest)],
    )


def _shorten(label: str, width: int = 22) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def _percent_axis(axis: Any) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))


def _text_width(label: str, size: float) -> float:
    """Rough width in inches of ``label`` at ``size`` points (DejaVu Sans averages ~0.6 em)."""
    return len(label) * size * 0.6 / 72


def distribution_svg(column: str, plot: Mapping[str, Any], *, title: str, salt: str) -> str:
    """Real vs synthetic shares of one column as an inline SVG.

    Numeric columns: real shares as filled bars over the bins, synthetic as an outline on
    the same bins. Categorical columns: horizontal bars side by side, at most 15 labels (by
    real share) plus "other". Margins are set from the label lengths rather than by a
    layout engine: a page holds one figure per column, and this halves the drawing time.
    """
    p = check_plot(plot, where=f"per_column[{column!r}]['plot']")
    size = _RC["font.size"]
    width = 4.4
    with _LOCK, matplotlib.rc_context(_RC):
        if p["type"] == "categorical":
            labels, real, syn = top_categories(p["labels"], p["real"], p["synthetic"])
            labels = [_shorten(x) for x in labels]
            n = len(labels)
            height = 0.95 + 0.2 * max(n, 3)
            fig = Figure(figsize=(width, height))
            left = (max(_text_width(x, size) for x in labels) + 0.18) / width
            fig.subplots_adjust(left=left, right=0.96, top=1 - 0.36 / height, bottom=0.4 / height)
            ax = fig.add_subplot()
            ys = list(range(n))
            h = 0.4
            ax.barh([y - h / 2 for y in ys], real, height=h, color=PALETTE["real"], label="real")
            ax.barh([y + h / 2 for y in ys], syn, height=h, color=PALETTE["synthetic"], label="synthetic")
            ax.set_yticks(ys, labels)
            ax.set_ylim(n - 0.5, -0.5)
            _percent_axis(ax.xaxis)
            ax.grid(axis="x", color="#d0d7de", linewidth=0.6)
            ax.set_axisbelow(True)
            ax.tick_params(axis="y", length=0)
        else:
            labels, real, syn = p["labels"], p["real"], p["synthetic"]
            n = len(labels)
            step = max(1, math.ceil(n / MAX_TICK_LABELS))
            ticks = list(range(0, n, step))
            shown = [_shorten(labels[i], 16) for i in ticks]
            # Labels turned 40°: their drop is about 0.64 of their width.
            bottom = 0.64 * max(_text_width(x, size) for x in shown) + 0.2
            height = 2.3 + bottom
            fig = Figure(figsize=(width, height))
            fig.subplots_adjust(left=0.5 / width, right=0.97, top=1 - 0.36 / height, bottom=bottom / height)
            ax = fig.add_subplot()
            xs = list(range(n))
            ax.bar(xs, real, width=0.9, color=PALETTE["real"], alpha=0.85, label="real")
            ax.step(
                [-0.5, *[x + 0.5 for x in xs]],
                [syn[0], *syn],
                where="pre",
                color=PALETTE["synthetic"],
                linewidth=1.8,
                label="synthetic",
            )
            ax.set_xticks(ticks, shown, rotation=40, ha="right", rotation_mode="anchor")
            ax.set_xlim(-0.6, n - 0.4)
            _percent_axis(ax.yaxis)
            ax.grid(axis="y", color="#d0d7de", linewidth=0.6)
            ax.set_axisbelow(True)
        fig.text(
            0.02,
            1 - 0.08 / fig.get_figheight(),
            _shorten(title, 52),
            ha="left",
            va="top",
            fontsize=_RC["axes.titlesize"],
            fontweight="bold",
        )
        return _to_svg(fig, salt, f"distribution of {column}, real vs synthetic")


# --- association heat maps ---------------------------------------------------------------


def association_svg(assoc: Mapping[str, Any], *, salt: str) -> str:
    """Real and synthetic association matrices side by side, and synthetic − real.

    Cells are drawn as one small pixelated image per panel (``imshow``), a few hundred
    bytes, instead of one vector path per cell.
    """
    import numpy as np

    a = check_association(assoc)
    cols = [_shorten(c, 18) for c in a["columns"]]
    n = len(cols)
    real = np.asarray(a["real"], dtype=float)
    syn = np.asarray(a["synthetic"], dtype=float)
    diff = syn - real
    finite = np.abs(diff[np.isfinite(diff)])
    span = float(max(0.05, finite.max())) if finite.size else 1.0
    span = min(2.0, math.ceil(span * 20) / 20)  # a round colour scale: 0.05 steps
    tick_size = 8 if n <= 16 else (7 if n <= 24 else 5.5)
    annotate = n <= 8
    # Laid out by hand (inches), not by a layout engine: about twice as fast.
    # [row labels][real] gap [synthetic][bar] gap [difference][bar]
    label_in = max(_text_width(c, tick_size) for c in cols) + 0.12
    bar, bar_labels, gap, top = 0.14, 0.55, 0.22, 0.32
    fixed = label_in + 2 * gap + 2 * (0.08 + bar + bar_labels)
    side = min((11.6 - fixed) / 3, 0.32 * n + 0.6)
    width, height = fixed + 3 * side, top + side + label_in
    with _LOCK, matplotlib.rc_context({**_RC, "xtick.labelsize": tick_size, "ytick.labelsize": tick_size}):
        fig = Figure(figsize=(width, height))

        def box(x: float, w: float, h: float = side, y: float = label_in) -> list[float]:
            return [x / width, y / height, w / width, h / height]

        x_real = label_in
        x_syn = x_real + side + gap
        x_bar1 = x_syn + side + 0.08
        x_diff = x_bar1 + bar + bar_labels + gap
        x_bar2 = x_diff + side + 0.08
        panels = (
            ("real", real, "RdBu_r", -1.0, 1.0, x_real, None),
            ("synthetic", syn, "RdBu_r", -1.0, 1.0, x_syn, x_bar1),
            ("synthetic − real", diff, "PuOr", -span, span, x_diff, x_bar2),
        )
        for k, (name, m, cmap, lo, hi, x, x_bar) in enumerate(panels):
            ax = fig.add_axes(box(x, side))
            image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, vmin=lo, vmax=hi, interpolation="none", aspect="auto")
            ax.set_xticks(range(n), cols, rotation=90)
            ax.set_yticks(range(n), cols if k == 0 else [])
            edges = [i - 0.5 for i in range(1, n)]  # white lines between cells: two artists, not 4n ticks
            ax.vlines(edges, -0.5, n - 0.5, colors="white", linewidth=0.5)
            ax.hlines(edges, -0.5, n - 0.5, colors="white", linewidth=0.5)
            ax.tick_params(length=0)
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_title(name, loc="left")
            if annotate:
                for i in range(n):
                    for j in range(n):
                        if math.isfinite(m[i, j]):
                            strong = abs(m[i, j]) > 0.6 * max(abs(lo), abs(hi))
                            ax.text(
                                j,
                                i,
                                f"{m[i, j]:.2f}",
                                ha="center",
                                va="center",
                                fontsize=7,
                                color="white" if strong else "#1b1f24",
                            )
            if x_bar is not None:  # real and synthetic share one scale: one bar for both
                fig.colorbar(image, cax=fig.add_axes(box(x_bar, bar)))
        return _to_svg(fig, salt, f"{a['measure']} between columns: real, synthetic and their difference")


# --- privacy figures ---------------------------------------------------------------------


def _finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _ci(v: Any) -> tuple[float, float] | None:
    if isinstance(v, Sequence) and not isinstance(v, str) and len(v) == 2:
        lo, hi = _finite(v[0]), _finite(v[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def attacks_svg(attacks: Sequence[Mapping[str, Any]], *, salt: str, threshold: float | None = None) -> str:
    """Membership-inference AUC per attack with its interval, against chance (0.5)."""
    rows = [
        (str(a.get("name", f"attack {i + 1}")), _finite(a.get("auc")), _ci(a.get("ci")))
        for i, a in enumerate(attacks)
        if isinstance(a, Mapping)
    ]
    rows = [r for r in rows if r[1] is not None]
    if not rows:
        raise ValueError("no attack has a finite 'auc' to draw. Each attack needs {'name', 'auc', 'ci', ...}.")
    labels = [_shorten(r[0], 32) for r in rows]
    width, height = 7.0, 1.0 + 0.38 * len(rows)
    with _LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height))
        left = (max(_text_width(x, _RC["font.size"]) for x in labels) + 0.15) / width
        fig.subplots_adjust(left=left, right=0.97, top=1 - 0.1 / height, bottom=0.55 / height)
        ax = fig.add_subplot()
        for y, (_, auc, ci) in enumerate(rows):
            if ci is not None:
                ax.plot(ci, [y, y], color=PALETTE["main"], linewidth=2.2, solid_capstyle="butt")
            ax.plot([auc], [y], "o", color=PALETTE["main"], markersize=6)
        ax.axvline(0.5, color=PALETTE["control"], linestyle="--", linewidth=1)
        ax.text(0.5, -0.6, " chance", color="#57606a", fontsize=7.5, va="bottom")
        if threshold is not None and math.isfinite(threshold):
            ax.axvline(threshold, color="#1b1f24", linewidth=1)
            ax.text(threshold, -0.6, " gate", color="#1b1f24", fontsize=7.5, va="bottom")
        lo = min([0.4] + [r[2][0] for r in rows if r[2]] + [r[1] for r in rows])
        hi = max(
            [0.8]
            + [r[2][1] for r in rows if r[2]]
            + [r[1] for r in rows]
            + ([threshold] if threshold is not None and math.isfinite(threshold) else [])
        )
        ax.set_xlim(max(0.0, lo - 0.03), min(1.0, hi + 0.03))
        ax.set_yticks(range(len(rows)), labels)
        ax.set_ylim(len(rows) - 0.5, -0.9)
        ax.set_xlabel("ROC AUC of telling training rows from holdout rows (0.5 = no better than chance)")
        ax.grid(axis="x", color="#d0d7de", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
        return _to_svg(fig, salt, "membership-inference attacks: AUC with interval")


def rates_svg(rows: Sequence[tuple[str, float | None, Any, float | None, Any]], *, salt: str) -> str:
    """Attack success on the training rows (main) vs on unseen control rows, per risk.

    ``rows``: ``(name, main_rate, main_ci, control_rate, control_ci)``; a missing rate or
    interval is left out of the figure.
    """
    clean = [(n, _finite(m), _ci(mc), _finite(c), _ci(cc)) for n, m, mc, c, cc in rows]
    clean = [r for r in clean if r[1] is not None or r[3] is not None]
    if not clean:
        raise ValueError("no risk has a finite main_rate or control_rate to draw.")
    labels = [_shorten(r[0], 34) for r in clean]
    width, height = 7.0, 1.25 + 0.42 * len(clean)
    with _LOCK, matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height))
        left = (max(_text_width(x, _RC["font.size"]) for x in labels) + 0.15) / width
        fig.subplots_adjust(left=left, right=0.97, top=1 - 0.4 / height, bottom=0.55 / height)
        ax = fig.add_subplot()
        offsets = {"main": -0.14, "control": 0.14}
        for y, (_, main, main_ci, control, control_ci) in enumerate(clean):
            for key, rate, ci in (("main", main, main_ci), ("control", control, control_ci)):
                yy = y + offsets[key]
                if ci is not None:
                    ax.plot(ci, [yy, yy], color=PALETTE[key], linewidth=2, solid_capstyle="butt")
                if rate is not None:
                    ax.plot([rate], [yy], "o" if key == "main" else "s", color=PALETTE[key], markersize=5.5)
        ax.plot([], [], "o", color=PALETTE["main"], label="main attack (training rows)")
        ax.plot([], [], "s", color=PALETTE["control"], label="control (rows not used for training)")
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7.5)
        ax.set_yticks(range(len(clean)), labels)
        ax.set_ylim(len(clean) - 0.5, -0.5)
        _percent_axis(ax.xaxis)
        ax.set_xlim(left=0)
        ax.set_xlabel("attack success rate")
        ax.grid(axis="x", color="#d0d7de", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
        return _to_svg(fig, salt, "re-identification risks: main vs control success rates")
