"""The commands that make data and runs: ``check-data``, ``synthetic``, ``train`` and ``run``.

Each ``cmd_*`` takes the parsed arguments and returns the exit code; each ``add_*_args`` adds the
command's arguments to its sub-parser (:func:`localizer.cli.build_parser`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from localizer.cli.options import add_data_args, add_recipe_args, config_overrides


def add_check_data_args(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser)
    parser.add_argument("--report", type=Path, help="write one row per image found (file, status, reason, ...) and "
                                                    "per label file without a photo")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --report file (never a file of the data folder)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_check_data(args: argparse.Namespace) -> int:
    from localizer.data.validation import scan_dataset
    from localizer.files import check_outputs

    if args.report:  # before the scan: an existing file, a file of the data or a read-only folder is refused
        check_outputs([("--report", args.report)], inputs=[args.data], overwrite=args.overwrite)
    result = scan_dataset(args.data, fmt=args.format, oxford_box=args.oxford_box, classes=args.classes,
                          progress=not args.quiet)
    report = result.write_report(args.report, overwrite=args.overwrite) if args.report else None  # files first
    print(result.summary())
    if report:
        print(f"report:  {report}")
    return 0 if len(result.table) else 2


def add_train_args(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser)
    parser.add_argument("--run-dir", required=True, type=Path, help="run folder (manifest, checkpoints, history)")
    add_recipe_args(parser, "auto", "the run in --run-dir")


def cmd_train(args: argparse.Namespace) -> int:
    from localizer.engine import distributed
    from localizer.engine.numerics import resolve_device
    from localizer.engine.profile_choice import AUTO_PROFILE
    from localizer.engine.run import Run
    from localizer.engine.training import train
    from localizer.recipe import recipe_for

    overrides = config_overrides(args.param)
    reading = {"data": args.data, "format": args.format, "oxford_box": args.oxford_box, "classes": args.classes}
    checked = recipe_for("quick" if args.profile == AUTO_PROFILE else args.profile, **reading, **overrides)  # first
    # the recipe the run was started with when resumed; a -p or data option contradicting it is refused
    run = Run.open(args.run_dir, **reading, **overrides) if args.resume else None
    with distributed.process_group(resolve_device((run.config if run else checked).device)):
        distributed.local_batch((run.config if run else checked).batch_size)  # refused before a run folder is made
        if run is None:  # one process makes the run folder (and its one scan); the others open it
            run = _create_run(args, overrides, reading) if distributed.is_main() else None
            distributed.barrier()
            run = run or Run.open(args.run_dir)
        # --resume continues from last.pt, or starts a run folder made but not trained yet (run --nproc)
        history = train(run, resume="auto" if args.resume else False, overwrite=args.overwrite,
                        progress=not args.quiet)
        main = distributed.is_main()  # asked in the group: every process is the main one once it is left
    if main:
        print(history.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"checkpoints: {run.checkpoints}")
    return 0


def _create_run(args: argparse.Namespace, overrides: dict, reading: dict):
    """``train``'s new run folder (:meth:`localizer.engine.run.Run.create`), with the profile ``auto`` chooses."""
    from localizer.data.scans import scan_for
    from localizer.engine.profile_choice import AUTO_PROFILE, choose_profile
    from localizer.engine.run import Run
    from localizer.recipe import recipe_for

    scan, profile = None, args.profile
    if profile == AUTO_PROFILE:  # the scan the run folder then keeps (Run.create)
        scan = scan_for(args.data, args.format, args.oxford_box, args.classes, progress=not args.quiet)
        profile, why = choose_profile(profile, scan, **overrides)
        print(f"profile {AUTO_PROFILE}: {why}", flush=True)
    return Run.create(recipe_for(profile, **reading, **overrides), args.run_dir, overwrite=args.overwrite,
                      progress=not args.quiet, scan=scan, profile=profile)


def add_synthetic_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output folder (gets yolo/, voc/, coco/ and csv/)")
    parser.add_argument("--images", type=int, default=48, help="photos to draw (default 48)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the drawing (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace the layouts' folders if they exist")


def cmd_synthetic(args: argparse.Namespace) -> int:
    from localizer.data.synthetic import LAYOUTS, make_synthetic_dataset

    truth = make_synthetic_dataset(args.out, n_images=args.images, seed=args.seed, overwrite=args.overwrite)
    print(f"synthetic dataset: {len(truth)} usable photos with known boxes in "
          f"{', '.join(str(Path(args.out) / layout) for layout in LAYOUTS)}")
    return 0


def add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="dataset folder (default: ../shared/data/lion beside the repository when it "
                                       "exists, else data/oxford-iiit-pet, downloaded when missing)")
    parser.add_argument("--run-dir", type=Path, help="run folder (default runs/PROFILE-DATE-TIME)")
    parser.add_argument("--figures", type=Path, help="also copy the four report figures here (e.g. figures)")
    parser.add_argument("--publish", type=Path, metavar="DIR",
                        help="also copy the executed notebooks here, for reading (e.g. report; see make report)")
    add_recipe_args(parser, "auto", "the run folder", copies="--figures and --publish")
    parser.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="train on N processes of this machine (one per GPU, or CPU processes), launched by "
                             "torch.distributed.run after notebook 02 (default 1: in notebook 03's kernel)")


def cmd_run(args: argparse.Namespace) -> int:
    from localizer.report.runner import run_notebooks

    run_dir = run_notebooks(data=args.data, profile=args.profile, run_dir=args.run_dir,
                            params=config_overrides(args.param), figures_dir=args.figures,
                            resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                            publish_dir=args.publish, nproc=args.nproc)
    print(f"run folder: {run_dir}")
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        from localizer.engine.run import Run
        from localizer.report.tables import PIPELINE_CHECK, format_metrics

        print(format_metrics(json.loads(metrics.read_text()), Run.open(run_dir).profile == PIPELINE_CHECK))
    return 0
