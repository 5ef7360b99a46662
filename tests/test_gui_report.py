"""The "M1 study report" dock in a real napari window (virtual display under CI)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from data.m1_study import published_study, synthetic_study, write_study

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict[str, Path]:
    return write_study(
        tmp_path_factory.mktemp("gui-study"), synthetic_study(2, 30, seed=2)
    )  # no data issues


def _widget(make_napari_viewer):
    from napari_m1._qt.report_widget import ReportWidget

    viewer = make_napari_viewer()
    widget = ReportWidget(viewer)
    viewer.window.add_dock_widget(widget, name="M1 study report")
    return widget


def _manifest_has_widget() -> bool:
    """Whether the shipped napari.yaml declares the report dock (read from the file)."""
    from importlib.resources import files

    import yaml

    manifest = yaml.safe_load(files("napari_m1").joinpath("napari.yaml").read_text())
    commands = manifest.get("contributions", {}).get("commands", [])
    return any(c.get("id") == "napari-m1.report_widget" for c in commands)


def test_build_report_in_worker(make_napari_viewer, qtbot, study, tmp_path):
    widget = _widget(make_napari_viewer)
    widget.readings.set_path(study["readings"])
    widget.clinical.set_path(study["clinical"])
    widget.measurements.set_path(study["measurements"])
    widget.out_dir.set_path(tmp_path / "report")
    with qtbot.waitSignal(widget.report_built, timeout=60_000) as blocker:
        widget.build_button.click()  # worker thread, as a user click
    html = Path(blocker.args[0])
    assert html == tmp_path / "report" / "report.html" and html.is_file()
    assert widget.build_button.isEnabled()
    assert widget.status.text() == "Report written."
    assert "report.html</a>" in widget.link.text() and "file://" in widget.link.text()
    assert widget.issues.count() == 0
    acc = pd.read_csv(tmp_path / "report" / "tables" / "diagnostic_accuracy.csv")
    assert list(acc["reader"]) == ["R1", "R2"] and (acc["n"] == 30).all()


def test_data_issues_listed(make_napari_viewer, tmp_path, shots):
    readings, clinical = published_study()
    clinical.loc[clinical["case_id"] == "CTL01", "group"] = "unknown"
    p = write_study(tmp_path / "in", {"readings": readings, "clinical": clinical})
    widget = _widget(make_napari_viewer)
    widget.readings.set_path(p["readings"])
    widget.clinical.set_path(p["clinical"])
    widget.out_dir.set_path(tmp_path / "out")
    widget.build(block=True)
    assert widget.status.text() == "Report written; 2 data issues."
    items = [widget.issues.item(i).text() for i in range(widget.issues.count())]
    assert items[0].startswith("clinical.csv: 1 case(s) with a group other than")
    assert items[1].startswith("readings.csv: 1 read case(s) have no usable row")
    assert items[1].endswith("[affected: CTL01]")  # the dock names the cases too
    assert widget.result is not None and len(widget.result.issues) == 2
    widget.viewer.window.screenshot(str(shots / "report_dock_issues.png"), canvas_only=False)


def test_echo_field_passed_through(make_napari_viewer, study, tmp_path):
    widget = _widget(make_napari_viewer)
    widget.readings.set_path(study["readings"])
    widget.clinical.set_path(study["clinical"])
    widget.measurements.set_path(study["measurements"])
    widget.out_dir.set_path(tmp_path / "out")
    widget.echo.setValue(1)
    widget.build(block=True)
    assert widget.result.results.data.echo == 1
    widget.echo.setValue(0)  # "last echo"
    widget.build(block=True)
    assert widget.result.results.data.echo == 2


def test_unusable_input_shows_error(make_napari_viewer, qtbot, tmp_path):
    bad = tmp_path / "clinical.csv"
    bad.write_text("case_id;group\nC1;als\n", encoding="utf-8")
    readings, _ = published_study()
    p = write_study(tmp_path / "in", {"readings": readings})
    widget = _widget(make_napari_viewer)
    widget.readings.set_path(p["readings"])
    widget.clinical.set_path(bad)
    widget.out_dir.set_path(tmp_path / "out")
    with qtbot.waitSignal(widget.report_failed, timeout=60_000) as blocker:
        widget.build()
    assert blocker.args[0].startswith("clinical.csv: missing required column(s) case_id, group")
    assert "semicolon" in blocker.args[0]
    assert "Could not build the report" in widget.status.text()
    assert widget.build_button.isEnabled()
    assert not (tmp_path / "out").exists()


def test_missing_fields_reported(make_napari_viewer, qtbot):
    widget = _widget(make_napari_viewer)
    with qtbot.waitSignal(widget.report_failed) as blocker:
        widget.build(block=True)
    assert blocker.args[0] == "choose the readings and clinical and output folder first"


@pytest.mark.skipif(
    not _manifest_has_widget(),
    reason="napari.yaml has no napari-m1.report_widget contribution yet",
)
def test_dock_through_manifest(make_napari_viewer, study, tmp_path):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-m1", "M1 study report")
    widget.readings.set_path(study["readings"])
    widget.clinical.set_path(study["clinical"])
    widget.out_dir.set_path(tmp_path / "out")
    widget.build(block=True)
    assert (tmp_path / "out" / "report.html").is_file()
