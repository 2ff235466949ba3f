"""ONNX export (``python -m localizer export``) and prediction with onnxruntime (``predict --checkpoint MODEL.onnx``):
the exported graph gives PyTorch's boxes and confidence within 1e-4, for every head the recipes use, with and
without flip TTA; a model that is not exact is refused and nothing is left written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import fit, scan

from localizer import cli
from localizer.engine import export
from localizer.engine.checkpoints import load_model
from localizer.engine.export import (TOLERANCE, ExportError, ExportedLocalizer, export_onnx, probe_images,
                                     sidecar_path)
from localizer.engine.prediction import predict_files
from localizer.engine.review import flag_threshold
from localizer.engine.run import Run
from localizer.errors import DataError
from localizer.files import OutputError
from localizer.model.detection import largest_cell
from localizer.model.models import build_model
from localizer.recipe import TrainConfig

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")

from localizer.engine.onnx_model import OnnxLocalizer  # noqa: E402 (needs onnxruntime only when run)

#: The heads of the recipes (report: linear on ResNet18; quick: softargmax; best and small: largest).
HEADS = {"linear": "resnet18", "softargmax": "efficientnet_lite0", "largest": "efficientnet_lite0"}


@pytest.fixture(scope="module")
def trained(synthetic_data, tmp_path_factory):
    """``trained(head)``: ``best.pt`` of a one-epoch run of 24 synthetic photos at 64 px (no pretrained weights)
    with ``head`` (flip TTA in the recipe but for ``linear``), trained once per module."""
    runs = {}

    def checkpoint(head: str):
        if head not in runs:
            root = tmp_path_factory.mktemp(f"export-{head}")
            config = TrainConfig(data=str(synthetic_data / "yolo"), image_size=64, epochs=1, batch_size=8,
                                 backbone=HEADS[head], weights=None, head=head, subset=24, workers=0,
                                 cache_dir=str(root / "cache"), tta=head != "linear")
            fit(config, root / "run", progress=False)
            runs[head] = root / "run" / "checkpoints" / "best.pt"
        return runs[head]

    return checkpoint


def photos(synthetic_data, count: int = 5) -> list:
    """Photos the test draws: the first ``count`` synthetic photos (160 x 120 px and others)."""
    return sorted((synthetic_data / "yolo" / "images").glob("*.jpg"))[:count]


@pytest.mark.parametrize("head", list(HEADS))
def test_export_gives_pytorch_boxes_and_confidence_for_each_head(head, trained, synthetic_data):
    run_checkpoint = trained(head)
    about = export_onnx(run_checkpoint)
    onnx_path = run_checkpoint.with_suffix(".onnx")
    described = json.loads((onnx_path.parent / "best.onnx.json").read_text())
    assert described == json.loads(json.dumps(about)) and described["max_abs_difference"] <= TOLERANCE
    assert described["input"]["shape"] == ["N", 3, 64, 64] and described["input"]["channels"] == "RGB"
    model, info = load_model(run_checkpoint, "cpu")
    assert described["tta"] == info["config"].tta and described["boxes_output"] == ("boxes_tta" if info[
        "config"].tta else "boxes")
    exported, files = OnnxLocalizer(onnx_path), photos(synthetic_data)
    for tta in (False, True):
        expected = predict_files(model, files, 64, tta=tta, progress=False)  # float32 (this CPU's numerics)
        got = predict_files(exported, files, 64, tta=tta, progress=False)
        sides = expected[["width", "height", "width", "height"]].to_numpy(float)
        pixels = np.abs(got[["xmin", "ymin", "xmax", "ymax"]].to_numpy(float) -
                        expected[["xmin", "ymin", "xmax", "ymax"]].to_numpy(float))
        assert (pixels / sides).max() <= TOLERANCE, f"tta={tta}"
        assert np.abs(got["confidence"] - expected["confidence"]).max() <= TOLERANCE
        assert got["file"].tolist() == expected["file"].tolist()


def test_the_largest_head_exports_its_data_dependent_choice_exactly(tmp_path):
    # The scores' bias set between the photos' best cells, so that one photo of the probe detects an animal and the
    # others do not: detection, non-maximum suppression and the choice of the largest detection run in the graph,
    # traced on a batch with a detection and on one without, run on batches with and without, of other sizes.
    # (ResNet18: an untrained EfficientNet-Lite's features are ~1e-9, every score alike.)
    torch.manual_seed(0)
    model = build_model("resnet18", weights=None, dropout=0.2, head="largest", image_size=96).eval()
    images = probe_images(96, count=5, seed=3)  # three noise photos, a ramp, grey
    with torch.no_grad():
        features = model.feature_map(images)
        best = model.head.outputs(features)[2].max(dim=1).values.sort(descending=True).values
        model.head.animals.scores.bias -= (best[0] + best[1]) / 2  # only the best-scoring photo's cell passes
        _, cell_logits, scores = model.head.outputs(features)
        chosen = largest_cell(model.head.box(features), model.head.animals.boxes(cell_logits), scores)
    assert (chosen >= 0).sum() == 1 and scores.sigmoid().sub(0.5).abs().min() > 1e-5
    module, path = ExportedLocalizer(model), tmp_path / "largest.onnx"
    found, none = int((chosen >= 0).nonzero()), [i for i in range(5) if chosen[i] < 0]
    for traced in ([found, none[0]], none[:2]):
        export._write_onnx(module, path, images[traced])
        for batch in (images, images[none], images[[found]], images[none[:1]]):
            assert export.max_difference(path, module, batch) <= TOLERANCE


def test_an_inexact_export_is_refused_and_nothing_is_left(trained, tmp_path, monkeypatch):
    run_checkpoint = trained("largest")
    monkeypatch.setattr(export, "max_difference", lambda *args: 0.003)
    out = tmp_path / "model.onnx"
    with pytest.raises(ExportError, match=r"differ from PyTorch's by 0\.003 on a probe batch \(allowed: 0\.0001\)"):
        export_onnx(run_checkpoint, out)
    assert list(tmp_path.iterdir()) == []


def test_an_op_the_exporter_lacks_is_refused_with_its_reason(trained, tmp_path, monkeypatch):
    run_checkpoint = trained("softargmax")

    def unsupported(module, args, path, **kwargs):
        open(path, "wb").write(b"partial")
        raise torch.onnx.OnnxExporterError("Unsupported: ONNX export of operator foo_bar\nmore lines")

    monkeypatch.setattr(torch.onnx, "export", unsupported)
    with pytest.raises(ExportError, match="torch.onnx.export cannot export it: Unsupported: ONNX export of operator "
                                          "foo_bar$"):
        export_onnx(run_checkpoint, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_and_predict_on_the_command_line(trained, synthetic_data, tmp_path, capsys):
    run_checkpoint = trained("softargmax")
    out = tmp_path / "m.onnx"
    assert cli.main(["export", "--checkpoint", str(run_checkpoint), "--out", str(out)]) == 0
    assert "largest difference from PyTorch" in capsys.readouterr().out
    assert cli.main(["export", "--checkpoint", str(run_checkpoint), "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    files = [str(p) for p in photos(synthetic_data, 3)]
    tables = {}
    for model in (run_checkpoint, out):
        csv = tmp_path / f"{model.suffix[1:]}.csv"
        assert cli.main(["predict", "--checkpoint", str(model), *files, "--quiet", "--out", str(csv),
                         "--flag-below", "0.5", "--draw", str(tmp_path / f"draw-{model.suffix[1:]}")]) == 0
        tables[model.suffix] = pd.read_csv(csv)
    # the tables round to 0.1 px and 0.001: equal but for a rounding at a boundary
    columns = ["xmin", "ymin", "xmax", "ymax", "confidence"]
    assert np.abs(tables[".pt"][columns] - tables[".onnx"][columns]).max().max() <= 0.1 + 1e-9
    assert tables[".pt"]["flagged"].tolist() == tables[".onnx"]["flagged"].tolist()
    assert len(list((tmp_path / "draw-onnx").iterdir())) == 3
    # the export chose the run's validation threshold: --flag-below needs no number, as with the .pt
    threshold = flag_threshold(Run.of_checkpoint(run_checkpoint))["threshold"]
    assert json.loads(sidecar_path(out).read_text())["flag_threshold"] == threshold
    assert cli.main(["predict", "--checkpoint", str(out), files[0], "--flag-below"]) == 0
    assert f"below {threshold:.3f}" in capsys.readouterr().out
    annotations = tmp_path / "voc"
    assert cli.main(["predict", "--checkpoint", str(out), *files, "--quiet", "--annotations", "voc",
                     str(annotations)]) == 0
    for file in files:  # the photos beside their XMLs, read back by the VOC reader
        (annotations / "JPEGImages").mkdir(exist_ok=True)
        (annotations / "JPEGImages" / Path(file).name).write_bytes(Path(file).read_bytes())
    read = scan(annotations, fmt="voc").table
    read = read.assign(file=[Path(f).name for f in read["file"]]).set_index("file")
    table = tables[".onnx"].assign(file=[Path(f).name for f in tables[".onnx"]["file"]]).set_index("file")
    assert np.abs(read.loc[table.index, ["xmin", "ymin", "xmax", "ymax"]] - table[["xmin", "ymin", "xmax", "ymax"]]
                  ).max().max() <= 0.5 + 0.05  # VOC's whole pixels, of boxes rounded to 0.1 px in the CSV


def test_export_writes_only_an_onnx_name_and_never_over_the_run(trained, tmp_path):
    run_checkpoint = trained("softargmax")
    with pytest.raises(DataError, match=r"give an \.onnx name .* e\.g\. --out .*model\.onnx"):
        export_onnx(run_checkpoint, tmp_path / "model.pt")
    last = run_checkpoint.parent / "last.pt"
    before = last.read_bytes()
    last_onnx = run_checkpoint.parent / "last.onnx"
    last_onnx.symlink_to(last)  # an .onnx name that is the run's last.pt
    with pytest.raises(OutputError, match="would be written over"):
        export_onnx(run_checkpoint, last_onnx, overwrite=True)
    last_onnx.unlink()
    assert last.read_bytes() == before and list(tmp_path.iterdir()) == []


def test_a_checkpoint_outside_a_run_exports_without_a_threshold(trained, synthetic_data, tmp_path, capsys):
    alone = tmp_path / "best.pt"  # no run folder around it: no validation split to choose a threshold on
    alone.write_bytes(trained("softargmax").read_bytes())
    assert cli.main(["export", "--checkpoint", str(alone)]) == 0
    assert "flag threshold: none" in capsys.readouterr().out
    assert json.loads(sidecar_path(alone.with_suffix(".onnx")).read_text())["flag_threshold"] is None
    photo = str(photos(synthetic_data, 1)[0])
    assert cli.main(["predict", "--checkpoint", str(alone.with_suffix(".onnx")), photo, "--flag-below"]) == 2
    assert "its export has no threshold" in capsys.readouterr().err
