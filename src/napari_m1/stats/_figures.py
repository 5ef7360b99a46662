"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

No pyplot: each figure is a :class:`matplotlib.figure.Figure` attached to its own
``FigureCanvasAgg``, rendered to PNG bytes and dropped, so nothing leaks into the
global pyplot state (or into napari's Qt event loop).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._compute import StudyResults
    from ._data import DataIssue

__all__ = [
    "FIGURE_NAMES",
    "FIGURE_TABLES",
    "MAX_POINTS",
    "FigureInputs",
    "ReportFigure",
    "render_figures",
]

log = logging.getLogger(__name__)

FIGURE_NAMES = ("group_boxplots", "clinical_scatter", "confusion_matrices", "bland_altman")
#: The tables of :class:`StudyResults` each figure draws (besides the clinical table),
#: so that the report can start a figure as soon as its tables are computed.
FIGURE_TABLES: dict[str, frozenset[str]] = {
    "group_boxplots": frozenset({"per_subject", "group_comparisons"}),
    "clinical_scatter": frozenset({"per_subject", "correlations"}),
    "confusion_matrices": frozenset({"diagnostic_accuracy"}),
    "bland_altman": frozenset({"per_subject"}),
}

#: Scatter/strip plots show at most this many points (a fixed-seed random subset);
#: the statistics are always computed on every subject.
MAX_POINTS = 1500
DPI = 100
_COLORS = {"als": "#c0392b", "control": "#2471a3"}
_LABELS = {
    "thickness_mm": "Deep-layer M1 thickness (mm)",
    "normalised_si": "Normalised SI (M1 / reference)",
    "umn_score": "UMN score (0–33)",
    "dpr": "DPR (ALSFRS-R points/month)",
    "alsfrs_r": "ALSFRS-R (0–48)",
}


@dataclass(frozen=True)
class FigureInputs:
    """The tables that the figures draw: a small, picklable part of :class:`StudyResults`.

    Attributes
    ----------
    per_subject : pandas.DataFrame or None
        :attr:`StudyResults.per_subject`.
    clinical : pandas.DataFrame
        The validated clinical table (index ``case_id``).
    diagnostic_accuracy, group_comparisons, correlations : pandas.DataFrame
        The report tables of the same names (their p-values and ρ go into the titles).
    """

    per_subject: pd.DataFrame | None
    clinical: pd.DataFrame
    diagnostic_accuracy: pd.DataFrame
    group_comparisons: pd.DataFrame
    correlations: pd.DataFrame

    @classmethod
    def of(cls, res: StudyResults) -> FigureInputs:
        """The figure inputs of computed study results."""
        return cls(
            per_subject=res.per_subject,
            clinical=res.data.clinical,
            diagnostic_accuracy=res.diagnostic_accuracy,
            group_comparisons=res.group_comparisons,
            correlations=res.correlations,
        )


@dataclass(frozen=True)
class ReportFigure:
    """One rendered figure.

    Attributes
    ----------
    name : str
        File stem (``figures/<name>.png``) and HTML anchor.
    title : str
        Heading in the report.
    caption : str
        What is shown, including any subsampling.
    png : bytes
        The PNG image.
    """

    name: str
    title: str
    caption: str
    png: bytes


def _new_figure(width: float, height: float, layout: str | None = None) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # zlib level 3: the same pixels, ~2x faster to encode than the default 6, files ±5 %
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 3})
    return buf.getvalue()


def _subsample(df: pd.DataFrame, max_points: int, seed: int) -> tuple[pd.DataFrame, bool]:
    if len(df) <= max_points:
        return df, False
    return df.sample(n=max_points, random_state=seed).sort_index(), True


def _fmt_p(p: float) -> str:
    import math

    if not math.isfinite(p):
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _pooled_row(table: pd.DataFrame, **match: str) -> dict[str, Any] | None:
    sel = table
    for k, v in match.items():
        sel = sel.loc[sel[k] == v]
    return None if sel.empty else sel.iloc[0].to_dict()


