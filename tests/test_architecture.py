"""Architecture rules that a refactor could silently break."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import napari_m1

#: The pure core: importable (and usable) with napari and every Qt binding blocked.
PURE_MODULES = [
    "napari_m1.errors",
    "napari_m1.formats",
    "napari_m1.geometry",
    "napari_m1.io",
    "napari_m1.measure",
    "napari_m1.annotation",
    "napari_m1.protocol",
    "napari_m1.phantom",
    "napari_m1.session",
    "napari_m1.stats",
    "napari_m1.qsm",
    "napari_m1.mrsi",
    "napari_m1.cli",
]


def test_pure_core_never_imports_qt_or_napari(tmp_path, phantom_case):
    """Load a case and measure it with napari and every Qt binding made unimportable."""
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        BLOCK = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "vispy", "napari_m1._qt")
        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.startswith(BLOCK) or name == "napari" or name.startswith("napari."):
                    raise ImportError(f"blocked: {{name}}")
        sys.meta_path.insert(0, Blocker())
        import importlib
        for m in {PURE_MODULES!r}:
            importlib.import_module(m)
        from napari_m1.io import load_case
        from napari_m1.measure import engine_for_case
        from napari_m1.protocol import PROTOCOLS
        from napari_m1.annotation import caliper_annotation
        case = load_case({str(phantom_case)!r})
        eng = engine_for_case(case, PROTOCOLS["m1-7t"])
        eng.update("L_hand_caliper", caliper_annotation("L_hand_caliper", [-25, -18, 51],
                                                        [-25, -16, 51]))
        assert eng.rows()[0]["thickness_mm"] == 2.0
        print("PURE-OK")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "PURE-OK" in out.stdout, out.stderr[-2000:]


def test_qt_imports_only_under_qt_package():
    root = Path(napari_m1.__file__).parent
    offenders = []
    for py in root.rglob("*.py"):
        rel = py.relative_to(root)
        if rel.parts[0] == "_qt":
            continue
        text = py.read_text(encoding="utf-8")
        if any(s in text for s in ("from qtpy", "import qtpy", "PyQt", "PySide")):
            offenders.append(str(rel))
    assert offenders == [], offenders


def test_manifest_is_a_real_file_inside_the_package():
    """The manifest ships in the wheel as a real file (a symlink breaks on Windows
    checkouts); the top-level napari.yaml is an identical copy for readers of the repo."""
    root = Path(napari_m1.__file__).parent
    manifest = root / "napari.yaml"
    assert manifest.is_file() and not manifest.is_symlink()
    top = root.parents[1] / "napari.yaml"
    if top.exists():
        assert top.read_text() == manifest.read_text(), (
            "napari.yaml differs from src/napari_m1/napari.yaml: "
            "edit the package's copy and cp it to the top level"
        )
    pyproject = (root.parents[1] / "pyproject.toml").read_text()
    assert 'napari-m1 = "napari_m1:napari.yaml"' in pyproject


def test_public_api_is_lazy_and_complete():
    code = (
        "import sys, napari_m1 as m\n"
        "assert not {'numpy', 'pandas', 'scipy', 'qtpy'} & set(sys.modules), sorted(sys.modules)\n"
        "for name in m.__all__:\n"
        "    assert getattr(m, name) is not None, name\n"
        "print('API-OK')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "API-OK" in out.stdout, out.stderr[-2000:]


def _package_modules() -> dict[str, Path]:
    root = Path(napari_m1.__file__).parent
    mods = {}
    for py in root.rglob("*.py"):
        rel = py.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = py
    return mods


MAX_MODULE_LINES = 550  # "no module over ~500 lines"


def test_no_module_is_a_big_room():
    too_big = {
        name: n
        for name, py in _package_modules().items()
        if (n := len(py.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_big == {}, too_big


def test_no_import_cycle_between_modules():
    """Module-level imports inside napari_m1 form no cycle (imports inside functions,
    the lazy ones, are allowed to point anywhere)."""
    import ast

    mods = _package_modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, py in mods.items():
        tree = ast.parse(py.read_text(encoding="utf-8"))
        is_pkg = py.name == "__init__.py"
        pkg = name if is_pkg else name.rsplit(".", 1)[0]
        for node in tree.body:  # module level only
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join([*base, node.module] if node.module else base)
                else:
                    mod = node.module or ""
                targets.append(mod)
                targets.extend(f"{mod}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                targets.extend(a.name for a in node.names)
            for t in targets:
                if t in mods and t != name:
                    graph[name].add(t)
    # a package's __init__ importing its own submodules is not a cycle partner of them
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    cycles = []
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append([*stack[stack.index(m) :], m])
            elif m not in state:
                visit(m, stack)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [])
    assert cycles == [], cycles
