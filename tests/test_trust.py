"""Results a user can trust and files nobody loses: leak-free splits, honest evaluation, safe
checkpoints and outputs (each test names the fault it guards against)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import fit

from localizer.engine import run as runs
from localizer.engine import training
from localizer.engine.checkpoints import kept_row
from localizer.cli import main as cli_main
from localizer.data.duplicates import duplicate_groups, near_duplicate_pairs, twin_box_iou
from localizer.errors import DataError
from localizer.engine.prediction import drawing_paths, expand_inputs
from localizer.recipe import TrainConfig
from localizer.engine.checkpoints import load_model
from localizer.data.split import NotEnoughDataError, assign_split, minimum_photos, split_sizes
from localizer.data.synthetic import make_photos
from localizer.data.validation import scan_dataset


def tiny_config(data: Path, tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(data=str(data), image_size=48, epochs=2, batch_size=8, backbone="efficientnet_lite0",
                  weights=None, workers=0, cache_dir=str(tmp_path / "cache"))
    values.update(overrides)
    return TrainConfig(**values)


# ----------------------------------------------------------------------------------- near-duplicates
def test_duplicate_groups_are_connected_components_within_two_bits():
    hashes = ["0000000000000000", "0000000000000003", "0000000000000007", "ffffffffffffffff",
              "fffffffffffffffe"]
    # distances: 0-1: 2 bits, 1-2: 1 bit, 0-2: 3 bits (a chain: one group), 3-4: 1 bit
    assert near_duplicate_pairs(hashes).tolist() == [[0, 1], [1, 2], [3, 4]]
    assert near_duplicate_pairs(hashes, max_bits=1).tolist() == [[1, 2], [3, 4]]
    assert duplicate_groups(hashes).tolist() == [1, 1, 1, 2, 2]
    assert duplicate_groups(["0000000000000000", "00000000000000ff"]).tolist() == [0, 0]


def test_twin_box_iou_is_the_lowest_iou_within_the_group():
    boxes = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.25], [0, 0, 0.25, 0.5], [0.5, 0.5, 1, 1]])
    iou = twin_box_iou(boxes, np.array([1, 1, 1, 0]))
    # box 0 vs 1: 0.125 / 0.25 = 0.5; 0 vs 2: 0.5; 1 vs 2: 0.0625 / (0.125 + 0.125 - 0.0625) = 1/3
    assert iou[:3] == pytest.approx([0.5, 1 / 3, 1 / 3])
    assert np.isnan(iou[3])


def old_split(n: int, seed: int) -> np.ndarray:
    """The split before grouping: the first floor(0.7 N) permuted rows train, the next floor(0.15 N) val."""
    n_train, n_val, _ = split_sizes(n)
    order = np.random.default_rng(seed).permutation(n)
    labels = np.empty(n, dtype=object)
    labels[order[:n_train]], labels[order[n_train:n_train + n_val]], labels[order[n_train + n_val:]] = \
        "train", "val", "test"
    return labels


def test_split_keeps_each_group_in_one_split_and_the_sizes():
    table = pd.DataFrame({"file": [f"{i:03d}.jpg" for i in range(40)], "dup_group": 0})
    # without near-duplicates: the very same split as before grouping existed
    assert assign_split(table, seed=7)["split"].tolist() == old_split(40, 7).tolist()
    table.loc[[3, 17, 30], "dup_group"] = 1
    table.loc[[5, 6], "dup_group"] = 2
    for seed in range(20):
        split = assign_split(table, seed=seed)
        assert split["split"].value_counts().to_dict() == {"train": 28, "val": 6, "test": 6}
        assert split.loc[[3, 17, 30], "split"].nunique() == 1 and split.loc[[5, 6], "split"].nunique() == 1


def test_too_few_photos_are_refused_with_the_numbers():
    assert minimum_photos() == 7 and split_sizes(7) == (4, 1, 2) and min(split_sizes(6)) == 0
    table = pd.DataFrame({"file": ["a.jpg", "b.jpg"]})
    with pytest.raises(NotEnoughDataError, match="only 2 usable photos: a 70/15/15 train/val/test split needs at "
                                                 "least 7 separate photos"):
        assign_split(table)
    twins = pd.DataFrame({"file": [f"{i}.jpg" for i in range(8)], "dup_group": [1] * 7 + [0]})
    with pytest.raises(NotEnoughDataError, match=r"only 8 usable photos \(2 once near-duplicates are grouped\)"):
        assign_split(twins)


def test_synthetic_twins_are_grouped_reported_and_split_together(synthetic_data, tmp_path):
    scan = scan_dataset(synthetic_data / "yolo", progress=False)
    groups = scan.table.set_index("file")["dup_group"]
    assert groups["images/animal_001.jpg"] == groups["images/twin_same.jpg"] > 0
    assert groups["images/animal_002.jpg"] == groups["images/twin_moved.jpg"] > 0
    assert (groups > 0).sum() == 4
    # twin_moved's box is the original's shifted left by a quarter of its width (integer pixels)
    photos = {p.name: p for p in make_photos()}
    (x0, _, x1, _), (m0, _, m1, _) = photos["animal_002.jpg"].boxes[0], photos["twin_moved.jpg"].boxes[0]
    expected = (m1 - x0) / ((x1 - x0) + (m1 - m0) - (m1 - x0))
    report = scan.report.set_index("file")
    assert report.loc["images/twin_moved.jpg", "twin_box_iou"] == pytest.approx(expected, abs=1e-4)
    assert report.loc["images/twin_same.jpg", "twin_box_iou"] == pytest.approx(1.0)
    assert pd.isna(report.loc["images/animal_000.jpg", "twin_box_iou"])
    summary = scan.summary()
    assert "near-duplicates (dHash within 2 of 64 bits; each group is kept in one split): 2 groups, 4 photos" in summary
    assert "twins whose boxes disagree (box IoU < 0.9): 1 groups" in summary
    assert "images/animal_002.jpg ~ images/twin_moved.jpg" in summary
    csv = tmp_path / "report.csv"
    assert cli_main(["check-data", str(synthetic_data / "yolo"), "--report", str(csv), "--quiet"]) == 0
    written = pd.read_csv(csv)
    assert list(written.columns) == ["file", "status", "reason", "dup_group", "twin_box_iou"]
    assert written.set_index("file").loc["images/twin_same.jpg", "dup_group"] == groups["images/twin_same.jpg"]
    for seed in range(10):
        split = assign_split(scan.table, seed=seed).set_index("file")["split"]
        assert split["images/animal_001.jpg"] == split["images/twin_same.jpg"]
        assert split["images/animal_002.jpg"] == split["images/twin_moved.jpg"]


def test_lion_near_duplicates_never_straddle_splits(shared_data):
    scan = scan_dataset(shared_data / "lion", progress=False)
    twins = scan.table[scan.table["dup_group"] > 0]
    assert len(near_duplicate_pairs(scan.table["dhash"].tolist())) == 21  # dHash 8x8 within 2 bits
    assert twins["dup_group"].nunique() == 21 and len(twins) == 42
    manifest = assign_split(scan.table, seed=42)
    assert manifest["split"].value_counts().to_dict() == {"train": 1698, "val": 364, "test": 365}
    assert (manifest[manifest["dup_group"] > 0].groupby("dup_group")["split"].nunique() == 1).all()


# -------------------------------------------------------------------------------- honest evaluation
def test_evaluate_uses_the_runs_manifest_and_never_its_subset(synthetic_data, tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(synthetic_data / "yolo", data)
    run = tmp_path / "run"
    fit(tiny_config(data, tmp_path, epochs=1, subset=20), run, progress=False)
    ckpt = run / "checkpoints" / "best.pt"
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--quiet"]) == 0
    first = pd.read_csv(run / "metrics_test.csv")["file"].tolist()
    assert len(first) == 3 and "evaluated on: the run's manifest" in capsys.readouterr().out
    # a new photo that sorts first changes nothing: the run's own data is scored from its manifest
    shutil.copy(data / "images" / "animal_010.jpg", data / "images" / "aaa_new.jpg")
    shutil.copy(data / "labels" / "animal_010.txt", data / "labels" / "aaa_new.txt")
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--quiet", "--overwrite"]) == 0
    assert pd.read_csv(run / "metrics_test.csv")["file"].tolist() == first
    # the same folder named relative to another working directory is still the run's data
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", "data", "--quiet", "--overwrite"]) == 0
    assert "evaluated on: the run's manifest" in capsys.readouterr().out
    # other data: every usable photo (not the 20 of the training subset), said so
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(synthetic_data / "voc"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "evaluated on: all 50 usable photos of" in out and "not the run's data" in out
    metrics = json.loads((run / "metrics_voc_all.json").read_text())
    assert metrics["n"] == 50 and metrics["split"] == "all"
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(synthetic_data / "voc"), "--split", "test",
                     "--quiet"]) == 0
    assert json.loads((run / "metrics_voc_test.json").read_text())["n"] == 8  # 50 - 35 - 7, twins grouped


def test_too_little_data_is_refused_before_training(synthetic_data, tmp_path, capsys):
    data = tmp_path / "two"
    (data / "images").mkdir(parents=True)
    (data / "labels").mkdir()
    for name in ("animal_000", "animal_003"):
        shutil.copy(synthetic_data / "yolo" / "images" / f"{name}.jpg", data / "images")
        shutil.copy(synthetic_data / "yolo" / "labels" / f"{name}.txt", data / "labels")
    assert cli_main(["train", str(data), "--run-dir", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {data}: not-enough-data: only 2 usable photos: a 70/15/15") and "at least 7" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
    code = cli_main(["run", "--data", str(data), "--profile", "smoke", "--run-dir", str(tmp_path / "nb"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "02_preprocessing_and_split.ipynb" in err and "only 2 usable photos" in err, err


# ---------------------------------------------------------------------------------- files stay safe
def test_run_overwrite_never_deletes_a_folder_that_is_not_a_run(synthetic_data, tmp_path, capsys):
    folder = tmp_path / "thesis"
    (folder / "chapters").mkdir(parents=True)
    (folder / "main.tex").write_text("\\documentclass{article}")
    (folder / "chapters" / "one.tex").write_text("draft")
    code = cli_main(["run", "--data", str(synthetic_data / "yolo"), "--profile", "smoke", "--run-dir", str(folder),
                     "--overwrite", "--quiet"])
    assert code == 2 and "is not a localizer run folder (it holds chapters, main.tex)" in capsys.readouterr().err
    assert (folder / "main.tex").read_text() == "\\documentclass{article}" and (folder / "chapters" / "one.tex").exists()
    # a run folder with a stray file inside checkpoints/ is not recognizably a run either
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "checkpoints" / "notes.txt").write_text("mine")
    from localizer.engine.run import MARKER, check_run_folder, foreign_entries
    from localizer.files import PROBE_PREFIX

    # without Run.create's marker only what comes before it (notebooks/, figures/) is a run's
    assert foreign_entries(run) == ["checkpoints", "config.json"]
    (run / MARKER).write_text("")
    assert foreign_entries(run) == ["checkpoints/notes.txt"]
    with pytest.raises(FileExistsError, match="is not a localizer run folder .it holds checkpoints/notes.txt"):
        check_run_folder(run, overwrite=True)
    (run / "checkpoints" / "notes.txt").unlink()
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    assert foreign_entries(run) == []
    (run / MARKER).unlink()
    (run / "checkpoints" / "last.pt").unlink()
    (run / "figures").mkdir()
    (run / "config.json").unlink()
    (run / "checkpoints").rmdir()
    assert foreign_entries(run) == []  # the run command and notebook 01 were here: notebook 02 may create the run
    check_run_folder(run)
    # another process's write test of the same folder, at that moment (torchrun's processes open it together)
    (run / f"{PROBE_PREFIX}x1y2z3").write_bytes(b"")
    assert foreign_entries(run) == []
    (run / "notes.txt").write_text("mine")
    assert foreign_entries(run) == ["notes.txt"]


class _Exploit:
    """Pickles into a call of os.system: what a crafted checkpoint carries."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_crafted_checkpoint_is_refused_without_running_code(tmp_path, capsys):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "model.pt"
    torch.save({"model": _Exploit(marker)}, crafted)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    assert cli_main(["predict", "--checkpoint", str(crafted), str(image), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    assert err == (f"error: {crafted}: not-a-checkpoint: cannot be loaded safely as a localizer checkpoint: it holds "
                   "objects other than tensors, numbers, strings, lists and dicts\n")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip, not a pickle")
    assert cli_main(["evaluate", "--checkpoint", str(garbage), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{garbage}: not-a-checkpoint" in err and "not a PyTorch file" in err and "weights_only" not in err
    assert cli_main(["evaluate", "--checkpoint", str(tmp_path), "--quiet"]) == 2  # a folder: which file to give
    assert f"a folder, not a checkpoint file: give one inside it, e.g. {tmp_path / 'checkpoints' / 'best.pt'}" in (
        capsys.readouterr().err)
    foreign = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, foreign)
    assert cli_main(["predict", "--checkpoint", str(foreign), str(image), "--quiet"]) == 2
    assert "not a localizer checkpoint (no model, config, epoch" in capsys.readouterr().err


def test_predict_drawings_mirror_the_input_paths(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deep").mkdir(parents=True)
    files = [tmp_path / "a" / "x.jpg", tmp_path / "b" / "deep" / "x.png", tmp_path / "b" / "x.jpg"]
    for file in files:
        file.write_bytes(b"")
    assert expand_inputs([tmp_path / "a", tmp_path / "b", tmp_path / "a" / "x.jpg"]) == files
    paths = drawing_paths(files, tmp_path / "drawn")
    assert [paths[str(f)] for f in files] == [tmp_path / "drawn" / "a" / "x.jpg",
                                              tmp_path / "drawn" / "b" / "deep" / "x.png",
                                              tmp_path / "drawn" / "b" / "x.jpg"]
    assert drawing_paths([tmp_path / "a" / "x.jpg"], "out") == {str(tmp_path / "a" / "x.jpg"): Path("out/x.jpg")}
    assert drawing_paths([tmp_path / "a" / "notes.mat"], "out") == {str(tmp_path / "a" / "notes.mat"):
                                                                     Path("out/notes.mat.png")}


def test_predict_two_photos_with_one_name(synthetic_data, tmp_path):
    run = tmp_path / "run"
    fit(tiny_config(synthetic_data / "yolo", tmp_path, epochs=1, subset=20), run, progress=False)
    for folder, name in (("a", "animal_001.jpg"), ("b", "animal_002.jpg")):
        (tmp_path / folder).mkdir()
        shutil.copy(synthetic_data / "yolo" / "images" / name, tmp_path / folder / "x.jpg")
    out, drawn = tmp_path / "preds.csv", tmp_path / "drawn"
    args = ["predict", "--checkpoint", str(run / "checkpoints" / "best.pt"), str(tmp_path / "a"),
            str(tmp_path / "b"), "--out", str(out), "--draw", str(drawn), "--quiet"]
    assert cli_main(args) == 0
    table = pd.read_csv(out)
    assert table["file"].tolist() == [str(tmp_path / "a" / "x.jpg"), str(tmp_path / "b" / "x.jpg")]
    assert table[["width", "height"]].values.tolist() == [[160, 120], [120, 160]]
    from PIL import Image

    assert Image.open(drawn / "a" / "x.jpg").size == (160, 120) and Image.open(drawn / "b" / "x.jpg").size == (120, 160)
    assert cli_main(args) == 2  # drawings are not silently replaced


class _Killed(BaseException):
    """A kill (SIGKILL) at a chosen point: no handler for Exception catches it."""


def test_a_run_folder_or_checkpoint_of_another_format_is_refused_naming_file_and_formats(synthetic_data, tmp_path):
    from localizer.engine.checkpoints import FORMAT_VERSION, FormatError, load_checkpoint

    run = tmp_path / "run"
    fit(tiny_config(synthetic_data / "yolo", tmp_path, epochs=1, subset=20), run, progress=False)
    marker, best = run / runs.MARKER, run / "checkpoints" / "best.pt"
    assert json.loads(marker.read_text())["format_version"] == FORMAT_VERSION
    assert load_checkpoint(best)["format_version"] == FORMAT_VERSION
    checkpoint = torch.load(best, weights_only=True)
    torch.save({**checkpoint, "format_version": FORMAT_VERSION + 1}, best)
    with pytest.raises(FormatError, match=rf"^{re.escape(str(best))}: other-format: written in format "
                                          rf"{FORMAT_VERSION + 1}; this localizer reads format {FORMAT_VERSION} only"):
        load_model(best)
    del checkpoint["format_version"]  # as an older localizer wrote them
    torch.save(checkpoint, best)
    with pytest.raises(FormatError, match=rf"{re.escape(str(best))}: other-format: written in no format version"):
        load_checkpoint(best)
    marker.write_text("a localizer run folder (localizer.engine.run.Run.create)\n")  # an older marker
    with pytest.raises(FormatError, match=rf"^{re.escape(str(marker))}: other-format: written in no format version "
                                          rf"\(an older localizer\); this localizer reads format {FORMAT_VERSION}"):
        runs.Run.open(run)
    marker.unlink()
    with pytest.raises(FormatError, match=re.escape(str(marker))):
        runs.Run.open(run)


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_a_kill_before_last_pt_needs_no_repair_and_loading_writes_nothing(synthetic_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    config = tiny_config(synthetic_data / "yolo", tmp_path, epochs=3, subset=20)
    real_epoch, real_save = training.run_epoch, runs.atomic_save
    val_ious = iter([0.3, 0.5, 0.5, 0.7])  # epochs 1, 2 (killed before last.pt), 2 again and 3 after the resume

    def improving(model, loader, numerics, optimizer=None, *args, **kwargs):
        loss, iou = real_epoch(model, loader, numerics, optimizer, *args, **kwargs)
        return (loss, iou) if optimizer is not None else (loss, next(val_ious))

    def killed_before_last(obj, path, **kwargs):
        if Path(path).name == "last.pt" and obj["epoch"] == 2:
            raise _Killed  # the process dies after best.pt and history.csv of epoch 2
        return real_save(obj, path, **kwargs)

    monkeypatch.setattr(training, "run_epoch", improving)
    monkeypatch.setattr(runs, "atomic_save", killed_before_last)
    with pytest.raises(_Killed):
        fit(config, run, progress=False)
    monkeypatch.setattr(runs, "atomic_save", real_save)
    last = runs.load_checkpoint(run / "checkpoints" / "last.pt")
    best = runs.load_checkpoint(run / "checkpoints" / "best.pt")
    # the best epoch and score are the history's kept row, stored nowhere else
    assert "best_epoch" not in last and "best_val_iou" not in last
    assert (last["epoch"], best["epoch"], kept_row(best["history"])["val_iou"]) == (1, 2, 0.5)
    # opening the run and loading either checkpoint writes nothing
    before = _files(run)
    opened = runs.Run.open(run)
    assert opened.resume_point(resume=True)["epoch"] == 1
    assert load_model(run / "checkpoints" / "best.pt")[1]["epoch"] == 2
    assert load_model(run / "checkpoints" / "last.pt")[1]["epoch"] == 1
    opened.load_model()
    assert _files(run) == before
    # the resumed run trains epoch 2 again, then 3, and its best.pt is the history's best row
    history = fit(config, run, resume=True, progress=False)
    assert history["epoch"].tolist() == [1, 2, 3]
    last = runs.load_checkpoint(run / "checkpoints" / "last.pt")
    best = runs.load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["epoch"] == kept_row(last["history"])["epoch"] == 3 and kept_row(best["history"])["val_iou"] == 0.7
    assert "optimizer" not in best


@pytest.mark.parametrize("keep, kept_epoch", [("best", 1), ("last", 3)])
def test_best_pt_holds_the_epoch_the_recipe_keeps(synthetic_data, tmp_path, monkeypatch, keep, kept_epoch):
    config = tiny_config(synthetic_data / "yolo", tmp_path, epochs=3, subset=20, keep=keep)
    real_epoch, val_ious = training.run_epoch, iter([0.7, 0.5, 0.6])  # the best validation IoU comes first

    def scored(model, loader, numerics, optimizer=None, *args, **kwargs):
        loss, iou = real_epoch(model, loader, numerics, optimizer, *args, **kwargs)
        return (loss, iou) if optimizer is not None else (loss, next(val_ious))

    monkeypatch.setattr(training, "run_epoch", scored)
    fit(config, tmp_path / "run", progress=False)
    best = runs.load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    last = runs.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert best["epoch"] == kept_row(last["history"], keep)["epoch"] == kept_epoch
    same = [torch.equal(a, b) for a, b in zip(best["model"].values(), last["model"].values())]
    assert all(same) == (keep == "last")  # keep=last: best.pt holds the final weights


def test_kept_row_is_the_first_best_validation_iou_or_the_last_row():
    history = [{"epoch": e, "val_iou": v} for e, v in enumerate([0.5, 0.7, 0.7, float("nan"), 0.6], start=1)]
    assert kept_row(history, "best")["epoch"] == 2  # ties keep the earlier epoch; NaN is no score
    assert kept_row(history, "last")["epoch"] == 5
    assert kept_row(pd.DataFrame(history), "last")["epoch"] == 5
    assert kept_row([{"epoch": 1, "val_iou": float("nan")}], "best") is None
    assert kept_row([], "last") is None


def test_resume_draws_the_same_batches_with_loader_workers(synthetic_data, tmp_path):
    config = tiny_config(synthetic_data / "yolo", tmp_path, epochs=3, subset=24, workers=1)
    whole = fit(config, tmp_path / "whole", progress=False)
    fit(config, tmp_path / "resumed", progress=False, max_epochs=2)
    resumed = fit(config, tmp_path / "resumed", resume=True, progress=False)
    columns = ["epoch", "train_loss", "val_loss", "train_iou", "val_iou", "lr"]
    pd.testing.assert_frame_equal(whole[columns], resumed[columns], check_exact=True)


def test_programming_errors_show_their_traceback(monkeypatch, tmp_path, capsys):
    from localizer import cli

    def buggy(args):
        raise ValueError("a bug, not the user's data")

    monkeypatch.setattr(cli, "cmd_check_data", buggy)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["check-data", str(tmp_path)])

    def bad_data(args):
        raise DataError("corrupt", "the file ends early", tmp_path / "x.jpg")

    monkeypatch.setattr(cli, "cmd_check_data", bad_data)
    assert cli.main(["check-data", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'x.jpg'}: corrupt: the file ends early\n"


def test_class_filter_reaches_check_data_and_the_recipe(tmp_path, capsys):
    """--classes animals keeps the dog although the person is larger (VOC names), from the CLI and
    through the training recipe; a filter that does not fit the format is refused up front."""
    from PIL import Image

    (tmp_path / "voc").mkdir()
    Image.new("RGB", (200, 100)).save(tmp_path / "voc" / "walk.jpg")
    (tmp_path / "voc" / "walk.xml").write_text(
        "<annotation><size><width>200</width><height>100</height></size>"
        "<object><name>person</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>120</xmax><ymax>100</ymax></bndbox></object>"
        "<object><name>dog</name><bndbox><xmin>131</xmin><ymin>51</ymin><xmax>190</xmax><ymax>100</ymax></bndbox></object>"
        "</annotation>")
    report = tmp_path / "report.csv"
    assert cli_main(["check-data", str(tmp_path / "voc"), "--classes", "animals", "--quiet"]) == 0
    scan = scan_dataset(tmp_path / "voc", classes=TrainConfig(classes="animals").classes, progress=False)
    assert scan.table[["xmin", "ymin", "xmax", "ymax"]].values.tolist() == [[130, 50, 190, 100]]
    assert scan_dataset(tmp_path / "voc", progress=False).table["xmax"].tolist() == [120]  # no filter: largest
    capsys.readouterr()
    assert cli_main(["check-data", str(tmp_path / "voc"), "--classes", "0", "--report", str(report), "--quiet"]) == 2
    assert "error:" in capsys.readouterr().err and not report.exists()