def _draw_box(ax: Axes, x: float, values: Any, width: float = 0.5) -> None:
    """A box (quartiles), median line and 1.5-IQR whiskers at ``x``.

    ``Axes.boxplot`` is not used: it reads every rcParam, and reading ``backend``
    imports pyplot and picks a GUI backend — from napari's worker thread. The numbers
    come from matplotlib's own ``cbook.boxplot_stats``.
    """
    from matplotlib import cbook
    from matplotlib.patches import Rectangle

    if len(values) == 0:
        return
    st = cbook.boxplot_stats(values, whis=1.5)[0]
    h = width / 2
    ax.add_patch(
        Rectangle((x - h, st["q1"]), width, st["q3"] - st["q1"], fill=False, ec="black", lw=1)
    )
    ax.hlines(st["med"], x - h, x + h, color="black", lw=1.5, zorder=4)
    ax.vlines([x, x], [st["whislo"], st["q3"]], [st["q1"], st["whishi"]], color="black", lw=1)
    ax.hlines([st["whislo"], st["whishi"]], x - h / 2, x + h / 2, color="black", lw=1)


# --------------------------------------------------------------------------- figures
def group_boxplots(
    res: FigureInputs, *, max_points: int = MAX_POINTS, seed: int = 0
) -> ReportFigure | None:
    """Box + strip plots of pooled per-subject thickness and SI, patients vs controls."""
    import numpy as np

    if res.per_subject is None:
        return None
    ps = res.per_subject.loc[
        (res.per_subject["reader"] == "pooled") & res.per_subject["group"].isin(["als", "control"])
    ]
    if ps.empty:
        return None
    fig = _new_figure(8, 4, layout=None)  # fixed margins: constrained layout costs ~0.1 s
    axes = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.14, top=0.92, wspace=0.3)
    rng = np.random.default_rng(seed)
    shown_all = True
    for ax, var in zip(axes, ("thickness_mm", "normalised_si"), strict=True):
        data, labels = [], []
        for grp in ("als", "control"):
            v = ps.loc[ps["group"] == grp, var].dropna()
            data.append(v.to_numpy())
            labels.append(f"{'Patients' if grp == 'als' else 'Controls'}\n(n = {len(v)})")
        if not any(len(d) for d in data):
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"no {var} values", ha="center", va="center", transform=ax.transAxes)
            continue
        for i, d in enumerate(data, start=1):
            _draw_box(ax, i, d)
        ax.set_xticks([1, 2], labels)
        ax.set_xlim(0.4, 2.6)
        for i, (grp, d) in enumerate(zip(("als", "control"), data, strict=True), start=1):
            if len(d) > max_points:
                d = rng.choice(d, max_points, replace=False)
                shown_all = False
            x = i + rng.uniform(-0.15, 0.15, size=len(d))
            ax.scatter(x, d, s=12, alpha=0.6, color=_COLORS[grp], linewidths=0, zorder=3)
        row = _pooled_row(
            res.group_comparisons, comparison="als_vs_control", variable=var, reader="pooled"
        )
        p = _fmt_p(row["p_value"]) if row else "p n/a"
        ax.set_title(f"Mann–Whitney {p}", fontsize=10)
        ax.set_ylabel(_LABELS[var])
    caption = (
        "Per-subject values averaged over Penfield areas, hemispheres and readers; "
        "boxes show median and quartiles, whiskers 1.5 IQR, dots are subjects"
    )
    if not shown_all:
        caption += f" (dots: a random {max_points} per group)"
    return ReportFigure("group_boxplots", "Patients vs controls", caption + ".", _png(fig))


