"""Staged case loading: headers first, then the data streamed map by map.

:class:`CaseLoad` reads every header of a case and checks the declared sizes
against the files and the total against the memory available, before anything is
allocated. Its :meth:`CaseLoad.steps` generator then fills one buffer per map and
reports, in order:

1. ``"first"`` -- echo 1 of the GRE reference is read: enough for a first frame;
2. ``"progress"`` -- after every few slabs (bytes done / total);
3. ``"echo"`` -- one more GRE echo is complete;
4. ``"volume"`` -- a map is complete (finished, placed on the reference grid); the GRE
   first, then the other maps smallest first (``index`` is the map's place in the Case);
5. ``"done"`` -- the whole :class:`~napari_m1.io.Case` (the generator's return value too).

:class:`LoadingArray` lets the GRE be shown while its later echoes are still being
read: any read of it (napari's slicing, the measurement engine, ``np.asarray``)
waits until the echoes it touches are complete, so nothing ever sees a half-filled
echo. Pure Python and numpy: no Qt, no napari.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import M1LoadError
from ..geometry import reference_placement
from ._case import (
    PHASE_DIFFERENCE_NAME,
    Case,
    CaseFiles,
    find_case_files,
    finish_phase_difference,
)
from ._placement import place_one
from ._read import VolumePlan, plan_volume
from ._stream import check_memory

__all__ = ["CaseLoad", "LoadEvent", "LoadingArray"]

_PROGRESS_STEP = 64 << 20  # report progress every this many bytes


@dataclass
class LoadEvent:
    """One step of a staged load.

    Attributes
    ----------
    kind : {'first', 'progress', 'echo', 'volume', 'done'}
    done, total : int
        Bytes read so far and in all (the whole case).
    index : int
        Map index (0 = GRE reference) for ``'first'``/``'volume'``; echoes complete
        for ``'echo'``.
    payload : Any
        ``'first'``: the reference Volume (data: a :class:`LoadingArray` view while
        later echoes load) and its placement; ``'volume'``: ``(Volume, placement)``;
        ``'done'``: the Case.
    """

    kind: str
    done: int
    total: int
    index: int = 0
    payload: Any = None


class LoadingArray:
    """Array-like over a multi-echo buffer that is filled echo by echo.

    Indexing returns numpy arrays once the echoes it touches are complete, and
    waits (blocks) until then; indexing with a single echo number returns a 3D
    ``LoadingArray`` of that echo (so ``data[e]`` stays cheap). ``np.asarray``
    waits for everything. A failed load makes every waiting read raise.

    Parameters
    ----------
    array : ndarray, shape (n_echoes, n0, n1, n2) or (n0, n1, n2)
        The buffer's canonical view (being filled by another thread).
    """

    def __init__(
        self, array: np.ndarray, *, _parent: LoadingArray | None = None, _echo: int = 0
    ) -> None:
        self.array = array
        self._parent = _parent
        self._echo = _echo
        if _parent is None:
            self._cond = threading.Condition()
            self._ready = 0  # echoes complete
            self._error: BaseException | None = None
            self._n = array.shape[0] if array.ndim == 4 else 1

    # --------------------------------------------------------------- array protocol
    shape = property(lambda self: self.array.shape)
    dtype = property(lambda self: self.array.dtype)
    ndim = property(lambda self: self.array.ndim)
    size = property(lambda self: self.array.size)
    nbytes = property(lambda self: self.array.nbytes)

    def __len__(self) -> int:
        return len(self.array)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        self.wait()
        return np.asarray(self.array, dtype=dtype)

    def __getitem__(self, key: Any) -> Any:
        root = self._root
        if self._parent is None and self.array.ndim == 4:
            first = key[0] if isinstance(key, tuple) and key else key
            if isinstance(first, (int, np.integer)) and not isinstance(key, tuple):
                e = int(first) % self.array.shape[0]
                return LoadingArray(self.array[e], _parent=root, _echo=e)
            root.wait(_echoes_needed(first, self.array.shape[0]))
            return self.array[key]
        root.wait(self._echo + 1 if self._parent is not None else None)
        return self.array[key]

    def __repr__(self) -> str:
        return f"LoadingArray(shape={self.shape}, dtype={self.dtype}, complete={self.complete})"

    # --------------------------------------------------------------- loading state
    @property
    def _root(self) -> LoadingArray:
        return self._parent if self._parent is not None else self

    @property
    def complete(self) -> bool:
        """True when every echo is read."""
        root = self._root
        return root._ready >= root._n

    def mark_ready(self, n_echoes: int) -> None:
        """The loader says: the first ``n_echoes`` echoes are complete."""
        with self._cond:
            self._ready = max(self._ready, n_echoes)
            self._cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        """The load failed: readers waiting (and later ones) get an M1LoadError."""
        with self._cond:
            self._error = exc
            self._cond.notify_all()

    def wait(self, n_echoes: int | None = None, timeout: float | None = None) -> bool:
        """Block until ``n_echoes`` (default: all) are read; False on timeout."""
        root = self._root
        n = root._n if n_echoes is None else min(n_echoes, root._n)
        with root._cond:
            ok = root._cond.wait_for(lambda: root._ready >= n or root._error, timeout)
            if root._ready >= n:
                return True  # echoes read before a failure stay valid
            if root._error is not None:
                raise M1LoadError(f"data not available: {root._error}")
            return bool(ok)


def _echoes_needed(index: Any, n: int) -> int:
    """How many leading echoes an index on the echo axis touches (napari slices with
    ``slice(e, e + 1)`` for a thick slice)."""
    if isinstance(index, (int, np.integer)):
        return int(index) % n + 1
    if isinstance(index, slice):
        idx = range(*index.indices(n))
        return max(idx) + 1 if len(idx) else 0
    try:
        arr = np.asarray(index)
    except Exception:
        return n
    if arr.dtype.kind in "iu" and arr.size:
        return int((arr % n).max()) + 1
    return n


def _add_field_strength(vol: Any, files: CaseFiles) -> None:
    """Record B0 (T) and its source in the reference's ``extra`` (read by the QSM dock)."""
    from ._case import field_strength

    b0, where = field_strength(files)
    if b0 is not None:
        vol.extra["b0_tesla"] = b0
        vol.extra["b0_from"] = where


