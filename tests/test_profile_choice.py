"""The ``auto`` profile: ``small`` below 500 training photos, else ``quick``, counted on the split the run will
make; ``train`` and ``run`` say which they chose and why."""

from __future__ import annotations

import pandas as pd
import pytest

from localizer.cli import main
from localizer.data.scans import scan_for
from localizer.engine.profile_choice import choose_profile, profile_for_size
from localizer.engine.run import Run
from localizer.engine.schedule import plan_for
from localizer.errors import ConfigError
from localizer.recipe import recipe_for, same_recipe
from localizer.report import runner


@pytest.mark.parametrize("n_train, profile", [(35, "small"), (140, "small"), (419, "small"), (499, "small"),
                                              (500, "quick"), (1698, "quick"), (5173, "quick")])
def test_auto_is_small_below_500_training_photos(n_train, profile):
    chosen, why = profile_for_size(n_train)
    assert chosen == profile
    assert why.startswith(f"{n_train:,} training photos")


@pytest.mark.parametrize("n_train, epochs, per_epoch", [(70, 200, 9), (140, 100, 18), (419, 34, 53), (499, 29, 63)])
def test_small_trains_about_1800_updates_of_8_photos_whatever_the_size(n_train, epochs, per_epoch):
    # a run's time follows its updates: ceil(n / 8) updates an epoch, the epochs nearest 1,800 updates
    plan = plan_for(recipe_for("small"), pd.DataFrame({"split": ["train"] * n_train + ["val"] * 15}))
    assert (plan.epochs, plan.updates_per_epoch) == (epochs, per_epoch)
    assert abs(plan.updates - 1800) <= per_epoch / 2


def test_a_named_profile_is_kept_without_a_scan():
    assert choose_profile("best", None) == ("best", None)


def test_auto_counts_the_training_split_the_run_makes_of_the_same_scan(synthetic_data, tmp_path):
    # 20 of the synthetic photos: the seeded 70/15/15 split gives 14 / 3 / 3
    scan = scan_for(synthetic_data / "yolo", progress=False)
    profile, why = choose_profile("auto", scan, subset=20)
    assert profile == "small"
    assert why.startswith("14 training photos, fewer than 500") and why.endswith("replace its own: subset=20")
    # the why-line names the profile's own values, and which of them the run's values replace
    assert choose_profile("auto", scan, subset=20, steps=150, keep="best", seed=42)[1].endswith(
        'tried); your values replace its own: subset=20, steps=150, keep="best"')
    assert choose_profile("auto", scan, subset=20, fractions=[0.7, 0.15, 0.15])[1].endswith("its own: subset=20")
    run = Run.create(recipe_for("small", data=str(synthetic_data / "yolo"), subset=20, weights=None),
                     tmp_path / "run", progress=False, scan=scan)
    assert (run.manifest["split"] == "train").sum() == 14


def test_auto_refuses_a_misspelt_field(synthetic_data):
    with pytest.raises(ConfigError, match="epoch"):
        choose_profile("auto", scan_for(synthetic_data / "yolo", progress=False), epoch=3)


def test_train_auto_says_what_it_chose_and_trains_it(synthetic_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", str(synthetic_data / "yolo"), "--run-dir", str(run_dir), "--profile", "auto", "--quiet",
                 "-p", "subset=16", "-p", "epochs=1", "-p", "backbone=efficientnet_lite0", "-p", "weights=null",
                 "-p", "workers=0"])
    assert code == 0
    assert "profile auto: 11 training photos, fewer than 500: profile small" in capsys.readouterr().out
    run = Run.open(run_dir)
    assert run.profile == "small"
    assert same_recipe(run.config, recipe_for("small", data=str(synthetic_data / "yolo"), subset=16, epochs=1,
                                              backbone="efficientnet_lite0", weights=None))


def test_run_auto_names_the_run_folder_after_the_profile_it_chose(synthetic_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = runner.run_notebooks(data=synthetic_data / "yolo", profile="auto", params={"subset": 20}, notebooks=(),
                                   progress=False)
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith("small-")
    assert "profile auto: 14 training photos, fewer than 500: profile small" in capsys.readouterr().out
    # the scan auto counted on waits in the run folder, and notebook 01 reads it instead of scanning again
    scan_for(synthetic_data / "yolo", folder=run_dir)
    assert "scan:" not in capsys.readouterr().out