def clinical_scatter(
    res: FigureInputs, *, max_points: int = MAX_POINTS, seed: int = 0
) -> ReportFigure | None:
    """Thickness and SI vs UMN score, DPR and ALSFRS-R in patients with Spearman ρ."""
    if res.per_subject is None:
        return None
    clin = res.clinical
    ps = res.per_subject.loc[
        (res.per_subject["reader"] == "pooled") & (res.per_subject["group"] == "als")
    ]
    if ps.empty:
        return None
    ps = ps.join(clin[["umn_score", "dpr", "alsfrs_r"]], on="case_id")
    shown, sub = _subsample(ps, max_points, seed)
    fig = _new_figure(11, 6.5, layout=None)
    axes = fig.subplots(2, 3)
    fig.subplots_adjust(left=0.07, right=0.99, bottom=0.08, top=0.95, wspace=0.22, hspace=0.32)
    for i, var in enumerate(("thickness_mm", "normalised_si")):
        for j, cvar in enumerate(("umn_score", "dpr", "alsfrs_r")):
            ax: Axes = axes[i, j]
            d = shown[[var, cvar]].dropna()
            ax.scatter(d[cvar], d[var], s=14, alpha=0.7, color=_COLORS["als"], linewidths=0)
            row = _pooled_row(
                res.correlations, variable=var, clinical=cvar, reader="pooled", area="all"
            )
            if row and row["n"]:
                rho = row["rho"]
                txt = (
                    f"ρ = {rho:.2f}, {_fmt_p(row['p_value'])}, n = {row['n']}"
                    if rho == rho
                    else f"ρ undefined, n = {row['n']}"
                )
            else:
                txt = "no data"
            ax.set_title(txt, fontsize=9)
            ax.set_xlabel(_LABELS[cvar])
            if j == 0:
                ax.set_ylabel(_LABELS[var])
    caption = (
        "Patients only; per-subject values averaged over Penfield areas, hemispheres and "
        "readers. ρ and p: Spearman, computed on every patient with both values"
    )
    if sub:
        caption += f" (plotted: a random {max_points} of {len(ps)} patients)"
    return ReportFigure(
        "clinical_scatter", "Imaging vs clinical scores (patients)", caption + ".", _png(fig)
    )


def confusion_matrices(res: FigureInputs) -> ReportFigure | None:
    """One 2×2 confusion matrix per reader (clinical group × visual call).

    Drawn as blocks of a single image in one Axes: one Axes per reader would cost
    ~0.5 s for 20 readers.
    """
    import math

    import matplotlib
    import numpy as np

    acc = res.diagnostic_accuracy
    if acc.empty:
        return None
    n = len(acc)
    ncol = min(n, 5)
    nrow = math.ceil(n / ncol)
    block_h, block_w = 4, 3  # title row, 2 cells, label row; 2 cells + gap
    unit = 0.55  # inches per cell
    fig = _new_figure((block_w * ncol + 1.5) * unit, block_h * nrow * unit, layout=None)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    img = np.full((block_h * nrow, block_w * ncol), np.nan)
    for i, (_, row) in enumerate(acc.iterrows()):
        r0, c0 = (i // ncol) * block_h + 1, (i % ncol) * block_w
        m = np.array([[row["tp"], row["fn"]], [row["fp"], row["tn"]]], dtype=float)
        tot = m.sum(axis=1, keepdims=True)
        frac = np.divide(m, tot, out=np.zeros_like(m), where=tot > 0)
        img[r0 : r0 + 2, c0 : c0 + 2] = frac
        for (r, c), v in np.ndenumerate(m):
            ax.text(
                c0 + c,
                r0 + r,
                f"{int(v)}",
                ha="center",
                va="center",
                fontsize=11,
                color="white" if frac[r, c] > 0.6 else "black",
            )
        ax.text(
            c0 + 0.5,
            r0 - 0.75,
            str(row["reader"]),
            ha="center",
            va="center",
            fontsize=9,
            weight="bold",
            parse_math=False,  # reader ids are user text: "R$x$" stays literal
        )
        for r, label in enumerate(("ALS", "Ctrl")):
            ax.text(c0 - 0.6, r0 + r, label, ha="right", va="center", fontsize=7)
        for c, label in enumerate(("call +", "call −")):
            ax.text(c0 + c, r0 + 1.75, label, ha="center", va="center", fontsize=7)
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="white")
    ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
    ax.set_xlim(-1.5, block_w * ncol - 1)
    ax.set_ylim(block_h * nrow - 0.5, -0.5)
    ax.set_axis_off()
    caption = (
        "Rows: clinical group (ALS patients, controls); columns: the reader's call "
        "'consistent with ALS' (+/−) on first reads. Shading: fraction of the row."
    )
    return ReportFigure("confusion_matrices", "Confusion matrix per reader", caption, _png(fig))


