"""The report's figures drawn in a second process while this one reads and computes.

``napari-m1 report`` spends about a third of its time in matplotlib: importing it,
loading fonts, and drawing four PNGs. On Linux the command forks one worker as it
starts; the worker imports matplotlib and warms its font caches while this process
reads the CSV files, then draws each figure as soon as the tables it shows are final
(:data:`~._figures.FIGURE_TABLES`; sent pickled, each table once) while this process
computes the other tables (agreement last: no figure needs it) and writes them. The PNG
bytes are the same as those drawn in-process (same code, same matplotlib, same fonts).

The fork happens before the CSV files are read, after pandas is imported (the child
inherits it instead of importing it again). Only the command line uses the worker:
forking a GUI process (napari, Qt threads) is not safe, so
:func:`napari_m1.stats.build_report` draws in-process unless asked. If the worker
fails in any way (killed, cannot pickle, a bug), :meth:`FigureWorker.result` raises
:class:`FigureWorkerError` and the report draws the figures in-process instead.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from ._compute import StudyResults
    from ._data import DataIssue
    from ._figures import ReportFigure

__all__ = ["FigureWorker", "FigureWorkerError"]

log = logging.getLogger(__name__)


class FigureWorkerError(RuntimeError):
    """The worker process did not deliver the figures (the message says why, in one line)."""


def _warm_up() -> None:
    """Import matplotlib and pandas and draw a tiny figure with text (fonts, PNG encoder)."""
    import io

    import pandas  # noqa: F401  (unpickling the inputs needs it; normally inherited)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=20)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.set_title("warm-up", fontsize=9)
    ax.text(0.5, 0.5, "1", weight="bold", fontsize=7)
    ax.scatter([0.0, 1.0], [0.0, 1.0], s=4)
    fig.savefig(io.BytesIO(), format="png")


def _serve(conn: Connection, parent_end: Connection) -> None:
    """The worker: warm up, then draw the figures of each request until the pipe closes."""
    from ._figures import FigureInputs, render_figures

    parent_end.close()  # so that recv() sees EOF when the parent goes away
    try:
        _warm_up()
    except Exception:  # drawing will fail the same way and say so
        log.debug("figure worker warm-up failed", exc_info=True)
    tables: dict[str, Any] = {}  # the FigureInputs fields received so far
    while True:
        try:
            new_tables, names, max_points, seed = conn.recv()
        except (EOFError, OSError):  # done, or the report stopped early (bad input)
            return
        try:
            tables.update(new_tables)
            inputs = FigureInputs(**tables)
            drawn = []
            for name in names:  # each figure with its own issues: the parent orders them
                issues: list[DataIssue] = []
                figs = render_figures(
                    inputs, max_points=max_points, seed=seed, issues=issues, names=(name,)
                )
                drawn.append((name, figs[0] if figs else None, issues))
            conn.send(("ok", drawn))
        except BaseException as exc:  # reported to the parent, which draws in-process
            why = (str(exc).strip().splitlines() or [""])[0]
            try:
                conn.send(("error", f"{type(exc).__name__}: {why}" if why else type(exc).__name__))
            except OSError:  # the parent is gone: nobody to tell
                pass
            return


class FigureWorker:
    """One forked process that draws the report's figures as their tables become final.

    Create it as early as possible, pass :meth:`draw_ready` to
    :func:`~._compute.compute_study` as ``on_partial``, do other work, then
    :meth:`result`; :meth:`close` always (also on error).

    Parameters
    ----------
    max_points, seed
        As for :func:`~._figures.render_figures`.
    """

    def __init__(self, *, max_points: int, seed: int = 0) -> None:
        import multiprocessing

        import pandas  # noqa: F401  (the report needs it; imported once, for both processes)

        ctx = multiprocessing.get_context("fork")
        for stream in (sys.stdout, sys.stderr):  # a child must not repeat buffered text
            if stream is not None:
                stream.flush()
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_serve, args=(child, self._conn), name="napari-m1-figures", daemon=True
        )
        self._proc.start()
        child.close()
        self._max_points, self._seed = max_points, seed
        self._asked: set[str] = set()  # figure names requested
        self._sent: set[str] = set()  # FigureInputs fields the worker has, final
        self._pending = 0
        self._lost: Exception | None = None
        self._finished = False

    @staticmethod
    def available() -> bool:
        """True where a worker can be forked: Linux, and not inside a daemonic process
        (which may not have children)."""
        import multiprocessing

        return (
            sys.platform.startswith("linux")
            and "fork" in multiprocessing.get_all_start_methods()
            and not multiprocessing.current_process().daemon
        )

    def draw_ready(self, partial: StudyResults, final: frozenset[str]) -> None:
        """Ask for every figure not asked yet whose tables (:data:`FIGURE_TABLES`) are in
        ``final`` (the ``on_partial`` callback of :func:`~._compute.compute_study`)."""
        from ._figures import FIGURE_NAMES, FIGURE_TABLES, FigureInputs

        names = [n for n in FIGURE_NAMES if n not in self._asked and FIGURE_TABLES[n] <= final]
        if not names or self._lost is not None:
            return
        inputs = FigureInputs.of(partial)
        # Only the tables that the worker does not have yet: a small second request fits
        # in the socket's buffer and does not wait for the worker to finish the first.
        fields = {f.name for f in dataclasses.fields(FigureInputs)}
        new = fields - self._sent if not self._sent else (final & fields) - self._sent
        try:  # returns at once unless the worker still warms up and the request is large
            self._conn.send(
                ({k: getattr(inputs, k) for k in new}, tuple(names), self._max_points, self._seed)
            )
        except Exception as exc:  # the worker is gone, or a table does not pickle
            log.debug("figure worker: cannot send a request", exc_info=True)
            self._lost = exc  # result() says so
            return
        self._sent |= (final & fields) | {"clinical"}  # sent, and final: not sent again
        self._pending += 1
        self._asked.update(names)

    def result(self, res: StudyResults) -> tuple[list[ReportFigure], list[DataIssue]]:
        """Every figure of ``res`` and the issues raised drawing them, in report order
        (:data:`~._figures.FIGURE_NAMES`), as :func:`~._figures.render_figures` returns
        and appends them.

        Raises
        ------
        FigureWorkerError
            The worker died, or drawing failed outside the per-figure error handling.
        """
        from ._figures import FIGURE_NAMES, FIGURE_TABLES

        self.draw_ready(res, frozenset().union(*FIGURE_TABLES.values()))  # any not asked yet
        if isinstance(self._lost, (OSError, EOFError)):
            raise self._stopped() from self._lost
        if self._lost is not None:
            why = (str(self._lost).strip().splitlines() or [""])[0]
            raise FigureWorkerError(
                f"cannot send the figures' tables to the worker "
                f"({type(self._lost).__name__}: {why})"
            ) from self._lost
        drawn: dict[str, tuple[ReportFigure | None, list[DataIssue]]] = {}
        while self._pending:
            try:
                reply: tuple[Any, ...] = self._conn.recv()
            except (EOFError, OSError) as exc:
                raise self._stopped() from exc
            self._pending -= 1
            if reply[0] != "ok":
                raise FigureWorkerError(f"the figure worker failed: {reply[1]}")
            drawn.update((name, (fig, issues)) for name, fig, issues in reply[1])
        order = [n for n in FIGURE_NAMES if n in drawn]
        figures = [f for n in order if (f := drawn[n][0]) is not None]
        self._finished = True
        return figures, [i for n in order for i in drawn[n][1]]

    def _stopped(self) -> FigureWorkerError:
        self._proc.join(timeout=5)
        return FigureWorkerError(
            f"the figure worker stopped (exit code {self._proc.exitcode}) without a result"
        )

    def close(self) -> None:
        """Stop the worker if it still runs (e.g. the report failed) and reap it."""
        self._conn.close()  # the worker's recv() ends: it exits
        if self._finished:
            self._proc.join(timeout=2)
        if self._proc.is_alive():  # still warming up or drawing: not needed any more
            self._proc.terminate()
            self._proc.join(timeout=5)
