"""Reading protocols as data: which ROIs and calipers a reader places.

A protocol is a list of *slots*. Each slot is one annotation the reader must
place: an oval ROI or a caliper line, in one region and hemisphere. The seed
study's protocol (``m1-7t``) and the related QSM protocol (``qsm-m1``) are built
in; a site adds its own as a JSON file (same fields) in
``<user data>/protocols/*.json`` or loads one with :func:`load_protocol`.
Widgets only read these objects; nothing about a protocol is hard-coded in Qt.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import M1Error

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "Slot",
    "available_protocols",
    "get_protocol",
    "load_protocol",
]

SlotKind = Literal["roi", "caliper", "mrsi_voxel"]
#: every slot kind: an oval ROI, a caliper line, one MRSI voxel (clicked on the MRSI grid)
SLOT_KINDS: tuple[str, ...] = ("roi", "caliper", "mrsi_voxel")
PENFIELD_AREAS: tuple[str, ...] = ("foot", "leg", "hand", "face")
HEMISPHERES: tuple[str, ...] = ("L", "R")
DEFAULT_ROI_AREA_MM2 = 4.0


@dataclass(frozen=True)
class Slot:
    """One annotation a protocol asks for.

    Attributes
    ----------
    id : str
        Unique within the protocol, e.g. ``"L_hand_roi"``.
    kind : {'roi', 'caliper', 'mrsi_voxel'}
        ``mrsi_voxel``: the reader clicks one voxel of the case's MRSI grid; its indices
        are stored and its ratios, QC and tissue fractions measured directly.
    region : str
        Anatomical region (``foot``, ``leg``, ``hand``, ``face``, ``precuneus``, ...).
    hemisphere : {'L', 'R'}
        The hemisphere the annotation must lie in (checked against the RAS affine).
    layer : str
        Cortical layer or place, for the reader: ``deep``, ``superficial``, ``border``.
    role : {'measure', 'reference', 'control'}
        ``reference``: the ROI that GRE signal is normalised to.
    area_mm2 : float or None
        Default ROI area (ROIs only).
    label : str
        Human label shown in the checklist.
    """

    id: str
    kind: SlotKind
    region: str
    hemisphere: str
    layer: str = "deep"
    role: str = "measure"
    area_mm2: float | None = None
    label: str = ""


@dataclass(frozen=True)
class Protocol:
    """An ordered set of slots plus the reference slot for signal normalisation."""

    id: str
    name: str
    slots: tuple[Slot, ...]
    reference_slot: str | None = None
    description: str = ""
    citation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = [s.id for s in self.slots]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise M1Error(f"protocol {self.id}: duplicate slot id(s) {sorted(dup)}")
        if self.reference_slot is not None and self.reference_slot not in ids:
            raise M1Error(f"protocol {self.id}: reference slot {self.reference_slot!r} missing")
        for s in self.slots:
            if s.kind not in SLOT_KINDS:
                raise M1Error(f"protocol {self.id}: slot {s.id} has unknown kind {s.kind!r}")
            if s.hemisphere not in HEMISPHERES:
                raise M1Error(f"protocol {self.id}: slot {s.id} hemisphere must be L or R")

    def slot(self, slot_id: str) -> Slot:
        """The slot with this id (KeyError with the protocol name otherwise)."""
        for s in self.slots:
            if s.id == slot_id:
                return s
        raise KeyError(f"protocol {self.id} has no slot {slot_id!r}")

    @property
    def slot_ids(self) -> tuple[str, ...]:
        """Slot ids in protocol order."""
        return tuple(s.id for s in self.slots)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (the format :func:`load_protocol` reads)."""
        d = asdict(self)
        d["slots"] = [asdict(s) for s in self.slots]
        return d


def _hemi_word(h: str) -> str:
    return {"L": "Left", "R": "Right"}[h]


