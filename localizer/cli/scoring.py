"""The commands that use a trained model: ``evaluate`` (a split's metrics beside the baselines, and how
well the confidence ranks the boxes) and ``predict`` (boxes of new photos, their confidence, and the photos
to check).

Each ``cmd_*`` takes the parsed arguments and returns the exit code; each ``add_*_args`` adds the
command's arguments to its sub-parser (:func:`localizer.cli.build_parser`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from localizer.cli.options import add_format_args, add_inference_args
from localizer.progress import count

#: Decimals of the predicted pixel coordinates ``predict`` writes: 0.1 px, below what a box
#: drawn by hand or a model at a few hundred pixels can mean ...
PIXEL_DECIMALS = 1
#: ... and of the confidence (in [0, 1]).
CONFIDENCE_DECIMALS = 3


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
    from localizer.data.split import assign_split
    from localizer.data.validation import scan_dataset
    from localizer.engine.run import Run

    config = info["config"]
    run = Run.of_checkpoint(args.checkpoint)
    manifest = run.manifest if run else None
    mean_box = info["train_mean_box"]  # every checkpoint holds it (engine.checkpoints.CHECKPOINT_KEYS)
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


def add_evaluate_args(parser: argparse.ArgumentParser) -> None:
    add_inference_args(parser)
    parser.add_argument("--data", help="dataset folder (default: the run's own data, as split in its manifest)")
    add_format_args(parser)
    parser.add_argument("--split", choices=("train", "val", "test", "all"),
                        help="the split to score (default: test on the run's own data, as its manifest splits it; "
                             "all on other --data)")
    parser.add_argument("--out", type=Path, help="metrics JSON, a .json name; the per-image table goes beside it as "
                                                 "NAME.csv (default: RUN/metrics_SPLIT[_tta].json, "
                                                 "RUN/metrics_DATANAME_SPLIT[_tta].json for other --data)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing metrics JSON (--out) and its per-image CSV (never an input)")


def _evaluate_outputs(args: argparse.Namespace, info: dict, own: bool, split: str, tta: bool) -> list[tuple]:
    """``evaluate``'s two files, checked before the scoring (:func:`localizer.files.check_outputs`): the
    metrics JSON and, beside it, the per-image CSV; ``(option, path)`` pairs.

    Raises:
        localizer.errors.DataError: ``bad-argument``: an ``--out`` without the ``.json`` ending (the
            per-image table ``NAME.csv`` beside it would take its name or leave no metrics file).
        FileExistsError, localizer.files.OutputError: as :func:`localizer.files.check_outputs`, with the
            inputs: the checkpoint, its run's files and the photos' folder.
    """
    from localizer.errors import DataError
    from localizer.files import check_outputs

    if args.out is not None and args.out.suffix.lower() != ".json":
        raise DataError("bad-argument", f"--out {args.out}: evaluate writes the metrics JSON there and the per-image "
                                        f"table beside it as {args.out.with_suffix('.csv').name}; give a .json name, "
                                        f"e.g. --out {args.out.with_suffix('.json')}")
    name = f"metrics_{split}" if own else f"metrics_{Path(args.data).resolve().name}_{split}"
    out = Path(args.out or Path(args.checkpoint).resolve().parent.parent / f"{name}{'_tta' if tta else ''}.json")
    outputs = [("--out", out), ("--out", out.with_suffix(".csv"))]
    run = Path(args.checkpoint).resolve().parent.parent
    inputs = [args.checkpoint, Path(args.checkpoint).parent / "last.pt", run / "config.json", run / "manifest.csv",
              args.data or info["config"].data]
    check_outputs(outputs, inputs=inputs, overwrite=args.overwrite)
    return outputs


def cmd_evaluate(args: argparse.Namespace) -> int:
    from localizer.engine.evaluation import evaluate_model
    from localizer.report.tables import PIPELINE_CHECK, by_animal_count, format_metrics
    from localizer.engine.checkpoints import load_model
    from localizer.engine.run import Run
    from localizer.files import write_csv, write_json
    from localizer.report.results import format_confidence

    model, info = load_model(args.checkpoint, args.device)
    tta = _tta(args, info)
    own = _is_run_data(args, info["config"])
    split = args.split or ("test" if own else "all")
    (_, out), (_, csv) = _evaluate_outputs(args, info, own, split, tta)  # before the work
    table, mean_box, what = _evaluation_set(args, info, split)
    metrics, per_image = evaluate_model(
        model, table, info["config"].image_size, split=split,
        tta=tta, cache_dir=info["config"].cache_dir, seed=info["config"].seed, progress=not args.quiet,
        mean_box=mean_box, numerics=info["numerics"])
    metrics["checkpoint"] = str(args.checkpoint)
    metrics["evaluated_on"] = what
    write_json(out, metrics, replace=args.overwrite)  # files first, then print
    write_csv(per_image, csv, replace=args.overwrite)
    print(f"evaluated on: {what}")
    run = Run.of_checkpoint(args.checkpoint)
    print(format_metrics(metrics, run is not None and run.profile == PIPELINE_CHECK))
    print(format_confidence(metrics))
    if "n_boxes" in per_image and (per_image["n_boxes"] > 1).any():
        print(f"by animals annotated per photo:\n{by_animal_count(per_image).to_string()}")
    print(f"metrics: {out}")
    return 0


def add_predict_args(parser: argparse.ArgumentParser) -> None:
    add_inference_args(parser)
    parser.add_argument("inputs", nargs="+", help="image files or folders")
    parser.add_argument("--out", type=Path, help="CSV of predictions (default: print)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file, drawings and --annotations files")
    parser.add_argument("--draw", type=Path, help="folder for images with the box and its confidence drawn")
    parser.add_argument("--annotations", nargs=2, metavar=("FORMAT", "OUT"),
                        help="also write the boxes as pre-annotations to correct in an annotation tool, into the "
                             "folder OUT: FORMAT label-studio (tasks.json), coco (CVAT COCO 1.0), cvat-yolo (CVAT "
                             "YOLO 1.1), yolo (labels/ + data.yaml) or voc (Annotations/); with --flag-below the "
                             "flagged photos come first and OUT/to_check.txt lists them (docs/exporters.md)")
    parser.add_argument("--flag-below", nargs="?", const="val", metavar="CONFIDENCE",
                        help="add a flagged column: the photos whose confidence is below CONFIDENCE, to check by "
                             "hand; without a number, the threshold chosen on the run's validation split (the "
                             "lowest confidence of its 80 %% most confident photos; computed once, then kept in "
                             "RUN/metrics_val_confidence.json; an exported .onnx: the threshold its export kept)")


def _flag_threshold(args: argparse.Namespace) -> tuple[float | None, str]:
    """``predict --flag-below``: ``(threshold, where it comes from)``, ``(None, "")`` without the option.
    ``val`` (the option without a number): the run's validation threshold
    (:func:`localizer.engine.review.flag_threshold`; the checkpoint must lie in a run folder).

    Raises:
        localizer.errors.DataError: a value that is neither a number in [0, 1] nor ``val``, or ``val``
            for a checkpoint outside a run folder.
    """
    from localizer.engine.onnx_model import OnnxLocalizer, is_onnx
    from localizer.engine.run import Run
    from localizer.errors import DataError
    from localizer.engine.review import flag_threshold

    if args.flag_below is None:
        return None, ""
    if args.flag_below != "val":
        try:
            value = float(args.flag_below)
        except ValueError:
            value = float("nan")
        if not 0 <= value <= 1:
            raise DataError("bad-threshold", f"--flag-below takes a confidence in [0, 1] or nothing, got "
                                             f"{args.flag_below!r}")
        return value, "given"
    if is_onnx(args.checkpoint):
        kept = OnnxLocalizer.describe(args.checkpoint)
        if kept.get("flag_threshold") is None:
            raise DataError("no-validation-split", "its export has no threshold (its checkpoint had no run folder "
                            "with validation photos to choose it on): give --flag-below a number", args.checkpoint)
        return kept["flag_threshold"], f"chosen on the validation split: {kept['flag_rule']}"
    run = Run.of_checkpoint(args.checkpoint)
    if run is None:
        raise DataError("no-validation-split", f"{args.checkpoint} is not in a run folder, whose validation split "
                                               "would choose the threshold: give --flag-below a number")
    chosen = flag_threshold(run, Path(args.checkpoint).name, progress=not args.quiet)
    return chosen["threshold"], f"chosen on the validation split: {chosen['rule']}"


def _box_source(args: argparse.Namespace) -> tuple:
    """``predict``'s model: ``(model, image size, numerics, the recipe's tta, class name, model version)`` of a
    checkpoint (PyTorch) or an exported ``.onnx`` (onnxruntime, :class:`localizer.engine.onnx_model.OnnxLocalizer`;
    ``--device`` is not used)."""
    from localizer.data.writers import class_name
    from localizer.engine.checkpoints import load_model
    from localizer.engine.onnx_model import OnnxLocalizer, is_onnx

    version = f"localizer {Path(args.checkpoint).resolve().parent.parent.name}/{Path(args.checkpoint).name}"
    if is_onnx(args.checkpoint):
        model = OnnxLocalizer(args.checkpoint)
        about = model.description
        return model, model.image_size, None, about["tta"], about["class_name"], version
    model, info = load_model(args.checkpoint, args.device)
    config = info["config"]
    return model, config.image_size, info["numerics"], config.tta, class_name(config.classes), version


def _annotation_outputs(args: argparse.Namespace, files: list[Path]) -> list[tuple[str, Path]]:
    """The files ``--annotations FORMAT OUT`` writes, as ``(option, path)`` for the check before the work.

    Raises:
        localizer.errors.DataError: ``bad-argument``: an unknown FORMAT; ``output-collision``: two photos would
            share an annotation file.
    """
    from localizer.data.writers import ANNOTATION_FORMATS, annotation_files
    from localizer.errors import DataError

    if not args.annotations:
        return []
    fmt, out = args.annotations
    if fmt not in ANNOTATION_FORMATS:
        raise DataError("bad-argument", f"--annotations {fmt} {out}: FORMAT is one of {', '.join(ANNOTATION_FORMATS)}")
    return [("--annotations", Path(out) / name) for name in annotation_files(fmt, files, args.flag_below is not None)]


def cmd_predict(args: argparse.Namespace) -> int:
    from localizer.data.writers import write_annotations
    from localizer.engine.prediction import (drawing_paths, expand_inputs, passed_over, predict_files,
                                             refuse_overwriting_inputs)
    from localizer.files import check_outputs, write_csv

    files = expand_inputs(args.inputs)
    refuse_overwriting_inputs(files, args.draw, args.out)  # before any message inviting --overwrite
    drawings = list(drawing_paths(files, args.draw).values()) if args.draw else []
    if args.draw and not args.overwrite and any(p.exists() for p in drawings):
        existing = [str(p) for p in drawings if p.exists()]
        raise FileExistsError(f"{len(existing)} drawings exist already in {args.draw} (e.g. {existing[0]}); "
                              "pass --overwrite or another --draw folder")
    outputs = [("--out", args.out)] * bool(args.out) + [("--draw", p) for p in drawings]
    outputs += _annotation_outputs(args, files)
    check_outputs(outputs, inputs=[*files, args.checkpoint], overwrite=args.overwrite)  # before the work
    if passed_over(args.inputs):
        print(f"passed over {passed_over(args.inputs)}", file=sys.stderr)
    threshold, how = _flag_threshold(args)
    model, image_size, numerics, recipe_tta, label, version = _box_source(args)
    tta = recipe_tta if args.tta is None else args.tta
    raw = predict_files(model, files, image_size, tta=tta, draw_dir=args.draw, progress=not args.quiet,
                        numerics=numerics, flag_below=threshold, overwrite=args.overwrite)
    table = raw.round(PIXEL_DECIMALS).assign(confidence=raw["confidence"].round(CONFIDENCE_DECIMALS))
    if args.out:  # files first, then print
        write_csv(table, args.out, replace=args.overwrite)
    if args.annotations:
        write_annotations(args.annotations[0], raw, args.annotations[1], label, version, overwrite=args.overwrite)
    print(f"{count(len(table), 'photo')}, predicted {'with flip TTA' if tta else 'without TTA'}; boxes in pixels "
          "of each original photo (xmin, ymin, xmax, ymax)")
    if threshold is not None:
        print(f"flagged: {count(int(table['flagged'].sum()), 'photo')} with a confidence below {threshold:.3f} ({how})")
    if args.out:
        print(f"predictions: {args.out}")
    else:
        print(table.to_string(index=False))
    if args.draw:
        print(f"drawings: {Path(args.draw)} (one per photo read, prediction in red)")
    if args.annotations:
        print(f"pre-annotations ({args.annotations[0]}, class {label!r}): {args.annotations[1]}")
    failed = int((table["error"].fillna("") != "").sum())
    if failed:
        print(f"{failed} of {len(table)} files could not be read (see the error column)", file=sys.stderr)
    return 0 if failed < len(table) else 2
