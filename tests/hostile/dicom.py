"""Hostile DICOM folders: ``import`` and ``info`` on damaged or forged series."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._base import Work, add


def _series(w: Work) -> Path:
    from napari_m1.io._dicom_synth import orientation_iop, write_dicom_series

    src = w.root / "dcm"
    data = np.random.default_rng(0).integers(1, 3000, (2, 4, 8, 8)).astype(np.uint16)
    write_dicom_series(src, data, iop=orientation_iop("axial"), echo_times_ms=[5, 10])
    return src


def _edit(**tags: object) -> Callable[[Work], list[str]]:
    """Set header attributes of one file of a valid series, then import it."""

    def build(w: Work) -> list[str]:
        import pydicom

        src = _series(w)
        f = sorted(src.iterdir())[1]
        ds = pydicom.dcmread(f)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(f)
        return ["import", str(src), str(w.out)]

    return build


def _raw(tag: int, vr: str, value: bytes) -> Callable[[Work], list[str]]:
    """Forge one element's raw bytes (values pydicom would refuse to set)."""

    def build(w: Work) -> list[str]:
        import pydicom
        from pydicom.dataelem import RawDataElement
        from pydicom.tag import Tag

        src = _series(w)
        f = sorted(src.iterdir())[1]
        ds = pydicom.dcmread(f)
        t = Tag(tag)
        ds._dict[t] = RawDataElement(t, vr, len(value), value, 0, False, True)
        ds.save_as(f)
        return ["import", str(src), str(w.out)]

    return build


def _bytes(fn: Callable[[bytes], bytes]) -> Callable[[Work], list[str]]:
    def build(w: Work) -> list[str]:
        src = _series(w)
        f = sorted(src.iterdir())[2]
        f.write_bytes(fn(f.read_bytes()))
        return ["import", str(src), str(w.out)]

    return build


add("dicom-valid", lambda w: ["import", str(_series(w)), str(w.out)], expect=0)
add("dicom-info-valid", lambda w: ["info", str(_series(w))], expect=0)
add("dicom-truncated-pixels", _bytes(lambda b: b[:-40]), expect=2, match="s5_e1_0003.dcm")
add("dicom-truncated-header", _bytes(lambda b: b[:200]), expect=2, match="s5_e1_0003.dcm")
add("dicom-garbage-after-preamble", _bytes(lambda b: b[:132] + b"\xff" * 500), expect=2)
add("dicom-huge-matrix", _edit(Rows=65535, Columns=65535), expect=2)
add("dicom-zero-spacing", _edit(PixelSpacing=[0, 0]), expect=2, match="s5_e1_0002.dcm")
add("dicom-iop-five", _edit(ImageOrientationPatient=[1, 0, 0, 0, 1]), expect=2, match="s5_e1")
add("dicom-iop-zero", _edit(ImageOrientationPatient=[0, 0, 0, 0, 0, 0]), expect=2)
add("dicom-ipp-text", _raw(0x00200032, "DS", b"a\\b\\c "), expect=2, match="s5_e1_0002.dcm")
add("dicom-echo-time-text", _raw(0x00180081, "DS", b"fast"), expect=None)
add("dicom-rescale-nan", _edit(RescaleSlope="nan"), expect=None)
add("dicom-frames-bomb", _edit(NumberOfFrames=1_000_000), expect=2)
