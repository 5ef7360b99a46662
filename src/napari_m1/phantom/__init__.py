"""A synthetic 7T phantom of the primary motor cortex (M1): the project's sample data.

The phantom is a stack of axial slices through a stylised brain with a central
sulcus and hand knob, precentral and postcentral sulci, frontal and parietal sulci
and a medial precuneus. Cortex is layered by distance from CSF into a superficial
layer and a deep layer; the deep layer of the precentral gyrus (the M1 strip) is
thinner, darker on T2*-weighted GRE and more paramagnetic in the ``"als"`` group.
Every number a reader could measure is known exactly and is returned as ``truth``
(written to ``truth.json``); see ``docs/sample-data.md``.

Coordinates are scanner RAS+ millimetres throughout (x to the subject's right,
y anterior, z superior). Arrays held by :class:`Phantom` are in RAS+ voxel order
(axis 0 -> R, 1 -> A, 2 -> S); :func:`write_phantom_case` stores the GRE, phase and
QSM files in L,A,S voxel order as dcm2niix writes axial acquisitions.

This module is pure numpy/scipy/nibabel: no Qt, no napari.
"""

from ._anatomy import DEFAULT_NOISE_SD, ECHO_TIMES_MS, PHANTOM_VERSION, TRUTH_SCHEMA, Phantom
from ._make import make_phantom
from ._mrs import PhantomMRS, write_phantom_mrs
from ._write import write_phantom_case

__all__ = [
    "DEFAULT_NOISE_SD",
    "ECHO_TIMES_MS",
    "PHANTOM_VERSION",
    "TRUTH_SCHEMA",
    "Phantom",
    "PhantomMRS",
    "make_phantom",
    "write_phantom_case",
    "write_phantom_mrs",
]
