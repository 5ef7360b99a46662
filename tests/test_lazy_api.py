"""Package ``__init__``s load their public names on first use (napari_m1._lazy), so the
command line registers every sub-command without importing numpy, pandas or the
study database."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

LAZY_PACKAGES = ["napari_m1.io", "napari_m1.session", "napari_m1.batch", "napari_m1.qsm"]


def test_building_the_cli_parser_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from napari_m1.cli import build_parser\n"
        "p = build_parser()\n"
        "assert 'report' in p.format_help()\n"
        "heavy = ('numpy', 'pandas', 'scipy', 'matplotlib', 'sqlalchemy', 'psygnal', 'nibabel')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert res.stdout.strip() == "[]"


@pytest.mark.parametrize("name", LAZY_PACKAGES)
def test_every_public_name_resolves(name):
    pkg = importlib.import_module(name)
    assert set(pkg.__all__) <= set(dir(pkg))
    for attr in pkg.__all__:
        value = getattr(pkg, attr)
        home = importlib.import_module(value.__module__) if hasattr(value, "__module__") else pkg
        assert value is not None and home.__name__.startswith(name), attr
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        pkg.not_a_name  # noqa: B018


def test_from_import_of_a_lazy_name_is_the_submodule_object():
    from napari_m1.io import load_case
    from napari_m1.io._case import load_case as direct

    assert load_case is direct
