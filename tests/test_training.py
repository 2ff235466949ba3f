"""Metrics, losses, training, crash safety, evaluation and prediction (issue 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import fit

from localizer import recipe
from localizer.engine import training
from localizer.model import heads
from localizer.engine import run as runs
from localizer.boxes import hflip_boxes
from localizer.data.cache import ImageCache
from localizer.cli import main as cli_main
from localizer.data.datasets import CachedBoxDataset, make_loader
from localizer.engine.evaluation import baseline_predictions
from localizer.engine.inference import predict_dataset
from localizer.model.losses import box_loss
from localizer.metrics import accuracy_at, paired_iou, sanitize_boxes, summarize
from localizer.model.models import build_model
from localizer.engine.numerics import default_numerics
from localizer.engine.prediction import drawing_paths
from localizer.recipe import TrainConfig
from localizer.engine.checkpoints import load_model
from localizer.engine.training import TrainingDiverged, run_epoch
from localizer.data.validation import scan_dataset

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- metrics
def test_iou_hand_computed_values():
    target = torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 5)
    pred = torch.tensor([
        [0.0, 0.0, 0.5, 0.5],      # identical -> 1
        [0.6, 0.6, 0.9, 0.9],      # disjoint -> 0
        [0.0, 0.0, 0.25, 0.25],    # nested, a quarter of the area -> 0.25
        [0.25, 0.0, 0.75, 0.5],    # half overlap: inter 0.125, union 0.375 -> 1/3
        [0.2, 0.2, 0.2, 0.4],      # zero area -> 0, not NaN
    ])
    ious = paired_iou(pred, target)
    assert ious.tolist() == pytest.approx([1.0, 0.0, 0.25, 1 / 3, 0.0], abs=1e-6)


def test_swapped_and_out_of_range_predictions_are_corrected():
    pred = torch.tensor([[0.5, 0.5, 0.0, 0.0], [-0.5, -0.2, 0.5, 0.5]])
    assert sanitize_boxes(pred).tolist() == [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5]]
    target = torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 2)
    assert paired_iou(pred, target).tolist() == pytest.approx([1.0, 1.0])


def test_accuracy_uses_strict_voc_threshold_and_summary():
    ious = np.array([0.2, 0.5, 0.51, 0.8, 1.0])
    assert accuracy_at(ious, 0.5) == pytest.approx(0.6)      # 0.5 itself is not > 0.5
    s = summarize(ious)
    assert s["mean_iou"] == pytest.approx(0.602)
    assert s["acc_75"] == pytest.approx(0.4)
    # thresholds 0.50, 0.55, ..., 0.95: images above each = 3 (0.51, 0.8, 1.0), then 2 from 0.55
    # to 0.75 (0.8, 1.0), then 1 from 0.80 (0.8 is not > 0.8): 3+2*5+1*4 = 17 of 50
    assert s["acc_50_95"] == pytest.approx(17 / 50)
    assert s["n"] == 5


def test_losses():
    target = torch.tensor([[0.1, 0.1, 0.5, 0.5]])
    assert box_loss("smooth_l1", target.clone(), target).item() == 0.0
    # smooth L1 with beta=1 on a 0.2 error in one coordinate: 0.5 * 0.2^2 / 4 coordinates
    pred = torch.tensor([[0.3, 0.1, 0.5, 0.5]])
    assert box_loss("smooth_l1", pred, target).item() == pytest.approx(0.5 * 0.04 / 4)
    # GIoU: IoU = 0.2*0.4/0.16 = 0.5, enclosing box = union -> GIoU loss 0.5; L1 = 0.2/4
    assert box_loss("giou", pred, target).item() == pytest.approx(2 * 0.5 + 5 * 0.05, abs=1e-6)
    with pytest.raises(ValueError, match="unknown loss"):
        box_loss("l3", pred, target)


def test_hflip_boxes_and_baselines():
    assert hflip_boxes(torch.tensor([[0.1, 0.2, 0.4, 0.6]]))[0].tolist() == pytest.approx([0.6, 0.2, 0.9, 0.6])
    train = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    base = baseline_predictions(train, 3, seed=1)
    assert base["mean_box"].tolist() == [[0.25, 0.25, 0.75, 0.75]] * 3
    rnd = base["random_box"]
    assert (rnd[:, 2] >= rnd[:, 0]).all() and (rnd[:, 3] >= rnd[:, 1]).all()
    assert np.array_equal(rnd, baseline_predictions(train, 3, seed=1)["random_box"])


# ------------------------------------------------------------------------------------ training
def test_real_model_overfits_eight_images(synthetic_data, tmp_path):
    """The report's ResNet18 (from scratch, 64 px, Smooth L1, AdamW) memorizes 8 boxes:
    mean IoU > 0.9 on them in eval mode after 100 steps."""
    torch.manual_seed(0)
    table = scan_dataset(synthetic_data / "yolo", progress=False).table
    rows = table[table["n_boxes"] == 1].iloc[:8]
    dataset = CachedBoxDataset(rows, ImageCache(tmp_path / "cache", 64), progress=False)
    model = build_model("resnet18", weights=None, dropout=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = make_loader(CachedBoxDataset(rows, ImageCache(tmp_path / "cache", 64), progress=False, padded=True),
                         batch_size=8)  # targets (N, 1, 4): the primary box
    numerics = default_numerics(torch.device("cpu"), "fp32")
    before = paired_iou(predict_dataset(model, dataset, progress=False), dataset.targets).mean().item()
    for _ in range(100):
        run_epoch(model, loader, numerics, optimizer, progress=False)
    preds = predict_dataset(model, dataset, progress=False)
    ious = paired_iou(preds, dataset.targets)
    assert before < 0.5 and ious.mean().item() > 0.9, (before, ious)


def _tiny_config(data: Path, tmp_path: Path, **overrides) -> TrainConfig:
    values = dict(data=str(data), image_size=48, epochs=3, batch_size=8, backbone="efficientnet_lite0",
                  weights=None, subset=40, workers=0, cache_dir=str(tmp_path / "cache"))
    values.update(overrides)
    return TrainConfig(**values)


def test_fit_writes_history_checkpoints_and_refuses_to_overwrite(synthetic_data, tmp_path):
    config = _tiny_config(synthetic_data / "yolo", tmp_path, epochs=2)
    run = tmp_path / "run"
    history = fit(config, run, progress=False)
    assert history["epoch"].tolist() == [1, 2]
    assert list(history.columns) == training.HISTORY_COLUMNS
    pd.testing.assert_frame_equal(pd.read_csv(run / "history.csv"), history, check_dtype=False)
    best_epoch = int(history.loc[history["val_iou"].idxmax(), "epoch"])  # derived from the history, not stored
    assert torch.load(run / "checkpoints" / "best.pt", weights_only=True)["epoch"] == best_epoch
    assert history["lr"].tolist() == [1e-3, 1e-3]
    assert "optimizer" in torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert "optimizer" not in torch.load(run / "checkpoints" / "best.pt", weights_only=True)  # weights only
    manifest = pd.read_csv(run / "manifest.csv")
    assert manifest["split"].value_counts().to_dict() == {"train": 28, "val": 6, "test": 6}
    with pytest.raises(FileExistsError, match="already holds a training run"):
        fit(config, run, progress=False)
    # resume="auto" on a finished run trains nothing and returns the same history
    again = fit(config, run, resume="auto", progress=False)
    pd.testing.assert_frame_equal(again, history)
    with pytest.raises(FileExistsError, match="another config"):
        fit(_tiny_config(synthetic_data / "yolo", tmp_path, epochs=2, lr=5e-4), run, resume="auto", progress=False)
    model, info = load_model(run / "checkpoints" / "best.pt")
    assert info["config"] == config and not model.training


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(synthetic_data, tmp_path, monkeypatch):
    config = _tiny_config(synthetic_data / "yolo", tmp_path, epochs=3)
    run = tmp_path / "run"
    fit(config, run, progress=False, max_epochs=1)
    good = (run / "checkpoints" / "last.pt").read_bytes()
    monkeypatch.setattr(heads, "box_loss", lambda name, pred, target: pred.sum() * float("nan"))  # the linear head's
    with pytest.raises(TrainingDiverged, match="NaN or infinite"):
        fit(config, run, resume=True, progress=False)
    assert (run / "checkpoints" / "last.pt").read_bytes() == good
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1


def test_sigkill_after_second_epoch_then_resume(synthetic_data, tmp_path):
    """A real training process killed with SIGKILL resumes; history holds every epoch once."""
    run = tmp_path / "run"
    env = {**os.environ, "LOCALIZER_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "localizer", "train", str(synthetic_data / "yolo"), "--run-dir", str(run),
           "-p", "epochs=5", "-p", "subset=40", "-p", "image_size=48", "-p", "batch_size=8",
           "-p", "backbone=efficientnet_lite0", "-p", "weights=null", "-p", "workers=0", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    history_path = run / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if history_path.exists() and len(pd.read_csv(history_path)) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"training ended before it could be killed: {proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"]
    assert 1 <= killed_at < 5  # last.pt is an epoch's last file: it may still be epoch 1's
    manifest_before = (run / "manifest.csv").read_text()

    done = subprocess.run([*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    history = pd.read_csv(history_path)
    assert history["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert (run / "manifest.csv").read_text() == manifest_before
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 5


# ------------------------------------------------------------------------- evaluate and predict
def test_evaluate_and_predict_commands(synthetic_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOCALIZER_CACHE", str(tmp_path / "cache"))
    config = _tiny_config(synthetic_data / "yolo", tmp_path, epochs=1, cache_dir=None)
    run = tmp_path / "run"
    fit(config, run, progress=False)
    ckpt = run / "checkpoints" / "best.pt"

    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--quiet", "--tta"]) == 0
    metrics = json.loads((run / "metrics_test_tta.json").read_text())
    assert {"mean_iou", "acc_50", "acc_75", "acc_50_95", "n", "baselines"} <= set(metrics)
    assert metrics["n"] == 6 and metrics["tta"] is True
    assert set(metrics["baselines"]) == {"mean_box", "random_box"}
    per_image = pd.read_csv(run / "metrics_test_tta.csv")
    assert len(per_image) == 6  # the summary is the per-image table's, to the printed precision
    assert metrics["mean_iou"] == pytest.approx(per_image["iou"].mean(), abs=1e-4)
    assert metrics["acc_50"] == pytest.approx((per_image["iou"] > 0.5).mean())
    # same split re-made from --data: same images, same metrics
    out = tmp_path / "again.json"
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(synthetic_data / "yolo"), "--quiet",
                     "--tta", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["mean_iou"] == pytest.approx(metrics["mean_iou"], abs=1e-6)
    # outputs are never silently overwritten
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--quiet", "--tta"]) == 2
    # the scores of the photos with several animals are printed apart (the hard case of a one-box task)
    capsys.readouterr()
    everything = tmp_path / "all.json"
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--split", "all", "--quiet", "--out", str(everything)]) == 0
    rows_csv = everything.with_suffix(".csv")
    rows = pd.read_csv(rows_csv)
    several = rows[rows["n_boxes"] > 1]
    printed = capsys.readouterr().out.split("by animals annotated per photo:\n")[1].splitlines()
    label, numbers = printed[2][:15], [float(v) for v in printed[2][15:].split()]
    assert label == "several animals" and numbers == pytest.approx(
        [len(several), 100 * several["iou"].mean(), 100 * (several["iou"] > 0.5).mean(), (several["iou"] <= 0.5).sum()],
        abs=0.006)

    image = synthetic_data / "yolo" / "images" / "animal_001.jpg"  # 160 x 120 px
    junk = tmp_path / "Abyssinian_100.mat"
    junk.write_bytes(b"MATLAB 5.0 MAT-file, not an image")
    preds = tmp_path / "preds.csv"
    assert cli_main(["predict", "--checkpoint", str(ckpt), str(image), str(junk), "--out", str(preds),
                     "--draw", str(tmp_path / "drawn"), "--quiet"]) == 0
    table = pd.read_csv(preds, keep_default_na=False)
    assert table["file"].tolist() == [str(image), str(junk)]
    ok, bad = table.iloc[0], table.iloc[1]
    assert (int(ok["width"]), int(ok["height"])) == (160, 120) and ok["error"] == ""
    assert 0 <= float(ok["xmin"]) <= float(ok["xmax"]) <= 160 and 0 <= float(ok["ymin"]) <= float(ok["ymax"]) <= 120
    assert bad["error"].startswith("not-an-image")
    drawings = drawing_paths([image, junk], tmp_path / "drawn")  # mirrored below the inputs' common folder
    assert drawings[str(image)].name == "animal_001.jpg" and drawings[str(image)].exists()
    assert not drawings[str(junk)].exists()
    # an existing predictions file is not replaced without --overwrite
    assert cli_main(["predict", "--checkpoint", str(ckpt), str(image), "--out", str(preds), "--quiet"]) == 2
    assert pd.read_csv(preds)["file"].tolist() == [str(image), str(junk)]
    assert cli_main(["predict", "--checkpoint", str(ckpt), str(image), "--out", str(preds), "--overwrite",
                     "--quiet"]) == 0
    assert pd.read_csv(preds)["file"].tolist() == [str(image)]


def test_large_batch_learning_rate_scaling(synthetic_data, tmp_path):
    assert recipe.effective_lr(TrainConfig(batch_size=256)) == pytest.approx(1e-3)
    assert recipe.effective_lr(TrainConfig(batch_size=256, lr_scaling="linear")) == pytest.approx(8e-3)
    assert recipe.effective_lr(TrainConfig(batch_size=256, lr_scaling="sqrt")) == pytest.approx(1e-3 * 8 ** 0.5)
    assert recipe.effective_lr(TrainConfig(batch_size=32, lr_scaling="sqrt")) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match='^lr_scaling="cubic": expected one of "none", "linear", "sqrt"$'):
        TrainConfig(lr_scaling="cubic")
    # fit starts the optimizer at the scaled rate (history's lr is the rate of each epoch)
    config = _tiny_config(synthetic_data / "yolo", tmp_path, epochs=1, lr_scaling="linear")
    history = fit(config, tmp_path / "run", progress=False)
    assert history["lr"].tolist() == pytest.approx([1e-3 * 8 / 32])


def test_run_refuses_a_misspelt_parameter_before_touching_the_run_folder(synthetic_data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("earlier work")
    code = cli_main(["run", "--data", str(synthetic_data / "yolo"), "--profile", "smoke", "--run-dir", str(run),
                     "--overwrite", "-p", "epoch=5", "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown notebook parameter(s) ['epoch']" in err and "'epochs'" in err
    assert (run / "keep.txt").read_text() == "earlier work"  # --overwrite did not delete anything


@pytest.mark.parametrize("field, value", [("epochs", "two"), ("epochs", 1.5), ("batch_size", 0), ("lr", 0.0),
                                          ("dropout", 1.0), ("lr_scaling", "sqrtt"), ("backbone", "resnet50"),
                                          ("subset", 0), ("loss", "l2")])
def test_config_refuses_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}="):
        TrainConfig(**{field: value})


def test_config_errors_show_the_value_as_written_after_dash_p(capsys):
    """The value is shown in JSON, as ``-p NAME=VALUE`` takes it (``true``, not Python's ``True``)."""
    with pytest.raises(ValueError, match="^epochs=true: expected a whole number >= 1$"):
        TrainConfig(epochs=True)
    with pytest.raises(ValueError, match='^head="boxes": expected one of'):
        TrainConfig(head="boxes")
    assert cli_main(["train", "data", "--run-dir", "run", "-p", "tta=1"]) == 2
    assert capsys.readouterr().err.startswith("error: tta=1: expected true or false")


def test_a_folder_left_by_another_dataset_is_not_reused(synthetic_data, tmp_path):
    """A run folder holding a manifest of other data (e.g. from a start that failed) is refused,
    not trained on silently; the same data reuses the manifest."""
    run = tmp_path / "run"
    runs.Run.create(_tiny_config(synthetic_data / "yolo", tmp_path, subset=40), run, progress=False)
    yolo_manifest = (run / "manifest.csv").read_text()
    voc = _tiny_config(synthetic_data / "voc", tmp_path, subset=40, epochs=1)
    with pytest.raises(FileExistsError, match="another split"):
        fit(voc, run, progress=False)
    assert (run / "manifest.csv").read_text() == yolo_manifest
    fit(voc, run, overwrite=True, progress=False)
    assert pd.read_csv(run / "manifest.csv")["path"].str.contains("/voc/JPEGImages/").all()


def test_train_resume_refuses_a_changed_recipe_and_resume_with_overwrite(synthetic_data, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["train", str(synthetic_data / "yolo"), "--run-dir", str(run), "--quiet", "-p", "image_size=48",
              "-p", "backbone=efficientnet_lite0", "-p", "weights=null", "-p", "subset=40", "-p", "batch_size=8",
              "-p", f"cache_dir=\"{tmp_path / 'cache'}\"", "-p", "workers=0"]
    assert cli_main(common + ["-p", "epochs=1"]) == 0
    capsys.readouterr()
    assert cli_main(common + ["-p", "epochs=3", "--resume"]) == 2
    assert "cannot change epochs=3 (the run has 1)" in capsys.readouterr().err
    other_data = [str(synthetic_data / "voc") if a == str(synthetic_data / "yolo") else a for a in common]
    assert cli_main(other_data + ["-p", "epochs=1", "--resume"]) == 2
    assert "cannot change data=" in capsys.readouterr().err
    assert cli_main(common + ["-p", "epochs=1", "--resume", "-p", "workers=1"]) == 0  # same recipe, new runtime
    with pytest.raises(SystemExit) as exit_info:
        cli_main(common + ["--resume", "--overwrite"])
    assert exit_info.value.code == 2


# ------------------------------------------------------------------------------ reproduction
#: ``(train_loss, val_loss, train_iou, val_iou)`` of each epoch of the ``smoke`` recipe on the synthetic
#: data (CPU, float32, no workers, one thread, AVX2 kernels: :data:`AVX2_KERNELS`), made by the code of commit
#: b930f34, before the heads got one loss interface: the refactoring keeps the arithmetic and the random draws
#: (model init, sampler, augmentation) as they were. One recording per family of CPU: with the same kernels
#: forced, the float32 libraries still sum in another order on another CPU (their blocking follows the CPU),
#: and two epochs carry that to up to 7.5e-2. ``amd-epyc``: recorded on an AVX2 AMD EPYC, reproduced on an
#: AVX-512 one; ``intel-xeon``: made on the project's Intel Xeon (AVX-512, AMX) by ``git checkout b930f34`` and
#: the command of the test, equal there to today's code in every digit (2026-12-06).
_TUNED = {"head": "softargmax", "dfl": 0.25, "loss": "giou", "affine_p": 0.5, "dropout": 0.2, "schedule": "cosine"}
SMOKE_HISTORIES = {
    "linear": ({}, {
        "amd-epyc": [(0.2504176199436188, 0.2537875771522522, 0.02713625319302082, 0.1356469690799713),
                     (0.1573839783668518, 0.13739143311977386, 0.08913512527942657, 0.234654039144516)],
        "intel-xeon": [(0.25008004903793335, 0.24335689842700958, 0.027360115200281143, 0.13164015114307404),
                       (0.14928829669952393, 0.17318618297576904, 0.10055029392242432, 0.19404467940330505)]}),
    "softargmax": (_TUNED, {
        "amd-epyc": [(4.54636812210083, 4.280170917510986, 0.005135591607540846, 0.01852598786354065),
                     (3.9864628314971924, 4.198190212249756, 0.05443732067942619, 0.029186934232711792)],
        "intel-xeon": [(4.546542167663574, 4.279760837554932, 0.005130063276737928, 0.018549546599388123),
                       (3.9944117069244385, 4.194974899291992, 0.05338456109166145, 0.029360158368945122)]}),
    "largest": ({**_TUNED, "head": "largest"}, {
        "amd-epyc": [(9.843843460083008, 9.579469680786133, 0.2026338428258896, 0.42526882886886597),
                     (8.78711223602295, 9.480953216552734, 0.46476173400878906, 0.4218629002571106)],
        "intel-xeon": [(9.840824127197266, 9.585268020629883, 0.2026257961988449, 0.42543789744377136),
                       (8.75658893585205, 9.461668014526367, 0.49229443073272705, 0.49663782119750977)]}),
}

#: The environment that makes torch compute as when :data:`SMOKE_HISTORIES` were recorded: one thread (another
#: count sums in another order), and AVX2 kernels for ATen and oneDNN, which would otherwise pick their AVX-512 ones
#: where the CPU has them (torch's ``ATEN_CPU_CAPABILITY``, oneDNN's ``ONEDNN_MAX_CPU_ISA``). They are read when
#: torch starts, so the training runs in a fresh process.
AVX2_KERNELS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2",
                "ONEDNN_MAX_CPU_ISA": "AVX2"}


@pytest.mark.parametrize("head", sorted(SMOKE_HISTORIES))
def test_smoke_recipe_reproduces_its_recorded_history(synthetic_data, tmp_path, head):
    values, recordings = SMOKE_HISTORIES[head]
    values = {**values, "device": "cpu", "precision": "fp32", "workers": 0, "cache_dir": str(tmp_path / "cache")}
    params = [arg for name, value in values.items() for arg in ("-p", f"{name}={json.dumps(value)}")]
    done = subprocess.run([sys.executable, "-m", "localizer", "train", str(synthetic_data / "yolo"), "--run-dir",
                           str(tmp_path / "run"), "--profile", "smoke", "--quiet", *params],
                          cwd=REPO, env={**os.environ, **AVX2_KERNELS}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    got = history[["train_loss", "val_loss", "train_iou", "val_iou"]].to_numpy()
    off = {cpu: float(np.abs(got - np.array(expected)).max()) for cpu, expected in recordings.items()}
    assert min(off.values()) <= 1e-6, (f"the history {got.tolist()} matches no recording (largest difference to "
                                       f"each: {off}); on a new family of CPU, record b930f34's history there")
