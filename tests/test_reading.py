"""What a student reads: the terminal of a headless run, the notebooks' generated narration and
tables, the report figures, the published notebooks in report/, and what evaluate and predict print."""

import io
import os
from argparse import Namespace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from localizer import cli
from localizer.data.scans import load_scan, save_scan, scan_for
from localizer.report import narration, plots, runner
from localizer.report.notebook_runs import create_run, data_folder, notebook_recipe, repo_path
from localizer.data.download import REPO_ROOT, display_path
from localizer.errors import ConfigError, DataError
from localizer.report.photos import spread_sample
from localizer.report.tables import MEASUREMENT_MIN_IMAGES, by_animal_count, format_metrics
from localizer.progress import duration_text, progress_bar
from localizer.model.models import feature_grid
from localizer.recipe import TrainConfig, effective_lr, recipe_for
from localizer.engine.schedule import TrainingPlan, plan_for
from localizer.progress import epoch_line

REPORT = REPO_ROOT / "report"
FIGURES = REPO_ROOT / "figures"
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _history(lrs, val_iou=None):
    n = len(lrs)
    epochs = np.arange(1, n + 1)
    return pd.DataFrame({"epoch": epochs, "step": 54 * epochs, "train_loss": 0.1 / epochs, "val_loss": 0.12 / epochs,
                         "train_iou": np.linspace(0.3, 0.8, n),
                         "val_iou": np.linspace(0.3, 0.7, n) if val_iou is None else val_iou,
                         "lr": lrs, "seconds": np.full(n, 61.4)})


# ----------------------------------------------------------------------------- terminal
def test_epoch_line_gives_losses_iou_seconds_and_time_left():
    row = {"epoch": 3, "step": 162, "train_loss": 0.42101, "val_loss": 0.30119, "train_iou": 0.7,
           "val_iou": 0.78149, "lr": 9.0e-4, "seconds": 58.4}
    lion_quick = TrainingPlan(epochs=13, updates_per_epoch=54, updates=702, n_train=1698)
    assert epoch_line(row, lion_quick, 464.0) == (
        "epoch  3/13 (step 162/702)  train loss 0.4210  val loss 0.3012  val IoU 0.781  lr 9.0e-04  58 s  "
        "(7 min 44 s left)")
    assert epoch_line(row, TrainingPlan(3, 54, 162, 1698), 0.0).endswith("58 s  (done)")
    assert epoch_line(row, TrainingPlan(9, 54, 486, 1698)).endswith("58 s")
    assert epoch_line({**row, "step": 54}, lion_quick).startswith("epoch  3/13 (step  54/702)  train")


def test_durations_read_in_the_unit_that_fits():
    assert [duration_text(t) for t in (3.2, 59.6, 73, 600, 3725)] == ["3 s", "1 min 0 s", "1 min 13 s", "10 min 0 s",
                                                                       "1 h 2 min"]
    assert epoch_line({"epoch": 1, "step": 3, "train_loss": 0.2, "val_loss": 0.3, "train_iou": 0.1, "val_iou": 0.2,
                       "lr": 1e-3, "seconds": 2.4}, TrainingPlan(2, 3, 6, 35), 2.4).endswith("2 s  (2 s left)")


def test_headless_environment_turns_tqdm_off_and_restores_it(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "0")
    with runner._headless_environment():
        assert os.environ["TQDM_DISABLE"] == "1"
    assert os.environ["TQDM_DISABLE"] == "0"
    monkeypatch.delenv("TQDM_DISABLE")
    with runner._headless_environment():
        assert os.environ["TQDM_DISABLE"] == "1"
    assert "TQDM_DISABLE" not in os.environ


def test_a_vanishing_bar_written_to_a_file_ends_its_line(monkeypatch):
    # evaluate's "predicting" bar (leave=False) piped into a log: the table printed next must start a line
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    log = io.StringIO()
    for _ in progress_bar(range(3), file=log, desc="predicting", leave=False):
        pass
    assert log.getvalue().endswith("\n") and "3/3" in log.getvalue().splitlines()[-1]

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    for _ in progress_bar(range(3), file=screen, desc="predicting", leave=False):
        pass
    assert not screen.getvalue().endswith("\n")  # on a terminal it erases itself, as asked


