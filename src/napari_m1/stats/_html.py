"""The report as one self-contained HTML page (CSS inline, figures as base64 PNG).

Every piece of user text is escaped (:func:`html.escape`).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ._compute import StudyResults
    from ._data import DataIssue
    from ._figures import ReportFigure

__all__ = ["TABLE_FILES", "render_html"]

TABLE_FILES = {
    "diagnostic_accuracy": "diagnostic_accuracy.csv",
    "agreement": "agreement.csv",
    "group_comparisons": "group_comparisons.csv",
    "correlations": "correlations.csv",
    "subjects": "subjects.csv",
    "per_subject": "per_subject.csv",
    "mrsi_qc": "mrsi_qc.csv",
    "data_issues": "data_issues.csv",
}
_COLLAPSE_ROWS = 30  # longer HTML tables are folded in a <details>


# --------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.t,th.t{text-align:left}
.meta{color:#555;font-size:.9em}.issues li{margin:.3em 0}.none{color:#2a7a2a}
.warn{color:#a33}figure{margin:1em 0}figcaption{font-size:.85em;color:#444;max-width:900px}
img{max-width:100%}details summary{cursor:pointer;color:#245}code{font-size:.9em}
"""


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    """A table cell: integers as such; 3 decimals below 10, 2 below 1000, else 1."""
    if v is None:
        return "–"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        a = abs(v)
        if v == round(v) and a < 1e6:
            return str(int(v))
        if a < 1e-3:
            return f"{v:.2e}"
        if a < 10:
            return f"{v:.3f}"
        return f"{v:.2f}" if a < 1000 else (f"{v:.1f}" if a < 1e6 else f"{v:.4g}")
    try:
        import pandas as pd

        if pd.isna(v):
            return "–"
    except (TypeError, ValueError):
        pass
    return str(v)


