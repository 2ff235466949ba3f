"""Nothing a user owns is written over: every file a command writes, the ones beside the file named
included, is checked before the work by one rule (:func:`localizer.files.check_outputs`): a file that
exists survives without ``--overwrite``, an input survives with it, and a folder that cannot be written
is said in one line before a photo is scored. Every write of the package goes through
:mod:`localizer.files`."""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import fit

import localizer.engine.review  # noqa: F401 - bound before no_work patches what they import
import localizer.report.confidence  # noqa: F401
import localizer.report.runner  # noqa: F401
from localizer import cli, files
from localizer.data.cache import ImageCache
from localizer.recipe import TrainConfig

PACKAGE = Path(__file__).resolve().parents[1] / "localizer"
MINE = b"a file the user owns\n"


@pytest.fixture(scope="module")
def ctx(synthetic_data, tmp_path_factory):
    """A one-epoch run of 40 synthetic photos (its own copy of the data) and the paths the cases use."""
    root = tmp_path_factory.mktemp("outputs")
    data = root / "data"
    shutil.copytree(synthetic_data / "yolo", data)
    config = TrainConfig(data=str(data), image_size=48, epochs=1, batch_size=8, backbone="efficientnet_lite0",
                         weights=None, head="softargmax", subset=40, workers=0, cache_dir=str(root / "cache"))
    fit(config, root / "run", progress=False)
    return {"data": data, "run": root / "run", "ckpt": root / "run" / "checkpoints" / "best.pt",
            "photo": data / "images" / "animal_001.jpg", "label": data / "labels" / "animal_001.txt"}


@pytest.fixture
def no_work(monkeypatch):
    """The work of every command fails the test: each case must be refused before it."""
    for name in ("localizer.engine.evaluation.evaluate_model", "localizer.engine.prediction.predict_files",
                 "localizer.engine.review.review_run", "localizer.engine.training.train",
                 "localizer.report.runner._run_notebook", "localizer.data.synthetic.make_photos",
                 "localizer.engine.export._write_onnx"):
        monkeypatch.setattr(name, lambda *a, _name=name, **k: pytest.fail(f"{_name} ran"))


#: Every file-writing call of the command line: (command, option) -> (argv, the files it writes).
CASES = {
    ("check-data", "--report"): lambda c, t: (["check-data", str(c["data"]), "--quiet", "--report", str(t / "r.csv")],
                                              [t / "r.csv"]),
    ("evaluate", "--out"): lambda c, t: (["evaluate", "--checkpoint", str(c["ckpt"]), "--quiet", "--out",
                                          str(t / "m.json")], [t / "m.json", t / "m.csv"]),
    ("evaluate", "default"): lambda c, t: (["evaluate", "--checkpoint", str(c["ckpt"]), "--quiet"],
                                           [c["run"] / "metrics_test.json", c["run"] / "metrics_test.csv"]),
    ("predict", "--out"): lambda c, t: (["predict", "--checkpoint", str(c["ckpt"]), str(c["photo"]), "--quiet",
                                         "--out", str(t / "p.csv")], [t / "p.csv"]),
    ("predict", "--draw"): lambda c, t: (["predict", "--checkpoint", str(c["ckpt"]), str(c["photo"]), "--quiet",
                                          "--draw", str(t / "drawn")], [t / "drawn" / "animal_001.jpg"]),
    ("predict", "--annotations"): lambda c, t: (["predict", "--checkpoint", str(c["ckpt"]), str(c["photo"]), "--quiet",
                                                 "--annotations", "yolo", str(t / "ann")],
                                                [t / "ann" / "data.yaml", t / "ann" / "labels" / "animal_001.txt"]),
    ("export", "--out"): lambda c, t: (["export", "--checkpoint", str(c["ckpt"]), "--out", str(t / "m.onnx")],
                                       [t / "m.onnx", t / "m.onnx.json"]),
    ("review", "--out"): lambda c, t: (["review", str(c["run"]), "--quiet", "--out", str(t / "rev")],
                                       [t / "rev" / "review.csv", t / "rev" / "label_review.jpg"]),
    ("review", "default"): lambda c, t: (["review", str(c["run"]), "--quiet"],
                                         [c["run"] / "figures" / "label_review.jpg"]),
    ("synthetic", "out"): lambda c, t: (["synthetic", str(t / "syn")], [t / "syn" / "yolo"]),
    ("train", "--run-dir"): lambda c, t: (["train", str(c["data"]), "--run-dir", str(t / "r"), "--quiet", "-p",
                                           "epochs=1"], [t / "r" / "notes.txt"]),
    ("run", "--run-dir"): lambda c, t: (["run", "--data", str(c["data"]), "--run-dir", str(t / "rr"), "--quiet"],
                                        [t / "rr" / "notes.txt"]),
    ("run", "--figures"): lambda c, t: (["run", "--data", str(c["data"]), "--run-dir", str(t / "rr"), "--quiet",
                                         "--figures", str(t / "fig")], [t / "fig" / "figure1_training_curves.png"]),
    ("run", "--publish"): lambda c, t: (["run", "--data", str(c["data"]), "--run-dir", str(t / "rr"), "--quiet",
                                         "--publish", str(t / "pub")], [t / "pub" / "01_data_exploration.ipynb"]),
}

