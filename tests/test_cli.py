"""The command line while it runs: output into a pipe whose reader has gone (``| head``) ends quietly
with exit code 141, and the files a command writes are written before anything is printed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import fit

from localizer import cli
from localizer.data.download import REPO_ROOT
from localizer.metrics import bootstrap_interval
from localizer.recipe import TrainConfig


class ClosedPipe(io.TextIOBase):
    """A stdout whose reader has gone: every write raises BrokenPipeError, as a pipe's would."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:  # no descriptor to point at devnull (in process)
        raise io.UnsupportedOperation("fileno")


def photos_in(folder) -> int:
    return sum(1 for _ in (folder / "images").iterdir())


def test_output_into_a_closed_pipe_ends_quietly_and_keeps_the_report(synthetic_data, tmp_path):
    report = tmp_path / "report.csv"
    read, write = os.pipe()
    os.close(read)  # the reader has gone, as `| head` once head has exited: every write fails with EPIPE
    try:
        done = subprocess.run([sys.executable, "-m", "localizer", "check-data", str(synthetic_data / "yolo"),
                               "--quiet", "--report", str(report)], stdout=write, stderr=subprocess.PIPE,
                              cwd=REPO_ROOT, text=True)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (cli.EXIT_BROKEN_PIPE, "")  # no traceback, no "Exception ignored"
    assert len(pd.read_csv(report)) == photos_in(synthetic_data / "yolo")  # one row per image found


def test_a_reader_that_stops_after_one_line_gets_no_traceback(synthetic_data, tmp_path):
    """As ``python -m localizer check-data ... | head -1``: whether the command is still writing when
    the reader exits (141) or has written everything before (0), no traceback and the report is kept."""
    report = tmp_path / "report.csv"
    command = (f"{sys.executable} -m localizer check-data {synthetic_data / 'yolo'} --quiet --report {report}"
               f" | {sys.executable} -c 'import sys; print(sys.stdin.readline(), end=\"\")'; "
               "echo ${PIPESTATUS[0]} >&2")
    done = subprocess.run(["bash", "-c", command], capture_output=True, cwd=REPO_ROOT, text=True)
    assert done.stdout == f"data:    {synthetic_data / 'yolo'} (format yolo)\n"  # the summary's first line
    assert done.stderr.strip() in ("0", str(cli.EXIT_BROKEN_PIPE)), done.stderr
    assert len(pd.read_csv(report)) == photos_in(synthetic_data / "yolo")


def test_check_data_writes_its_report_before_printing(synthetic_data, tmp_path, monkeypatch):
    report = tmp_path / "report.csv"
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["check-data", str(synthetic_data / "yolo"), "--quiet", "--report", str(report)]) == 141
    table = pd.read_csv(report)
    assert len(table) == photos_in(synthetic_data / "yolo") and set(table["status"]) <= {"ok", "skipped"}


@pytest.fixture(scope="module")
def checkpoint(synthetic_data, tmp_path_factory):
    """``best.pt`` of a one-epoch run of 40 synthetic photos at 48 px (no pretrained weights; the softargmax
    head, whose boxes always lie in the photo: the confidences differ from photo to photo)."""
    root = tmp_path_factory.mktemp("cli")
    config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=48, epochs=1, batch_size=8,
                         backbone="efficientnet_lite0", weights=None, head="softargmax", subset=40, workers=0,
                         cache_dir=str(root / "cache"))
    fit(config, root / "run", progress=False)
    return root / "run" / "checkpoints" / "best.pt"


def test_evaluate_and_predict_write_their_files_before_printing(checkpoint, synthetic_data, tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.json"
    predictions = tmp_path / "predictions.csv"
    image = synthetic_data / "yolo" / "images" / "animal_001.jpg"  # 160 x 120 px
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["evaluate", "--checkpoint", str(checkpoint), "--quiet", "--out", str(metrics)]) == 141
    assert cli.main(["predict", "--checkpoint", str(checkpoint), str(image), "--quiet", "--out",
                     str(predictions)]) == 141
    monkeypatch.undo()
    assert len(pd.read_csv(metrics.with_suffix(".csv"))) == 6  # the test split of 40 photos (70/15/15)
    assert '"n": 6' in metrics.read_text()
    saved, per_image = json.loads(metrics.read_text()), pd.read_csv(metrics.with_suffix(".csv"))
    # the JSON's 95 % intervals are the bootstrap of the per-image IoUs it wrote, seeded with the run's seed
    assert saved["intervals"]["mean_iou"] == pytest.approx(list(bootstrap_interval(per_image["iou"], seed=42)), abs=1e-6)
    assert saved["intervals"]["acc_50"] == pytest.approx(list(bootstrap_interval(per_image["iou"] > 0.5, seed=42)))
    assert set(saved["baselines"]["mean_box"]["intervals"]) == {"mean_iou", "acc_50", "acc_75", "acc_50_95"}
    table = pd.read_csv(predictions)
    assert table["file"].tolist() == [str(image)] and (table["width"].item(), table["height"].item()) == (160, 120)


