"""Build the study report: ``report.html`` plus ``tables/*.csv`` and ``figures/*.png``.

Everything is computed in memory first; files are written only when the whole
report is ready, each one atomically, ``report.html`` last.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .._atomic import atomic_write_bytes, atomic_write_text
from ..errors import M1Error
from ._data import DataIssue
from ._html import TABLE_FILES, render_html
from ._read import load_study

if TYPE_CHECKING:
    import pandas as pd

    from ._compute import StudyResults

__all__ = ["ReportResult", "build_report", "table_to_csv"]

log = logging.getLogger(__name__)

ISSUE_COLUMNS = ["source", "kind", "severity", "count", "message", "items"]


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes
    ----------
    out_dir : Path
        The report folder.
    html : Path
        ``out_dir / "report.html"``.
    tables : dict
        Table name -> CSV path (``out_dir / "tables" / ...``).
    figures : dict
        Figure name -> PNG path (``out_dir / "figures" / ...``).
    issues : list of DataIssue
        Every data issue (also in the report and in ``tables/data_issues.csv``).
    results : StudyResults
        The computed tables, for callers that want the numbers.
    """

    out_dir: Path
    html: Path
    tables: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    issues: list[DataIssue] = field(default_factory=list)
    results: StudyResults | None = None

    @property
    def n_issues(self) -> int:
        """Issues proper (severity ``issue``), without the notes."""
        return sum(i.severity == "issue" for i in self.issues)

    def summary(self) -> str:
        """One line for the command line and the dock widget."""
        n = self.n_issues
        notes = len(self.issues) - n
        tail = (
            "no data issues"
            if n == 0
            else f"{n} data issue{'s' if n != 1 else ''} "
            "(listed in the report's 'Data issues' section)"
        )
        if notes:
            tail += f"; {notes} note{'s' if notes != 1 else ''}"
        return f"wrote {self.html} and {len(self.tables)} tables; {tail}"


# --------------------------------------------------------------------------- CSV
def table_to_csv(df: pd.DataFrame) -> str:
    """A table as napari-m1 CSV text: UTF-8, ``\\n``, empty cells for missing, 6 sig. digits.

    Text cells that a spreadsheet would run as a formula get a leading ``'``
    (:func:`napari_m1.formats.neutralise_cell`); numbers stay numbers.
    """
    import numpy as np
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    from ..formats import neutralise_cell

    out = df.copy()
    for c in out.columns:
        if not (is_numeric_dtype(out[c]) or is_bool_dtype(out[c])):
            text = out[c].astype(object)
            changed = {
                v: safe
                for v in text.unique()
                if isinstance(v, str) and (safe := neutralise_cell(v)) != v
            }
            if changed:
                out[c] = text.replace(changed)
        elif out[c].dtype.kind == "f":
            vals = out[c].to_numpy()
            whole = np.isfinite(vals)
            out[c] = out[c].where(np.isfinite(vals))  # inf never reaches the file
            if c in ("n", "tp", "fp", "tn", "fn", "n_a", "n_b", "count") and np.all(
                vals[whole] == np.round(vals[whole])
            ):
                out[c] = out[c].astype("Int64")
    return out.to_csv(index=False, lineterminator="\n", na_rep="", float_format="%.6g")


def _issues_frame(issues: Sequence[DataIssue]) -> pd.DataFrame:
    import pandas as pd

    rows = [
        {
            "source": i.source,
            "kind": i.kind,
            "severity": i.severity,
            "count": i.count,
            "message": i.message,
            "items": "; ".join(i.items) + ("; …" if i.count > len(i.items) else ""),
        }
        for i in issues
    ]
    return pd.DataFrame(rows, columns=ISSUE_COLUMNS)


