"""Command line: ``python -m localizer {check-data,train,evaluate,predict,run,synthetic} ...``.

Every command prints a clear one-line error (no traceback wall) for bad input and returns a
non-zero exit code: 2 for unusable data or arguments (:class:`localizer.errors.DataError`, a missing
file, an output that exists), 1 for a failed notebook, a diverged training or missing weights. Any
other exception is a bug: its traceback is shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from localizer.data.download import DataUnavailableError
from localizer.errors import ConfigError, DataError
from localizer.model.models import WeightsUnavailableError
from localizer.data.readers import FORMATS, OXFORD_BOXES
from localizer.recipe import PROFILES
from localizer.report.runner import NotebookFailed
from localizer.engine.training import TrainingDiverged


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", help="dataset folder")
    _add_format_args(parser)


def _add_format_args(parser: argparse.ArgumentParser) -> None:
    """How a dataset folder is read: ``--format``, ``--oxford-box`` and ``--classes``."""
    parser.add_argument("--format", default="auto", choices=("auto",) + FORMATS,
                        help="dataset format (default: auto, from the files found)")
    parser.add_argument("--oxford-box", default="animal", choices=OXFORD_BOXES,
                        help="oxford-pets: the whole-animal box from the trimap (default), or the XML head box")
    _add_classes_arg(parser)


def _add_classes_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--classes", help="keep only boxes of these classes: VOC or COCO names, YOLO ids "
                                          "(comma-separated), or 'animals' (the VOC and COCO animal classes)")


def cmd_check_data(args: argparse.Namespace) -> int:
    from localizer.data.validation import scan_dataset

    result = scan_dataset(args.data, fmt=args.format, oxford_box=args.oxford_box, classes=args.classes,
                          progress=not args.quiet)
    print(result.summary())
    if args.report:
        print(f"report:  {result.write_report(args.report)}")
    return 0 if len(result.table) else 2


def _config_overrides(pairs: list[str]) -> dict:
    """``NAME=VALUE`` strings -> dict, values parsed as JSON when possible (``lr=3e-4``, ``weights=null``)."""
    values = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"expected NAME=VALUE, got {pair!r}")
        try:
            values[name.strip()] = json.loads(value)
        except json.JSONDecodeError:
            values[name.strip()] = value
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from localizer.recipe import recipe_for
    from localizer.engine.run import Run
    from localizer.engine.training import train

    overrides = _config_overrides(args.param)
    given = {"data": args.data, "format": args.format, "oxford_box": args.oxford_box, "classes": args.classes,
             **overrides}
    config = recipe_for(args.profile, **given)  # names and values checked before any work
    if args.resume:  # the recipe the run was started with; a -p or data option contradicting it is refused
        run = Run.open(args.run_dir, **given)
    else:
        run = Run.create(config, args.run_dir, overwrite=args.overwrite, progress=not args.quiet)
    history = train(run, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    print(history.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"checkpoints: {run.checkpoints}")
    return 0


def _is_run_data(args: argparse.Namespace, config) -> bool:
    """True when ``evaluate`` scores the run's own data: no ``--data``, or the run's folder and format."""
    return args.data is None or (Path(args.data).resolve() == Path(config.data).resolve()
                                 and args.format in ("auto", config.format) and args.oxford_box == config.oxford_box
                                 and args.classes in (None, config.classes))


def _evaluation_set(args: argparse.Namespace, info: dict, split: str):
    """What ``evaluate`` scores: ``(table with a split column, mean box, description)``.

    On the run's own data (:func:`_is_run_data`) the rows come from the run's manifest, as split
    when it was trained: a folder that changed since cannot move photos between splits. On other
    data: every usable photo (``all``; never the run's ``subset``), or the split asked for, made
    afresh with the run's seed and fractions. The mean-box baseline is always the run's training
    mean box.
    """
    from localizer.engine.datasets import normalized_targets
    from localizer.engine.run import Run
    from localizer.data.split import assign_split
    from localizer.data.validation import scan_dataset

    config = info["config"]
    run = Run.of_checkpoint(args.checkpoint)
    manifest = run.manifest if run else None
    mean_box = info["train_mean_box"]
    if mean_box is None and manifest is not None:  # checkpoints from before train_mean_box
        mean_box = normalized_targets(manifest[manifest["split"] == "train"]).mean(axis=0)
    if _is_run_data(args, config):
        if manifest is None:
            raise FileNotFoundError(f"no --data given and {args.checkpoint} is not in a run folder with a manifest")
        count = len(manifest) if split == "all" else int((manifest["split"] == split).sum())
        return manifest, mean_box, f"the run's manifest ({run.folder / 'manifest.csv'}): {split} split, {count} photos"
    scan = scan_dataset(args.data, fmt=args.format, oxford_box=args.oxford_box, classes=args.classes,
                        progress=not args.quiet)
    if split == "all":
        table = scan.table.assign(split="all")
        what = f"all {len(table)} usable photos of {scan.root} (not the run's data; no split, no subset)"
    else:
        table = assign_split(scan.table, seed=config.seed, fractions=config.fractions)
        count = int((table["split"] == split).sum())
        what = (f"the {split} split ({count} photos) of a fresh seeded split of all {len(table)} usable photos "
                f"of {scan.root} (not the run's data; seed {config.seed})")
    if mean_box is None:
        raise FileNotFoundError(f"{args.checkpoint} records no training mean box and is not in a run folder "
                                "whose manifest gives it (the mean-box baseline)")
    return table, mean_box, what


def _tta(args: argparse.Namespace, info: dict) -> bool:
    """Flip test-time augmentation: ``--tta`` / ``--no-tta``, else as the run's recipe scores its
    test split (``tta`` of its config), so that ``evaluate`` repeats the run's own numbers."""
    return info["config"].tta if args.tta is None else args.tta


def cmd_evaluate(args: argparse.Namespace) -> int:
    from localizer.engine.evaluation import by_animal_count, evaluate_model, format_metrics
    from localizer.files import write_csv, write_json
    from localizer.engine.run import load_model

    model, info = load_model(args.checkpoint, args.device)
    tta = _tta(args, info)
    own = _is_run_data(args, info["config"])
    split = args.split or ("test" if own else "all")
    name = f"metrics_{split}" if own else f"metrics_{Path(args.data).resolve().name}_{split}"
    out = Path(args.out or Path(args.checkpoint).resolve().parent.parent / f"{name}{'_tta' if tta else ''}.json")
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite or another --out")
    table, mean_box, what = _evaluation_set(args, info, split)
    print(f"evaluated on: {what}")
    metrics, per_image = evaluate_model(
        model, table, info["config"].image_size, info["input_mean"], info["input_std"], split=split,
        tta=tta, cache_dir=info["config"].cache_dir, seed=info["config"].seed, progress=not args.quiet,
        mean_box=mean_box, numerics=info["numerics"])
    metrics["checkpoint"] = str(args.checkpoint)
    metrics["evaluated_on"] = what
    print(format_metrics(metrics))
    if "n_boxes" in per_image and (per_image["n_boxes"] > 1).any():
        print(f"by animals annotated per photo:\n{by_animal_count(per_image).to_string()}")
    write_json(out, metrics)
    write_csv(per_image, out.with_suffix(".csv"))
    print(f"metrics: {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from localizer.engine.prediction import drawing_paths, expand_inputs, predict_files
    from localizer.engine.run import load_model

    if args.out and Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite or another --out")
    files = expand_inputs(args.inputs)
    if args.draw and not args.overwrite:
        existing = [str(p) for p in drawing_paths(files, args.draw).values() if p.exists()]
        if existing:
            raise FileExistsError(f"{len(existing)} drawings exist already in {args.draw} (e.g. {existing[0]}); "
                                  "pass --overwrite or another --draw folder")
    model, info = load_model(args.checkpoint, args.device)
    tta = _tta(args, info)
    table = predict_files(model, files, info["config"].image_size, info["input_mean"], info["input_std"],
                          tta=tta, draw_dir=args.draw, progress=not args.quiet, numerics=info["numerics"])
    table = table.round(PIXEL_DECIMALS)
    print(f"{len(table)} photos, predicted {'with flip TTA' if tta else 'without TTA'}; boxes in pixels "
          "of each original photo (xmin, ymin, xmax, ymax)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        print(f"predictions: {args.out}")
    else:
        print(table.to_string(index=False))
    if args.draw:
        print(f"drawings: {Path(args.draw)} (one per photo read, prediction in red)")
    failed = int((table["error"].fillna("") != "").sum())
    if failed:
        print(f"{failed} of {len(table)} files could not be read (see the error column)", file=sys.stderr)
    return 0 if failed < len(table) else 2


#: Decimals of the predicted pixel coordinates ``predict`` writes: 0.1 px, below what a box
#: drawn by hand or a model at a few hundred pixels can mean.
PIXEL_DECIMALS = 1


def cmd_synthetic(args: argparse.Namespace) -> int:
    from localizer.data.synthetic import LAYOUTS, make_synthetic_dataset

    truth = make_synthetic_dataset(args.out, n_images=args.images, seed=args.seed, overwrite=args.overwrite)
    print(f"synthetic dataset: {len(truth)} usable photos with known boxes in "
          f"{', '.join(str(Path(args.out) / layout) for layout in LAYOUTS)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from localizer.report.runner import run_notebooks

    run_dir = run_notebooks(data=args.data, profile=args.profile, run_dir=args.run_dir,
                            params=_config_overrides(args.param), figures_dir=args.figures,
                            resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
                            publish_dir=args.publish)
    print(f"run folder: {run_dir}")
    metrics = run_dir / "metrics.json"
    if metrics.exists():
        from localizer.engine.evaluation import format_metrics

        print(format_metrics(json.loads(metrics.read_text())))
    return 0


def _add_recipe_args(parser: argparse.ArgumentParser, profile: str, what: str) -> None:
    """``--profile``, ``-p NAME=VALUE`` (a recipe field; see :class:`localizer.recipe.TrainConfig`)
    and ``--resume`` / ``--overwrite``."""
    parser.add_argument("--profile", default=profile, choices=sorted(PROFILES),
                        help=f"named recipe to start from (default {profile})")
    parser.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                        help="recipe value (JSON), e.g. -p epochs=10 -p backbone=efficientnet_lite0 -p weights=null")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help=f"continue {what}, with the recipe it was started with")
    again.add_argument("--overwrite", action="store_true", help=f"start afresh over {what} (only a localizer run)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_inference_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="a run's checkpoint, e.g. runs/RUN/checkpoints/best.pt (it carries its recipe)")
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=None,
                        help="horizontal-flip test-time augmentation: the box and the box predicted on the "
                             "mirrored photo, mirrored back, are averaged where they agree (IoU > 0.5), else the "
                             "first is kept (default: as the run's recipe, its tta)")
    parser.add_argument("--device", default="auto",
                        help="torch device, e.g. cpu or cuda:0 (default: auto: cuda, else mps, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localizer", description="Single-object localization: check a "
                                     "dataset, train, evaluate, predict, run the notebooks.")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check-data", help="validate a dataset folder and report skipped files")
    _add_data_args(check)
    check.add_argument("--report", type=Path, help="write one row per image found (file, status, reason, ...)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_check_data)

    train = sub.add_parser("train", help="train a box regressor (the report's recipe by default)")
    _add_data_args(train)
    train.add_argument("--run-dir", required=True, type=Path, help="run folder (manifest, checkpoints, history)")
    _add_recipe_args(train, "report", "the run in --run-dir")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="metrics of a checkpoint beside the baselines")
    _add_inference_args(evaluate)
    evaluate.add_argument("--data", help="dataset folder (default: the run's own data, as split in its manifest)")
    _add_format_args(evaluate)
    evaluate.add_argument("--split", choices=("train", "val", "test", "all"),
                          help="the split to score (default: test on the run's own data, as its manifest splits it; all on other --data)")
    evaluate.add_argument("--out", type=Path, help="metrics JSON (default: RUN/metrics_SPLIT[_tta].json, "
                                                   "RUN/metrics_DATANAME_SPLIT[_tta].json for other --data)")
    evaluate.add_argument("--overwrite", action="store_true", help="replace an existing metrics JSON (--out) and its per-image CSV")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="predict the box of new photos")
    _add_inference_args(predict)
    predict.add_argument("inputs", nargs="+", help="image files or folders")
    predict.add_argument("--out", type=Path, help="CSV of predictions (default: print)")
    predict.add_argument("--overwrite", action="store_true", help="replace an existing --out file and drawings")
    predict.add_argument("--draw", type=Path, help="folder for images with the box drawn")
    predict.set_defaults(func=cmd_predict)

    synthetic = sub.add_parser("synthetic", help="write the small synthetic test dataset (known boxes, several layouts)")
    synthetic.add_argument("out", type=Path, help="output folder (gets yolo/, voc/, coco/ and csv/)")
    synthetic.add_argument("--images", type=int, default=48, help="photos to draw (default 48)")
    synthetic.add_argument("--seed", type=int, default=0, help="random seed of the drawing (default 0)")
    synthetic.add_argument("--overwrite", action="store_true", help="replace the layouts' folders if they exist")
    synthetic.set_defaults(func=cmd_synthetic)

    run = sub.add_parser("run", help="execute notebooks 01-04 with papermill into one run folder")
    run.add_argument("--data", help="dataset folder (default: ../shared/data/lion beside the repository when it "
                                     "exists, else data/oxford-iiit-pet, downloaded when missing)")
    run.add_argument("--run-dir", type=Path, help="run folder (default runs/PROFILE-DATE-TIME)")
    run.add_argument("--figures", type=Path, help="also copy the four report figures here (e.g. figures)")
    run.add_argument("--publish", type=Path, metavar="DIR",
                     help="also copy the executed notebooks here, for reading (e.g. report; see make report)")
    _add_recipe_args(run, "quick", "the run folder")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (DataError, FileNotFoundError, FileExistsError, DataUnavailableError) as exc:  # unusable data or arguments
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (NotebookFailed, TrainingDiverged, WeightsUnavailableError) as exc:  # failures with a clear cause
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