@pytest.mark.parametrize("where", ["draw", "out"])
def test_predict_never_writes_over_its_inputs_even_with_overwrite(tmp_path, capsys, where):
    # issue 28, kind 6: `predict PHOTOS --draw PHOTOS --overwrite` once replaced the photos by drawings.
    from PIL import Image
    photos = tmp_path / "photos"
    photos.mkdir()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(photos / "a.png")
    before = (photos / "a.png").read_bytes()
    target = ["--draw", str(photos)] if where == "draw" else ["--out", str(photos / "a.png")]
    # The check comes before the checkpoint is read: a missing checkpoint is never reached.
    code = cli.main(["predict", "--checkpoint", str(tmp_path / "missing.pt"), str(photos / "a.png"), *target,
                     "--overwrite"])
    assert code != 0
    assert "a.png" in capsys.readouterr().err
    assert (photos / "a.png").read_bytes() == before


def test_predict_writes_the_confidence_and_flags_the_photos_below_a_threshold(checkpoint, synthetic_data, tmp_path):
    image = str(synthetic_data / "yolo" / "images" / "animal_001.jpg")
    plain, flagged = tmp_path / "plain.csv", tmp_path / "flagged.csv"
    assert cli.main(["predict", "--checkpoint", str(checkpoint), image, "--quiet", "--out", str(plain)]) == 0
    table = pd.read_csv(plain)
    assert "flagged" not in table and 0 <= table["confidence"].item() <= 1
    confidence = table["confidence"].item()  # 3 decimals: 0.01 either side is clearly below or above
    for threshold, expected in ((confidence + 0.01, True), (confidence - 0.01, False)):
        assert cli.main(["predict", "--checkpoint", str(checkpoint), image, "--quiet", "--out", str(flagged),
                         "--overwrite", "--flag-below", f"{threshold:.3f}"]) == 0
        again = pd.read_csv(flagged)
        assert again["confidence"].item() == confidence and again["flagged"].item() is expected
    assert cli.main(["predict", "--checkpoint", str(checkpoint), image, "--flag-below", "high"]) == 2


def test_the_validation_threshold_is_the_lowest_confidence_of_the_most_confident_80_percent(checkpoint, tmp_path):
    import json
    import math

    run = checkpoint.parent.parent
    val = tmp_path / "val.json"
    assert cli.main(["evaluate", "--checkpoint", str(checkpoint), "--split", "val", "--quiet", "--out", str(val)]) == 0
    confidence = pd.read_csv(val.with_suffix(".csv"))["confidence"].sort_values(ascending=False).tolist()
    image = run.parent / "image.png"
    from PIL import Image
    Image.new("RGB", (40, 30), (120, 90, 60)).save(image)
    out = tmp_path / "predicted.csv"
    assert cli.main(["predict", "--checkpoint", str(checkpoint), str(image), "--quiet", "--out", str(out),
                     "--flag-below"]) == 0
    stored = json.loads((run / "metrics_val_confidence.json").read_text())
    # 6 validation photos: the 5 (ceil(0.8 x 6)) most confident are kept, the 5th's confidence is the threshold
    assert (stored["n"], stored["coverage"]) == (6, 0.8)
    assert stored["threshold"] == pytest.approx(confidence[math.ceil(0.8 * 6) - 1], abs=1e-6)
    assert pd.read_csv(out)["flagged"].dtype == bool
    written = (run / "metrics_val_confidence.json").stat().st_mtime_ns
    assert cli.main(["predict", "--checkpoint", str(checkpoint), str(image), "--quiet", "--out", str(out),
                     "--overwrite", "--flag-below"]) == 0
    assert (run / "metrics_val_confidence.json").stat().st_mtime_ns == written  # kept for the same checkpoint
    (run / "metrics_val_confidence.json").write_text(json.dumps(stored | {"confidence_rule": "an older rule"}))
    assert cli.main(["predict", "--checkpoint", str(checkpoint), str(image), "--quiet", "--out", str(out),
                     "--overwrite", "--flag-below"]) == 0
    assert json.loads((run / "metrics_val_confidence.json").read_text()) == stored  # chosen again, with today's rule


def test_review_lists_confident_misses_first_and_draws_them(checkpoint, tmp_path, capsys):
    run = checkpoint.parent.parent
    out = tmp_path / "review"
    assert cli.main(["review", str(run), "--split", "train,val", "--top", "3", "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "review.csv")
    assert len(table) == 28 + 6 and table["rank"].tolist() == list(range(1, 35))  # 40 photos split 70/15/15
    assert table["disagreement"].tolist() == pytest.approx((table["confidence"] * (1 - table["iou"])).tolist())
    assert table["disagreement"].is_monotonic_decreasing
    assert (table["seen_in_training"] == (table["split"] == "train")).all()
    assert (out / "label_review.jpg").stat().st_size > 0
    assert "ranked by confidence x (1 - IoU)" in capsys.readouterr().out
    assert cli.main(["review", str(run), "--out", str(out), "--quiet"]) == 2  # exists: --overwrite to replace it
    assert cli.main(["review", str(run), "--split", "valid", "--quiet"]) == 2
