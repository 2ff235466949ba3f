"""Data layer: boxes, safe decoding, readers, check-data, split/manifest, transforms, cache, datasets.

Real data (``../shared/data``, see conftest ``shared_data``) is scanned once per session; every bad
input is built here in ``tmp_path``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from helpers import noise_image, report_row
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from localizer import cli
from localizer.data import validation
from localizer.data.batch_augment import JITTER_OPS, AugmentParams, BatchAugment, apply_augment
from localizer.boxes import BOX_TOLERANCE, BoxError, check_box, primary_box
from localizer.data.cache import ImageCache
from localizer.data.datasets import CachedBoxDataset, make_loader
from localizer.data.imageio import ImageLoadError, load_rgb
from localizer.data.readers import (
    AnnotationError,
    DataFormatError,
    detect_format,
    parse_voc_xml,
    parse_yolo_label,
)
from localizer.data.split import assign_split, load_manifest, save_manifest, split_sizes
from localizer.data.transforms import boxes_to_target, build_augmentation, build_transforms, pixel_boxes, resize_image
from localizer.data.validation import scan_dataset
from localizer.engine.numerics import default_numerics, model_input
from localizer.model.backbones import IMAGENET_MEAN, IMAGENET_STD
from localizer.model.models import build_model

PROJECT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ helpers
def jpeg_bytes(width: int = 80, height: int = 60, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    noise_image(width, height, seed).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_yolo(root: Path) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    return root


def add_yolo(root: Path, name: str, image: bytes | Image.Image | None, label: str | None) -> None:
    """Write ``images/NAME.jpg`` (bytes as is, a PIL image as JPEG) and ``labels/NAME.txt`` (None: no file)."""
    make_yolo(root)
    if isinstance(image, Image.Image):
        image.save(root / "images" / f"{name}.jpg", format="JPEG", quality=95)
    elif image is not None:
        (root / "images" / f"{name}.jpg").write_bytes(image)
    if label is not None:
        (root / "labels" / f"{name}.txt").write_text(label)


def table_box(result, file: str) -> tuple[float, float, float, float]:
    rows = result.table[result.table["file"] == file]
    assert len(rows) == 1, f"{file} not usable once: {result.report.to_dict('records')}"
    return tuple(rows.iloc[0][["xmin", "ymin", "xmax", "ymax"]].astype(float))


def run_check_data(argv: list[str]) -> tuple[int, object, str]:
    """``cli.main(argv)`` in process; returns the exit code, the ScanResult it made and its stdout."""
    captured = []
    real_scan = validation.scan_dataset

    def recording_scan(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        captured.append(result)
        return result

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(validation, "scan_dataset", recording_scan)
        code = cli.main(argv)
    return code, (captured[0] if captured else None), out.getvalue()


# ------------------------------------------------------------------------------ real data fixtures
@pytest.fixture(scope="session")
def lion_check(shared_data, tmp_path_factory):
    """``check-data lion --report`` run once in process (exit code, ScanResult, report path, stdout)."""
    report = tmp_path_factory.mktemp("lion") / "report.csv"
    code, result, stdout = run_check_data(
        ["check-data", str(shared_data / "lion"), "--report", str(report), "--quiet"])
    assert result is not None, "check-data did not call scan_dataset"
    return SimpleNamespace(code=code, result=result, report=report, stdout=stdout)


@pytest.fixture(scope="session")
def oxford_animal(shared_data):
    return scan_dataset(shared_data / "oxford-pets-sample", progress=False)


@pytest.fixture(scope="session")
def oxford_head(shared_data):
    return scan_dataset(shared_data / "oxford-pets-sample", oxford_box="head", progress=False)


# ------------------------------------------------------------------------------------------ lion
def test_lion_check_data_counts(lion_check):
    result = lion_check.result
    assert lion_check.code == 0
    assert result.format == "yolo"
    assert len(result.report) == 2481
    assert len(result.table) == 2427
    assert (result.report["status"] == "ok").sum() == 2427
    assert result.skipped_counts.to_dict() == {"no-box": 54}
    assert (result.table["n_boxes"] > 1).sum() == 447
    assert (result.table["n_boxes"] == 1).sum() == 1980
    assert set(result.table["width"]) == {460} and set(result.table["height"]) == {460}
    assert "found:   2481 images" in lion_check.stdout
    assert "usable:  2427" in lion_check.stdout
    assert "no-box: 54" in lion_check.stdout


def test_lion_report_csv(lion_check):
    report = pd.read_csv(lion_check.report, keep_default_na=False)
    assert list(report.columns) == ["file", "status", "reason", "dup_group", "twin_box_iou"]
    assert len(report) == 2481
    assert report["status"].value_counts().to_dict() == {"ok": 2427, "skipped": 54}
    skipped = report[report["status"] == "skipped"]
    assert skipped["reason"].str.startswith("no-box: ").all()
    assert (report.loc[report["status"] == "ok", "reason"] == "").all()
    assert report["file"].str.match(r"^images/[^/]+\.jpg$").all()


def _yolo_boxes_by_hand(label: Path, width: int, height: int) -> list[tuple[float, float, float, float]]:
    boxes = []
    for line in label.read_text().splitlines():
        if line.strip():
            _, cx, cy, w, h = line.split()
            cx, cy, w, h = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
            boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return boxes


def test_lion_primary_box_is_largest(lion_check, shared_data):
    table = lion_check.result.table
    several = table[table["n_boxes"] > 1]
    assert len(several) == 447
    largest_not_first = []
    for row in several.itertuples():
        label = shared_data / "lion" / "labels" / (Path(row.file).stem + ".txt")
        boxes = _yolo_boxes_by_hand(label, 460, 460)
        assert len(boxes) == row.n_boxes
        areas = [(x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes]
        best = int(np.argmax(areas))
        expected = np.clip(boxes[best], 0, 460)
        assert np.allclose([row.xmin, row.ymin, row.xmax, row.ymax], expected, atol=1e-6), row.file
        if best != 0:
            largest_not_first.append(row.file)
    # the check above can tell "largest" from "first line" only where they differ
    assert largest_not_first


def test_lion_one_multibox_image_by_hand(lion_check, shared_data):
    """One image whose largest box is not on the first label line, checked explicitly."""
    table = lion_check.result.table.set_index("file")
    for file in table.index[table["n_boxes"] > 1]:
        lines = [ln.split() for ln in (shared_data / "lion" / "labels" / (Path(file).stem + ".txt"))
                 .read_text().splitlines() if ln.strip()]
        areas = [float(f[3]) * 460 * float(f[4]) * 460 for f in lines]
        if int(np.argmax(areas)) != 0 and areas[0] < max(areas):
            break
    else:
        pytest.fail("no multi-box lion image with its largest box after the first line")
    k = int(np.argmax(areas))
    cx, cy, w, h = (float(v) for v in lines[k][1:])
    expected = [(cx - w / 2) * 460, (cy - h / 2) * 460, (cx + w / 2) * 460, (cy + h / 2) * 460]
    row = table.loc[file]
    assert row["n_boxes"] == len(lines) >= 2
    got = [row["xmin"], row["ymin"], row["xmax"], row["ymax"]]
    assert got == pytest.approx(np.clip(expected, 0, 460), abs=1e-6)
    first = lines[0][1:]
    assert got != pytest.approx([(float(first[0]) - float(first[2]) / 2) * 460] + got[1:], abs=1e-3)


def test_lion_check_data_subprocess(lion_check, shared_data, tmp_path):
    report = tmp_path / "report.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "localizer", "check-data", str(shared_data / "lion"), "--quiet",
         "--report", str(report)],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usable:  2427" in proc.stdout
    assert report.read_text() == lion_check.report.read_text()


def test_lion_split_sizes(lion_check):
    split = assign_split(lion_check.result.table, seed=42)
    assert split["split"].value_counts().to_dict() == {"train": 1698, "val": 364, "test": 365}


# ------------------------------------------------------------------------------------------ oxford
def test_oxford_animal_scan(oxford_animal, shared_data):
    result = oxford_animal
    assert result.format == "oxford-pets"
    assert detect_format(shared_data / "oxford-pets-sample") == "oxford-pets"
    assert len(result.report) == 600
    assert (shared_data / "oxford-pets-sample" / "images" / "Abyssinian_100.mat").is_file()
    assert result.report["file"].str.endswith(".jpg").all()
    assert len(result.table) == 599
    row = report_row(result, "images/Abyssinian_34.jpg")
    assert (row["status"], row["code"]) == ("skipped", "no-box")
    assert result.skipped_counts.to_dict() == {"no-box": 1}


def test_oxford_animal_box_exact(oxford_animal):
    row = oxford_animal.table.set_index("file").loc["images/Abyssinian_1.jpg"]
    assert (row["width"], row["height"]) == (600, 400)
    assert (row["xmin"], row["ymin"], row["xmax"], row["ymax"]) == (92, 66, 460, 343)
    # the GIF and the RGBA PNG named .jpg are usable
    assert {"images/Abyssinian_5.jpg"} <= set(oxford_animal.table["file"])


def test_oxford_head_scan(oxford_head):
    assert len(oxford_head.report) == 600
    assert len(oxford_head.table) == 296
    assert oxford_head.skipped_counts.to_dict() == {"missing-annotation": 304}
    # Abyssinian_1.xml: xmin=333 ymin=72 xmax=425 ymax=158 (1-based inclusive)
    assert table_box(oxford_head, "images/Abyssinian_1.jpg") == (332, 71, 425, 158)


def test_oxford_gif_and_rgba_png_load_as_rgb(shared_data):
    images = shared_data / "oxford-pets-sample" / "images"
    with Image.open(images / "Abyssinian_34.jpg") as raw:
        assert (raw.format, raw.mode) == ("GIF", "P")
        raw_rgb = np.asarray(raw.convert("RGB"))
    gif = load_rgb(images / "Abyssinian_34.jpg")
    assert (gif.mode, gif.size) == ("RGB", (250, 202))
    assert np.array_equal(np.asarray(gif), raw_rgb)

    with Image.open(images / "Abyssinian_5.jpg") as raw:
        assert (raw.format, raw.mode) == ("PNG", "RGBA")
        raw_rgba = np.asarray(raw)
    png = load_rgb(images / "Abyssinian_5.jpg")
    assert (png.mode, png.size) == ("RGB", (200, 150))
    assert (raw_rgba[..., 3] == 255).all()  # opaque: the RGB values must come through unchanged
    assert np.array_equal(np.asarray(png), raw_rgba[..., :3])


# ------------------------------------------------------------------------------------------ cli
def test_check_data_exit_code_2_when_nothing_usable(tmp_path, capsys):
    root = make_yolo(tmp_path / "empty")
    for i in range(3):
        add_yolo(root, f"img{i}", noise_image(30, 20, i), "\n" if i else "")
    report = tmp_path / "report.csv"
    assert cli.main(["check-data", str(root), "--quiet", "--report", str(report)]) == 2
    out = capsys.readouterr().out
    assert "usable:  0" in out and "no-box: 3" in out
    csv = pd.read_csv(report)
    assert list(csv.columns) == ["file", "status", "reason", "dup_group", "twin_box_iou"]
    assert csv["status"].tolist() == ["skipped"] * 3


def test_check_data_errors_exit_2(tmp_path, capsys):
    assert cli.main(["check-data", str(tmp_path / "nowhere"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    assert cli.main(["check-data", str(tmp_path / "junk"), "--quiet"]) == 2
    assert "no known dataset layout" in capsys.readouterr().err


def test_check_data_usable_exit_0(tmp_path, capsys):
    root = make_yolo(tmp_path / "ds")
    add_yolo(root, "a", noise_image(100, 50), "0 0.5 0.5 0.2 0.4\n")
    add_yolo(root, "b", noise_image(100, 50, 1), "")
    code, result, out = run_check_data(["check-data", str(root), "--quiet"])
    assert code == 0
    assert table_box(result, "images/a.jpg") == pytest.approx((40, 15, 60, 35))
    assert report_row(result, "images/b.jpg")["code"] == "no-box"


# ------------------------------------------------------------------------------------ bad inputs
def _skip_reasons_in_docstring() -> set[str]:
    return set(re.findall(r"^``([a-z-]+)``\s", validation.__doc__, flags=re.MULTILINE))


def _corrupt_jpeg() -> bytes:
    """A valid JPEG up to the end of its scan header, then random bytes instead of the entropy data."""
    data = jpeg_bytes()
    sos = data.find(b"\xff\xda")
    header_end = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    rng = np.random.default_rng(7)
    return data[:header_end] + rng.integers(0, 256, len(data) - header_end, dtype=np.uint8).tobytes()


def _build_dangling_symlink(root: Path) -> None:
    os.symlink(root.parent / "no-such-file.jpg", root / "images" / "bad.jpg")
    (root / "labels" / "bad.txt").write_text("0 0.5 0.5 0.2 0.2\n")


def _build_directory(root: Path) -> None:
    (root / "images" / "bad.jpg").mkdir()
    (root / "labels" / "bad.txt").write_text("0 0.5 0.5 0.2 0.2\n")


GOOD = "0 0.5 0.5 0.2 0.2\n"
BAD_INPUTS = {
    # id: (expected code, builder(root), scan kwargs)
    "unreadable-dangling-symlink": ("unreadable", _build_dangling_symlink, {}),
    "unreadable-directory": ("unreadable", _build_directory, {}),
    "not-an-image": ("not-an-image", lambda r: add_yolo(r, "bad", b"this is text, not a JPEG\n", GOOD), {}),
    "corrupt": ("corrupt", lambda r: add_yolo(r, "bad", _corrupt_jpeg(), GOOD), {}),
    "truncated": ("truncated", lambda r: add_yolo(r, "bad", jpeg_bytes()[:len(jpeg_bytes()) // 2], GOOD), {}),
    # the good image has 80x60 pixels, exactly the limit: kept
    "decompression-bomb": ("decompression-bomb", lambda r: add_yolo(r, "bad", noise_image(81, 60, 3), GOOD),
                           {"max_pixels": 80 * 60}),
    "missing-annotation": ("missing-annotation", lambda r: add_yolo(r, "bad", noise_image(80, 60), None), {}),
    "no-box": ("no-box", lambda r: add_yolo(r, "bad", noise_image(80, 60), ""), {}),
    "no-box-blank-lines": ("no-box", lambda r: add_yolo(r, "bad", noise_image(80, 60), "\n  \n"), {}),
    "unparsable-annotation": ("unparsable-annotation",
                              lambda r: add_yolo(r, "bad", noise_image(80, 60), "0 abc 0.5 0.1 0.1\n"), {}),
    "unparsable-field-count": ("unparsable-annotation",
                               lambda r: add_yolo(r, "bad", noise_image(80, 60), "0 0.5 0.5 0.1\n"), {}),
    "nan-box": ("nan-box", lambda r: add_yolo(r, "bad", noise_image(80, 60), "0 nan 0.5 0.1 0.1\n"), {}),
    "inf-box": ("nan-box", lambda r: add_yolo(r, "bad", noise_image(80, 60), "0 0.5 inf 0.1 0.1\n"), {}),
    "empty-box": ("empty-box", lambda r: add_yolo(r, "bad", noise_image(80, 60), "0 0.5 0.5 0 0.1\n"), {}),
    "box-outside-image": ("box-outside-image",
                          lambda r: add_yolo(r, "bad", noise_image(80, 60), "0 1.5 0.5 0.2 0.2\n"), {}),
    # one good box and one broken box: the whole image is skipped
    "one-bad-box-of-two": ("box-outside-image",
                           lambda r: add_yolo(r, "bad", noise_image(80, 60), GOOD + "0 0.5 -0.5 0.2 0.2\n"), {}),
}


def test_every_documented_skip_reason_is_tested():
    documented = _skip_reasons_in_docstring()
    assert len(documented) == 14, documented
    # annotation-size-mismatch needs a format that states its frame size (VOC, COCO, trimaps): tests/test_readers.py;
    # ambiguous-annotation needs a shared annotation file or several XMLs (COCO, VOC): tests/test_exports.py;
    # normalized-coordinates needs a format in pixels (VOC, CSV, COCO): tests/test_tool_inputs.py
    assert documented == {code for code, _, _ in BAD_INPUTS.values()} | {"annotation-size-mismatch",
                                                                         "ambiguous-annotation",
                                                                         "normalized-coordinates"}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_skipped_with_reason(case, tmp_path):
    code, build, kwargs = BAD_INPUTS[case]
    root = make_yolo(tmp_path / "ds")
    add_yolo(root, "good", noise_image(80, 60, 1), GOOD)
    build(root)
    result = scan_dataset(root, progress=False, workers=1, **kwargs)
    assert len(result.report) == 2
    bad = report_row(result, "images/bad.jpg")
    assert (bad["status"], bad["code"]) == ("skipped", code), bad["reason"]
    assert bad["reason"].startswith(f"{code}: ") and len(bad["reason"]) > len(code) + 2
    good = report_row(result, "images/good.jpg")
    assert (good["status"], good["code"], good["reason"]) == ("ok", "", "")
    assert result.table["file"].tolist() == ["images/good.jpg"]
    assert table_box(result, "images/good.jpg") == pytest.approx((32, 24, 48, 36))


def test_box_within_tolerance_is_clipped_and_kept(tmp_path):
    root = make_yolo(tmp_path / "ds")
    # 200x100: x 159..201 (1 px > 200, tolerance 4 px), y -1..3 (1 px < 0, tolerance 2 px)
    add_yolo(root, "a", noise_image(200, 100), "0 0.9 0.01 0.21 0.04\n")
    # x up to 206: 6 px outside, more than the 4 px tolerance
    add_yolo(root, "b", noise_image(200, 100), "0 0.9 0.5 0.26 0.5\n")
    result = scan_dataset(root, progress=False, workers=1)
    assert table_box(result, "images/a.jpg") == pytest.approx((159, 0, 200, 3), abs=1e-9)
    assert report_row(result, "images/a.jpg")["status"] == "ok"
    assert report_row(result, "images/b.jpg")["code"] == "box-outside-image"


def test_check_box_units():
    assert BOX_TOLERANCE == 0.02
    assert check_box([-1.9, 0, 50, 50], 100, 100).tolist() == [0, 0, 50, 50]
    with pytest.raises(BoxError) as info:
        check_box([-2.1, 0, 50, 50], 100, 100)
    assert info.value.reason == "box-outside-image"
    with pytest.raises(BoxError) as info:
        check_box([10, 10, 10, 20], 100, 100)
    assert info.value.reason == "empty-box"
    with pytest.raises(BoxError) as info:
        check_box([101, 10, 101.5, 20], 100, 100)  # within tolerance but empty once clipped
    assert info.value.reason == "empty-box"
    with pytest.raises(BoxError) as info:
        check_box([float("nan"), 10, 50, 20], 100, 100)
    assert info.value.reason == "nan-box"
    assert primary_box([[0, 0, 10, 10], [0, 0, 20, 5], [5, 5, 16, 15]]).tolist() == [5, 5, 16, 15]
    assert primary_box([[0, 0, 10, 10], [1, 1, 11, 11]]).tolist() == [0, 0, 10, 10]  # tie: first
    with pytest.raises(BoxError):
        primary_box(np.zeros((0, 4)))


# ---------------------------------------------------------------------------------- image modes
def _save(img: Image.Image, path: Path, fmt: str) -> Path:
    img.save(path, format=fmt)
    return path


def test_modes_load_as_rgb(tmp_path):
    palette = Image.new("P", (10, 8))
    palette.putpalette([10, 20, 30] * 256)
    gray16 = Image.fromarray(np.full((8, 10), 77 * 256 + 200, dtype=np.uint16))
    assert gray16.mode == "I;16"
    cases = {
        # name: (file, expected RGB of every pixel)
        "gray": (_save(Image.new("L", (10, 8), 77), tmp_path / "gray.jpg", "PNG"), (77, 77, 77)),
        "palette": (_save(palette, tmp_path / "palette.jpg", "PNG"), (10, 20, 30)),
        "cmyk": (_save(Image.new("CMYK", (10, 8), (0, 255, 0, 0)), tmp_path / "cmyk.jpg", "TIFF"), (255, 0, 255)),
        "gray16": (_save(gray16, tmp_path / "gray16.png", "PNG"), (77, 77, 77)),
    }
    with Image.open(cases["gray16"][0]) as raw:
        assert raw.mode.startswith("I")
    with Image.open(cases["cmyk"][0]) as raw:
        assert raw.mode == "CMYK"
    for name, (path, rgb) in cases.items():
        img = load_rgb(path)
        assert (img.mode, img.size) == ("RGB", (10, 8)), name
        assert (np.asarray(img) == np.array(rgb, dtype=np.uint8)).all(), (name, np.asarray(img)[0, 0])


def test_transparency_composited_over_white(tmp_path):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[:, :3] = (200, 10, 10, 255)  # left half opaque red, right half fully transparent black
    path = _save(Image.fromarray(rgba, "RGBA"), tmp_path / "t.png", "PNG")
    pixels = np.asarray(load_rgb(path))
    assert pixels[0, 0].tolist() == [200, 10, 10]
    assert pixels[0, 5].tolist() == [255, 255, 255]


def test_exif_orientation_swaps_width_and_height(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red
    pixels[:, 20:] = (0, 0, 255)  # right half blue
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    root = make_yolo(tmp_path / "ds")
    img.save(root / "images" / "rot.jpg", exif=exif, quality=95)
    (root / "labels" / "rot.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    with Image.open(root / "images" / "rot.jpg") as raw:
        assert raw.size == (40, 20)
    loaded = load_rgb(root / "images" / "rot.jpg")
    assert loaded.size == (20, 40)
    array = np.asarray(loaded).astype(int)
    assert np.abs(array[5, 10] - [255, 0, 0]).max() < 40  # the left side is now on top
    assert np.abs(array[35, 10] - [0, 0, 255]).max() < 40
    result = scan_dataset(root, progress=False, workers=1)
    row = result.table.iloc[0]
    assert (row["width"], row["height"]) == (20, 40)
    assert table_box(result, "images/rot.jpg") == pytest.approx((5, 10, 15, 30))


def test_load_rgb_errors(tmp_path):
    with pytest.raises(ImageLoadError) as info:
        load_rgb(tmp_path / "missing.jpg")
    assert info.value.reason == "unreadable"
    (tmp_path / "x.png").write_bytes(jpeg_bytes())  # a JPEG named .png loads
    assert load_rgb(tmp_path / "x.png").size == (80, 60)
    with pytest.raises(ImageLoadError) as info:
        load_rgb(tmp_path / "x.png", max_pixels=100)
    assert info.value.reason == "decompression-bomb"
    assert load_rgb(tmp_path / "x.png", max_pixels=80 * 60).size == (80, 60)


# ------------------------------------------------------------------------------------- readers
def test_parse_yolo_label():
    assert parse_yolo_label("0 0.5 0.5 0.2 0.4", 100, 50).tolist() == [[40, 15, 60, 35]]
    polygon = parse_yolo_label("0 0.1 0.2 0.5 0.1 0.3 0.8\n", 100, 50)
    assert polygon == pytest.approx(np.array([[10, 5, 50, 40]]))
    two = parse_yolo_label("0 0.5 0.5 0.2 0.4\n\n1 0.1 0.2 0.5 0.1 0.3 0.8\n", 100, 50)
    assert two.shape == (2, 4)
    assert parse_yolo_label("", 100, 50).shape == (0, 4)
    for text, reason in [("0 0.1 0.2 0.3 0.4 0.5", "unparsable-annotation"),
                         ("0 abc 0.5 0.1 0.1", "unparsable-annotation"),
                         ("0 0.5 nan 0.1 0.1", "nan-box")]:
        with pytest.raises(AnnotationError) as info:
            parse_yolo_label(text, 100, 50)
        assert info.value.reason == reason, text


def voc_xml(objects: list[tuple[int, int, int, int]], width: int, height: int) -> str:
    body = "".join(
        f"<object><name>cat</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
        f"<ymax>{d}</ymax></bndbox></object>" for a, b, c, d in objects)
    return (f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"{body}</annotation>")


def test_parse_voc_xml(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(voc_xml([(93, 67, 460, 343)], 600, 400))
    assert parse_voc_xml(path, 600, 400).tolist() == [[92, 66, 460, 343]]
    # <size> twice the decoded image: boxes scaled to the image
    path.write_text(voc_xml([(93, 67, 460, 343)], 1200, 800))
    assert parse_voc_xml(path, 600, 400).tolist() == [[46, 33, 230, 171.5]]
    path.write_text("<annotation><object><bndbox><xmin>1</xmin></bndbox></object>")
    with pytest.raises(AnnotationError) as info:
        parse_voc_xml(path, 600, 400)
    assert info.value.reason == "unparsable-annotation"
    with pytest.raises(AnnotationError) as info:
        parse_voc_xml(tmp_path / "missing.xml", 600, 400)
    assert info.value.reason == "missing-annotation"


def test_voc_folder(tmp_path):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    noise_image(120, 90).save(root / "JPEGImages" / "a.jpg")
    (root / "Annotations" / "a.xml").write_text(voc_xml([(11, 21, 30, 40), (5, 6, 100, 80)], 120, 90))
    noise_image(120, 90, 1).save(root / "JPEGImages" / "b.jpg")  # no XML
    assert detect_format(root) == "voc"
    result = scan_dataset(root, progress=False, workers=1)
    assert result.format == "voc"
    assert table_box(result, "JPEGImages/a.jpg") == (4, 5, 100, 80)
    assert result.table.iloc[0]["n_boxes"] == 2
    assert report_row(result, "JPEGImages/b.jpg")["code"] == "missing-annotation"


def test_coco_folder(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    noise_image(120, 90).save(root / "images" / "a.jpg")
    noise_image(64, 48, 1).save(root / "images" / "b.jpg")
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 120, "height": 90},
                   {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
                   {"id": 3, "file_name": "gone.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 1, "bbox": [10, 20, 30, 10]},
                        {"id": 2, "image_id": 1, "bbox": [5.5, 6, 50, 40]},
                        {"id": 3, "image_id": 3, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "cat"}],
    }
    (root / "instances.json").write_text(json.dumps(coco))
    assert detect_format(root) == "coco"
    result = scan_dataset(root, progress=False, workers=1)
    assert result.format == "coco"
    assert table_box(result, "images/a.jpg") == (5.5, 6, 55.5, 46)
    assert report_row(result, "images/b.jpg")["code"] == "no-box"
    assert report_row(result, "gone.jpg")["code"] == "unreadable"


def test_csv_folder(tmp_path):
    root = tmp_path / "csvds"
    (root / "images").mkdir(parents=True)
    noise_image(120, 90).save(root / "images" / "a.jpg")
    noise_image(120, 90, 1).save(root / "images" / "b.jpg")
    (root / "images" / "dir.jpg").mkdir()
    (root / "boxes.csv").write_text(
        "filename,xmin,ymin,xmax,ymax\n"
        "a.jpg,10,10,20,20\n"
        "a.jpg,30.5,5,110,85\n"
        "b.jpg,1,2,x,4\n"
        "dir.jpg,1,2,3,4\n"
        "missing.jpg,1,2,3,4\n")
    assert detect_format(root) == "csv"
    result = scan_dataset(root, progress=False, workers=1)
    assert result.format == "csv"
    assert table_box(result, "images/a.jpg") == (30.5, 5, 110, 85)
    assert result.table.iloc[0]["n_boxes"] == 2
    assert report_row(result, "images/b.jpg")["code"] == "unparsable-annotation"
    assert report_row(result, "images/dir.jpg")["code"] == "unreadable"
    assert report_row(result, "images/missing.jpg")["code"] == "unreadable"


def test_detect_format_yolo_and_unknown(tmp_path):
    root = make_yolo(tmp_path / "y")
    assert detect_format(root) == "yolo"
    (tmp_path / "none").mkdir()
    with pytest.raises(DataFormatError):
        detect_format(tmp_path / "none")
    with pytest.raises(FileNotFoundError):
        detect_format(tmp_path / "missing")


def test_symlinked_images_keep_relative_names(tmp_path):
    """Images symlinked from elsewhere are named relative to the data folder, not by their target."""
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    noise_image(100, 50).save(elsewhere / "real.jpg")
    root = make_yolo(tmp_path / "ds")
    os.symlink(elsewhere / "real.jpg", root / "images" / "a.jpg")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n")
    result = scan_dataset(root, progress=False, workers=1)
    assert result.table["file"].tolist() == ["images/a.jpg"]
    assert table_box(result, "images/a.jpg") == pytest.approx((40, 15, 60, 35))


# ----------------------------------------------------------------------------------- transforms
def test_flip_moves_box_and_mirrors_image():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 256, 256), dtype=torch.uint8)
    boxes = pixel_boxes(torch.tensor([[0.1, 0.2, 0.4, 0.6]]) * 256, 256, 256)
    augment = build_augmentation(train=True, flip_p=1.0, color_jitter={})
    out_image, out_boxes = augment(image, boxes)
    target = boxes_to_target(out_boxes)
    assert target.dtype == torch.float32
    assert target.tolist() == pytest.approx([0.6, 0.2, 0.9, 0.6], abs=1e-6)
    assert torch.equal(out_image[:, 17, 3], image[:, 17, 252])
    assert not torch.equal(out_image[:, 17, 3], image[:, 17, 3])
    assert torch.equal(out_image, image.flip(-1))
    # eval: identity
    same_image, same_boxes = build_augmentation(train=False)(image, boxes)
    assert torch.equal(same_image, image)
    assert boxes_to_target(same_boxes).tolist() == pytest.approx([0.1, 0.2, 0.4, 0.6], abs=1e-6)


def test_build_transforms_eval_keeps_normalized_box():
    image = noise_image(300, 200)
    transform = build_transforms(image_size=128, train=False)
    out, boxes = transform(image, pixel_boxes(torch.tensor([[30.0, 20.0, 120.0, 180.0]]), 200, 300))
    assert out.dtype == torch.float32 and tuple(out.shape) == (3, 128, 128)
    assert tuple(boxes.canvas_size) == (128, 128)
    assert boxes_to_target(boxes).tolist() == pytest.approx([0.1, 0.1, 0.4, 0.9], abs=1e-6)


def test_normalization_values():
    transform = build_transforms(image_size=128, train=False, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    mean_u8 = tuple(round(m * 255) for m in IMAGENET_MEAN)
    assert mean_u8 == (124, 116, 104)
    boxes = pixel_boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), 200, 300)
    out, _ = transform(Image.new("RGB", (300, 200), mean_u8), boxes)
    assert out.abs().max().item() < 0.01
    white, _ = transform(Image.new("RGB", (300, 200), (255, 255, 255)), boxes)
    expected = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert white[:, 64, 64].tolist() == pytest.approx(expected, abs=1e-5)
    # the cache path (uint8 batch -> model_input -> the model's own normalization) gives the same numbers
    square = noise_image(128, 128, 5)
    per_image, _ = transform(square, pixel_boxes(torch.tensor([[0.0, 0.0, 10.0, 10.0]]), 128, 128))
    batch = torch.from_numpy(np.asarray(square).copy()).permute(2, 0, 1)[None]
    inputs = model_input(batch, default_numerics(torch.device("cpu")))
    assert inputs.dtype == torch.float32 and tuple(inputs.shape) == (1, 3, 128, 128) and inputs.max() <= 1
    normalized = build_model("resnet18", weights=None).normalize(inputs)
    assert torch.allclose(normalized[0], per_image, atol=1e-5)


# ---------------------------------------------------------------------------------------- split
def test_split_sizes():
    assert split_sizes(3179) == (2225, 476, 478)
    assert split_sizes(2427) == (1698, 364, 365)
    assert split_sizes(10) == (7, 1, 2)
    assert split_sizes(0) == (0, 0, 0)
    with pytest.raises(ValueError):
        split_sizes(-1)
    with pytest.raises(ValueError):
        split_sizes(10, (0.5, 0.3, 0.3))


def fake_table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "file": [f"images/img_{i:04d}.jpg" for i in range(n)],
        "path": [f"/data/images/img_{i:04d}.jpg" for i in range(n)],
        "width": rng.integers(100, 500, n), "height": rng.integers(100, 500, n),
        "xmin": rng.uniform(0, 10, n), "ymin": rng.uniform(0, 10, n),
        "xmax": rng.uniform(50, 99, n), "ymax": rng.uniform(50, 99, n),
        "n_boxes": np.ones(n, dtype=int), "format": "yolo",
    })


def test_assign_split_is_seeded_and_order_independent():
    table = fake_table(200)
    first = assign_split(table, seed=42)
    assert first["split"].value_counts().to_dict() == {"train": 140, "val": 30, "test": 30}
    assert first["file"].is_monotonic_increasing
    again = assign_split(table, seed=42)
    assert first["split"].tolist() == again["split"].tolist()
    shuffled = table.sample(frac=1.0, random_state=3)
    assert shuffled["file"].tolist() != table["file"].tolist()
    from_shuffled = assign_split(shuffled, seed=42)
    assert from_shuffled["file"].tolist() == first["file"].tolist()
    assert from_shuffled["split"].tolist() == first["split"].tolist()
    other = assign_split(table, seed=43)
    assert other["split"].tolist() != first["split"].tolist()
    assert other["split"].value_counts().to_dict() == {"train": 140, "val": 30, "test": 30}
    assert "split" not in table.columns  # input not modified


def test_manifest_round_trip_and_no_silent_overwrite(tmp_path):
    manifest = assign_split(fake_table(20), seed=42)
    path = tmp_path / "run" / "manifest.csv"
    save_manifest(manifest, path)
    loaded = load_manifest(path)
    pd.testing.assert_frame_equal(loaded, manifest, check_dtype=False)
    assert loaded["split"].tolist() == manifest["split"].tolist()
    assert loaded["xmin"].tolist() == manifest["xmin"].tolist()  # floats exact
    save_manifest(manifest, path)  # same content: fine
    different = assign_split(fake_table(20), seed=7)
    assert different["split"].tolist() != manifest["split"].tolist()
    with pytest.raises(FileExistsError):
        save_manifest(different, path)
    assert load_manifest(path)["split"].tolist() == manifest["split"].tolist()
    save_manifest(different, path, overwrite=True)
    assert load_manifest(path)["split"].tolist() == different["split"].tolist()
    with pytest.raises(KeyError):
        save_manifest(fake_table(3), tmp_path / "nosplit.csv")
    fake_table(3).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="split"):
        load_manifest(tmp_path / "bad.csv")


# ---------------------------------------------------------------------------------------- cache
def _png(path: Path, width: int, height: int, seed: int) -> str:
    noise_image(width, height, seed).save(path, format="PNG")
    return str(path)


def test_cache_decodes_once_and_tracks_content(tmp_path, monkeypatch):
    size = 32
    paths = [_png(tmp_path / f"{i}.png", 60 + 10 * i, 40, i) for i in range(3)]
    calls = []
    real_decode = ImageCache._decode

    def counting_decode(self, path):
        calls.append(path)
        return real_decode(self, path)

    monkeypatch.setattr(ImageCache, "_decode", counting_decode)
    cache = ImageCache(tmp_path / "cache", image_size=size)
    slots = cache.add(paths, workers=1, progress=False)
    assert sorted(calls) == sorted(paths)
    assert sorted(slots.tolist()) == [0, 1, 2]
    images = cache.open()
    assert images.shape == (3, size, size, 3) and images.dtype == np.uint8
    for path, slot in zip(paths, slots):
        expected = np.asarray(resize_image(load_rgb(path), size))
        assert np.array_equal(images[slot], expected)

    calls.clear()
    again = ImageCache(tmp_path / "cache", image_size=size).add(paths, workers=1, progress=False)
    assert calls == []
    assert again.tolist() == slots.tolist()

    # a renamed copy is the same content: no decode, same slot
    copy = tmp_path / "copy.png"
    copy.write_bytes(Path(paths[1]).read_bytes())
    assert cache.add([str(copy)], workers=1, progress=False).tolist() == [slots[1]]
    assert calls == []

    # rewrite a file with other pixels: new slot, new pixels
    _png(Path(paths[0]), 60, 40, seed=99)
    new = cache.add(paths, workers=1, progress=False)
    assert calls == [paths[0]]
    assert new[0] == 3 and new[1:].tolist() == slots[1:].tolist()
    images = cache.open()
    assert images.shape[0] == 4
    expected = np.asarray(resize_image(load_rgb(paths[0]), size))
    assert np.array_equal(images[new[0]], expected)
    assert not np.array_equal(images[slots[0]], expected)


def _dataset_table(tmp_path: Path) -> pd.DataFrame:
    rows = []
    for i, (w, h, box) in enumerate([(80, 60, (8, 6, 40, 54)), (100, 50, (70, 10, 95, 45))]):
        path = _png(tmp_path / f"d{i}.png", w, h, 10 + i)
        rows.append({"file": f"d{i}.png", "path": path, "width": w, "height": h,
                     "xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3]})
    return pd.DataFrame(rows)


def test_cached_dataset_eval_and_loader(tmp_path):
    table = _dataset_table(tmp_path)
    cache = ImageCache(tmp_path / "cache", image_size=32)
    dataset = CachedBoxDataset(table, cache, progress=False)
    assert len(dataset) == 2
    image, target = dataset[1]
    assert image.dtype == torch.uint8 and tuple(image.shape) == (3, 32, 32)
    assert target.tolist() == pytest.approx([0.7, 0.2, 0.95, 0.9], abs=1e-6)
    expected = np.asarray(resize_image(load_rgb(table.loc[1, "path"]), 32))
    assert np.array_equal(image.permute(1, 2, 0).numpy(), expected)
    loader = make_loader(dataset, batch_size=2)
    images, targets = next(iter(loader))
    assert images.dtype == torch.uint8 and tuple(images.shape) == (2, 3, 32, 32)
    assert targets.dtype == torch.float32
    assert targets[0].tolist() == pytest.approx([0.1, 0.1, 0.5, 0.9], abs=1e-6)


def test_batch_augment_flips_the_chosen_images_and_their_boxes():
    images = torch.randint(0, 256, (2, 3, 8, 10), dtype=torch.uint8)
    boxes = torch.tensor([[0.1, 0.2, 0.4, 0.6], [0.7, 0.2, 0.95, 0.9]])
    params = AugmentParams(flip=torch.tensor([True, False]), factors=torch.ones(2, 3), order=())
    out, out_boxes = apply_augment(images, boxes, params)
    assert out.dtype == torch.float32 and tuple(out.shape) == (2, 3, 8, 10)
    assert out_boxes.tolist()[0] == pytest.approx([0.6, 0.2, 0.9, 0.6], abs=1e-6)
    assert out_boxes.tolist()[1] == pytest.approx([0.7, 0.2, 0.95, 0.9], abs=1e-6)
    assert torch.allclose(out[0], images[0].flip(-1).float() / 255, atol=1e-6)
    assert torch.allclose(out[1], images[1].float() / 255, atol=1e-6)


def test_batch_augment_jitter_matches_torchvision_per_image():
    """Per-image factors on a batch give what torchvision's functionals give image by image."""
    torch.manual_seed(3)
    images = torch.randint(0, 256, (4, 3, 12, 16), dtype=torch.uint8)
    boxes = torch.rand(4, 4).sort(dim=1).values
    params = BatchAugment().sample(4)
    params.order = ("saturation", "brightness", "contrast")
    params.factors = torch.tensor([[0.8, 1.2, 0.9], [1.2, 0.8, 1.1], [1.0, 1.0, 1.0], [0.85, 1.15, 0.8]])
    out, _ = apply_augment(images, boxes, params)
    functionals = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
                   "saturation": TF.adjust_saturation}
    for i in range(4):
        expected = TF.to_dtype(images[i], torch.float32, scale=True)
        if params.flip[i]:
            expected = TF.horizontal_flip(expected)
        for op in params.order:
            expected = functionals[op](expected, float(params.factors[i, JITTER_OPS.index(op)]))
        assert torch.allclose(out[i], expected, atol=1e-6), f"image {i}"
    assert not torch.allclose(out[0], TF.to_dtype(images[0], torch.float32, scale=True).flip(-1))  # jittered
    assert not torch.allclose(out[0], TF.to_dtype(images[0], torch.float32, scale=True))


