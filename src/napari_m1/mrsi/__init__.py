"""MRSI as it comes from the fit: readers (fsl_mrsi, LCModel, NIfTI-MRS), names, ratio QC.

Pure: numpy and nibabel only (no Qt, no napari). See docs/mrsi.md.
"""

from ._fslmrs import SCALINGS, MRSIFit, find_fsl_mrsi, is_fsl_mrsi_folder, read_fsl_mrsi
from ._lcmodel import (
    LCModelCoord,
    LCModelTable,
    lcmodel_csv_fit,
    read_lcmodel_coord,
    read_lcmodel_csv,
    read_table,
)
from ._names import COMBINED, RATIOS, canonical_name, find_metabolite
from ._niftimrs import IDENTIFYING_KEYS, NiftiMRS, display_header, read_nifti_mrs
from ._psf import hamming_psf, psf_fwhm, psf_tissue_fractions
from ._qc import REASON_BITS, QCThresholds, RatioMap, ratio_maps
from ._singlets import SINGLET_PPM, SingletFit, fit_singlets, singlet_fids
from ._source import QC_METABOLITES, MRSISource, VoxelQC, get_source, reason_names, register_source
from ._spectra import (
    PPM_WINDOW,
    CoordSpectra,
    GridSpectra,
    VoxelSpectrum,
    find_spectra,
    voxel_index,
)
from ._tissue import FAST_LABELS, FAST_PVE_ORDER, tissue_fractions

__all__ = [
    "COMBINED",
    "FAST_LABELS",
    "FAST_PVE_ORDER",
    "IDENTIFYING_KEYS",
    "PPM_WINDOW",
    "QC_METABOLITES",
    "RATIOS",
    "REASON_BITS",
    "SCALINGS",
    "SINGLET_PPM",
    "CoordSpectra",
    "GridSpectra",
    "LCModelCoord",
    "LCModelTable",
    "MRSIFit",
    "MRSISource",
    "NiftiMRS",
    "QCThresholds",
    "RatioMap",
    "SingletFit",
    "VoxelQC",
    "VoxelSpectrum",
    "canonical_name",
    "display_header",
    "find_fsl_mrsi",
    "find_metabolite",
    "find_spectra",
    "fit_singlets",
    "get_source",
    "hamming_psf",
    "is_fsl_mrsi_folder",
    "lcmodel_csv_fit",
    "psf_fwhm",
    "psf_tissue_fractions",
    "ratio_maps",
    "read_fsl_mrsi",
    "read_lcmodel_coord",
    "read_lcmodel_csv",
    "read_nifti_mrs",
    "read_table",
    "reason_names",
    "register_source",
    "singlet_fids",
    "tissue_fractions",
    "voxel_index",
]
