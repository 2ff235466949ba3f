"""evaluate_model, predict_files and their guards with a model that always predicts the same box, on
photos written here: every IoU, baseline and pixel box below is computed by hand."""

import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from localizer.engine.evaluation import baseline_predictions, evaluate_model
from localizer.report.photos import spread_sample
from localizer.engine.prediction import drawing_paths, predict_files, refuse_overwriting_inputs
from localizer.errors import DataError

SIZE = 32


class ConstantModel(torch.nn.Module):
    """Predicts ``box`` (normalized xyxy) with the quality ``quality`` for every image and keeps the batches
    it was given."""

    def __init__(self, box, quality=1.0):
        super().__init__()
        self.box = torch.nn.Parameter(torch.tensor(box, dtype=torch.float32), requires_grad=False)
        self.backbone_name = "constant"
        self.quality, self.seen = quality, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.box.expand(len(x), 4)

    def predict(self, x):
        return self(x), torch.full((len(x),), self.quality)


def _photo(path, width, height, value=128, orientation=None):
    image = Image.new("RGB", (width, height), (value, value, value))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(path, exif=exif)
    return path


@pytest.fixture
def manifest(tmp_path):
    rows = [  # file, width, height, split, pixel xyxy box, animals annotated
        ("a.png", 100, 50, "test", (25, 12.5, 75, 37.5), 1),  # normalized [0.25, 0.25, 0.75, 0.75]
        ("b.png", 80, 80, "test", (0, 0, 40, 40), 2),  # normalized [0, 0, 0.5, 0.5]
        ("c.png", 60, 40, "train", (0, 0, 30, 40), 1),  # normalized [0, 0, 0.5, 1]
        ("d.png", 40, 60, "train", (20, 0, 40, 60), 1),  # normalized [0.5, 0, 1, 1]
    ]
    table = pd.DataFrame([{"file": f, "path": str(_photo(tmp_path / f, w, h)), "width": w, "height": h,
                           "split": s, "xmin": b[0], "ymin": b[1], "xmax": b[2], "ymax": b[3], "n_boxes": n}
                          for f, w, h, s, b, n in rows])
    return table


def test_evaluate_scores_model_and_baselines_by_hand(manifest, tmp_path):
    model = ConstantModel([0.25, 0.25, 0.75, 0.75])
    metrics, per_image = evaluate_model(model, manifest, SIZE, cache_dir=str(tmp_path / "cache"),
                                        progress=False)
    # a: the same box, IoU 1; b: intersection 0.25^2 over 0.25 + 0.25 - 0.0625, i.e. 1/7
    assert per_image["iou"].tolist() == pytest.approx([1.0, 1 / 7], abs=1e-6)
    assert metrics["mean_iou"] == pytest.approx(4 / 7, abs=1e-6)
    assert (metrics["acc_50"], metrics["acc_75"], metrics["acc_50_95"], metrics["n"]) == (0.5, 0.5, 0.5, 2)
    assert (metrics["split"], metrics["tta"]) == ("test", False)
    # predicted pixels of each original photo: 100 x 50 and 80 x 80
    assert per_image[["pred_xmin", "pred_ymin", "pred_xmax", "pred_ymax"]].to_numpy().ravel().tolist() == (
        pytest.approx([25, 12.5, 75, 37.5, 20, 20, 60, 60]))
    assert per_image["n_boxes"].tolist() == [1, 2]
    # mean box of the train rows: [0.25, 0, 0.75, 1]. a: 0.25 / (0.5 + 0.25 - 0.25) = 0.5 (not > 0.5);
    # b: 0.25 x 0.5 / (0.5 + 0.25 - 0.125) = 0.2
    mean_box = metrics["baselines"]["mean_box"]
    assert mean_box["mean_iou"] == pytest.approx(0.35, abs=1e-6)
    assert (mean_box["acc_50"], mean_box["n"]) == (0.0, 2)
    # 95 % bootstrap intervals over the 2 photos: a resample of (1, 1/7) has mean 1/7, 4/7 or 1 with
    # probabilities 1/4, 1/2, 1/4, so the 2.5th and 97.5th percentiles of 1,000 are 1/7 and 1
    assert metrics["intervals"]["mean_iou"] == pytest.approx([1 / 7, 1.0], abs=1e-6)
    assert metrics["intervals"]["acc_50"] == [0.0, 1.0]  # hits (1, 0)
    assert mean_box["intervals"]["mean_iou"] == pytest.approx([0.2, 0.5], abs=1e-6)
    assert mean_box["intervals"]["acc_50"] == [0.0, 0.0]  # no hit: a constant sample
    assert set(metrics["baselines"]["random_box"]["intervals"]) == {"mean_iou", "acc_50", "acc_75", "acc_50_95"}
    assert metrics["bootstrap"] == {"method": "percentile", "confidence": 0.95, "resamples": 1000, "seed": 0}
    # the model saw the photos resized to SIZE in [0, 1]: 128 / 255, mirrored and zoomed out by 0.9 (for the
    # confidence), whose border is training's grey 0.5
    batch, mirrored, zoomed = model.seen
    assert batch.shape == (2, 3, SIZE, SIZE) and torch.equal(mirrored, batch.flip(-1))
    assert torch.allclose(batch, torch.full_like(batch, 128 / 255), atol=1e-6)
    assert torch.allclose(zoomed[..., 8:24, 8:24], batch[..., 8:24, 8:24], atol=1e-5)
    assert (zoomed[..., 0, :] - 0.5).abs().max() < 1e-6
    # the box and its mirror are the same (flip IoU 1); the zoomed-out view's box mapped back is
    # [2/9, 2/9, 7/9, 7/9]: IoU (0.5 / (5/9))^2 = 0.81; min 0.81, times the quality 1
    assert per_image["confidence"].tolist() == pytest.approx([0.81, 0.81], abs=1e-5)
    half = dict(metrics["confidence"]["risk_coverage"][0])
    assert half.pop("tied") is True  # the photo left out has the same 0.81
    assert half == pytest.approx({"coverage": 0.5, "photos": 1, "acc_50": 1.0, "mean_iou": 1.0, "min_confidence": 0.81},
                                 abs=1e-5)
    assert math.isnan(metrics["confidence"]["spearman"])  # a constant confidence ranks nothing


