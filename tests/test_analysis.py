"""The analysis tools: ``experiments/heldout_pool.py`` (run by file path, as its README says) and, on a tiny
run of the synthetic data, the commands ``compare`` and ``several-animals`` (:mod:`localizer.report.compare`,
:mod:`localizer.report.several`)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch
from helpers import fit

from localizer.cli import main as cli_main
from localizer.data.download import REPO_ROOT
from localizer.recipe import TrainConfig
from localizer.report.compare import compare
from localizer.report.several import describe_photo

EXPERIMENTS = REPO_ROOT / "experiments"


@pytest.fixture(scope="module")
def tiny_run(synthetic_data, tmp_path_factory):
    """A one-epoch soft-argmax run (flip TTA on) of 40 synthetic photos, and the per-image table of
    ``evaluate --split all`` on it: ``(run folder, table path)``."""
    root = tmp_path_factory.mktemp("analysis")
    config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=48, epochs=1, batch_size=8,
                         backbone="efficientnet_lite0", weights=None, subset=40, workers=0,
                         cache_dir=str(root / "cache"), head="softargmax", tta=True)
    run = root / "run"
    fit(config, run, progress=False)
    table = root / "all.json"
    assert cli_main(["evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--split", "all",
                     "--quiet", "--out", str(table)]) == 0
    return run, table.with_suffix(".csv")


def run_experiment(name: str, *args) -> str:
    """``python experiments/NAME.py ARGS`` from the repository root; its stdout (it must exit 0)."""
    done = subprocess.run([sys.executable, str(EXPERIMENTS / name), *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ----------------------------------------------------------------------------- experiments/
def test_heldout_pool_keeps_the_photos_no_split_has_seen(synthetic_data, tmp_path):
    images = sorted((synthetic_data / "yolo" / "images").iterdir())[:6]
    full = pd.DataFrame({"file": [f"images/{p.name}" for p in images], "path": [str(p) for p in images],
                         "split": ["train", "train", "val", "test", "train", "val"], "dup_group": [0, 0, 0, 0, 3, 0]})
    small = pd.DataFrame({"file": [full["file"][1]]})
    (tmp_path / "full").mkdir()
    (tmp_path / "small").mkdir()
    full.to_csv(tmp_path / "full" / "manifest.csv", index=False)
    small.to_csv(tmp_path / "small" / "manifest.csv", index=False)
    # photo 1 is the subset run's, 3 is in the test split, 4 in a near-duplicate group: 0, 2 and 5 remain
    print(run_experiment("heldout_pool.py", tmp_path / "full", tmp_path / "pool", tmp_path / "small"))
    pooled = sorted(p.name for p in (tmp_path / "pool" / "images").iterdir())
    assert pooled == [images[0].name, images[2].name, images[5].name]
    labels = sorted(p.name for p in (tmp_path / "pool" / "labels").iterdir())
    assert labels == [f"{images[i].stem}.txt" for i in (0, 2, 5)]
    assert (tmp_path / "pool" / "images" / images[2].name).resolve() == images[2].resolve()


# ----------------------------------------------------------------------------- compare
def test_compare_counts_the_discordant_photos_and_tests_them():
    files = [f"p{i}.jpg" for i in range(5)]
    a = pd.DataFrame({"file": files, "iou": [0.9, 0.8, 0.2, 0.3, 0.7]})
    b = pd.DataFrame({"file": files[::-1], "iou": [0.7, 0.7, 0.6, 0.4, 0.9]})  # p4 .. p0: the rows are matched by file
    r = compare(a, b)
    assert (r["hits_a"], r["hits_b"], r["only_a"], r["only_b"]) == (3, 4, 1, 2)
    assert r["mcnemar_p"] == pytest.approx(1.0)  # 1 of 3 discordant: 2 (1/8 + 3/8)
    assert (r["mean_iou_a"], r["mean_iou_b"]) == pytest.approx((0.58, 0.66))
    # 6 photos only B gets: the two-sided exact p is 2 / 2^6
    six = pd.DataFrame({"file": files + ["p5.jpg"], "iou": [0.1] * 6})
    assert compare(six, six.assign(iou=0.9))["mcnemar_p"] == pytest.approx(2 / 64)
    assert compare(a, a)["wilcoxon_p"] == 1.0 and compare(a, a)["mcnemar_p"] == 1.0
    with pytest.raises(ValueError, match="different photos"):
        compare(a, b.iloc[:4])
    with pytest.raises(ValueError, match=r"a photo has two rows \(p0.jpg\)"):
        compare(pd.concat([a, a.iloc[:1]]), pd.concat([a, a.iloc[:1]]))
    with pytest.raises(ValueError, match="no photo"):
        compare(a.iloc[:0], a.iloc[:0])


def test_compare_command_prints_both_tests_of_two_tables(tmp_path, capsys):
    # IoUs in eighths (exact in binary): |A - B| = 1/8, 4/8, 3/8, 2/8, 5/8, signs + + - - +, so the ranks are
    # 1, 4, 3, 2, 5 and W- = 3 + 2 = 5; 10 of the 32 sign patterns give W <= 5: the exact two-sided p is 20/32
    (tmp_path / "run_b").mkdir()
    files = [f"p{i}.jpg" for i in range(5)]
    pd.DataFrame({"file": files, "iou": [0.875, 0.75, 0.25, 0.375, 0.625]}).to_csv(tmp_path / "a.csv", index=False)
    b = tmp_path / "run_b" / "per_image_test.csv"  # a run folder stands for its test table
    pd.DataFrame({"file": files[::-1], "iou": [0.0, 0.625, 0.625, 0.25, 0.75]}).to_csv(b, index=False)
    assert cli_main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "run_b")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"5 photos; A: {tmp_path / 'a.csv'}; B: {b}",
        "  above IoU 0.5: A 3 (60.00 %), B 3 (60.00 %); only A 2, only B 2; McNemar's exact test p = 1.000",
        "  mean IoU: A 57.50 %, B 45.00 %; Wilcoxon signed-rank test p = 0.625",
    ]
    # bad tables: a clear error naming the file(s), exit code 2
    pd.DataFrame({"file": files}).to_csv(tmp_path / "no_iou.csv", index=False)
    assert cli_main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "no_iou.csv")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'no_iou.csv'}: not-a-per-image-table: "
                                       "columns missing: ['iou']\n")
    pd.DataFrame({"file": files[:4], "iou": 0.5}).to_csv(tmp_path / "four.csv", index=False)
    assert cli_main(["compare", str(tmp_path / "a.csv"), str(tmp_path / "four.csv")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'a.csv'}, {tmp_path / 'four.csv'}: different-photos: "
                                       "the tables are of different photos (5 and 4 rows)\n")
    assert cli_main(["compare", str(tmp_path / "a.csv"), str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'per_image_test.csv'}: no such per-image table\n"


# ----------------------------------------------------------------------------- several-animals
def test_several_animals_describes_a_photo_by_hand():
    # the largest box (area 100) and a second one of area 80 beside it; the box around both is 28 x 10
    boxes = torch.tensor([[20.0, 0.0, 28.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    on_primary = describe_photo(boxes, torch.tensor([0.0, 0.0, 10.0, 10.0]))
    assert on_primary == pytest.approx({"second_area": 0.8, "iou": 1.0, "other_iou": 0.0, "group_iou": 100 / 280})
    between = describe_photo(boxes, torch.tensor([5.0, 0.0, 25.0, 10.0]))  # 50 px^2 on each
    assert between == pytest.approx({"second_area": 0.8, "iou": 50 / 250, "other_iou": 50 / 230,
                                     "group_iou": 200 / 280})


def test_several_animals_command_counts_every_miss_once(tiny_run, tmp_path, capsys):
    run, rows_csv = tiny_run
    rows = pd.read_csv(rows_csv)
    several = rows[rows["n_boxes"] > 1]
    assert len(several) > 0
    # it reads that table and the run's annotations again
    assert cli_main(["several-animals", str(run), str(rows_csv)]) == 0
    analysis = capsys.readouterr().out
    assert analysis.startswith(f"{rows_csv}: {len(several)} of {len(rows)} photos have several animals")
    assert f"  (only {len(several)} photos with several animals: one of them moves each share by " \
           f"{100 / len(several):.1f} points)" in analysis
    misses = (several["iou"] <= 0.5).sum()
    assert f"misses among the photos with several animals (IoU <= 0.5 with the largest animal): {misses}," in analysis
    kinds = [int(line.rsplit(": ", 1)[1]) for line in analysis.splitlines()[-3:]]
    assert sum(kinds) == misses  # another animal, the group, neither: every miss once
    # a photo that left the data folder since, and a run without notebook 04's table: named, exit code 2
    moved = several.iloc[:1].assign(path=str(tmp_path / "gone.jpg"))
    moved.to_csv(tmp_path / "moved.csv", index=False)
    assert cli_main(["several-animals", str(run), str(tmp_path / "moved.csv")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'gone.jpg'}: missing: not in ")
    assert cli_main(["several-animals", str(run)]) == 2
    assert capsys.readouterr().err == f"error: {run / 'per_image_test.csv'}: no such per-image table\n"
