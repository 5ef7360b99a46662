"""Study test data built in code: the published 2-reader study and synthetic studies.

Used by tests/test_stats.py, tests/test_report.py, tests/test_gui_report.py,
benchmarks/bench_report.py and the docs example (docs/report.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

READINGS_SCHEMA = "napari-m1/readings/1"
MEASUREMENTS_SCHEMA = "napari-m1/measurements/1"
AREAS = ("face", "hand", "leg", "foot")
READINGS_COLUMNS = [
    "schema",
    "study_id",
    "reader",
    "pseudonym",
    "read_no",
    "is_repeat",
    "repeat_of",
    "status",
    "hypointensity",
    "thinning",
    "als_consistent",
    "confidence",
    "comment",
    "active_time_s",
    "opened_at_utc",
    "submitted_at_utc",
    "case_id",
]
MEASUREMENT_COLUMNS = [
    "schema",
    "software_version",
    "exported_at_utc",
    "case_label",
    "reader",
    "protocol",
    "slot",
    "region",
    "hemisphere",
    "hemisphere_from_affine",
    "annotation",
    "layer_kind",
    "echo",
    "te_ms",
    "metabolite",
    "slice_index",
    "centre_x_mm",
    "centre_y_mm",
    "centre_z_mm",
    "centre_i",
    "centre_j",
    "centre_k",
    "p1_x_mm",
    "p1_y_mm",
    "p1_z_mm",
    "p2_x_mm",
    "p2_y_mm",
    "p2_z_mm",
    "voxel_x_mm",
    "voxel_y_mm",
    "voxel_z_mm",
    "area_mm2",
    "coverage_fraction",
    "n_voxels",
    "mean",
    "sd",
    "median",
    "normalised_si",
    "normalised_si_note",
    "chi_ppm",
    "thickness_mm",
    "thickness_3d_mm",
]


# --------------------------------------------------------------------------- published
def published_study() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The published two-reader study (18 patients, 13 controls) as unblinded readings.

    Construction. Reader 1 calls 12/18 patients and 3/13 controls positive; reader 2
    calls 9/18 patients and 0/13 controls positive. Let x be the number of patients both
    call positive. The reader-1 × reader-2 table over all 31 cases is then
    [[x, 15 − x], [9 − x, x + 7]] (rows reader 1 +/−, columns reader 2 +/−), so
    p_o = (2x + 7)/31 and p_e = (15·9 + 16·22)/31² = 487/961 for every x. Only x = 9
    gives κ = (p_o − p_e)/(1 − p_e) = 0.6076 → 0.61 (x = 8 gives 0.48). Hence:

    * patients ALS01–ALS09: both readers positive;
    * patients ALS10–ALS12: reader 1 positive, reader 2 negative;
    * patients ALS13–ALS18: both negative;
    * controls CTL01–CTL03: reader 1 positive, reader 2 negative;
    * controls CTL04–CTL13: both negative.

    Clinical scores are made up (they are not part of the published table) but fixed,
    so the DPR of every patient can be worked out by hand.

    Returns
    -------
    readings, clinical : pandas.DataFrame
    """
    patients = [f"ALS{i:02d}" for i in range(1, 19)]
    controls = [f"CTL{i:02d}" for i in range(1, 14)]
    r1 = {c: int(i < 12) for i, c in enumerate(patients)} | {
        c: int(i < 3) for i, c in enumerate(controls)
    }
    r2 = {c: int(i < 9) for i, c in enumerate(patients)} | dict.fromkeys(controls, 0)
    rows = []
    for reader, calls in (("R1", r1), ("R2", r2)):
        for n, (case, call) in enumerate(calls.items(), start=1):
            rows.append(
                _reading(reader, f"{reader}-{n:03d}", n, case, call, call, call, repeat_of="")
            )
    readings = pd.DataFrame(rows, columns=READINGS_COLUMNS)
    clin = []
    for i, c in enumerate(patients):
        clin.append(
            {
                "case_id": c,
                "group": "als",
                "alsfrs_r": 30 + i,  # 30..47
                "disease_duration_months": 6 + 2 * i,  # 6..40
                "umn_score": (3 * i) % 34,
                "umn_arm_left": i % 9,
                "umn_arm_right": (i + 3) % 9,
                "umn_leg_left": (2 * i) % 9,
                "umn_leg_right": (i + 5) % 9,
                "mrc": 100 + i,
                "site": "A",
            }
        )
    for c in controls:
        clin.append({"case_id": c, "group": "control", "mrc": 130, "site": "A"})
    return readings, pd.DataFrame(clin)