def test_evaluate_with_a_given_mean_box_and_every_row(manifest, tmp_path):
    model = ConstantModel([0.25, 0.25, 0.75, 0.75])
    metrics, per_image = evaluate_model(model, manifest, SIZE, split="all", progress=False,
                                        cache_dir=str(tmp_path / "cache"), mean_box=[0, 0, 0.5, 0.5])
    assert metrics["n"] == 4 and per_image["file"].tolist() == ["a.png", "b.png", "c.png", "d.png"]
    # c: [0, 0, 0.5, 1] against [0.25, 0.25, 0.75, 0.75]: 0.125 / (0.5 + 0.25 - 0.125) = 0.2; d likewise
    assert per_image["iou"].tolist() == pytest.approx([1.0, 1 / 7, 0.2, 0.2], abs=1e-6)
    # the mean-box baseline [0, 0, 0.5, 0.5]: a 1/7, b 1, c 0.5, d 0
    assert metrics["baselines"]["mean_box"]["mean_iou"] == pytest.approx((1 / 7 + 1 + 0.5 + 0) / 4, abs=1e-6)


def test_evaluate_refuses_an_empty_split_and_a_missing_mean_box(manifest, tmp_path):
    model = ConstantModel([0.25, 0.25, 0.75, 0.75])
    with pytest.raises(DataError, match="empty-split: the manifest has no rows in split 'val'"):
        evaluate_model(model, manifest, SIZE, split="val", progress=False)
    with pytest.raises(DataError, match="no-training-boxes"):
        evaluate_model(model, manifest[manifest["split"] == "test"], SIZE, progress=False,
                       cache_dir=str(tmp_path / "cache"))


