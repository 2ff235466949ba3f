"""Schedules in optimizer updates: the epochs a recipe's ``steps`` give for data sets of known size, the
explicit-epochs override, and the resolved plan recorded in a short training and kept on resume."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from helpers import fit

from localizer.engine.schedule import TrainingPlan, make_scheduler, plan_for
from localizer.engine.run import Run
from localizer.errors import ConfigError
from localizer.progress import expected_time_line, time_left
from localizer.recipe import TrainConfig, epochs_for, recipe_for, updates_per_epoch


# ------------------------------------------------------------------------------ the rule
@pytest.mark.parametrize("n_train, per_epoch", [(1698, 54), (140, 5), (5173, 162), (7400, 232), (32, 1), (33, 2), (1, 1)])
def test_an_epoch_is_ceil_of_photos_over_batch(n_train, per_epoch):
    assert updates_per_epoch(n_train, 32) == per_epoch


@pytest.mark.parametrize("n_train, epochs", [
    (1698, 13),   # the lion training split: 54 updates an epoch, 700 / 54 = 12.96 -> 13 epochs, as quick trained before
    (140, 100),   # 5 updates an epoch: 700 / 5 = 140 epochs, capped at max_epochs = 100
    (500, 44),    # 16 an epoch: 700 / 16 = 43.75 -> 44
    (5173, 4),    # 162 an epoch: 700 / 162 = 4.32 -> 4
    (7400, 4),    # 232 an epoch: 700 / 232 = 3.02 -> 3, raised to min_epochs = 4
    (40000, 4),   # 1,250 an epoch: 0.56 -> 1, raised to 4
])
def test_quick_trains_700_updates_within_4_to_100_epochs(n_train, epochs):
    assert epochs_for(recipe_for("quick"), n_train) == epochs


def test_best_and_the_epoch_profiles_on_the_lion_split():
    assert epochs_for(recipe_for("best"), 1698) == 32                      # 1,728 / 54 = 32 exactly, as before
    assert epochs_for(recipe_for("best"), 140) == 100                      # 1,728 / 5 = 345.6, capped
    assert epochs_for(recipe_for("report"), 1698) == epochs_for(recipe_for("report"), 140) == 40
    assert epochs_for(recipe_for("smoke"), 44) == 2


def test_steps_round_to_the_nearest_epoch_halves_up():
    # 54 updates an epoch: 135 updates are 2.5 epochs -> 3 (Python's round() would give 2), 134 -> 2
    assert epochs_for(TrainConfig(steps=135), 1698) == 3
    assert epochs_for(TrainConfig(steps=134), 1698) == 2
    assert epochs_for(TrainConfig(steps=10), 1698) == 1          # 0.19 epochs -> 0, raised to min_epochs = 1
    assert epochs_for(TrainConfig(steps=10_000), 1698) == 185    # 185.2: no ceiling by default
    assert epochs_for(TrainConfig(steps=10_000, max_epochs=50), 1698) == 50
    assert epochs_for(TrainConfig(steps=10, min_epochs=6), 1698) == 6
    with pytest.raises(ValueError, match="no training photos"):
        epochs_for(TrainConfig(steps=10), 0)


@pytest.mark.parametrize("values, message", [
    ({"steps": 0}, "^steps=0: expected null .train `epochs` epochs. or a whole number >= 1"),
    ({"steps": 7.5}, "^steps=7.5: expected"),
    ({"min_epochs": 0}, "^min_epochs=0: expected a whole number >= 1$"),
    ({"min_epochs": 5, "max_epochs": 4}, "^max_epochs=4: expected null .no ceiling. or a whole number >= min_epochs$"),
])
def test_bad_schedule_values_are_refused_naming_the_field(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_explicit_epochs_win_over_a_profile_that_counts_updates():
    quick = recipe_for("quick")
    assert (quick.steps, quick.min_epochs, quick.max_epochs) == (700, 4, 100)
    forty = recipe_for("quick", epochs=40)  # -p epochs=40
    assert forty.steps is None and epochs_for(forty, 140) == epochs_for(forty, 1698) == 40
    both = recipe_for("quick", epochs=40, steps=350)  # both given: steps decides, epochs is not used
    assert both.steps == 350 and epochs_for(both, 1698) == 6  # 350 / 54 = 6.48


def test_plan_counts_the_train_rows_of_the_manifest():
    manifest = pd.DataFrame({"split": ["train"] * 1698 + ["val"] * 364 + ["test"] * 365})
    assert plan_for(recipe_for("quick"), manifest) == TrainingPlan(epochs=13, updates_per_epoch=54, updates=702,
                                                                   n_train=1698)
    recorded = {"plan": {"epochs": 12, "updates_per_epoch": 54, "updates": 648, "n_train": 1698}}
    assert plan_for(recipe_for("quick"), manifest, recorded).epochs == 12  # a checkpoint's plan wins


# ------------------------------------------------------------------------------ learning-rate schedules
def test_cosine_schedule_anneals_to_zero_over_the_plans_epochs():
    params = [torch.nn.Parameter(torch.zeros(1))]
    # config.epochs is 40; the plan's 4 epochs decide
    scheduler = make_scheduler(TrainConfig(schedule="cosine"), torch.optim.AdamW(params, lr=1e-3), epochs=4)
    lrs = []
    for _ in range(5):
        lrs.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()  # an epoch's training, as in train()
        scheduler.step()
    # 1e-3 (1 + cos(pi e / 4)) / 2 for e = 0..4
    assert lrs == pytest.approx([1e-3, 1e-3 * (1 + math.sqrt(0.5)) / 2, 5e-4, 1e-3 * (1 - math.sqrt(0.5)) / 2, 0.0],
                                abs=1e-12)


def test_plateau_schedule_divides_by_ten_after_patience_plus_one_flat_epochs():
    params = [torch.nn.Parameter(torch.zeros(1))]
    plateau = make_scheduler(TrainConfig(), torch.optim.AdamW(params, lr=1e-3), epochs=40)
    for loss in [1.0, 1.0, 1.0, 1.0, 1.0]:      # no improvement for patience 3 + 1 epochs -> x0.1
        plateau.step(loss)
    assert plateau.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
    with pytest.raises(ValueError, match='^schedule="step": expected one of "plateau", "cosine"$'):
        TrainConfig(schedule="step")


# ------------------------------------------------------------------------------ a training
def _tiny(data, tmp_path, **overrides) -> TrainConfig:
    """40 synthetic photos (28 for training), batch 8: 4 updates an epoch; 10 updates -> 2.5 -> 3 epochs."""
    values = dict(data=str(data), image_size=48, batch_size=8, backbone="efficientnet_lite0", weights=None, subset=40,
                  workers=0, cache_dir=str(tmp_path / "cache"), steps=10, min_epochs=1, max_epochs=5,
                  schedule="cosine")
    return TrainConfig(**{**values, **overrides})


def test_a_run_in_updates_records_its_plan_and_resumes_with_it(synthetic_data, tmp_path, capsys):
    config = _tiny(synthetic_data / "yolo", tmp_path)
    folder = tmp_path / "run"
    history = fit(config, folder, progress=True, max_epochs=1)
    out = capsys.readouterr().out
    assert "epoch 1/3 (step  4/12)  train loss" in out
    assert history["step"].tolist() == [4]
    last = torch.load(folder / "checkpoints" / "last.pt", weights_only=True)
    assert last["plan"] == {"epochs": 3, "updates_per_epoch": 4, "updates": 12, "n_train": 28}
    assert last["scheduler"]["T_max"] == 3  # the cosine runs over the plan's epochs, not config.epochs (40)
    saved = json.loads((folder / "config.json").read_text())
    assert (saved["steps"], saved["epochs"]) == (10, 40)  # the recipe as given
    run = Run.open(folder)
    assert plan_for(run.config, run.manifest, last) == TrainingPlan(3, 4, 12, 28)

    with pytest.raises(ConfigError, match="It trains steps=10 updates: epochs is unused"):
        Run.open(folder, epochs=5)
    with pytest.raises(ConfigError, match=r"cannot change lr=0\.5 \(the run has 0\.001\)\. Train another"):
        Run.open(folder, epochs=config.epochs, lr=0.5)  # epochs as it was: no word about it
    Run.open(folder, fractions=[0.7, 0.15, 0.15])  # the run's own fractions as -p's JSON gives them: a list
    history = fit(config, folder, resume=True)
    assert history["epoch"].tolist() == [1, 2, 3] and history["step"].tolist() == [4, 8, 12]
    assert pd.read_csv(folder / "history.csv")["step"].tolist() == [4, 8, 12]
    # lr of epoch e: 1e-3 (1 + cos(pi (e - 1) / 3)) / 2
    assert history["lr"].tolist() == pytest.approx([1e-3 * (1 + math.cos(math.pi * e / 3)) / 2 for e in range(3)])
    capsys.readouterr()
    fit(config, folder, resume="auto", progress=True)
    out = capsys.readouterr().out
    assert "trained already (3/3 epochs, 12 updates, in " in out
    # a finished run prints its training log again, from its history (the published notebook 03 shows it)
    logged = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line[:20] for line in logged] == ["epoch 1/3 (step  4/1", "epoch 2/3 (step  8/1", "epoch 3/3 (step 12/1"]


def test_a_new_run_prints_the_time_to_expect_once_after_its_second_epoch(synthetic_data, tmp_path, capsys):
    fit(_tiny(synthetic_data / "yolo", tmp_path), tmp_path / "run", progress=True)
    lines = capsys.readouterr().out.splitlines()
    at = [i for i, line in enumerate(lines) if line.startswith("expected training time: about ")]
    assert len(at) == 1 and lines[at[0] - 1].startswith("epoch 2/3 (step  8/12)")
    assert " for 12 updates (" in lines[at[0]] and lines[at[0]].endswith(" s per update in epoch 2)")


def test_resume_keeps_the_plan_the_run_began_with(synthetic_data, tmp_path):
    """A run resumes with the plan of its checkpoint, not one worked out again (here made to differ)."""
    config = _tiny(synthetic_data / "yolo", tmp_path)
    folder = tmp_path / "run"
    fit(config, folder, max_epochs=1)
    last_path = folder / "checkpoints" / "last.pt"
    last = torch.load(last_path, weights_only=True)
    last["plan"] = {"epochs": 2, "updates_per_epoch": 4, "updates": 8, "n_train": 28}
    torch.save(last, last_path)
    assert fit(config, folder, resume=True)["step"].tolist() == [4, 8]


def test_expected_time_line_takes_the_rate_of_the_second_epoch():
    plan = TrainingPlan(epochs=240, updates_per_epoch=5, updates=1200, n_train=140)
    # 3.5 s for the first epoch (set-up), 2.1 s for the second: 3.5 + 2.1 + 238 x 2.1 = 505.4 s, 0.42 s an update
    line = expected_time_line(plan, [3.5, 2.1])
    assert line == "expected training time: about 8 min 25 s for 1,200 updates (0.42 s per update in epoch 2)"


def test_time_left_leaves_out_the_first_epoch_once_there_is_another():
    assert time_left([3.5], 4) == 14.0  # the first epoch alone: all there is
    assert time_left([3.5, 2.1, 2.3], 10) == pytest.approx(22.0)  # (2.1 + 2.3) / 2 x 10, as the expected-time line