#: The same commands pointed at one of their inputs, with --overwrite: (argv, the input).
INPUT_CASES = {
    "check-data --report": lambda c: (["check-data", str(c["data"]), "--quiet", "--report", str(c["label"])],
                                      c["label"]),
    "evaluate --out": lambda c: (["evaluate", "--checkpoint", str(c["ckpt"]), "--quiet", "--out",
                                  str(c["run"] / "config.json")], c["run"] / "config.json"),
    "evaluate --out, its csv": lambda c: (["evaluate", "--checkpoint", str(c["ckpt"]), "--quiet", "--out",
                                           str(c["run"] / "manifest.json")], c["run"] / "manifest.csv"),
    "predict --out": lambda c: (["predict", "--checkpoint", str(c["ckpt"]), str(c["photo"]), "--quiet", "--out",
                                 str(c["photo"])], c["photo"]),
    "predict --draw": lambda c: (["predict", "--checkpoint", str(c["ckpt"]), str(c["photo"]), "--quiet", "--draw",
                                  str(c["photo"].parent)], c["photo"]),
    "review --out": lambda c: (["review", str(c["run"]), "--quiet", "--out", str(c["data"] / "labels")],
                               c["data"] / "labels" / "review.csv"),
    "train --run-dir": lambda c: (["train", str(c["data"]), "--run-dir", str(c["data"]), "--quiet"], c["label"]),
    "run --figures": lambda c: (["run", "--data", str(c["data"]), "--quiet", "--figures", str(c["data"] / "labels")],
                                c["data"] / "labels" / "figure1_training_curves.png"),
}


def _state(paths: list[Path]) -> dict[Path, bytes | None]:
    return {p: (p.read_bytes() if p.is_file() else None) for p in paths}


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: " ".join(c))
def test_a_file_the_command_did_not_create_survives_without_overwrite(ctx, tmp_path, case, capsys, no_work):
    argv, outputs = CASES[case](ctx, tmp_path)
    for output in outputs:  # each alone: a file written beside the one named is guarded as well
        output.parent.mkdir(parents=True, exist_ok=True)
        mine = output / "mine.txt" if output.suffix == "" and case != ("train", "--run-dir") else output
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_bytes(MINE)
        assert cli.main(argv) == 2, capsys.readouterr()
        assert mine.read_bytes() == MINE
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1, err
        shutil.rmtree(output) if output.is_dir() else output.unlink()


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_an_input_survives_with_overwrite(ctx, case, capsys, no_work):
    argv, given = INPUT_CASES[case](ctx)
    created = not given.exists()
    if created:  # a file of the data folder, made for the case: the data's own files are inputs
        given.write_bytes(MINE)
    before = given.read_bytes()
    try:
        assert cli.main([*argv, "--overwrite"]) == 2
        assert given.read_bytes() == before
        err = capsys.readouterr().err
        assert "would-overwrite-input" in err or "is not a localizer run folder" in err, err
    finally:
        if created:
            given.unlink()