def test_display_path_is_relative_inside_and_beside_the_repository():
    assert display_path(REPO_ROOT / "runs" / "report") == "runs/report"
    assert display_path(REPO_ROOT.parent / "shared" / "data" / "lion") == "../shared/data/lion"
    assert display_path("/") == "/"


# ----------------------------------------------------------------------------- narration
#: Recipes that differ in every choice the narration names.
RECIPES = [recipe_for("report"), recipe_for("quick"), recipe_for("quick", dfl=0.5, epochs=13, batch_size=64),
           recipe_for("best", schedule="plateau", affine_p=0.0), recipe_for("smoke", seed=7, split="export")]


@pytest.mark.parametrize("config", RECIPES, ids=lambda c: f"{c.backbone}-{c.head}-{c.loss}-{c.schedule}")
def test_narration_names_this_recipes_values_and_no_other_option(config):
    training = narration.describe_training(config)
    assert (narration.loss_name(config) in training) and (("GIoU" in training) == (config.loss == "giou"))
    assert ("focal" in training) == (config.dfl > 0) and (f"{config.dfl:g} ×" in training) == (config.dfl > 0)
    assert ("ReduceLROnPlateau" in training) == (config.schedule == "plateau")
    assert ("cosine" in training) == (config.schedule == "cosine")
    assert f"learning rate {effective_lr(config):.1e}" in training and f"batch {config.batch_size};" in training
    assert ("scale + shift" in training) == (config.affine_p > 0)
    model = narration.describe_model(config)
    assert narration.BACKBONE_NAMES[config.backbone] in model
    assert ("largest detected animal" in model) == (config.head == "largest")
    grid = feature_grid(config.image_size)[0]
    assert f"{config.image_size} × {config.image_size} px" in narration.describe_input(config)
    assert f"{grid} × {grid} grid" in narration.describe_input(config)
    split = narration.describe_split(config)
    assert ("export" in split) == (config.split == "export")
    assert (f"`seed = {config.seed}`" in split) == (config.split != "export")
    assert (f"`subset = {config.subset}`" in split or f"at most {config.subset}" in split) == bool(config.subset)
    augmentation = narration.describe_augmentation(config)
    assert f"affine_p={config.affine_p:g}" in augmentation
    assert ("**not** scaled or shifted" in augmentation) == (config.affine_p == 0)


@pytest.mark.parametrize("n_train, epochs, why", [(1698, 13, "rounded"), (140, 100, "max_epochs=100"),
                                                  (5173, 4, "rounded"), (7400, 4, "min_epochs=4")])
def test_length_narration_gives_the_plans_numbers_and_the_rule_that_set_them(n_train, epochs, why):
    quick = TrainConfig(steps=700, min_epochs=4, max_epochs=100)  # batch 32: 1,698 photos are 54 updates an epoch
    plan = plan_for(quick, pd.DataFrame({"split": ["train"] * n_train}))
    assert plan.epochs == epochs
    text = narration.describe_length(quick, plan)
    assert f"{plan.epochs} epochs of {plan.updates_per_epoch} updates ({plan.updates:,} updates" in text
    assert f"on {n_train:,} training photos in batches of 32: {quick.steps / plan.updates_per_epoch:.1f} epochs" in text
    assert why in text and not [other for other in ("max_epochs", "min_epochs") if other in text and other not in why]
    # before the split is counted (notebook 03's recipe cell): the rule, no count
    assert f"`steps = {quick.steps}`" in narration.describe_training(quick) and "training photos in" not in \
        narration.describe_training(quick)
    report = TrainConfig(epochs=40)
    plan = plan_for(report, pd.DataFrame({"split": ["train"] * n_train}))
    assert narration.describe_length(report, plan).startswith(f"40 epochs of {plan.updates_per_epoch} updates")
    assert "(`epochs = 40`)" in narration.describe_training(report)