def test_random_box_baseline_is_seeded_and_valid():
    first, again, other = (baseline_predictions([0.1, 0.2, 0.3, 0.4], 50, seed)["random_box"] for seed in (0, 0, 1))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert (first[:, 0] <= first[:, 2]).all() and (first[:, 1] <= first[:, 3]).all()
    assert baseline_predictions([[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], 3)["mean_box"].tolist() == [[0.25, 0.25, 0.75, 0.75]] * 3


def test_predict_gives_pixel_boxes_of_each_oriented_photo(tmp_path):
    files = [_photo(tmp_path / "wide.png", 100, 50), _photo(tmp_path / "turned.jpg", 60, 40, orientation=6),
             tmp_path / "broken.jpg"]
    files[2].write_text("not a photo")
    table = predict_files(ConstantModel([0.25, 0.25, 0.75, 0.75]), files, SIZE, batch_size=1,
                          progress=False)
    assert table["file"].tolist() == [str(f) for f in files]
    # stored 60 x 40 with EXIF orientation 6 (rotate 90 degrees to display): 40 x 60 as displayed
    assert table[["width", "height"]].iloc[:2].to_numpy().tolist() == [[100, 50], [40, 60]]
    assert table[["xmin", "ymin", "xmax", "ymax"]].iloc[:2].to_numpy().tolist() == [[25, 12.5, 75, 37.5],
                                                                                   [10, 15, 30, 45]]
    assert table["error"].tolist()[:2] == ["", ""] and table["error"][2].startswith("not-an-image: ")


def test_predict_with_flip_tta_averages_boxes_that_agree(tmp_path):
    photo = _photo(tmp_path / "p.png", 200, 100)
    # [0.35, 0, 0.6, 1] and its mirror [0.4, 0, 0.65, 1] overlap with IoU 0.2 / 0.3 > 0.5: their mean
    table = predict_files(ConstantModel([0.35, 0.0, 0.6, 1.0]), [photo], SIZE, tta=True, progress=False)
    assert table[["xmin", "ymin", "xmax", "ymax"]].iloc[0].tolist() == pytest.approx([75, 0, 125, 100], abs=1e-4)
    # [0.1, 0, 0.3, 1] and [0.7, 0, 0.9, 1] do not overlap: the plain box
    table = predict_files(ConstantModel([0.1, 0.0, 0.3, 1.0]), [photo], SIZE, tta=True, progress=False)
    assert table[["xmin", "xmax"]].iloc[0].tolist() == pytest.approx([20, 60], abs=1e-4)


class BrightnessModel(ConstantModel):
    """A box that agrees with its other views (the whole photo: its own mirror, and the zoomed-out view's box
    mapped back, clamped to the photo), and the photo's brightness (0..1) as its quality: the confidence."""

    def predict(self, x):
        return self(x), x.mean(dim=(1, 2, 3))


def test_predict_writes_each_photo_s_confidence_and_flags_those_below_a_threshold(tmp_path):
    files = [_photo(tmp_path / f"{v}.png", 40, 30, value=v) for v in (51, 153, 204)] + [tmp_path / "broken.jpg"]
    files[-1].write_text("not a photo")
    model = BrightnessModel([0.0, 0.0, 1.0, 1.0])
    table = predict_files(model, files, SIZE, progress=False, flag_below=0.5)
    # agreement 1 times the quality: brightness 51 / 255 = 0.2, 0.6, 0.8
    assert table["confidence"].tolist()[:3] == pytest.approx([0.2, 0.6, 0.8], abs=1e-6)
    assert table["flagged"].tolist()[:3] == [True, False, False] and pd.isna(table["flagged"][3])
    assert "flagged" not in predict_files(model, files[:1], SIZE, progress=False)


def test_predict_draws_the_box_in_red_beside_the_photos(tmp_path):
    (tmp_path / "photos").mkdir()
    photo = _photo(tmp_path / "photos" / "p.png", 100, 50, value=0)
    predict_files(ConstantModel([0.25, 0.25, 0.75, 0.75]), [photo], SIZE, draw_dir=tmp_path / "drawn",
                  progress=False)
    drawing = np.asarray(Image.open(tmp_path / "drawn" / "p.png"))
    assert drawing.shape == (50, 100, 3)
    assert drawing[25, 25].tolist() == [255, 0, 0]  # the left side of the box, x = 25
    assert drawing[25, 50].tolist() == [0, 0, 0]  # inside the box, the photo itself
    assert np.asarray(Image.open(photo)).max() == 0  # the photo is untouched


def test_no_output_may_replace_an_input(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    files = [_photo(photos / "a.png", 20, 20), _photo(photos / "b.png", 20, 20)]
    model = ConstantModel([0.25, 0.25, 0.75, 0.75])
    (tmp_path / "link").symlink_to(photos)
    os.link(files[1], tmp_path / "hard.png")
    for draw_dir in (photos, photos / ".." / "photos", tmp_path / "link"):
        with pytest.raises(DataError, match=r"photos/a\.png: would-overwrite-input: its drawing \(--draw "):
            predict_files(model, files, SIZE, draw_dir=draw_dir, progress=False)
    assert model.seen == []  # refused before anything was predicted or written
    with pytest.raises(DataError, match=r"photos/b\.png: would-overwrite-input: the predictions table \(--out "):
        refuse_overwriting_inputs(files, out=tmp_path / "hard.png")
    refuse_overwriting_inputs(files, draw_dir=tmp_path / "drawn", out=tmp_path / "boxes.csv")  # apart: allowed
    assert list(drawing_paths(files, tmp_path / "drawn").values()) == [tmp_path / "drawn" / "a.png",
                                                                     tmp_path / "drawn" / "b.png"]


def test_spread_sample_draws_one_row_per_rank_band():
    table = pd.DataFrame({"file": [f"{i}.jpg" for i in range(20)], "iou": np.arange(20)[::-1] / 20})
    # 20 ranks in 8 bands by pandas.qcut: sizes 3, 2, 3, 2, 2, 3, 2, 3
    starts = np.cumsum([0, 3, 2, 3, 2, 2, 3, 2, 3])
    for seed in range(5):
        ranks = (spread_sample(table, n=8, seed=seed)["iou"].to_numpy() * 20).round().astype(int)
        assert [int(np.searchsorted(starts, r, side="right")) - 1 for r in ranks] == list(range(8))
    picks = {tuple(spread_sample(table, n=8, seed=seed)["file"]) for seed in range(5)}
    assert len(picks) > 1  # the seed matters
