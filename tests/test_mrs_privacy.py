"""Identity in MRS headers (NIfTI-MRS extensions, Siemens RDA) never reaches a blinded
reader: it is collected as redaction tokens and never copied into layers (issue 12)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # a phantom case with MRSI spectra: ~10-25 s on 2 cores

#: planted in the NIfTI-MRS header extensions of the case's spectra and fit files
MRS_HEADER = {
    "PatientName": "Mrstoken^Annie",
    "PatientDoB": "19121213",
    "InstitutionAddress": "MRSADDRTOKEN Lane 3",
    "OriginalFile": ["MRSORIGTOKEN.dat"],
    "dim_5_header": {"Description": "user", "PatientName": "NESTEDMRSTOKEN"},
}
#: planted in a Siemens RDA header beside them
RDA_HEADER = {
    "PatientName": "Rdatoken^Bert",
    "PatientBirthDate": "19131314",
    "StudyDate": "20991231",
    "InstitutionName": "RDAINSTTOKEN Clinic",
}
MRS_TOKENS = (
    "Mrstoken",
    "19121213",
    "MRSADDRTOKEN",
    "MRSORIGTOKEN",
    "NESTEDMRSTOKEN",
    "Rdatoken",
    "19131314",
    "20991231",
    "RDAINSTTOKEN",
)


def _restamp(path: Path, extra: dict) -> None:
    """Add ``extra`` to a NIfTI-MRS file's header extension (data unchanged)."""
    import nibabel as nib

    img = nib.load(path)
    meta = json.loads(img.header.extensions[0].get_content())
    data = np.asarray(img.dataobj)
    new = nib.Nifti2Image(data, img.affine)
    new.header["pixdim"][4] = img.header["pixdim"][4]
    new.header["intent_name"] = img.header["intent_name"]
    new.header.extensions.append(
        nib.nifti1.Nifti1Extension(44, json.dumps({**meta, **extra}).encode())
    )
    nib.save(new, str(path))


def plant_mrs_identity(case: Path) -> None:
    """Tokens in every NIfTI-MRS header of a phantom case with MRS, and an RDA beside them."""
    for p in [*case.glob("mrs/*.nii.gz"), *case.glob("fsl_mrsi/fit/*.nii.gz")]:
        _restamp(p, MRS_HEADER)
    head = ">>> Begin of header <<<\n"
    head += "".join(f"{k}: {v}\n" for k, v in RDA_HEADER.items())
    head += "PatientSex: O\nPatientWeight: 0.000000\nTE: 30.000000\n>>> End of header <<<\n"
    (case / "mrs" / "svs.rda").write_bytes(head.encode("latin-1") + np.zeros(64).tobytes())


@pytest.fixture(scope="module")
def mrs_case(tmp_path_factory):
    from napari_m1.phantom import write_phantom_case

    case = write_phantom_case(
        tmp_path_factory.mktemp("mrs") / "K01", "control", 3, n_slices=16, label="K01",
        with_mrs=True, mrs_noise=False,
    )  # fmt: skip
    plant_mrs_identity(case)
    return case


def test_mrs_identity_is_collected_as_redaction_tokens(mrs_case):
    from napari_m1.session import Redactor, identifying_tokens

    toks = identifying_tokens(mrs_case)
    for t in ("Mrstoken^Annie", "19121213", "MRSADDRTOKEN Lane 3", "MRSORIGTOKEN.dat"):
        assert t in toks
    for t in ("NESTEDMRSTOKEN", "Rdatoken^Bert", "19131314", "20991231", "RDAINSTTOKEN Clinic"):
        assert t in toks
    assert "0.000000" not in toks  # harmless RDA fields are not tokens
    text = Redactor(toks).redact("fit of Mrstoken^Annie (DoB 19121213) from MRSORIGTOKEN.dat")
    assert not any(t in text for t in MRS_TOKENS), text


def test_blinded_case_layers_and_spectra_carry_no_mrs_identity(mrs_case):
    from napari_m1.io import load_case
    from napari_m1.io._layers import layer_metadata
    from napari_m1.mrsi import get_source, read_nifti_mrs
    from napari_m1.session import Redactor, blind_case, identifying_tokens

    case = blind_case(load_case(mrs_case), "M1-XYZ", Redactor(identifying_tokens(mrs_case)))
    ratio = [v for v in case.volumes if v.extra.get("mrsi_ratio")]
    assert len(ratio) == 3  # the MRSI fit was loaded
    blob = json.dumps(
        [layer_metadata(v, p, case_label=case.files.label) for v, p in
         zip(case.volumes, case.placements, strict=True)],
        default=str,
    )  # fmt: skip
    assert not any(t in blob for t in MRS_TOKENS)
    # the spectra behind the layers are data only: arrays, no header text kept
    spec = get_source(ratio[0].extra["mrsi_source"]).spectra.at((12, 12, 2))
    assert spec is not None and np.isfinite(spec.data).all() and spec.table is None
    for p in mrs_case.glob("mrs/*.nii.gz"):
        assert not any(t in json.dumps(read_nifti_mrs(p).header) for t in MRS_TOKENS)
