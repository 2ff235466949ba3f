"""One scan per run, kept and read back exactly; and the folders of the notebooks in JupyterLab: a changed recipe in
notebook 02 trains into a folder of its own, 03 and 04 follow it, nothing finished is lost, and the same recipe again
reuses its finished run."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest

from localizer.data.scans import load_scan, save_scan, scan_for
from localizer.engine.run import Run
from localizer.engine.training import train
from localizer.errors import ConfigError
from localizer.report import notebook_runs
from localizer.report.notebook_runs import create_run, current_run, data_folder, notebook_recipe

#: A recipe that trains in a few seconds: notebook 02's ``recipe`` values on top of the ``smoke`` profile.
TINY = {"image_size": 32, "epochs": 1, "batch_size": 8, "weights": None, "subset": 16, "workers": 0}


def _scans(out: str) -> int:
    """How many scans printed their line (:func:`localizer.data.validation.scan_dataset`) in ``out``."""
    return sum(line.startswith("scan: ") for line in out.splitlines())


def test_a_saved_scan_reads_back_equal_and_gives_the_same_manifest(synthetic_data, tmp_path):
    scan = scan_for(synthetic_data / "voc", progress=False)
    save_scan(scan, tmp_path / "saved")
    back = load_scan(tmp_path / "saved")
    pd.testing.assert_frame_equal(back.table, scan.table)  # hashes stay text, coordinates exact
    pd.testing.assert_frame_equal(back.report, scan.report)
    assert (back.root, back.format, back.settings) == (scan.root, "voc", scan.settings)
    config = notebook_recipe("smoke", {}, scan)[0]
    fresh = Run.create(config, tmp_path / "fresh", scan=scan, progress=False)
    again = Run.create(config, tmp_path / "again", scan=back, progress=False)
    assert (again.folder / "manifest.csv").read_text() == (fresh.folder / "manifest.csv").read_text()


def test_a_saved_scan_is_reused_until_the_data_or_the_way_it_is_read_changes(synthetic_data, tmp_path, capsys):
    data = shutil.copytree(synthetic_data / "yolo", tmp_path / "yolo")
    save_scan(scan_for(data), tmp_path)
    assert scan_for(data, folder=tmp_path).settings["format"] == "auto"
    assert _scans(capsys.readouterr().out) == 1  # the second call read the saved scan
    scan_for(data, classes="0", folder=tmp_path)  # another class filter: another scan
    assert _scans(capsys.readouterr().out) == 1
    label = data / "labels" / "animal_000.txt"
    os.utime(label, ns=(label.stat().st_atime_ns, label.stat().st_mtime_ns + 1_000_000_000))  # an edited annotation
    scan_for(data, folder=tmp_path)
    assert _scans(capsys.readouterr().out) == 1


def test_a_folder_without_a_scan_names_notebook_01(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebook 01 scans the data"):
        load_scan(tmp_path)


def test_the_data_is_notebook_01s_and_not_a_recipe_value(synthetic_data):
    scan = scan_for(synthetic_data / "yolo", progress=False)
    with pytest.raises(ConfigError, match="classes, data: the data and how it is read are notebook 01's"):
        notebook_recipe("smoke", {"data": "elsewhere", "classes": "0", "epochs": 1}, scan)


def test_a_new_recipe_in_notebook_02_trains_beside_the_finished_one(synthetic_data, tmp_path, monkeypatch, capsys):
    """As a student does it in JupyterLab with ``run_dir = None``: 01, then 02-04 with smoke, then another
    recipe in 02 and 02-04 again, then the first recipe once more."""
    monkeypatch.setattr(notebook_runs, "NOTEBOOK_FOLDER", str(tmp_path / "notebook"))
    with pytest.raises(FileNotFoundError, match="run notebook 02 first"):
        current_run(None)
    # 01: scan and save
    folder = data_folder(None)
    save_scan(scan_for(synthetic_data / "yolo", folder=folder), folder)

    def notebooks_02_03(profile, recipe):
        scan = load_scan(data_folder(None))  # 02
        config, profile, _ = notebook_recipe(profile, recipe, scan)
        create_run(config, profile, scan)
        run = Run.open(current_run(None))  # 03 (and 04) open the run 02 made last
        return run, train(run, resume="auto", progress=False)

    first, history = notebooks_02_03("smoke", TINY)
    assert first.folder.parent == tmp_path / "notebook" and first.folder.name.startswith("smoke-")
    second, _ = notebooks_02_03("smoke", {**TINY, "image_size": 48})
    assert second.folder.parent == first.folder.parent and second.folder != first.folder
    assert (first.folder / "checkpoints" / "best.pt").is_file()  # the finished run is still there
    again, history_again = notebooks_02_03("smoke", TINY)
    assert again.folder == first.folder and again.profile == "smoke"
    pd.testing.assert_frame_equal(history_again, history)  # reused: nothing trained again
    assert _scans(capsys.readouterr().out) == 1  # notebook 01's, and no other


def test_a_run_dir_puts_every_notebook_in_that_one_folder(synthetic_data, tmp_path, monkeypatch):
    monkeypatch.setattr(notebook_runs, "NOTEBOOK_FOLDER", str(tmp_path / "notebook"))
    folder = data_folder(tmp_path / "mine")
    save_scan(scan_for(synthetic_data / "yolo", folder=folder, progress=False), folder)
    scan = load_scan(data_folder(tmp_path / "mine"))
    config, profile, _ = notebook_recipe("smoke", TINY, scan, tmp_path / "mine")
    run = create_run(config, profile, scan, tmp_path / "mine")
    assert run.folder == current_run(tmp_path / "mine") == tmp_path / "mine"
    assert not (tmp_path / "notebook").exists()
    # profile None (what run --resume gives 02): the recipe of the run there, its runtime fields changeable
    config, profile, why = notebook_recipe(None, {"workers": 1}, scan, tmp_path / "mine")
    assert (config.image_size, config.workers, profile, why) == (32, 1, "smoke", None)
    with pytest.raises(ConfigError, match="epochs=3"):
        notebook_recipe(None, {"epochs": 3}, scan, tmp_path / "mine")