def _html_table(
    df: pd.DataFrame,
    *,
    formats: dict[str, Callable[[Any], str]] | None = None,
    text_cols: Sequence[str] = (),
    caption: str = "",
) -> str:
    """An escaped HTML table; long tables are folded."""
    if df.empty:
        return "<p class='meta'>No rows.</p>"
    formats = formats or {}
    text = set(text_cols) | {
        c for c in df.columns if df[c].dtype.kind in "OSUT" or str(df[c].dtype) == "str"
    }
    head = "".join(f"<th class='{'t' if c in text else ''}'>{_esc(c)}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, row, strict=True):
            s = formats[c](v) if c in formats else _fmt(v)
            cells.append(f"<td class='{'t' if c in text else ''}'>{_esc(s)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    tab = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    if len(df) > _COLLAPSE_ROWS:
        label = caption or "table"
        return f"<details><summary>{_esc(label)} ({len(df)} rows)</summary>{tab}</details>"
    return tab


def _pct(x: float) -> int:
    # Half up, as papers round (10/16 = 62.5 % -> 63 %); Python's round() would give 62.
    return math.floor(100 * x + 0.5 + 1e-9)


def _pct_ci(row: Any, m: str) -> str:
    v, lo, hi = row[m], row[f"{m}_ci_low"], row[f"{m}_ci_high"]
    if not (isinstance(v, float) and math.isfinite(v)):
        return "undefined"
    return f"{_pct(v)} % ({_pct(lo)}–{_pct(hi)})"


def _figure_html(fig: ReportFigure) -> str:
    b64 = base64.b64encode(fig.png).decode("ascii")
    return (
        f"<figure id='fig-{_esc(fig.name)}'><img alt='{_esc(fig.title)}' "
        f"src='data:image/png;base64,{b64}'><figcaption><b>{_esc(fig.title)}.</b> "
        f"{_esc(fig.caption)}</figcaption></figure>"
    )


def _issue_items(issues: Sequence[DataIssue]) -> str:
    items = []
    for i in issues:
        listed = ""
        if i.items:
            more = f", … ({i.count - len(i.items)} more)" if i.count > len(i.items) else ""
            listed = (
                f"<details><summary>{i.count} affected</summary><code>"
                f"{_esc(', '.join(i.items))}{_esc(more)}</code></details>"
            )
        items.append(
            f"<li><b>{_esc(i.source)}</b> <span class='meta'>[{_esc(i.kind)}]</span> "
            f"{_esc(i.message)}{listed}</li>"
        )
    return f"<ul class='issues'>{''.join(items)}</ul>"


def _issues_html(issues: Sequence[DataIssue]) -> str:
    real = [i for i in issues if i.severity == "issue"]
    notes = [i for i in issues if i.severity != "issue"]
    parts = []
    if real:
        parts.append(
            f"<p class='warn'>{len(real)} issue(s). Affected rows or cases are excluded only "
            "from the statistics that cannot use them; every test reports its n.</p>"
        )
        parts.append(_issue_items(real))
    else:
        parts.append("<p class='none'>No data issues found.</p>")
    if notes:
        parts.append("<p class='meta'>Notes (expected in a normal study, for completeness):</p>")
        parts.append(_issue_items(notes))
    return "".join(parts)


def render_html(
    res: StudyResults,
    figures: Sequence[ReportFigure],
    *,
    issues: Sequence[DataIssue],
    generated_at: datetime | None = None,
    mrsi: pd.DataFrame | None = None,
) -> str:
    """The self-contained HTML report (figures inlined as base64 PNG).

    Parameters
    ----------
    res : StudyResults
        Computed tables.
    figures : sequence of ReportFigure
        Rendered figures.
    mrsi : pandas.DataFrame, optional
        The MRSI QC table (:func:`napari_m1.stats._mrsi.mrsi_qc_table`); section left out
        when None.
    issues : sequence of DataIssue
        Shown in the "Data issues" section.
    generated_at : datetime, optional
        Time stamp shown (default now, UTC).
    """
    from .. import __version__
    from ._groups import METRICS

    when = (generated_at or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    data = res.data
    clin = data.clinical
    n_als = int((clin["group"] == "als").sum())
    n_ctl = int((clin["group"] == "control").sum())
    readers = res.readers
    figs = {f.name: f for f in figures}
    rd = data.readings
    n_first = int(((rd["status"] == "submitted") & (rd["is_repeat"] == 0)).sum())
    n_rep = int(((rd["status"] == "submitted") & (rd["is_repeat"] == 1)).sum())

    inputs = "".join(
        f"<li>{_esc(k)}: <code>{_esc(p.name)}</code></li>" for k, p in data.sources.items()
    )
    echo = ""
    if data.echo is not None:
        te = f", TE {data.te_ms:g} ms" if data.te_ms is not None else ""
        echo = f"<li>normalised SI from GRE echo {data.echo}{_esc(te)}</li>"
    elif "measurements" in data.sources:
        echo = "<li>no GRE ROI rows: normalised SI not available</li>"

    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>M1 study report</title><style>{_CSS}</style></head><body>",
        "<h1>M1 study report</h1>",
        f"<p class='meta'>Generated {_esc(when)} by napari-m1 {_esc(__version__)}.</p>",
        f"<ul class='meta'>{inputs}{echo}</ul>",
        "<h2 id='summary'>Summary</h2>",
        f"<p>{n_als} patients and {n_ctl} controls with clinical data; {len(readers)} "
        f"reader(s) ({_esc(', '.join(readers))}); {n_first} submitted first reads and "
        f"{n_rep} hidden repeat reads.</p>",
        "<h2 id='issues'>Data issues</h2>",
        _issues_html(issues),
    ]

    # Diagnostic accuracy
    acc = res.diagnostic_accuracy
    parts.append("<h2 id='accuracy'>Diagnostic accuracy of the visual call</h2>")
    parts.append(
        "<p>First reads only (<code>is_repeat = 0</code>, submitted), call "
        "<code>als_consistent</code> against the clinical group (positive = ALS). "
        "Percentages with 95 % Wilson score intervals.</p>"
    )
    if not acc.empty:
        import pandas as pd

        nice = pd.DataFrame(
            {
                "reader": acc["reader"],
                "TP": acc["tp"],
                "FP": acc["fp"],
                "TN": acc["tn"],
                "FN": acc["fn"],
                **{
                    m.upper() if len(m) == 3 else m.capitalize(): [
                        _pct_ci(r, m) for _, r in acc.iterrows()
                    ]
                    for m in METRICS
                },
                "n": acc["n"],
                "note": acc["note"],
            }
        )
        parts.append(_html_table(nice, caption="Diagnostic accuracy"))
    else:
        parts.append("<p class='meta'>No first reads of cases with clinical data.</p>")
    if "confusion_matrices" in figs:
        parts.append(_figure_html(figs["confusion_matrices"]))

    # Agreement
    ag = res.agreement
    parts.append("<h2 id='agreement'>Reader agreement</h2>")
    parts.append(
        "<p>Cohen's κ for every reader pair (calls on the cases both read), Fleiss' κ over "
        "all readers (cases read by every reader), intra-reader κ (first read vs hidden "
        "repeat) and ICC(2,1)/ICC(3,1) of per-subject measurements.</p>"
    )
    for stat, title in (
        ("cohen_kappa", "Cohen's κ (inter-reader)"),
        ("fleiss_kappa", "Fleiss' κ"),
        ("intra_reader_kappa", "Intra-reader κ"),
        ("icc2_1", "ICC"),
    ):
        sel = ag.loc[ag["statistic"] == stat]
        if stat == "icc2_1":
            sel = ag.loc[ag["statistic"].isin(["icc2_1", "icc3_1"])]
        if sel.empty:
            continue
        parts.append(f"<h3>{_esc(title)}</h3>")
        parts.append(_html_table(sel.drop(columns=["method"]), caption=title, text_cols=("note",)))
    if "bland_altman" in figs:
        parts.append(_figure_html(figs["bland_altman"]))

    # Group comparisons
    gc = res.group_comparisons
    parts.append("<h2 id='comparisons'>Group comparisons</h2>")
    parts.append(
        "<p>Two-sided Mann–Whitney U tests; medians with quartiles (Q1–Q3). "
        "<code>pooled</code> = per-subject mean over readers.</p>"
    )
    if "group_boxplots" in figs:
        parts.append(_figure_html(figs["group_boxplots"]))
    for comp, title in (
        ("als_vs_control", "Patients vs controls"),
        ("correct_vs_misdiagnosed", "Correctly diagnosed vs misdiagnosed patients"),
        ("faster_vs_slower", "Faster vs slower progressors (split at the median DPR)"),
    ):
        sel = gc.loc[gc["comparison"] == comp]
        if sel.empty:
            continue
        parts.append(f"<h3>{_esc(title)}</h3>")
        parts.append(
            _html_table(
                sel.drop(columns=["comparison"]),
                caption=title,
                text_cols=("note",),
                formats={"p_value": _fmt_p},
            )
        )

    # Correlations
    cr = res.correlations
    parts.append("<h2 id='correlations'>Correlations with clinical scores (patients)</h2>")
    parts.append(
        "<p>Spearman's ρ on patients with both values. Per Penfield area, each hemisphere "
        "is paired with the UMN score of the contralateral limb (left-hemisphere hand ↔ "
        "right arm, …); the face has no limb score.</p>"
    )
    if "clinical_scatter" in figs:
        parts.append(_figure_html(figs["clinical_scatter"]))
    if not cr.empty:
        parts.append(
            _html_table(
                cr, caption="Correlations", text_cols=("note",), formats={"p_value": _fmt_p}
            )
        )
    elif "measurements" not in data.sources:
        parts.append("<p class='meta'>No measurements file given.</p>")

    if mrsi is not None:
        parts.append("<h2 id='mrsi'>MRSI ratios: QC-filtered and unfiltered</h2>")
        parts.append(
            "<p>Excluding voxels with a high relative CRLB (%SD) removes low values more "
            "often than high ones, so filtered means are biased upward. Per ratio and "
            "group: the mean of the ROI rows' filtered <code>mean</code>, of their "
            "<code>mean_unfiltered</code>, the paired shift (filtered − unfiltered), and "
            "how many voxels QC excluded under the thresholds listed.</p>"
        )
        parts.append(_html_table(mrsi, caption="MRSI QC", text_cols=("thresholds",)))
    parts.append("<h2 id='tables'>Tables</h2><ul>")
    for name, fname in TABLE_FILES.items():
        if name == "per_subject" and res.per_subject is None:
            continue
        if name == "mrsi_qc" and mrsi is None:
            continue
        parts.append(f"<li><a href='tables/{fname}'><code>tables/{fname}</code></a></li>")
    parts.append("</ul>")
    parts.append(_METHODS_HTML)
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt_p(p: Any) -> str:
    if not (isinstance(p, float) and math.isfinite(p)):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


_METHODS_HTML = """
<h2 id='methods'>Methods</h2>
<ul>
<li><b>DPR</b> = (48 − ALSFRS-R) / disease duration (months), patients only; blank when
either is missing or the duration is ≤ 0.</li>
<li><b>Diagnostic accuracy</b>: 95 % CIs are Wilson score intervals (the formula of
statsmodels <code>proportion_confint(method="wilson")</code>); they stay inside 0–1 and behave
at 0 % and 100 %.</li>
<li><b>Cohen's κ</b>: CI κ ± 1.96 × asymptotic SE (Fleiss, Cohen &amp; Everitt 1969; the
formulas of statsmodels <code>cohens_kappa</code>), clipped to [−1, 1]. Undefined (blank)
when a reader used a single class.
<b>Fleiss' κ</b>: Fleiss (1971); CI by BCa bootstrap over cases
(scipy <code>bootstrap</code>, 2000 resamples, fixed seed).</li>
<li><b>ICC</b>: Shrout &amp; Fleiss ICC(2,1) and ICC(3,1) from the two-way ANOVA mean
squares; CIs after McGraw &amp; Wong (1996); subjects measured by every reader.</li>
<li><b>Per-subject values</b>: thickness = mean of a reader's caliper lengths over the
Penfield areas (face, hand, leg, foot) and hemispheres; normalised SI = mean of the GRE ROI
<code>normalised_si</code> over the same slots at the chosen echo (reference slots
excluded). <i>Pooled</i> = mean over readers.</li>
<li><b>Mann–Whitney U</b>: two-sided; exact (scipy <code>mannwhitneyu</code>) when both
groups have ≤ 8 values and there are no ties, else asymptotic (normal approximation with tie
and continuity corrections, scipy's formula). The method used is in each row.</li>
<li><b>Spearman's ρ</b>: Pearson r of the average ranks, two-sided p from the t
approximation (scipy <code>spearmanr</code>'s formulas).</li>
<li><b>Missing data</b> are never imputed: each test uses the subjects with the values it
needs and reports its n; anything excluded is listed under "Data issues".</li>
</ul>
"""