def test_curves_caption_names_the_drops_figure_1_draws_and_no_other():
    history = _history([1e-3] * 5, val_iou=[0.5, 0.7, 0.65, 0.6, 0.55])
    for config in (recipe_for("quick"), recipe_for("report")):  # no drop in either schedule
        caption = narration.curves_caption(config, history)
        assert "**epoch 2**" in caption and "(0.700)" in caption and "Dotted" not in caption
        assert ("stayed at 1.0e-03 in these 5 epochs" in caption) == (config.schedule == "plateau")
        assert not _drop_lines(plots.plot_training_curves(history, schedule=config.schedule))
    dropped = _history([1e-3, 1e-3, 1e-4, 1e-4, 1e-5])  # ReduceLROnPlateau lowered it before epochs 3 and 5
    caption = narration.curves_caption(recipe_for("report"), dropped)
    drawn = {line.get_xdata()[0] for line in _drop_lines(plots.plot_training_curves(dropped, schedule="plateau"))}
    assert drawn == {3, 5} and "(epochs 3, 5)" in caption and "stayed" not in caption
    assert "(5 epochs of 54 optimizer updates, 270 in all)" in caption


def _drop_lines(fig) -> list:
    return [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == plots.GID_LR_DROP]


def test_readable_history_prints_small_learning_rates():
    table = narration.readable_history(_history([1e-3, 3.4e-5, 0.0]))
    assert table["lr"].tolist() == ["1.0e-03", "3.4e-05", "0.0e+00"]
    assert table.index.name == "epoch" and table["seconds"].tolist() == [61, 61, 61]


def test_recipe_table_shows_data_relative_and_marks_runtime_fields():
    config = recipe_for("quick", data=str(REPO_ROOT.parent / "shared" / "data" / "lion"))
    table = narration.recipe_table(config)
    assert table.loc["data", "value"] == "../shared/data/lion"
    assert table.loc["backbone", "value"] == "efficientnet_lite1" and table.loc["backbone", "kind"] == "recipe"
    assert table.loc["device", "kind"] == "runtime"
    assert table.loc["steps", "value"] == "700" and table.loc["epochs", "value"] == "40 (not used: steps sets the length)"
    assert narration.recipe_table(recipe_for("report")).loc["epochs", "value"] == "40"


# ----------------------------------------------------------------------------- metrics text
def _metrics(n, tta):
    scores = {"mean_iou": 0.5, "acc_50": 0.5, "acc_75": 0.1, "acc_50_95": 0.2,
              "intervals": {"mean_iou": [0.4, 0.6], "acc_50": [0.3, 0.7]}}
    return {**scores, "n": n, "split": "test", "tta": tta, "baselines": {"mean_box": scores},
            "bootstrap": {"resamples": 1000}}


@pytest.mark.parametrize("n, smoke", [(8, True), (30, False), (50, False), (365, True)])
def test_metrics_call_a_smoke_run_a_pipeline_check_and_say_what_one_photo_weighs(n, smoke):
    """A 30-photo test split of a real data set is a small measurement, not a pipeline check; a smoke run is one."""
    text = format_metrics(_metrics(n, True), pipeline_check=smoke)
    assert text.splitlines()[0] == f"test split, n = {n} images, model scored with flip TTA (values in %)"
    assert ("pipeline check" in text) == smoke
    assert (f"one image moves the accuracy by {100 / n:.1f} points" in text) == (n < MEASUREMENT_MIN_IMAGES)
    assert "without TTA" in format_metrics(_metrics(n, False)).splitlines()[0]


def test_metrics_table_shows_the_bootstrap_intervals_in_percent():
    metrics = {**_metrics(365, True), "intervals": {"mean_iou": [0.821, 0.86054], "acc_50": [0.4, 0.6]},
               "bootstrap": {"resamples": 1000}}
    metrics["baselines"] = {"mean_box": {**metrics["baselines"]["mean_box"],
                                         "intervals": {"mean_iou": [float("nan")] * 2, "acc_50": [0.0, 0.0]}}}
    lines = format_metrics(metrics).splitlines()
    assert lines[1].split() == ["mean_iou", "acc_50", "acc_75", "acc_50_95", "mean_iou", "95%", "CI", "acc_50", "95%",
                                "CI"]
    assert lines[2].split() == ["model", "50.0", "50.0", "10.0", "20.0", "[82.10,", "86.05]", "[40.00,", "60.00]"]
    assert lines[3].split()[-3:] == ["n/a", "[0.00,", "0.00]"]
    assert lines[4] == "95% CI: bootstrap interval over the 365 photos (1,000 resamples, percentile method)"


