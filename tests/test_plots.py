"""Quick tests of the report figures on synthetic data (Agg backend, no dataset needed)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from PIL import Image  # noqa: E402

from localizer.report import exploration, photos, plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _history(lrs):
    n = len(lrs)
    epochs = np.arange(1, n + 1)
    return pd.DataFrame({
        "epoch": epochs, "step": 54 * epochs, "train_loss": 0.1 / epochs, "val_loss": 0.12 / epochs,
        "train_iou": np.linspace(0.3, 0.8, n), "val_iou": np.linspace(0.3, 0.7, n),
        "lr": lrs, "seconds": np.full(n, 1.5),
    })


def _table(n=50, seed=0):
    rng = np.random.default_rng(seed)
    width, height = rng.integers(200, 600, n), rng.integers(200, 600, n)
    x0, y0 = rng.uniform(0, 0.4, n) * width, rng.uniform(0, 0.4, n) * height
    x1, y1 = x0 + rng.uniform(0.2, 0.6, n) * width, y0 + rng.uniform(0.2, 0.6, n) * height
    return pd.DataFrame({"width": width, "height": height, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1})


def _lines(fig, gid):
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == gid]


def _rects(ax):
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() in (plots.GID_GT, plots.GID_PRED)]


def test_a_saved_figure_has_the_format_its_report_name_says_and_the_photo_in_it(tmp_path):
    blue = np.zeros((60, 80, 3), dtype=np.uint8)
    blue[..., 2] = 255
    grid = plots.plot_samples([(blue, None, None)], legend=False)
    plots.save_figure(grid, tmp_path / plots.FIGURE_NAMES["samples"])
    with Image.open(tmp_path / "figure2_test_samples.jpg") as saved:
        assert saved.format == "JPEG"
        width, height = saved.size
        centre = np.asarray(saved.convert("RGB"))[height // 2, width // 2].astype(int)
    assert abs(centre - [0, 0, 255]).max() <= 8  # the photo, through JPEG at quality 90
    # the 80 x 60 photo in its frame (3% of 80 px a side) fills the tight bounding box, which
    # matplotlib pads by 0.1 inch a side: (80 + 4.8) / (60 + 4.8) wide per high
    pad = 2 * 0.1 * photos.DPI
    assert (width - pad) / (height - pad) == pytest.approx(84.8 / 64.8, abs=0.01)
    plots.save_figure(plots.plot_iou_histogram([0.2, 0.8]), tmp_path / plots.FIGURE_NAMES["histogram"])
    with Image.open(tmp_path / "figure3_iou_histogram.png") as saved:
        assert saved.format == "PNG"
    with pytest.raises(ValueError, match=r"f\.gif: save figures as \.png or \.jpg, not \.gif"):
        plots.save_figure(grid, tmp_path / "f.gif")


def test_box_statistics_values_and_figure(tmp_path):
    table = pd.DataFrame({"width": [200], "height": [100], "xmin": [50.0], "ymin": [10.0],
                          "xmax": [150.0], "ymax": [60.0]})
    stats = exploration.box_statistics(table).iloc[0]
    assert stats["box_width"] == pytest.approx(0.5) and stats["box_height"] == pytest.approx(0.5)
    assert stats["aspect_ratio"] == pytest.approx(2.0)
    assert (stats["center_x"], stats["center_y"]) == pytest.approx((0.5, 0.35))
    assert stats["relative_area"] == pytest.approx(0.25)

    path = tmp_path / "sub" / "stats.png"
    fig = exploration.plot_box_statistics(_table(), path=path)
    assert len(fig.axes) == 6
    assert path.is_file() and path.stat().st_size > 0


def test_training_curves_marks_exactly_the_lr_drops(tmp_path):
    history = _history([1e-3, 1e-3, 1e-3, 1e-4, 1e-4])
    drops = plots.lr_drops(history)
    assert drops["epoch"].tolist() == [4]
    fig = plots.plot_training_curves(history, path=tmp_path / "f1.png")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        xs = [line.get_xdata()[0] for line in ax.get_lines() if line.get_gid() == plots.GID_LR_DROP]
        assert xs == [4]
        assert ax.get_lines()[-1].get_linestyle() == ":"
        assert "learning-rate drop" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert (tmp_path / "f1.png").is_file()


def test_training_curves_label_the_epochs_with_their_optimizer_updates():
    fig = plots.plot_training_curves(_history([1e-3] * 13), schedule="cosine")
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch (54 optimizer updates each; 702 after epoch 13)"] * 2


def test_training_curves_two_drops_and_none():
    fig = plots.plot_training_curves(_history([1e-3, 1e-4, 1e-4, 1e-5, 1e-5, 1e-5]))
    assert sorted(line.get_xdata()[0] for line in _lines(fig, plots.GID_LR_DROP)) == [2, 2, 4, 4]
    fig = plots.plot_training_curves(_history([1e-3]))  # one epoch: no drop, no crash
    assert _lines(fig, plots.GID_LR_DROP) == []


def test_iou_histogram_bars_mean_line_and_threshold(tmp_path):
    ious = [0.02, 0.07, 0.08, 0.5, 0.51, 0.93, 0.99, 1.0]
    fig = plots.plot_iou_histogram(ious, path=tmp_path / "f3.png")
    (ax,) = fig.axes
    heights = [int(bar.get_height()) for bar in ax.patches]
    # bins of 0.05: [0, 0.05) 1, [0.05, 0.1) 2, [0.5, 0.55) 2 (0.5 is a left edge), [0.9, 0.95) 1, [0.95, 1] 2
    assert heights == [1, 2] + [0] * 8 + [2] + [0] * 7 + [1, 2]
    assert ax.get_title() == "IoU on the test split (n = 8)"
    (mean_line,) = _lines(fig, plots.GID_MEAN)
    assert mean_line.get_xdata()[0] == pytest.approx(0.5125)
    assert mean_line.get_linestyle() == "--" and to_rgba(mean_line.get_color()) == to_rgba("red")
    assert mean_line.get_label() == "mean IoU 0.51"
    (threshold_line,) = _lines(fig, plots.GID_THRESHOLD)
    assert threshold_line.get_xdata()[0] == 0.5 and threshold_line.get_linestyle() == ":"
    # 0.5 itself is not above 0.5 (PASCAL VOC: IoU > 0.5): 4 of 8
    assert threshold_line.get_label() == "IoU 0.5 (PASCAL VOC): 50.0% above"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["mean IoU 0.51", "IoU 0.5 (PASCAL VOC): 50.0% above"]
    assert (tmp_path / "f3.png").is_file()


def test_samples_draw_white_solid_gt_and_red_dashed_pred(tmp_path):
    array = np.zeros((60, 80, 3), dtype=np.uint8)
    items = [
        (Image.fromarray(array), (10, 5, 50, 40), (12, 8, 55, 45)),
        (array, [0, 0, 80, 60], None),
        (torch.zeros(3, 60, 80, dtype=torch.uint8), None, torch.tensor([[1.0, 2.0, 30.0, 40.0]])),
    ]
    fig = plots.plot_samples(items, ncols=2, titles=["IoU 0.83", "b", "c"], path=tmp_path / "s.png")
    assert len(fig.axes) == 3  # the empty fourth panel is removed
    assert [ax.get_title() for ax in fig.axes] == ["IoU 0.83", "b", "c"]
    assert all(ax.get_xticks().size == 0 and ax.get_yticks().size == 0 for ax in fig.axes)  # photos, no axes

    gt, pred = _rects(fig.axes[0])
    assert gt.get_gid() == plots.GID_GT and to_rgba(gt.get_edgecolor()) == to_rgba("white")
    assert gt.get_linestyle() == "-" and not gt.get_fill()
    assert (gt.get_x(), gt.get_y(), gt.get_width(), gt.get_height()) == (10, 5, 40, 35)
    assert pred.get_gid() == plots.GID_PRED and to_rgba(pred.get_edgecolor()) == to_rgba("red")
    assert pred.get_linestyle() == "--"
    assert (pred.get_x(), pred.get_y(), pred.get_width(), pred.get_height()) == (12, 8, 43, 37)
    assert [r.get_gid() for r in _rects(fig.axes[1])] == [plots.GID_GT]
    (only_pred,) = _rects(fig.axes[2])
    assert only_pred.get_gid() == plots.GID_PRED and only_pred.get_xy() == (1.0, 2.0)
    assert (tmp_path / "s.png").is_file()


def test_samples_rejects_bad_input():
    with pytest.raises(ValueError):
        plots.plot_samples([])
    with pytest.raises(ValueError):
        plots.plot_samples([(np.zeros((4, 4, 3), np.uint8), None, None)], titles=["a", "b"])


def test_smooth_cosine_decay_is_not_marked_as_drops():
    lrs = [1e-3 * (1 + np.cos(np.pi * t / 16)) / 2 for t in range(16)]
    assert plots.lr_drops(_history(lrs))["epoch"].tolist() == []
    # steps of a piecewise-constant schedule are found, however small the epochs before them
    assert plots.lr_drops(_history([1e-3, 1e-3, 1e-4, 1e-4, 1e-5]))["epoch"].tolist() == [3, 5]