def _m1_7t() -> Protocol:
    slots: list[Slot] = []
    for h in HEMISPHERES:
        for area in PENFIELD_AREAS:
            slots.append(
                Slot(
                    f"{h}_{area}_roi",
                    "roi",
                    area,
                    h,
                    "deep",
                    "measure",
                    DEFAULT_ROI_AREA_MM2,
                    f"{_hemi_word(h)} {area} · deep-layer ROI",
                )
            )
            slots.append(
                Slot(
                    f"{h}_{area}_caliper",
                    "caliper",
                    area,
                    h,
                    "deep",
                    "measure",
                    None,
                    f"{_hemi_word(h)} {area} · deep-layer thickness",
                )
            )
    slots.append(
        Slot(
            "ref_precuneus_roi",
            "roi",
            "precuneus",
            "L",
            "superficial",
            "reference",
            DEFAULT_ROI_AREA_MM2,
            "Left precuneus · superficial reference ROI",
        )
    )
    return Protocol(
        id="m1-7t",
        name="7T M1 deep layers (foot, leg, hand, face)",
        slots=tuple(slots),
        reference_slot="ref_precuneus_roi",
        description=(
            "Per hemisphere and Penfield area: one 4 mm² oval ROI in the deep layers of M1 and "
            "one caliper across the deep layers; signal normalised to a superficial-cortex ROI "
            "in the left precuneus."
        ),
        citation="7T multi-echo GRE T2* of the primary motor cortex in ALS (seed study).",
    )


def _qsm_m1() -> Protocol:
    slots: list[Slot] = []
    for h in HEMISPHERES:
        slots.append(
            Slot(
                f"{h}_m1_roi",
                "roi",
                "m1",
                h,
                "deep",
                "measure",
                DEFAULT_ROI_AREA_MM2,
                f"{_hemi_word(h)} M1 · susceptibility ROI",
            )
        )
        slots.append(
            Slot(
                f"{h}_control_roi",
                "roi",
                "precentral_control",
                h,
                "border",
                "control",
                DEFAULT_ROI_AREA_MM2,
                f"{_hemi_word(h)} anterior precentral border · control ROI",
            )
        )
    return Protocol(
        id="qsm-m1",
        name="QSM: M1 vs anterior precentral control",
        slots=tuple(slots),
        reference_slot=None,
        description=(
            "Per hemisphere: a ROI in M1 and a control ROI on the anterior border of the "
            "precentral gyrus; susceptibility (ppm) compared between them."
        ),
        citation="QSM of the motor cortex in ALS (related study).",
    )


def _mrsi_m1() -> Protocol:
    slots = [
        Slot(
            f"{h}_{region}_mrsi_voxel",
            "mrsi_voxel",
            region,
            h,
            "voxel",
            "measure",
            None,
            f"{_hemi_word(h)} {what} · MRSI voxel",
        )
        for h in HEMISPHERES
        for region, what in (("hand", "hand knob"), ("precentral", "precentral gyrus"))
    ]
    return Protocol(
        id="mrsi-m1",
        name="MRSI: voxels over the hand knob and the precentral gyrus",
        slots=tuple(slots),
        reference_slot=None,
        description=(
            "Per hemisphere: the MRSI voxel over the hand knob and one over the precentral "
            "gyrus; each voxel's tNAA/tCr, tCho/tCr, Glx/tCr, QC and tissue fractions."
        ),
        citation="MRSI of the motor cortex in ALS: NAA/Cr falls with upper-motor-neuron burden.",
    )


def load_protocol(path: str | os.PathLike[str]) -> Protocol:
    """Read a protocol from JSON (the :meth:`Protocol.to_dict` format).

    Raises
    ------
    M1Error
        One-line message naming the file and the problem.
    """
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        slots = tuple(Slot(**s) for s in d.pop("slots"))
        return Protocol(slots=slots, **d)
    except M1Error:
        raise
    except (
        OSError,
        UnicodeDecodeError,
        json.JSONDecodeError,
        TypeError,
        KeyError,
        AttributeError,
    ) as exc:
        raise M1Error(f"{p.name}: not a valid protocol file ({exc})") from None


PROTOCOLS: dict[str, Protocol] = {p.id: p for p in (_m1_7t(), _qsm_m1(), _mrsi_m1())}


def available_protocols() -> dict[str, Protocol]:
    """Built-in protocols plus the site's JSON files in ``<user data>/protocols``."""
    from ._paths import user_data_dir

    out = dict(PROTOCOLS)
    folder = user_data_dir() / "protocols"
    if folder.is_dir():
        for f in sorted(folder.glob("*.json")):
            proto = load_protocol(f)
            out[proto.id] = proto
    return out


def get_protocol(protocol_id: str) -> Protocol:
    """A protocol by id (built-in or site file)."""
    protos = available_protocols()
    if protocol_id not in protos:
        raise M1Error(f"unknown protocol {protocol_id!r}; available: {', '.join(protos)}")
    return protos[protocol_id]
