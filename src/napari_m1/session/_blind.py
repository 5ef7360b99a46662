"""Blinding helpers: redact identifiers from text and logs; strip a loaded case."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = ["Redactor", "blind_case", "identifying_tokens"]

REDACTED = "[case]"


def identifying_tokens(case_folder: str | Path, extra: Iterable[str] = ()) -> list[str]:
    """Strings that would identify a case: its path, folder names, file names and stems,
    and the names, IDs, dates and site found in its DICOM headers, JSON sidecars,
    NIfTI-MRS header extensions and RDA headers."""
    p = Path(case_folder)
    toks: set[str] = {str(p), str(p.resolve())}
    toks.update(part for part in p.resolve().parts[-3:] if len(part) >= 3)
    if p.is_dir():
        for f in p.rglob("*"):
            if f.name.startswith("."):
                continue
            toks.add(f.name)
            stem = f.name.split(".")[0]
            toks.add(stem)
            toks.update(m for m in re.findall(r"sub-[A-Za-z0-9]+", stem))
            toks.update(m[4:] for m in re.findall(r"sub-[A-Za-z0-9]{3,}", stem))
    toks.update(t for t in extra if t)
    if p.is_dir():  # names, IDs, site in DICOM headers and JSON sidecars
        from ..io._deid import identifying_values

        toks.update(identifying_values(p))
    return sorted(
        (t for t in toks if len(t) >= 3 and t not in ("/", "anat")), key=len, reverse=True
    )


class Redactor(logging.Filter):
    """Replaces identifying tokens in text; as a logging filter, in every record it sees."""

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        super().__init__()
        self.set_tokens(tokens)

    def set_tokens(self, tokens: Iterable[str]) -> None:
        """Replace the token list (longest first, so paths go before their parts)."""
        toks = sorted({t for t in tokens if t}, key=len, reverse=True)
        self._re = re.compile("|".join(re.escape(t) for t in toks)) if toks else None

    def redact(self, text: str) -> str:
        """``text`` with every token replaced by ``[case]``."""
        if self._re is None or not text:
            return text
        return self._re.sub(REDACTED, text)

    def install(self) -> None:
        """Redact every log record created from now on, by any logger (record factory)."""
        if getattr(self, "_old_factory", None) is not None:
            return
        old = logging.getLogRecordFactory()
        self._old_factory = old

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            rec = old(*args, **kwargs)
            try:
                rec.msg, rec.args = self.redact(rec.getMessage()), ()
            except Exception:  # a malformed record stays as it is
                pass
            return rec

        logging.setLogRecordFactory(factory)

    def uninstall(self) -> None:
        """Restore the previous record factory."""
        old = getattr(self, "_old_factory", None)
        if old is not None:
            logging.setLogRecordFactory(old)
            self._old_factory = None

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = ()
        return True


#: Volume.extra text values that name data, not provenance: never redacted (a metabolite
#: named after its file stem, e.g. fsl_mrsi's ``NAA+NAAG``, must survive blinding)
_DATA_TEXT_KEYS = frozenset({"metabolite", "phase_kind", "mrsi_source"})


def blind_case(case: object, pseudonym: str, redactor: Redactor) -> object:
    """Make a loaded :class:`napari_m1.io.Case` safe to show: pseudonym label, no file
    names in layer metadata, identifiers redacted from warnings and from every other text
    value of the volumes' ``extra`` (e.g. ``b0_from``, which names the sidecar B0 came
    from). Returns the same object."""
    files = case.files  # type: ignore[attr-defined]
    files.label = pseudonym
    for vol in case.volumes:  # type: ignore[attr-defined]
        vol.sources = []
        vol.warnings = [redactor.redact(w) for w in vol.warnings]
        for key, value in list(vol.extra.items()):
            if isinstance(value, str) and key not in _DATA_TEXT_KEYS:
                vol.extra[key] = redactor.redact(value)
    return case