def test_every_output_option_of_the_parser_is_walked():
    """Each option that names where a command writes is in :data:`CASES` (a new one must be added)."""
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices
    writers = {"out", "report", "draw", "run_dir", "figures", "publish"}
    found = {(name, action.option_strings[0] if action.option_strings else action.dest)
             for name, command in commands.items() for action in command._actions if action.dest in writers}
    walked = {case for case in CASES} | {("evaluate", "--out"), ("review", "--out")}
    assert found <= walked, found - walked


def test_evaluate_never_ends_without_a_metrics_file(ctx, tmp_path, capsys):
    assert cli.main(["evaluate", "--checkpoint", str(ctx["ckpt"]), "--quiet", "--out", str(tmp_path / "r.csv")]) == 2
    assert capsys.readouterr().err == (f"error: bad-argument: --out {tmp_path / 'r.csv'}: evaluate writes the metrics "
                                       f"JSON there and the per-image table beside it as r.csv; give a .json name, "
                                       f"e.g. --out {tmp_path / 'r.json'}\n")
    assert not (tmp_path / "r.csv").exists()


# ------------------------------------------------------------------------ folders that cannot be written
def _read_only(folder: Path, monkeypatch) -> None:
    """Make ``folder`` read-only; as root (who may write anyway) the access check is told so too."""
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access
        monkeypatch.setattr(files.os, "access", lambda p, mode: real(p, mode) and not (
            mode & os.W_OK and Path(p).resolve() == folder.resolve()))


