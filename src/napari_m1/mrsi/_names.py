"""The metabolite name table: one canonical name per combined resonance, across formats.

LCModel and FSL-MRS name sums ``NAA+NAAG``, ``Cr+PCr``, ``GPC+PCh``, ``Glu+Gln``; papers and
case folders write ``tNAA``, ``tCr``, ``tCho``, ``Glx``. :func:`canonical_name` maps any of them
to the canonical short name used by the ratio maps.
"""

from __future__ import annotations

__all__ = ["COMBINED", "RATIOS", "canonical_name", "find_metabolite"]

#: canonical name -> its components (the sum a fit reports under either spelling)
COMBINED: dict[str, tuple[str, ...]] = {
    "tNAA": ("NAA", "NAAG"),
    "tCr": ("Cr", "PCr"),
    "tCho": ("GPC", "PCh"),
    "Glx": ("Glu", "Gln"),
}

#: the ratio maps the study reads: (numerator, denominator)
RATIOS: tuple[tuple[str, str], ...] = (("tNAA", "tCr"), ("tCho", "tCr"), ("Glx", "tCr"))

_ALIASES: dict[str, str] = {}
for _canon, _parts in COMBINED.items():
    for _alias in (
        _canon,
        "+".join(_parts),
        "+".join(reversed(_parts)),
        _canon.lower(),
    ):
        _ALIASES[_alias.lower()] = _canon
_ALIASES.update({"tcr": "tCr", "cho+gpc+pch": "tCho", "totalcr": "tCr", "totalnaa": "tNAA"})


def canonical_name(name: str) -> str:
    """Canonical name of a metabolite label (``"NAA+NAAG"`` -> ``"tNAA"``); others unchanged.

    >>> canonical_name("Cr+PCr"), canonical_name("PCh+GPC"), canonical_name("Ins")
    ('tCr', 'tCho', 'Ins')
    """
    return _ALIASES.get(name.strip().lower(), name.strip())


def find_metabolite(names: list[str] | dict[str, object], wanted: str) -> str | None:
    """The label among ``names`` whose canonical name is ``canonical_name(wanted)``, or None."""
    target = canonical_name(wanted)
    for n in names:
        if canonical_name(n) == target:
            return n
    return None