def bland_altman(
    res: FigureInputs, *, max_points: int = MAX_POINTS, seed: int = 0
) -> ReportFigure | None:
    """Bland–Altman plot of the first two readers' per-subject thickness."""
    from ._data import reader_order

    if res.per_subject is None:
        return None
    per = res.per_subject.loc[res.per_subject["reader"] != "pooled"]
    readers = reader_order(per["reader"].unique())
    if len(readers) < 2:
        return None
    ra, rb = readers[:2]
    wide = per.pivot_table(
        index="case_id", columns="reader", values="thickness_mm", aggfunc="first"
    )
    pair = wide[[ra, rb]].dropna()
    if len(pair) < 2:
        return None
    diff = pair[ra] - pair[rb]
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    shown, sub = _subsample(pair, max_points, seed)
    lo, hi = bias - 1.96 * sd, bias + 1.96 * sd
    fig = _new_figure(6.5, 4.5, layout=None)
    ax = fig.subplots()
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.96)
    means = (shown[ra].to_numpy() + shown[rb].to_numpy()) / 2
    ax.scatter(means, shown[ra] - shown[rb], s=14, alpha=0.6, color="#555", linewidths=0, zorder=3)
    # Lines and labels from every subject (not only the plotted ones).
    ax.axhline(bias, color="gray", lw=1, ls="--")
    for y in (lo, hi):
        ax.axhline(y, color="gray", lw=1, ls=":")
    half = 1.5 * 1.96 * sd if sd > 0 else 1.0
    ax.set_ylim(bias - half, bias + half)
    for y, label in (
        (hi, f"+1.96 SD: {hi:.3g}"),
        (bias, f"bias: {bias:.3g}"),
        (lo, f"−1.96 SD: {lo:.3g}"),
    ):
        ax.annotate(
            label,
            (1, y),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            va="bottom",
            fontsize=8,
        )
    ax.set_xlabel(f"Mean of {ra} and {rb} thickness (mm)", fontsize=10, parse_math=False)
    ax.set_ylabel(f"{ra} − {rb} (mm)", fontsize=10, parse_math=False)
    ax.tick_params(labelsize=9)
    caption = (
        f"Per-subject deep-layer thickness, readers {ra} and {rb} (the first two reader ids), "
        f"n = {len(pair)} subjects: bias {bias:.3f} mm, 95% limits of agreement "
        f"{lo:.3f} to {hi:.3f} mm (dashed and dotted lines)"
    )
    if sub:
        caption += f" (plotted: a random {max_points} of {len(pair)})"
    return ReportFigure(
        "bland_altman", f"Bland–Altman: thickness, {ra} vs {rb}", caption + ".", _png(fig)
    )


def render_figures(
    res: StudyResults | FigureInputs,
    *,
    max_points: int = MAX_POINTS,
    seed: int = 0,
    issues: list[DataIssue] | None = None,
    names: Sequence[str] = FIGURE_NAMES,
) -> list[ReportFigure]:
    """Every figure that the data allow, in report order.

    Parameters
    ----------
    res : StudyResults or FigureInputs
        From :func:`napari_m1.stats.compute_study`, or its :class:`FigureInputs`.
    max_points : int
        Most points drawn per scatter (random subset with ``seed``; statistics use all).
    issues : list of DataIssue, optional
        When given, a figure that cannot be drawn is left out and reported here (one
        line; the traceback goes to the debug log) instead of failing the report: the
        figures illustrate numbers that the tables already hold.
    names : sequence of str
        The figures to draw (of :data:`FIGURE_NAMES`; drawn in that order).

    Returns
    -------
    list of ReportFigure
        Figures needing measurements are left out when there are none.
    """
    from ._data import make_issue

    if not isinstance(res, FigureInputs):
        res = FigureInputs.of(res)
    draws: dict[str, Callable[[], ReportFigure | None]] = {  # module globals, looked up late
        "group_boxplots": lambda: group_boxplots(res, max_points=max_points, seed=seed),
        "clinical_scatter": lambda: clinical_scatter(res, max_points=max_points, seed=seed),
        "confusion_matrices": lambda: confusion_matrices(res),
        "bland_altman": lambda: bland_altman(res, max_points=max_points, seed=seed),
    }
    out = []
    for name in [n for n in FIGURE_NAMES if n in names]:
        try:
            out.append(draws[name]())
        except Exception as exc:  # reported as a data issue, see the docstring
            if issues is None:
                raise
            log.debug("figure %s failed", name, exc_info=True)
            why = (str(exc).strip().splitlines() or [""])[0] or "no message"
            issues.append(
                make_issue(
                    "figures",
                    "figure-failed",
                    f"figure {name} not drawn ({type(exc).__name__}: {why}); "
                    "the tables are complete",
                    [name],
                )
            )
    return [f for f in out if f is not None]
