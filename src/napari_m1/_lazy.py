"""Lazy public API for a package ``__init__`` (PEP 562), so that importing a package is cheap.

A command-line tool imports ``napari_m1.<package>._cli`` to register its sub-command,
which runs the package's ``__init__``; with the names below loaded on first use,
``napari-m1 report`` does not pay for the QSM, DICOM or study-database modules.

Usage in ``<package>/__init__.py``::

    from typing import TYPE_CHECKING

    from .._lazy import attach

    __getattr__, __dir__ = attach(__name__, {"._case": ["Case", "load_case"]})

    if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
        from ._case import Case, load_case

    __all__ = ["Case", "load_case"]
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(
    package: str, exports: Mapping[str, Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import each name on first use.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping
        Relative submodule name (``"._case"``) -> the public names it defines.

    Returns
    -------
    (__getattr__, __dir__)
        Assign both at module level. A loaded name is stored in the package's globals,
        so later look-ups (and ``from package import name``) cost nothing.
    """
    where = {name: sub for sub, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        sub = where.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(sub, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        mod = sys.modules[package]
        return sorted(set(where) | set(vars(mod)))

    return __getattr__, __dir__
