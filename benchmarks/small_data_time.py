"""Training time of the ``small`` recipe against the one it replaced, side by side in one run on the same photos.

For each subset size of a data set, ``small`` (1,800 updates in batches of 8) and ``small`` as it was before
(1,400 updates in batches of 32, keeping the best epoch: ``-p batch_size=32 -p steps=1400 -p keep=best``) train a
few epochs each on the same split, one after the other, alone. An epoch's seconds (``history.csv``: its updates,
validation and checkpoints; the median of the epochs after the first, which also starts the loader) times the epochs
of the run's plan is the training time of the whole run. Prints a table with the ratio and writes it as JSON.

    python benchmarks/small_data_time.py ../shared/data/lion --subsets 100 200 400
    python benchmarks/small_data_time.py ../shared/data/oxford-pets-sample --subsets 200 0

``0`` is the whole data set. Run it with nothing else on the machine: the times are what it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import pandas as pd
import torch

from localizer.data.scans import scan_for
from localizer.engine.run import Run
from localizer.engine.schedule import plan_for
from localizer.engine.training import train
from localizer.recipe import recipe_for

#: The recipes compared: ``small`` as it is, and as it was before (its batch and updates).
RECIPES = {"small": {}, "small before, 1,400 updates of 32": {"batch_size": 32, "steps": 1400, "keep": "best"}}


def measure(data: str, subset: int | None, epochs: int, scan) -> list[dict]:
    """Train each of :data:`RECIPES` ``epochs`` epochs on ``subset`` photos of ``data`` (None: all) in a
    temporary run folder; one row per recipe with its plan and its projected training time in seconds."""
    rows = []
    for name, values in RECIPES.items():
        config = recipe_for("small", data=data, subset=subset, **values)
        with tempfile.TemporaryDirectory() as folder:
            run = Run.create(config, Path(folder) / "run", progress=False, scan=scan)
            plan = plan_for(config, run.manifest)
            seconds = train(run, progress=False, max_epochs=epochs)["seconds"]
        epoch = float(seconds.iloc[1:].median())
        rows.append({"data": Path(data).name, "subset": subset or "all", "n_train": plan.n_train, "recipe": name,
                     "epochs": plan.epochs, "updates": plan.updates, "batch": config.batch_size,
                     "s_per_epoch": round(epoch, 2), "s_per_update": round(epoch / plan.updates_per_epoch, 3),
                     "training_min": round(epoch * plan.epochs / 60, 1)})
    rows[0]["ratio"] = round(rows[1]["training_min"] / rows[0]["training_min"], 2)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", help="a data folder (any layout localizer reads)")
    parser.add_argument("--subsets", type=int, nargs="+", default=[200], help="photos per run; 0: all of them")
    parser.add_argument("--epochs", type=int, default=4, help="epochs trained per recipe (the first is not timed)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write (default: benchmarks/results/)")
    args = parser.parse_args()
    scan = scan_for(args.data, progress=False)  # one scan for every run
    rows = [row for subset in args.subsets for row in measure(args.data, subset or None, args.epochs, scan)]
    table = pd.DataFrame(rows)
    print(table.fillna("").to_string(index=False))
    out = args.out or Path(__file__).parent / "results" / f"small_data_time_{Path(args.data).name}.json"
    machine = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    out.write_text(json.dumps({**machine, "rows": rows}, indent=1) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