def test_tta_defaults_to_the_runs_recipe():
    config = recipe_for("quick")
    assert config.tta is True
    assert cli._tta(Namespace(tta=None), {"config": config}) is True
    assert cli._tta(Namespace(tta=False), {"config": config}) is False
    assert cli._tta(Namespace(tta=None), {"config": recipe_for("report")}) is False


# ----------------------------------------------------------------------------- figures
def test_spread_sample_takes_one_photo_per_iou_band():
    table = pd.DataFrame({"file": [f"{i}.jpg" for i in range(16)], "iou": np.random.default_rng(0).permutation(16) / 16})
    chosen = spread_sample(table, n=8, seed=3)
    bands = (chosen["iou"].to_numpy() * 16).astype(int) // 2  # 16 ranks in 8 bands of 2
    assert bands.tolist() == list(range(8))
    assert spread_sample(table, n=8, seed=3).equals(chosen)
    assert len(spread_sample(table.head(5), n=8)) == 5
    with pytest.raises(ValueError):
        spread_sample(table, n=0)


@pytest.mark.parametrize("keep, epoch, label", [("best", 20, "best val IoU 0.800"),
                                                ("last", 32, "last epoch, val IoU 0.700")])
def test_training_curves_mark_the_tested_epoch_with_whole_epoch_ticks(keep, epoch, label):
    val = np.r_[np.linspace(0.3, 0.8, 20), np.linspace(0.79, 0.7, 12)]  # best at epoch 20 of 32
    fig = plots.plot_training_curves(_history([1e-3] * 32, val_iou=val), schedule="cosine", keep=keep)
    for ax in fig.axes:
        (kept,) = [line for line in ax.get_lines() if line.get_gid() == plots.GID_BEST]
        assert kept.get_xdata()[0] == epoch
        assert kept.get_label() == f"{label} (epoch {epoch}, tested)"
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    caption = narration.curves_caption(recipe_for("small", keep=keep), _history([1e-3] * 32, val_iou=val))
    assert f"The green line marks **epoch {epoch}**, {'the best' if keep == 'best' else 'the last'}" in caption


def test_photo_grid_frames_border_boxes_and_keeps_the_legend_clear(tmp_path):
    photo = np.full((100, 200, 3), 255, dtype=np.uint8)  # a white photo: a white box on its border
    fig = plots.plot_samples([(photo, (0, 0, 200, 100), (10, 10, 190, 90))] * 8, ncols=4,
                             titles=[f"IoU {i}" for i in range(8)])
    fig.canvas.draw()
    for ax in fig.axes:
        left, right = ax.get_xlim()
        assert left < 0 and right > 200  # a frame around the photo ...
        assert ax.get_facecolor()[:3] == pytest.approx((0.3, 0.3, 0.3))  # ... in dark grey
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    tops = [ax.get_tightbbox(renderer).y1 for ax in fig.axes]  # titles included
    assert legend.y0 >= max(tops) - 1  # above every title, covering none
    rows = sorted({round(ax.get_position().y0, 3) for ax in fig.axes}, reverse=True)
    first, second = ([ax for ax in fig.axes if round(ax.get_position().y0, 3) == y] for y in rows)
    # the second row's titles stay below the first row's photos
    assert max(ax.get_tightbbox(renderer).y1 for ax in second) <= min(ax.get_window_extent(renderer).y0 for ax in first)


def test_figures_save_as_png_or_jpeg_by_suffix(tmp_path):
    fig = plots.plot_samples([(np.zeros((40, 40, 3), np.uint8), (5, 5, 20, 20), None)])
    plots.save_figure(fig, tmp_path / "a.jpg")
    plots.save_figure(fig, tmp_path / "a.png")
    assert Image.open(tmp_path / "a.jpg").format == "JPEG" and Image.open(tmp_path / "a.png").format == "PNG"
    with pytest.raises(ValueError, match="png or .jpg"):
        plots.save_figure(fig, tmp_path / "a.gif")
    assert plots.FIGURE_NAMES["worst"] == "figure4_worst_predictions.jpg"