class CaseLoad:
    """A case with every header checked and nothing yet allocated or read.

    Parameters
    ----------
    folder : path
        A case folder (see :func:`~napari_m1.io.find_case_files`).
    kinds : tuple of str, optional
        Restrict to these kinds (``gre`` is always loaded).
    mrsi_thresholds : napari_m1.mrsi.QCThresholds, optional
        QC thresholds of the ratio maps of an fsl_mrsi output (default thresholds if None).

    Raises
    ------
    M1LoadError
        A bad folder or header, a file smaller than its header says, or a case
        larger than the memory available.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | CaseFiles,
        *,
        kinds: tuple[str, ...] | None = None,
        mrsi_thresholds: Any = None,
    ) -> None:
        self._mrsi_thresholds = mrsi_thresholds
        files = source if isinstance(source, CaseFiles) else find_case_files(source)
        want = set(kinds or ("gre", "phase", "qsm", "mrsi")) | {"gre"}
        self._want = want
        plans = [plan_volume(files.gre, kind="gre", echo_times_ms=files.echo_times_ms)]
        self._phase_difference = bool(files.phase and "phase" in want and files.phase_difference)
        if self._phase_difference:
            plans.append(plan_volume(files.phase[:1], kind="phase", name=PHASE_DIFFERENCE_NAME))
        elif files.phase and "phase" in want:
            plans.append(plan_volume(files.phase, kind="phase", echo_times_ms=files.echo_times_ms))
        if files.qsm is not None and "qsm" in want:
            plans.append(plan_volume([files.qsm], kind="qsm"))
        if "mrsi" in want:
            for met, p in files.mrsi.items():
                plans.append(plan_volume([p], kind="mrsi", name=f"MRSI {met}"))
        for pl in plans[1:]:
            if pl.kind in ("qsm", "mrsi") and pl.n_echoes != 1:
                raise M1LoadError(
                    f"{pl.label}: must be a 3D map, got shape "
                    f"{(pl.n_echoes, *reversed(pl.file_spatial))}"
                )
        self.files = files
        self.plans: list[VolumePlan] = plans
        check_memory(self.nbytes, Path(files.folder).name)
        self.reference_array: LoadingArray | None = None

    @property
    def nbytes(self) -> int:
        """Bytes the loaded case will hold (every map's buffer)."""
        return sum(p.nbytes for p in self.plans)

    def steps(self, *, inflater: str | None = None) -> Iterator[LoadEvent]:
        """Read the case map by map (GRE echo 1 first); see the module docstring."""
        total = self.nbytes
        base = 0
        last = 0
        vols: dict[int, Any] = {}
        places: dict[int, Any] = {}
        # GRE first (the first frame), then the maps smallest first: the tiny MRSI maps
        # are ready (and their layers added) while the big phase still streams.
        order = [0, *sorted(range(1, len(self.plans)), key=lambda k: self.plans[k].nbytes)]
        try:
            for i in order:
                plan = self.plans[i]
                echo = plan.echo_nbytes
                ready = 0
                if i == 0:
                    data, ras = plan.view()
                    self.reference_array = LoadingArray(data)
                for done in plan.stream(inflater=inflater):
                    if i == 0 and done // echo > ready:
                        prev, ready = ready, done // echo
                        self.reference_array.mark_ready(ready)  # type: ignore[union-attr]
                        if prev == 0:
                            yield LoadEvent("first", base + done, total, 0, self._first(ras))
                        else:
                            yield LoadEvent("echo", base + done, total, ready)
                    if base + done - last >= _PROGRESS_STEP:
                        last = base + done
                        yield LoadEvent("progress", last, total)
                base += plan.nbytes
                vol = plan.finish()
                if plan.kind == "mrsi":
                    vol.extra["metabolite"] = plan.label.removeprefix("MRSI ")
                    from ._mrsi import tissue_for_volume  # tissue fractions, when available

                    vol.aux.update(tissue_for_volume(vol, self.files.fsl_mrsi, self.files.folder))
                if plan.kind == "phase" and self._phase_difference:
                    vol = finish_phase_difference(vol, plan.paths[0], vols[0])
                if i == 0:
                    _add_field_strength(vol, self.files)
                    place = reference_placement(vol.ras_affine, vol.spatial_shape)
                else:
                    place = place_one(vol, vols[0], places[0])
                vols[i], places[i] = vol, place
                yield LoadEvent("volume", base, total, i, (vol, place))
            # QC'd ratio maps of an fsl_mrsi output: computed, not streamed (docs/mrsi.md)
            if self.files.fsl_mrsi is not None and "mrsi" in self._want:
                from ._mrsi import ratio_volumes

                ratios = ratio_volumes(
                    self.files.fsl_mrsi, self._mrsi_thresholds, self.files.folder
                )
                for vol in ratios:
                    i = len(vols)
                    vols[i], places[i] = vol, place_one(vol, vols[0], places[0])
                    yield LoadEvent("volume", base, total, i, (vol, places[i]))
        except BaseException as exc:
            if self.reference_array is not None:
                cancelled = isinstance(exc, GeneratorExit)
                why = M1LoadError("loading was cancelled") if cancelled else exc
                self.reference_array.fail(why)
            raise
        idx = range(len(vols))  # the Case lists maps in their usual order
        case = Case(self.files, [vols[k] for k in idx], [places[k] for k in idx])
        yield LoadEvent("done", total, total, 0, case)
        return case

    def _first(self, ras: np.ndarray) -> tuple[Any, Any]:
        """The reference as a Volume over the LoadingArray (for the first frame)."""
        from ._nifti import Volume

        plan = self.plans[0]
        import nibabel as nib

        vol = Volume(
            data=self.reference_array,  # type: ignore[arg-type]
            ras_affine=ras,
            source_affine=plan.affine,
            source_axcodes=tuple(nib.aff2axcodes(plan.affine)),
            kind=plan.kind,
            name=plan.label,
            echo_times_ms=plan.echo_times_ms,
            sources=[p.name for p in plan.paths],
        )
        return vol, reference_placement(ras, vol.spatial_shape)

    def run(self, *, inflater: str | None = None) -> Case:
        """Load everything (blocking) and return the Case."""
        gen = self.steps(inflater=inflater)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value