def test_batch_augment_sampling_is_per_image_and_in_range():
    torch.manual_seed(0)
    params = BatchAugment(flip_p=0.5, color_jitter={"brightness": 0.2, "contrast": 0.2, "saturation": 0.0}).sample(4000)
    assert 0.45 < params.flip.float().mean().item() < 0.55
    assert params.factors[:, :2].min().item() >= 0.8 and params.factors[:, :2].max().item() <= 1.2
    assert params.factors[:, :2].std(dim=0).min().item() > 0.1  # uniform on [0.8, 1.2]: std 0.115
    assert set(params.order) == {"brightness", "contrast"}  # a zero strength is left out
    images = torch.full((3, 3, 4, 4), 100, dtype=torch.uint8)
    out, _ = BatchAugment(flip_p=0.0, color_jitter={"brightness": 0.2})(images, torch.rand(3, 4))
    assert len(set(out[:, 0, 0, 0].tolist())) == 3  # one brightness factor per image


@pytest.mark.parametrize("kwargs", [{"flip_p": 1.5}, {"color_jitter": {"hue": 0.1}},
                                    {"color_jitter": {"brightness": -0.1}}, {"color_jitter": {"gamma": 0.1}}])
def test_batch_augment_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        BatchAugment(**kwargs)


def test_cached_dataset_items_are_not_augmented(tmp_path):
    table = _dataset_table(tmp_path)
    dataset = CachedBoxDataset(table, ImageCache(tmp_path / "cache", image_size=32), progress=False)
    first, again = dataset[1], dataset[1]
    assert torch.equal(first[0], again[0])
    assert first[1].tolist() == pytest.approx([0.7, 0.2, 0.95, 0.9], abs=1e-6)