def test_show_displays_photos_as_jpeg_and_charts_as_png(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    plots.show(plots.plot_samples([(np.zeros((40, 40, 3), np.uint8), (5, 5, 20, 20), None)]))
    plots.show(plots.plot_iou_histogram(np.linspace(0, 1, 20)))
    assert [Image.open(io.BytesIO(obj.data)).format for obj in shown] == ["JPEG", "PNG"]
    assert plt.get_fignums() == []  # closed: a notebook shows each figure once


def test_report_photo_figure_of_real_photos_is_under_1_mb(shared_data, tmp_path):
    images = sorted((shared_data / "lion").rglob("*.jpg"))[:8]
    assert len(images) == 8
    items = [(Image.open(p).convert("RGB"), (40, 40, 300, 300), (50, 45, 310, 290)) for p in images]
    plots.plot_samples(items, titles=[f"IoU 0.{i}" for i in range(8)], path=tmp_path / plots.FIGURE_NAMES["samples"])
    assert (tmp_path / plots.FIGURE_NAMES["samples"]).stat().st_size < MB


# ----------------------------------------------------------------------------- published report
def _published(name):
    return nbformat.read(REPORT / name, as_version=4)


def test_published_notebooks_are_the_current_ones_without_stale_output():
    """report/ holds the executed notebooks of the published run (make report: quick by default): the same code
    as notebooks/, no widget output or state, paths relative to the repository, under 5 MB in all."""
    from test_notebooks import code_sources

    names = [f"{name}.ipynb" for name in runner.NOTEBOOKS]
    assert sorted(p.name for p in REPORT.glob("*.ipynb")) == names
    assert sum((REPORT / name).stat().st_size for name in names) < 5 * MB
    for name in names:
        assert code_sources(REPORT / name) == code_sources(REPO_ROOT / "notebooks" / name), \
            f"report/{name} is older than notebooks/{name}: run make report"
        notebook = _published(name)
        assert "widgets" not in notebook.metadata
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            assert not [o for o in cell.outputs if runner.WIDGET_MIME in o.get("data", {})]
            assert not [o for o in cell.outputs if o.get("name") == "stderr" and "it/s]" in o.get("text", "")]
            if "injected-parameters" in cell.metadata.get("tags", []):
                assert "/tmp/" not in cell.source and str(REPO_ROOT) not in cell.source
                assert '"../shared/data/lion"' in cell.source or "data" not in cell.source
        assert not Path(notebook.metadata["papermill"]["output_path"]).is_absolute()


def test_report_figures_are_the_four_numbered_ones_each_under_1_mb():
    for name in plots.FIGURE_NAMES.values():
        assert (FIGURES / name).is_file(), f"figures/{name} is missing: run make report"
        assert (FIGURES / name).stat().st_size < MB
    assert sorted(p.name for p in FIGURES.iterdir()) == sorted(plots.FIGURE_NAMES.values())


def test_publish_drops_widgets_and_makes_paths_relative(tmp_path):
    notebook = nbformat.v4.new_notebook()
    bar = nbformat.v4.new_output("display_data", data={runner.WIDGET_MIME: {"model_id": "x"},
                                                       "text/plain": "  0%|          | 0/54"})
    text = nbformat.v4.new_output("stream", name="stdout", text="epoch 1/2 ...\n")
    notebook.cells = [nbformat.v4.new_code_cell("train()", outputs=[bar, text])]
    notebook.metadata["widgets"] = {"state": {}}
    notebook.metadata["papermill"] = {"input_path": str(REPO_ROOT / "notebooks" / "x.ipynb"),
                                      "output_path": str(REPO_ROOT / "runs" / "r" / "notebooks" / "x.ipynb")}
    source = tmp_path / "run" / "notebooks"
    source.mkdir(parents=True)
    nbformat.write(notebook, source / "03_model_and_training.ipynb")
    (written,) = runner.publish_notebooks(source, tmp_path / "report")
    published = nbformat.read(written, as_version=4)
    assert published.cells[0].outputs == [text]
    assert "widgets" not in published.metadata
    assert published.metadata["papermill"]["input_path"] == "notebooks/x.ipynb"
    assert published.metadata["papermill"]["output_path"] == "runs/r/notebooks/x.ipynb"
    with pytest.raises(FileNotFoundError):
        runner.publish_notebooks(tmp_path / "empty", tmp_path / "report")


def test_short_cosine_schedule_draws_no_learning_rate_drop():
    history = _history([1e-3, 5e-4])  # a 2-epoch cosine: the rate halves, smoothly
    assert plots.lr_drops(history)["epoch"].tolist() == [2]  # the heuristic alone would call it a step
    lines = lambda fig: [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == plots.GID_LR_DROP]
    assert lines(plots.plot_training_curves(history, schedule="cosine")) == []
    assert len(lines(plots.plot_training_curves(history, schedule="plateau"))) == 2  # one per panel


def test_figure_2_leaves_out_the_photos_of_figure_4():
    table = pd.DataFrame({"file": [f"{i}.jpg" for i in range(40)], "iou": np.linspace(0, 1, 40)})
    chosen = spread_sample(table, n=8, seed=0, skip_worst=8)
    assert not set(chosen["file"]) & set(table.nsmallest(8, "iou")["file"])
    assert len(chosen) == 8 and chosen["iou"].is_monotonic_increasing
    # a small split keeps n photos: only as many of the worst are left out as it can spare
    assert spread_sample(table.head(8), n=8, skip_worst=8)["file"].tolist() == [f"{i}.jpg" for i in range(8)]
    assert spread_sample(table.head(12), n=8, skip_worst=8)["file"].tolist() == [f"{i}.jpg" for i in range(4, 12)]


@pytest.mark.parametrize("n, shared", [(40, 0), (16, 0), (11, 5), (8, 8)])
def test_figure_2s_caption_says_how_many_of_figure_4s_photos_it_shows_again(n, shared):
    table = pd.DataFrame({"file": [f"{i}.jpg" for i in range(n)], "iou": np.linspace(0, 1, n)})
    worst = table.nsmallest(8, "iou")
    chosen = spread_sample(table, n=8, seed=0, skip_worst=len(worst))
    assert chosen["file"].isin(worst["file"]).sum() == shared  # 11 photos: only 3 of the worst 8 can be left out
    caption = narration.samples_caption(table, chosen, worst)
    assert f"{len(chosen)} of its {n} test photos" in caption
    assert ("left out" in caption and "are in Figure 4 too" not in caption) == (shared == 0)
    assert (f"{shared} of these 8 are in Figure 4 too" in caption) == (shared > 0)


def test_readable_per_image_rounds_pixels_to_a_tenth():
    table = pd.DataFrame({"file": ["a.jpg"], "path": ["/x/a.jpg"], "xmin": [10.04], "pred_xmax": [70.8349],
                          "iou": [0.912345]})
    readable = narration.readable_per_image(table)
    assert list(readable.columns) == ["file", "xmin", "pred_xmax", "iou"]
    assert readable.iloc[0].tolist() == ["a.jpg", 10.0, 70.8, 0.912]


def test_a_data_folder_behind_a_link_keeps_its_name(synthetic_data, tmp_path):
    """A course folder linked beside the clone (shared -> /elsewhere) is shown and stored by the
    name it was given, so executed notebooks show ../shared/..., not the link's target."""
    from localizer.recipe import TrainConfig
    from localizer.engine.run import Run
    from localizer.data.validation import scan_dataset

    link = tmp_path / "shared"
    link.symlink_to(synthetic_data)
    scan = scan_dataset(link / "yolo", progress=False)
    assert scan.root == link / "yolo"
    assert scan.table["path"].str.startswith(str(link / "yolo")).all()
    run = Run.create(TrainConfig(data=str(link / "yolo"), subset=20), tmp_path / "run", progress=False)
    assert run.config.data == str(link / "yolo")


def test_by_animal_count_splits_the_scores_hand_computed():
    per_image = pd.DataFrame({"iou": np.float32([0.9, 0.4, 0.6, 0.2, 0.8]), "n_boxes": [1, 1, 2, 3, 1]})
    table = by_animal_count(per_image)
    assert table.index.tolist() == ["one animal", "several animals"]
    assert table.loc["one animal"].tolist() == [3, 70.0, 66.67, 1]  # float64, rounded: no 66.669998
    assert table.loc["several animals"].tolist() == [2, 40.0, 50.0, 1]
    assert by_animal_count(per_image[per_image["n_boxes"] == 1]).index.tolist() == ["one animal"]
    with pytest.raises(DataError, match="n_boxes"):
        by_animal_count(per_image.drop(columns="n_boxes"))


def test_offline_without_data_the_error_names_the_ways_on(tmp_path, monkeypatch):
    import torchvision.datasets

    from localizer.data import download

    def offline(**_):
        raise OSError("no network")

    monkeypatch.setattr(download, "COURSE_DATA", tmp_path / "shared" / "data" / "lion")  # not there
    monkeypatch.setattr(download, "DEFAULT_DATA", tmp_path / "data" / "oxford-iiit-pet")
    monkeypatch.setattr(torchvision.datasets, "OxfordIIITPet", offline)
    with pytest.raises(download.DataUnavailableError) as error:
        download.ensure_data()
    message = str(error.value)
    assert "--data DIR" in message and "make run DATA=DIR" in message
    assert "make smoke" in message and "docs/data-formats.md" in message
    assert not (tmp_path / "data").exists()  # the empty folders of the failed download are removed


# ----------------------------------------------------------------------------- runner: paths, dead kernels, resume
def test_repo_path_takes_relative_paths_from_the_repository_root():
    assert repo_path("runs/notebook") == REPO_ROOT / "runs" / "notebook"
    assert repo_path("../shared/data/lion") == REPO_ROOT.parent / "shared" / "data" / "lion"
    assert repo_path("/tmp/run") == Path("/tmp/run") and repo_path(None) is None
    lion = REPO_ROOT.parent / "shared" / "data" / "lion"
    assert repo_path(display_path(lion)) == lion  # the inverse of display_path, as the runner passes paths


def _fake_papermill(monkeypatch, calls, die_in=None):
    """papermill.execute_notebook replaced: records each notebook's parameters, scans in 01 and makes the
    run folder in 02 with the calls the notebooks make, and lets the kernel of ``die_in`` die in its
    training cell."""
    import papermill
    from nbclient.exceptions import DeadKernelError

    def execute(source, output, parameters, **kwargs):
        name = Path(source).stem
        calls.append((name, parameters))
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["papermill"] = {"input_path": source, "output_path": output}
        folder = data_folder(parameters["run_dir"])
        if name == "01_data_exploration":
            save_scan(scan_for(repo_path(parameters["data"]), parameters["data_format"], parameters["oxford_box"],
                               parameters["classes"], folder=folder, progress=False), folder)
        if name == "02_preprocessing_and_split":
            scan = load_scan(folder)
            config, profile, _ = notebook_recipe(parameters["profile"], parameters["recipe"], scan,
                                                 parameters["run_dir"])
            create_run(config, profile, scan, parameters["run_dir"])
        if name == die_in:
            cell = nbformat.v4.new_code_cell('history = train(run, resume="auto")\nreadable_history(history)')
            cell.metadata["papermill"] = {"status": "running"}
            notebook.cells = [cell]
            nbformat.write(notebook, output)
            raise DeadKernelError("Kernel died")
        nbformat.write(notebook, output)

    monkeypatch.setattr(papermill, "execute_notebook", execute)


def test_a_dead_kernel_names_the_notebook_the_cause_and_the_resume(synthetic_data, tmp_path, monkeypatch):
    calls = []
    _fake_papermill(monkeypatch, calls, die_in="03_model_and_training")
    run_dir = tmp_path / "run"
    with pytest.raises(runner.KernelDied) as error:
        runner.run_notebooks(data=synthetic_data / "yolo", profile="smoke", run_dir=run_dir, progress=False)
    message = str(error.value)
    assert message.startswith("03_model_and_training.ipynb stopped: its kernel died in the cell "
                              '`history = train(run, resume="auto")`')
    assert "out of memory" in message and "-p workers=0" in message and "-p batch_size=16" in message
    assert f"--run-dir {display_path(run_dir)} --resume" in message
    assert [name for name, _ in calls] == list(runner.NOTEBOOKS[:3])  # 04 never ran
    assert isinstance(error.value, runner.NotebookFailed)  # the CLI prints it as one line, exit code 1

    # run --resume with the CLI's default profile and fewer workers: the run's own recipe goes on
    calls.clear()
    _fake_papermill(monkeypatch, calls)
    runner.run_notebooks(profile="quick", run_dir=run_dir, params={"workers": 0}, resume=True, progress=False)
    assert [name for name, _ in calls] == list(runner.NOTEBOOKS)
    parameters = dict(calls)
    assert parameters["02_preprocessing_and_split"]["profile"] is None  # the run's own recipe
    assert parameters["02_preprocessing_and_split"]["recipe"] == {"workers": 0}
    assert parameters["01_data_exploration"]["data"] == display_path(synthetic_data / "yolo")
    from localizer.engine.run import Run

    assert Run.open(run_dir).config.workers == 0
    with pytest.raises(ConfigError, match="epochs=5"):
        runner.run_notebooks(run_dir=run_dir, params={"epochs": 5}, resume=True, progress=False)


def test_figures_are_copied_by_the_runner_and_a_missing_one_is_named(tmp_path):
    figures = tmp_path / "run" / "figures"
    figures.mkdir(parents=True)
    names = list(plots.FIGURE_NAMES.values())
    for name in names[:-1]:
        (figures / name).write_bytes(b"figure")
    with pytest.raises(FileNotFoundError, match=names[-1]):
        runner.copy_figures(tmp_path / "run", tmp_path / "out")
    (figures / names[-1]).write_bytes(b"figure")
    written = runner.copy_figures(tmp_path / "run", tmp_path / "out")
    assert [p.name for p in written] == names and (tmp_path / "out" / names[0]).read_bytes() == b"figure"


# ----------------------------------------------------------------------------- notebook 02's augmentation figure
def _photo_rows(tmp_path, n=3):
    """``n`` grey 100 x 50 px photos, each with the box (40, 15, 60, 35): (0.4, 0.3, 0.6, 0.7) normalized."""
    rows = []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.full((50, 100, 3), 60 * i, np.uint8)).save(path)
        rows.append({"path": str(path), "width": 100, "height": 50, "xmin": 40, "ymin": 15, "xmax": 60, "ymax": 35})
    return pd.DataFrame(rows)


