"""The ``auto`` profile: ``small`` below 500 training photos, else ``quick``, counted on the split the run will
make; ``train`` and ``run`` say which they chose and why, and a resumed run keeps the profile it was given."""

from __future__ import annotations

import json

import pytest

from localizer.cli import main
from localizer.engine.profile_choice import choose_profile, profile_for_size
from localizer.engine.run import Run
from localizer.errors import ConfigError
from localizer.recipe import PROFILES, epochs_for, recipe_for
from localizer.report import runner


@pytest.mark.parametrize("n_train, profile", [(35, "small"), (140, "small"), (419, "small"), (499, "small"),
                                              (500, "quick"), (1698, "quick"), (5173, "quick")])
def test_auto_is_small_below_500_training_photos(n_train, profile):
    chosen, why = profile_for_size(n_train)
    assert chosen == profile
    assert why.startswith(f"{n_train:,} training photos")


def test_small_is_quick_at_160_px_with_the_largest_head_and_all_its_updates():
    different = {k for k in PROFILES["quick"].keys() | PROFILES["small"].keys()
                 if PROFILES["quick"].get(k) != PROFILES["small"].get(k)}
    assert different == {"image_size", "head", "steps", "max_epochs"}
    small, quick = recipe_for("small"), recipe_for("quick")
    assert (small.image_size, small.head, quick.image_size, quick.head) == (160, "largest", 128, "softargmax")
    # 140 training photos, 5 updates an epoch: small trains its 1,400 updates (280 epochs), quick and best clip at 100
    assert (epochs_for(small, 140), epochs_for(quick, 140), epochs_for(recipe_for("best"), 140)) == (280, 100, 100)
    assert (small.steps, epochs_for(small, 70), epochs_for(small, 419)) == (1400, 467, 100)  # 1,400 / 3 = 466.7


def test_a_named_profile_is_kept_without_reading_the_data():
    assert choose_profile("best", data="no/such/folder") == ("best", None)


def test_auto_counts_the_training_split_the_run_makes(synthetic_data, tmp_path):
    # 20 of the synthetic photos: the seeded 70/15/15 split gives 14 / 3 / 3
    profile, why = choose_profile("auto", data=str(synthetic_data / "yolo"), subset=20)
    assert profile == "small"
    assert why.startswith("14 training photos, fewer than 500")
    run = Run.create(recipe_for("small", data=str(synthetic_data / "yolo"), subset=20, weights=None),
                     tmp_path / "run", progress=False)
    assert (run.manifest["split"] == "train").sum() == 14


def test_auto_refuses_a_misspelt_field_before_reading(synthetic_data):
    with pytest.raises(ConfigError, match="epoch"):
        choose_profile("auto", data=str(synthetic_data / "yolo"), epoch=3)


def test_train_auto_says_what_it_chose_and_trains_it(synthetic_data, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", str(synthetic_data / "yolo"), "--run-dir", str(run_dir), "--profile", "auto", "--quiet",
                 "-p", "subset=16", "-p", "epochs=1", "-p", "backbone=efficientnet_lite0", "-p", "weights=null",
                 "-p", "workers=0"])
    assert code == 0
    assert "profile auto: 11 training photos, fewer than 500: profile small" in capsys.readouterr().out
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["image_size"], config["head"], config["epochs"]) == (160, "largest", 1)


def test_resuming_with_auto_keeps_the_profile_the_run_was_started_with(synthetic_data, tmp_path):
    run_dir = tmp_path / "run"
    Run.create(recipe_for("small", data=str(synthetic_data / "yolo"), subset=16, weights=None), run_dir, progress=False)
    profile, params, _ = runner.resumed_recipe(run_dir, "auto", {}, None)
    assert (profile, params) == ("small", {"subset": 16, "weights": None})


def test_run_auto_names_the_run_folder_after_the_profile_it_chose(synthetic_data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_dir = runner.run_notebooks(data=synthetic_data / "yolo", profile="auto", params={"subset": 20}, notebooks=(),
                                   progress=False)
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith("small-")
    assert "profile auto: 14 training photos, fewer than 500: profile small" in capsys.readouterr().out
