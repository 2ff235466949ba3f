"""The analysis tools on a tiny run of the synthetic data: the one-off experiments of ``experiments/``
(run by file path, as their README says) and the commands ``compare`` and ``several-animals``
(:mod:`localizer.report.compare`, :mod:`localizer.report.several`)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pandas as pd
import pytest
import torch
from helpers import fit
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from localizer.cli import main as cli_main
from localizer.data.download import REPO_ROOT
from localizer.engine.run import Run
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
def test_flip_fusion_and_zoom_out_experiments_agree_on_the_flip_tta_row(tiny_run):
    run, _ = tiny_run
    # tta_fusion.py scores the run's validation split with each fusion of the flip TTA
    fusion = run_experiment("tta_fusion.py", run)
    n_val = int((Run.open(run).manifest["split"] == "val").sum())
    assert fusion.startswith(f"{run}: validation split, {n_val} photos")
    assert "pipeline check only" in fusion and "fuse at IoU > 0.5, else the smaller" in fusion
    # scale_tta.py: its first row is the flip TTA that tta_fusion.py scores as "fuse at IoU > 0.5"
    zoom = run_experiment("scale_tta.py", run, "--scales", "0.8")
    first = next(line for line in zoom.splitlines() if line.startswith("flip TTA (evaluate's), s = 1 "))
    same = next(line for line in fusion.splitlines() if line.startswith("fuse at IoU > 0.5 "))
    # the same six numbers (pandas prints 0.1 or 0.10 depending on the other rows of its table)
    assert [float(v) for v in first.split()[-6:]] == [float(v) for v in same.split()[-6:]]
    assert "flip TTA at s = 0.8 alone" in zoom and "all views: the medoid" in zoom


def test_edge_decoding_experiment_reads_the_mean_as_the_model_does(tiny_run):
    run, _ = tiny_run
    out = run_experiment("edge_decoding.py", run)
    rows = {line.split()[0] + line.split()[1]: line for line in out.splitlines() if "mean IoU / accuracy" in line}
    assert list(rows) == ["meanmean", "mode+-1", "mode+-2", "mode+-4"]
    # the "mean" row is the model's own decoding with evaluate's flip TTA: tta_fusion's "fuse at IoU > 0.5" row
    fusion = next(line for line in run_experiment("tta_fusion.py", run).splitlines()
                  if line.startswith("fuse at IoU > 0.5 "))
    mean_iou, accuracy = rows["meanmean"].split("all ")[1].split()[0:3:2]
    assert float(mean_iou) == pytest.approx(float(fusion.split()[-6]) / 100, abs=6e-5)
    assert float(accuracy.rstrip("%")) == pytest.approx(float(fusion.split()[-5]), abs=0.006)


@pytest.mark.parametrize("head", ["softargmax", "largest"])
def test_confidence_experiment_scores_the_package_s_confidence_as_evaluate_does(tiny_run, head, tmp_path):
    run = tiny_run[0]
    if head == "largest":  # a one-epoch run of the largest head, as tiny_run's
        config = Run.open(run).config
        run = tmp_path / "largest"
        fit(TrainConfig(**{**config.__dict__, "head": "largest"}), run, progress=False)
    out = run_experiment("confidence_estimates.py", run)
    assert out.startswith(f"{run}: validation split, ")
    row = next(line for line in out.splitlines() if line.startswith("min(flip IoU, zoom IoU) x (1 - 2 x std): box_confidence"))
    assert ("detection score" in out) is (head == "largest")
    # the package's confidence (head.predict, inference.box_confidence) as evaluate scores it on the same photos
    metrics = tmp_path / "val.json"
    assert cli_main(["evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--split", "val", "--quiet",
                     "--out", str(metrics)]) == 0
    table = pd.read_csv(metrics.with_suffix(".csv"))
    kept = table.sort_values("confidence", ascending=False, kind="stable").head(-(-len(table) * 4 // 5))
    spearman, accuracy, mean_iou = (float(v) for v in row.split()[-3:])
    assert accuracy == pytest.approx(100 * (kept["iou"] > 0.5).mean(), abs=0.006)
    assert mean_iou == pytest.approx(100 * kept["iou"].mean(), abs=0.006)
    expected = table["confidence"].corr(table["iou"], method="spearman")
    assert (spearman == pytest.approx(expected, abs=6e-4)) if table["confidence"].nunique() > 1 else pd.isna(spearman)


def test_zoom_out_tta_maps_a_known_square_and_its_box_back(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))  # as `python experiments/scale_tta.py` has it
    spec = importlib.util.spec_from_file_location("scale_tta", EXPERIMENTS / "scale_tta.py")
    scale_tta = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale_tta)
    # a white square over pixels 10..29 of a 40 px black image, shrunk by 0.5 about the centre: pixels 15..24,
    # the uncovered border filled with the grey; its box (0.25, 0.25, 0.75, 0.75) becomes (0.375, ..., 0.625)
    image = torch.zeros(1, 3, 40, 40)
    image[..., 10:30, 10:30] = 1.0
    zoomed = scale_tta.zoom_out(image, 0.5)[0, 0]
    assert (zoomed[16:24, 16:24] == 1).all() and zoomed[0, 0] == 0.5 and zoomed[12, 20] == 0.0
    assert zoomed[:, 20].gt(0.5).sum() == 10  # the square's column: 10 px above the black around it
    shrunk = torch.tensor([[0.375, 0.375, 0.625, 0.625]])
    assert scale_tta.unzoom_boxes(shrunk, 0.5)[0].tolist() == pytest.approx([0.25, 0.25, 0.75, 0.75])
    # the inverse of torchvision's affine of boxes (about the canvas centre), at another scale
    box = tv_tensors.BoundingBoxes([[16.0, 32.0, 96.0, 150.0]], format="XYXY", canvas_size=(160, 160))
    moved = F.affine(box, angle=0.0, translate=[0.0, 0.0], scale=0.8, shear=[0.0, 0.0]).as_subclass(torch.Tensor)
    assert (160 * scale_tta.unzoom_boxes(moved / 160, 0.8))[0].tolist() == pytest.approx([16.0, 32.0, 96.0, 150.0])
    # fusions of 3 views of 1 photo: two agree (IoU 0.8), the third is another animal
    views = torch.tensor([[[0.0, 0.0, 0.5, 0.5]], [[0.0, 0.0, 0.5, 0.4]], [[0.6, 0.6, 1.0, 1.0]]])
    assert scale_tta.medoid(views)[0].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.5])
    assert scale_tta.mean_of_agreeing(views[2], views)[0].tolist() == pytest.approx([0.6, 0.6, 1.0, 1.0])
    assert scale_tta.mean_of_agreeing(views[0], views)[0].tolist() == pytest.approx([0.0, 0.0, 0.5, 0.45])


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
    assert f"  (only {len(several)} photos with several animals: a pipeline check" in analysis
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