# ----------------------------------------------------------------------------------- synthetic data
@pytest.mark.parametrize("layout", ["yolo", "voc", "coco", "csv"])
def test_synthetic_dataset_reads_back_its_known_boxes(synthetic_data, layout):
    """Every layout of the synthetic dataset gives the drawn boxes back exactly (YOLO to its 6
    decimals), with the unannotated photo and the truncated JPEG skipped for their reasons."""
    from localizer.data.synthetic import make_photos

    photos = make_photos()
    result = scan_dataset(synthetic_data / layout, progress=False)
    assert result.format == layout
    assert len(result.table) == 50
    # the CSV has no row for the photo without a box: it is listed all the same, as missing-annotation
    expected_skips = {"missing-annotation": 1, "truncated": 1} if layout == "csv" else {"no-box": 1, "truncated": 1}
    assert result.skipped_counts.to_dict() == expected_skips
    for photo in photos:
        primary = max(photo.boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        name = f"{'JPEGImages' if layout == 'voc' else 'images'}/{photo.name}"
        assert table_box(result, name) == pytest.approx(primary, abs=1e-3), (layout, photo.name)
    assert int((result.table["n_boxes"] > 1).sum()) == 9


def test_synthetic_dataset_is_deterministic_and_refuses_to_overwrite(tmp_path):
    from localizer.data.synthetic import make_synthetic_dataset

    first = make_synthetic_dataset(tmp_path / "a", n_images=6, layouts=("yolo",))
    second = make_synthetic_dataset(tmp_path / "b", n_images=6, layouts=("yolo",))
    pd.testing.assert_frame_equal(first, second)
    for name in ("animal_003.jpg", "twin_moved.jpg"):
        assert (tmp_path / "a/yolo/images" / name).read_bytes() == (tmp_path / "b/yolo/images" / name).read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        make_synthetic_dataset(tmp_path / "a", n_images=6, layouts=("yolo",))
    # the twin with the moved box: same pixels as animal_002, box shifted left by a quarter of its width
    rows = first.set_index("name")
    x0, x1 = rows.loc["animal_002.jpg", "xmin"], rows.loc["animal_002.jpg", "xmax"]
    assert rows.loc["twin_moved.jpg", "xmax"] == x1 - (x1 - x0) // 4