# --------------------------------------------------------------------------- build
def build_report(
    readings: str | os.PathLike[str],
    clinical: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    measurements: str | os.PathLike[str] | None = None,
    echo: int | None = None,
    max_points: int | None = None,
    figure_process: bool = False,
) -> ReportResult:
    """Compute the study statistics and write the report folder.

    Parameters
    ----------
    readings : path
        Unblinded ``readings.csv`` (with ``case_id``).
    clinical : path
        ``clinical.csv``.
    out_dir : path
        Report folder; created if needed. ``report.html``, ``tables/*.csv`` and
        ``figures/*.png`` inside it are replaced atomically.
    measurements : path, optional
        ``measurements.csv``; without it the thickness/SI sections are left out.
    echo : int, optional
        1-based GRE echo for normalised SI (default: the last echo in the file).
    max_points : int, optional
        Most points drawn per scatter plot (default :data:`_figures.MAX_POINTS`).
    figure_process : bool
        Draw the figures in a forked worker process while this one reads the files and
        writes the tables (:mod:`._figure_worker`; Linux only, ignored elsewhere). For
        command-line processes: never from a GUI process. Same figures either way.

    Returns
    -------
    ReportResult

    Raises
    ------
    M1Error
        An input file is unusable, or the folder cannot be written.
    """
    from ._compute import compute_study
    from ._figure_worker import FigureWorker, FigureWorkerError
    from ._figures import FIGURE_NAMES, MAX_POINTS, render_figures

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise M1Error(f"{out}: exists and is not a folder")
    if echo is not None and echo < 1:
        raise M1Error(f"--echo must be a 1-based echo number (got {echo})")
    if echo is not None and measurements is None:
        raise M1Error("--echo chooses the GRE echo of the measurements: give --measurements too")
    max_points = max_points or MAX_POINTS
    # Started before the files are read: it loads matplotlib meanwhile.
    use_worker = figure_process and FigureWorker.available()
    worker = FigureWorker(max_points=max_points) if use_worker else None
    try:
        data = load_study(readings, clinical, measurements, echo=echo)
        if worker is not None:  # each figure drawn once its tables are final
            res = compute_study(data, on_partial=worker.draw_ready)
        else:
            res = compute_study(data)
            figures = render_figures(res, max_points=max_points, issues=res.issues)
        tables: dict[str, pd.DataFrame] = {
            "diagnostic_accuracy": res.diagnostic_accuracy,
            "agreement": res.agreement,
            "group_comparisons": res.group_comparisons,
            "correlations": res.correlations,
            "subjects": res.subjects,
        }
        if res.per_subject is not None:
            tables["per_subject"] = res.per_subject
        mrsi = None
        if measurements is not None:
            from ._mrsi import mrsi_qc_table

            mrsi = mrsi_qc_table(measurements, data, [])  # case matching: reported above
            if mrsi is not None:
                tables["mrsi_qc"] = mrsi
        csv = {name: table_to_csv(df) for name, df in tables.items()}
        if worker is not None:
            try:
                figures, figure_issues = worker.result(res)
                res.issues.extend(figure_issues)
            except FigureWorkerError as exc:
                log.warning("%s; drawing the figures in this process", exc)
                figures = render_figures(res, max_points=max_points, issues=res.issues)
    finally:
        if worker is not None:
            worker.close()
    issues = res.issues
    tables["data_issues"] = _issues_frame(issues)
    csv["data_issues"] = table_to_csv(tables["data_issues"])
    text = render_html(res, figures, issues=issues, mrsi=mrsi)

    result = ReportResult(out_dir=out, html=out / "report.html", issues=issues, results=res)
    try:
        for name in TABLE_FILES:
            if name in tables:
                path = out / "tables" / TABLE_FILES[name]
                atomic_write_text(path, csv[name])
                result.tables[name] = path
        for fig in figures:
            path = out / "figures" / f"{fig.name}.png"
            atomic_write_bytes(path, fig.png)
            result.figures[fig.name] = path
        # A previous report's files that this one does not have (e.g. per_subject.csv
        # from a run with measurements) would be misleading next to the new report.
        stale = [out / "tables" / f for n, f in TABLE_FILES.items() if n not in tables]
        stale += [out / "figures" / f"{n}.png" for n in FIGURE_NAMES if n not in result.figures]
        for path in stale:
            path.unlink(missing_ok=True)
        atomic_write_text(result.html, text)
    except OSError as exc:
        raise M1Error(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    log.info("report written to %s (%d issues)", result.html, len(issues))
    return result
