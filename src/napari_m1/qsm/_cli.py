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
    "path-following + template unwrapping + V-SHARP + TV-ADMM; --background, --dipole and "
    "--reference change one stage. Identical inputs give identical files."
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
    p.add_argument(
        "--background",
        choices=("vsharp", "resharp", "pdf"),
        help="background field removal (default: the preset's, V-SHARP)",
    )
    p.add_argument(
        "--dipole",
        choices=("tv", "tkd", "iswim"),
        help="dipole inversion (default: the preset's; iswim = SWIM-like, research)",
    )
    p.add_argument(
        "--reference",
        choices=("mean", "csf", "roi", "none"),
        help="chi reference: whole-brain mean (default), CSF, or the region --reference-roi",
    )
    p.add_argument(
        "--reference-roi",
        metavar="FILE",
        help="reference region NIfTI on the GRE grid (non-zero); implies --reference roi",
    )
    p.set_defaults(func=run_qsm_command)
    return p


def params_from_args(args: argparse.Namespace) -> Any:
    """The :class:`napari_m1.qsm.QSMParams` of ``--preset`` with the method options applied.

    Raises
    ------
    napari_m1.errors.M1Error
        ``--reference roi`` without ``--reference-roi FILE``.
    """
    from ..errors import M1Error
    from . import PRESETS

    base = PRESETS[args.preset]
    reference = getattr(args, "reference", None)
    roi_file = getattr(args, "reference_roi", None)
    if roi_file and reference not in (None, "roi"):
        raise M1Error(f"--reference-roi {Path(roi_file).name} needs --reference roi")
    if roi_file:
        reference = "roi"
    if reference == "roi" and not roi_file:
        raise M1Error("--reference roi needs --reference-roi FILE (a mask on the GRE grid)")
    changed = {
        k: v
        for k, v in (
            ("background", getattr(args, "background", None)),
            ("dipole", getattr(args, "dipole", None)),
            ("reference", reference),
        )
        if v is not None and v != getattr(base, k)
    }
    return base.replace(**changed) if changed else base


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
    from . import load_case_input, run_qsm, write_qsm_outputs

    t0 = time.perf_counter()
    # no output file may be an input (the mask, a map of the case) -- checked before hours of work
    outs = ("Chimap.nii.gz", "mask.nii.gz", "totalfield.nii.gz", "localfield.nii.gz", "qsm.json")
    try:
        case_files = case_input_files(find_case_files(args.case_dir))
    except M1Error:  # not a plain case folder: load_case_input says what is wrong
        case_files = []
    roi_file = getattr(args, "reference_roi", None)
    params = params_from_args(args)
    check_outputs([Path(args.out) / n for n in outs], [args.mask, roi_file, *case_files])
    inp = load_case_input(args.case_dir, b0_tesla=args.b0)
    for w in inp.warnings:
        print(f"warning: {w}", file=sys.stderr)
    mask = load_mask_file(args.mask, inp) if args.mask else None
    ref_roi = load_mask_file(roi_file, inp) if roi_file else None
    last = [-1.0]

    def progress(frac: float, msg: str) -> None:
        if frac - last[0] >= 0.1 or frac >= 1.0:
            last[0] = frac
            log.info("%3.0f%% %s", 100 * frac, msg)

    res = run_qsm(inp, params, mask=mask, reference_roi=ref_roi, progress=progress)
    source = dict(inp.source)
    if args.mask:
        source["mask_file"] = Path(args.mask).name
    if roi_file:
        source["reference_roi_file"] = Path(roi_file).name
    out = write_qsm_outputs(res, args.out, affine=inp.affine, source=source)
    ref = res.info["reference"]["subtracted_ppm"]
    print(
        f"napari-m1 qsm: wrote {out}/Chimap.nii.gz ({params.preset} preset: "
        f"{res.info['background']['method']} + {res.info['dipole']['method']}, "
        f"{int(res.mask.sum())} voxels in the final mask, reference "
        f"{res.info['reference']['method']} {ref:+.4f} ppm subtracted) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0
