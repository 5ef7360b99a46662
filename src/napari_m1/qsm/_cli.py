"""``napari-m1 qsm CASE_DIR --out OUT_DIR``: QSM from a case's multi-echo GRE.

``napari_m1.cli`` calls :func:`register` with its subparsers. Unusable input raises
:class:`napari_m1.errors.M1Error`, which the main CLI prints as one line (exit status 2).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run_qsm_command"]

log = logging.getLogger(__name__)

_HELP = "quantitative susceptibility map (QSM) from the case's multi-echo GRE phase"
_EPILOG = (
    "Writes OUT_DIR/Chimap.nii.gz (chi, ppm, float32, the GRE grid), mask.nii.gz, "
    "totalfield.nii.gz, localfield.nii.gz (ppm of B0) and qsm.json (every parameter, versions, "
    "the reference). Presets: fast = Laplacian unwrapping + V-SHARP + TKD; default = "
    "path-following + template unwrapping + V-SHARP + TV-ADMM. Identical inputs give "
    "identical files."
)


def _tesla(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.1 <= v <= 20:
        raise argparse.ArgumentTypeError(f"field strength must be 0.1-20 T (got {v})")
    return v


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``qsm`` sub-command to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser("qsm", help=_HELP, description=_HELP + ".", epilog=_EPILOG)
    p.add_argument("case_dir", metavar="CASE_DIR", help="case folder with GRE magnitude + phase")
    p.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--preset", choices=("fast", "default"), default="default")
    p.add_argument("--b0", type=_tesla, metavar="TESLA", help="field strength (overrides files)")
    p.add_argument("--mask", metavar="FILE", help="brain mask NIfTI on the GRE grid (non-zero)")
    p.set_defaults(func=run_qsm_command)
    return p


def load_mask_file(path: str | Path, inp: Any) -> Any:
    """A mask NIfTI as a bool array in the input's voxel order; must share its grid.

    Raises
    ------
    napari_m1.errors.M1Error
        Unreadable, or not on the GRE grid.
    """
    import numpy as np

    from ..errors import M1Error
    from ..io._read import load_multi_echo

    p = Path(path)
    vol = load_multi_echo([p], kind="other")
    if vol.data.ndim != 3 or vol.data.shape != inp.shape:
        raise M1Error(f"{p.name}: mask shape {vol.data.shape} is not the GRE grid {inp.shape}")
    if not np.allclose(vol.ras_affine, inp.affine, atol=1e-3):
        raise M1Error(f"{p.name}: mask geometry (affine) differs from the GRE")
    mask = np.asarray(vol.data) > 0
    if not mask.any():
        raise M1Error(f"{p.name}: mask is empty")
    return mask


def run_qsm_command(args: argparse.Namespace) -> int:
    """Run the reconstruction described by parsed ``args``; print a summary; return 0."""
    import time

    from .._files import check_outputs
    from ..errors import M1Error
    from ..io import find_case_files
    from ..io._case import case_input_files
    from . import PRESETS, load_case_input, run_qsm, write_qsm_outputs

    t0 = time.perf_counter()
    # no output file may be an input (the mask, a map of the case) -- checked before hours of work
    outs = ("Chimap.nii.gz", "mask.nii.gz", "totalfield.nii.gz", "localfield.nii.gz", "qsm.json")
    try:
        case_files = case_input_files(find_case_files(args.case_dir))
    except M1Error:  # not a plain case folder: load_case_input says what is wrong
        case_files = []
    check_outputs([Path(args.out) / n for n in outs], [args.mask, *case_files])
    inp = load_case_input(args.case_dir, b0_tesla=args.b0)
    for w in inp.warnings:
        print(f"warning: {w}", file=sys.stderr)
    mask = load_mask_file(args.mask, inp) if args.mask else None
    last = [-1.0]

    def progress(frac: float, msg: str) -> None:
        if frac - last[0] >= 0.1 or frac >= 1.0:
            last[0] = frac
            log.info("%3.0f%% %s", 100 * frac, msg)

    res = run_qsm(inp, PRESETS[args.preset], mask=mask, progress=progress)
    source = dict(inp.source)
    if args.mask:
        source["mask_file"] = Path(args.mask).name
    out = write_qsm_outputs(res, args.out, affine=inp.affine, source=source)
    ref = res.info["reference"]["subtracted_ppm"]
    print(
        f"napari-m1 qsm: wrote {out}/Chimap.nii.gz ({args.preset} preset, "
        f"{int(res.mask.sum())} voxels in the final mask, reference {ref:+.4f} ppm subtracted) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0
