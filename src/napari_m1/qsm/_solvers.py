"""Conjugate gradients on float32 volumes (RESHARP, PDF), with progress and cancel."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._common import CancelFn, ProgressFn, check_cancel

__all__ = ["conjugate_gradient"]


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a.reshape(-1), b.reshape(-1)))


def conjugate_gradient(
    apply_a: Callable[[np.ndarray], np.ndarray],
    b: np.ndarray,
    *,
    n_iter: int,
    tol: float,
    label: str,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> tuple[np.ndarray, dict]:
    """Solve ``A x = b`` for a symmetric positive (semi-)definite ``A``, from ``x = 0``.

    Parameters
    ----------
    apply_a : callable(ndarray) -> ndarray
        ``A p`` (a new array; ``p`` must not be modified).
    b : float32 ndarray
        Right-hand side (any shape).
    n_iter : int
        Maximum iterations.
    tol : float
        Stop when ``||b - A x|| / ||b|| < tol``.
    label : str
        Stage name for progress messages.
    progress, cancel
        Called / checked once per iteration.

    Returns
    -------
    x : float32 ndarray, shape of ``b``
    info : dict
        ``iterations`` and the final ``relative_residual``.
    """
    x = np.zeros_like(b, dtype=np.float32)
    r = np.array(b, dtype=np.float32)
    p = r.copy()
    rs = _dot(r, r)
    bnorm = rs**0.5 or 1.0
    rel = rs**0.5 / bnorm
    it = 0
    for it in range(1, n_iter + 1):
        check_cancel(cancel)
        if rel < tol:
            it -= 1
            break
        ap = apply_a(p)
        pap = _dot(p, ap)
        if pap <= 0:
            break
        alpha = np.float32(rs / pap)
        x += alpha * p
        ap *= alpha
        r -= ap
        del ap
        rs_new = _dot(r, r)
        rel = rs_new**0.5 / bnorm
        p *= np.float32(rs_new / rs)
        p += r
        rs = rs_new
        if progress is not None:
            progress(it / n_iter, f"{label} iteration {it}/{n_iter}")
    return x, {"iterations": it, "relative_residual": rel}