def test_evaluate_in_a_read_only_run_folder_says_so_before_scoring(ctx, tmp_path, monkeypatch, capsys):
    run = tmp_path / "shared_run"
    shutil.copytree(ctx["run"], run)
    _read_only(run, monkeypatch)
    monkeypatch.setattr("localizer.engine.evaluation.evaluate_model", lambda *a, **k: pytest.fail("scored"))
    try:
        assert cli.main(["evaluate", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--quiet"]) == 2
    finally:
        run.chmod(0o755)
    assert capsys.readouterr().err == (f"error: {run / 'metrics_test.json'}: read-only-output: cannot write here (the "
                                       f"folder is read-only, or not a folder); pass --out somewhere you can write\n")


def test_an_output_under_a_file_is_refused_in_one_line(ctx, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "p.csv"
    assert cli.main(["predict", "--checkpoint", str(ctx["ckpt"]), str(ctx["photo"]), "--quiet", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: {out}: read-only-output: cannot write here (the folder is read-only, "
                                       f"or not a folder); pass --out somewhere you can write\n")


def test_a_threshold_that_cannot_be_kept_is_used_and_not_kept(ctx, tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    kept = ctx["run"] / "metrics_val_confidence.json"
    kept.unlink(missing_ok=True)
    monkeypatch.setattr("localizer.engine.review.write_json", refused)
    out = tmp_path / "p.csv"
    assert cli.main(["predict", "--checkpoint", str(ctx["ckpt"]), str(ctx["photo"]), "--quiet", "--out", str(out),
                     "--flag-below"]) == 0
    assert pd.read_csv(out)["flagged"].dtype == bool and not kept.exists()


def test_a_cache_that_cannot_be_written_is_not_kept(ctx, tmp_path, capsys):
    (tmp_path / "cache").write_text("a file where the cache folder would be")
    cache = ImageCache(tmp_path / "cache", image_size=16)
    slots = cache.add([str(ctx["photo"]), str(ctx["data"] / "images" / "animal_002.jpg")], progress=False)
    assert slots.tolist() == [0, 1] and cache.open().shape == (2, 16, 16, 3)
    assert "cannot be written: the decoded photos are not kept" in capsys.readouterr().err
    folder = cache.folder
    del cache
    assert not folder.exists() and (tmp_path / "cache").read_text().startswith("a file")


# ----------------------------------------------------------------------------- one module writes
#: Writes outside localizer/files.py, each with why it may: the rest of the package writes through it.
ALLOWED = {
    ("report/photos.py", "savefig"): "into memory (io.BytesIO) for display, no file",
    ("report/runner.py", "execute_notebook"): "papermill writes the executed notebook into the checked run folder",
    ("report/runner.py", "rmtree"): "--overwrite deletes a run folder, only a localizer run (foreign_entries)",
    ("data/synthetic.py", "rmtree"): "--overwrite deletes a synthetic dataset folder it marked as its own",
}
#: Methods that write a file whatever they are called on, and those that do when called on a given module.
WRITERS = {"write_text", "write_bytes", "savefig", "to_parquet", "to_pickle", "execute_notebook", "symlink_to",
           "hardlink_to", "touch", "save", "rename"}
MODULE_WRITERS = {"shutil": {"rmtree", "copy", "copy2", "copyfile", "copytree", "move"}, "os": {"replace", "rename"},
                  "json": {"dump"}, "pickle": {"dump"}, "yaml": {"dump", "safe_dump"}, "nbformat": {"write"},
                  "np": {"save", "savez", "savetxt"}, "torch": {"save"}}


def _writes(path: Path) -> list[tuple[str, str]]:
    """The calls in ``path`` that write a file: ``(name, the call)``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute):
            name, owner = func.attr, ast.unparse(func.value)
            write = (name in WRITERS or name in MODULE_WRITERS.get(owner, ())
                     or name == "to_csv" and bool(node.args or any(k.arg == "path_or_buf" for k in node.keywords)))
        else:
            name = getattr(func, "id", "")
            write = name == "open" and any(isinstance(a, ast.Constant) and set(str(a.value)) & set("wax")
                                           for a in node.args[1:2])
        if write:
            found.append((name, ast.unparse(node)))
    return found


def test_every_write_of_the_package_goes_through_files():
    stray = [f"{path.relative_to(PACKAGE).as_posix()}: {call}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "files.py" or path.parent != PACKAGE
             for name, call in _writes(path) if (path.relative_to(PACKAGE).as_posix(), name) not in ALLOWED]
    assert stray == []


def test_check_outputs_by_hand(tmp_path):
    photo = tmp_path / "photos" / "a.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"jpeg")
    (tmp_path / "link").symlink_to(photo.parent)
    with pytest.raises(files.OutputError, match="would-overwrite-input"):
        files.check_outputs([("--out", tmp_path / "link" / ".." / "photos" / "a.jpg")], inputs=[photo], overwrite=True)
    with pytest.raises(files.OutputError, match="would-overwrite-input: --out .* a file of .*photos, which"):
        files.check_outputs([("--out", photo)], inputs=[photo.parent], overwrite=True)
    with pytest.raises(files.OutputError, match="output-collision"):
        files.check_outputs([("--out", tmp_path / "m.csv"), ("--out", tmp_path / "m.csv")])
    files.check_outputs([("--out", photo.parent / "new.csv")], inputs=[photo.parent])  # a new file beside: allowed
    (tmp_path / "old.csv").write_text("mine")
    with pytest.raises(FileExistsError, match="old.csv exists; pass --overwrite to replace it, or another --out"):
        files.check_outputs([("--out", tmp_path / "old.csv")])
    files.check_outputs([("--out", tmp_path / "old.csv")], overwrite=True)
    with pytest.raises(FileExistsError):
        files.write_json(tmp_path / "old.csv", {"a": 1})
    assert (tmp_path / "old.csv").read_text() == "mine"
    assert json.loads(files.write_json(tmp_path / "old.csv", {"a": 1}, replace=True).read_text()) == {"a": 1}
