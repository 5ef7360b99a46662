"""Pure measurement: exact-area ROI statistics, calipers, profiles, the live engine, CSV."""

from ._caliper import BandSuggestion, Profile, in_plane_length, sample_profile, suggest_band
from ._csv import format_cell, write_measurements_csv
from ._engine import (
    MEASUREMENT_COLUMNS,
    MEASUREMENT_SCHEMA,
    MapSource,
    MeasurementEngine,
    case_fingerprint_of,
    engine_for_case,
)
from ._roi import EllipseWeights, ellipse_weights, weighted_stats

__all__ = [
    "MEASUREMENT_COLUMNS",
    "MEASUREMENT_SCHEMA",
    "BandSuggestion",
    "EllipseWeights",
    "MapSource",
    "MeasurementEngine",
    "Profile",
    "case_fingerprint_of",
    "ellipse_weights",
    "engine_for_case",
    "format_cell",
    "in_plane_length",
    "sample_profile",
    "suggest_band",
    "weighted_stats",
    "write_measurements_csv",
]