def _reading(
    reader: str,
    pseudonym: str,
    read_no: int,
    case_id: str,
    als: int | float,
    hypo: int | float,
    thin: int | float,
    *,
    repeat_of: str,
    status: str = "submitted",
) -> dict:
    return {
        "schema": READINGS_SCHEMA,
        "study_id": "M1-7T",
        "reader": reader,
        "pseudonym": pseudonym,
        "read_no": read_no,
        "is_repeat": int(bool(repeat_of)),
        "repeat_of": repeat_of,
        "status": status,
        "hypointensity": hypo,
        "thinning": thin,
        "als_consistent": als,
        "confidence": 3,
        "comment": "",
        "active_time_s": 95.5,
        "opened_at_utc": "2025-01-10T09:00:00Z",
        "submitted_at_utc": "2025-01-10T09:02:00Z",
        "case_id": case_id,
    }


# --------------------------------------------------------------------------- synthetic
def synthetic_study(
    n_readers: int = 3,
    n_cases: int = 40,
    *,
    seed: int = 0,
    echoes: tuple[int, ...] = (1, 2),
    repeat_fraction: float = 0.2,
    with_measurements: bool = True,
) -> dict[str, pd.DataFrame]:
    """A synthetic study with an ALS effect on thickness and SI.

    Patients' deep-layer M1 is thinner and darker the higher their UMN burden; each
    hemisphere's hand/leg/foot area follows the contralateral limb's UMN score. Every
    reader reads every case once under their own pseudonym (``R<k>-<n>``), plus hidden
    repeats of ``repeat_fraction`` of the cases, and measures every first read:
    calipers and GRE ROIs (all ``echoes``) in 4 Penfield areas × 2 hemispheres and the
    precuneus reference ROI.

    Returns
    -------
    dict
        ``readings``, ``clinical`` and (optionally) ``measurements`` DataFrames in the
        napari-m1 CSV schemas.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"C{i:04d}" for i in range(1, n_cases + 1)])
    als = rng.random(n_cases) < 0.55
    als[:2] = True
    als[2:4] = False
    nan = np.nan
    limb = {
        k: np.where(als, rng.integers(0, 9, n_cases), 0).astype(float)
        for k in ("umn_arm_left", "umn_arm_right", "umn_leg_left", "umn_leg_right")
    }
    umn = np.clip(
        limb["umn_arm_left"]
        + limb["umn_arm_right"]
        + limb["umn_leg_left"]
        + limb["umn_leg_right"]
        + rng.integers(0, 3, n_cases),
        0,
        33,
    )
    alsfrs = np.where(als, np.clip(46 - 0.5 * umn + rng.normal(0, 3, n_cases), 0, 48).round(), nan)
    duration = np.where(als, rng.uniform(6, 60, n_cases).round(1), nan)
    clinical = pd.DataFrame(
        {
            "case_id": ids,
            "group": np.where(als, "als", "control"),
            "alsfrs_r": alsfrs,
            "disease_duration_months": duration,
            "umn_score": np.where(als, umn, nan),
            **{k: np.where(als, v, nan) for k, v in limb.items()},
            "mrc": np.where(
                als, np.clip(130 - 1.5 * umn + rng.normal(0, 5, n_cases), 0, 130).round(), nan
            ),
            "sex": rng.choice(["F", "M"], n_cases),
        }
    )
    severity = np.where(als, umn / 33.0, 0.0)
    # Subject-level anatomy (thickness, mm) and contrast (SI) shared by every reader.
    subject = {"thickness": rng.normal(0, 0.18, n_cases), "si": rng.normal(0, 0.04, n_cases)}
    readers = [f"R{k}" for k in range(1, n_readers + 1)]
    rows = []
    meas = []
    for k, reader in enumerate(readers):
        order = rng.permutation(n_cases)
        bias = rng.normal(0, 0.4)
        logit = -1.8 + bias + 5.0 * severity + np.where(als, 1.2, 0.0)
        p = 1 / (1 + np.exp(-logit))
        call = (rng.random(n_cases) < p).astype(int)
        hypo = np.where(rng.random(n_cases) < 0.85, call, 1 - call)
        thin = np.where(rng.random(n_cases) < 0.8, call, 1 - call)
        pseud = {}
        for n, ci in enumerate(order, start=1):
            ps = f"{reader}-{n:05d}"
            pseud[ci] = ps
            rows.append(
                _reading(reader, ps, n, ids[ci], call[ci], hypo[ci], thin[ci], repeat_of="")
            )
        rep = rng.choice(n_cases, round(repeat_fraction * n_cases), replace=False)
        for j, ci in enumerate(rep, start=n_cases + 1):
            again = [v if rng.random() < 0.85 else 1 - v for v in (call[ci], hypo[ci], thin[ci])]
            rows.append(
                _reading(reader, f"{reader}-{j:05d}", j, ids[ci], *again, repeat_of=pseud[ci])
            )
        if with_measurements:
            labels = np.array([pseud[i] for i in range(n_cases)])
            meas.append(
                _measurements(rng, reader, labels, als, limb, severity, subject, echoes, k)
            )
    out = {"readings": pd.DataFrame(rows, columns=READINGS_COLUMNS), "clinical": clinical}
    if with_measurements:
        out["measurements"] = pd.concat(meas, ignore_index=True)[MEASUREMENT_COLUMNS]
    return out


def _measurements(
    rng: np.random.Generator,
    reader: str,
    labels: np.ndarray,
    als: np.ndarray,
    limb: dict[str, np.ndarray],
    severity: np.ndarray,
    subject: dict[str, np.ndarray],
    echoes: tuple[int, ...],
    k: int,
) -> pd.DataFrame:
    n = len(labels)
    contra = {
        ("hand", "L"): "umn_arm_right",
        ("hand", "R"): "umn_arm_left",
        ("leg", "L"): "umn_leg_right",
        ("leg", "R"): "umn_leg_left",
        ("foot", "L"): "umn_leg_right",
        ("foot", "R"): "umn_leg_left",
    }
    frames = []
    reader_offset = 0.03 * k
    for area in (*AREAS, "precuneus"):
        for hemi in ("L", "R") if area != "precuneus" else ("R",):
            if area == "precuneus":
                burden = np.zeros(n)
            elif (area, hemi) in contra:
                burden = limb[contra[(area, hemi)]] / 8.0
            else:
                burden = severity
            thick = (
                2.6
                + reader_offset
                + subject["thickness"]
                - 0.5 * burden
                - 0.15 * als
                + rng.normal(0, 0.15, n)
            )
            slot_base = f"{hemi}_{area}" if area != "precuneus" else "ref_precuneus"
            if area != "precuneus":
                frames.append(
                    _rows(
                        labels,
                        reader,
                        f"{slot_base}_caliper",
                        area,
                        hemi,
                        "caliper",
                        "",
                        np.full(n, np.nan),
                        thickness=thick,
                    )
                )
            for e in echoes:
                si = (
                    np.ones(n)
                    if area == "precuneus"
                    else 0.95
                    + subject["si"]
                    - 0.12 * burden
                    - 0.04 * als
                    + 0.01 * e
                    + rng.normal(0, 0.03, n)
                )
                frames.append(
                    _rows(labels, reader, f"{slot_base}_roi", area, hemi, "roi", "gre", si, echo=e)
                )
    return pd.concat(frames, ignore_index=True)


def _rows(
    labels: np.ndarray,
    reader: str,
    slot: str,
    region: str,
    hemi: str,
    annotation: str,
    kind: str,
    si: np.ndarray,
    *,
    echo: int | None = None,
    thickness: np.ndarray | None = None,
) -> pd.DataFrame:
    n = len(labels)
    x = -38.0 if hemi == "L" else 38.0
    d = {c: np.full(n, np.nan) for c in MEASUREMENT_COLUMNS}
    d.update(
        schema=MEASUREMENTS_SCHEMA,
        software_version="0.1.0",
        exported_at_utc="2025-02-01T10:00:00Z",
        case_label=labels,
        reader=reader,
        protocol="m1-7t",
        slot=slot,
        region=region,
        hemisphere=hemi,
        hemisphere_from_affine=hemi,
        annotation=annotation,
        layer_kind=kind,
        echo=echo if echo is not None else np.nan,
        te_ms=(7.0 + 8.0 * (echo - 1)) if echo is not None else np.nan,
        metabolite="",
        slice_index=30,
        centre_x_mm=x,
        centre_y_mm=-20.0,
        centre_z_mm=60.0,
        centre_i=100.0,
        centre_j=200.0,
        centre_k=30.0,
        voxel_x_mm=0.24,
        voxel_y_mm=0.24,
        voxel_z_mm=1.0,
        normalised_si_note="",
    )
    if annotation == "roi":
        d.update(
            area_mm2=4.0,
            coverage_fraction=1.0,
            n_voxels=69.4,
            mean=si * 1000.0,
            sd=50.0,
            median=si * 1000.0,
            normalised_si=si,
        )
    else:
        d.update(
            p1_x_mm=x,
            p1_y_mm=-20.0,
            p1_z_mm=60.0,
            p2_x_mm=x,
            p2_y_mm=-20.0 + thickness,
            p2_z_mm=60.0,
            thickness_mm=thickness,
            thickness_3d_mm=thickness,
        )
    return pd.DataFrame(d)


def write_study(folder: Path, frames: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Write ``frames`` as ``<name>.csv`` files in the napari-m1 CSV style; return paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in frames.items():
        p = folder / f"{name}.csv"
        df.to_csv(p, index=False, lineterminator="\n", na_rep="", float_format="%.6g")
        paths[name] = p
    return paths