def test_augmentation_examples_move_the_boxes_as_training_does(tmp_path):
    from localizer.report.exploration import augmentation_examples

    rows = _photo_rows(tmp_path)
    items, titles = augmentation_examples(rows, image_size=64, affine_p=0.0, seed=0)
    assert len(items) == len(titles) == 9  # cached, as trained, and the scale + shift the recipe leaves out
    for image, box, pred in items[:3]:
        assert tuple(image.shape) == (3, 64, 64) and pred is None
        assert box.tolist() == pytest.approx([25.6, 19.2, 38.4, 44.8])  # 0.4 x 64, 0.3 x 64, ...
    for (_, box, _), title in zip(items[3:6], titles[3:6]):
        assert "scale" not in title  # affine_p = 0: flip and jitter only
        expected = [25.6, 19.2, 38.4, 44.8] if title.startswith("not flipped") else [64 - 38.4, 19.2, 64 - 25.6, 44.8]
        assert box.tolist() == pytest.approx(expected, abs=1e-4)
    for (_, box, _), title in zip(items[6:], titles[6:]):
        scale, shift = title.split("scale ")[1].split(", shift ")
        dx, dy = (float(v.strip("%")) / 100 for v in shift.split(" / "))
        width = (box[2] - box[0]).item() / 64
        assert width == pytest.approx(0.2 * float(scale), abs=0.002)  # about the centre: x' = (x - 32) s + 32 + dx 64
        assert (box[0] + box[2]).item() / 128 == pytest.approx(0.5 + dx, abs=0.006)
        assert (box[1] + box[3]).item() / 128 == pytest.approx(0.5 + dy, abs=0.006)
    again, _ = augmentation_examples(rows, image_size=64, affine_p=0.0, seed=0)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(items, again))  # seeded
    items, titles = augmentation_examples(rows, image_size=64, affine_p=1.0, seed=0)
    assert len(items) == 6 and all("scale" in t for t in titles[3:])  # the run's own scale + shift, no third row
