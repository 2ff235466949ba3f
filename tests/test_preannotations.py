"""Pre-annotations (``predict --annotations FORMAT OUT``): boxes written in each format read back by this package's
own readers (Label Studio, which no reader reads, by its JSON), the flagged photos first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import noise_image, scan

from localizer import cli
from localizer.data.writers import ANNOTATION_FORMATS, class_name, write_annotations
from localizer.errors import DataError

#: Hand-set predictions (pixels of each photo): the third photo is the least confident, then the first.
BOXES = {"a.jpg": ((200, 150), (10.2, 20.7, 110.4, 90.1), 0.41),
         "sub/b.png": ((120, 160), (0.0, 3.3, 119.6, 150.5), 0.93),
         "c.jpg": ((90, 60), (30.5, 5.5, 70.25, 59.9), 0.12)}
#: How near each format reads the box back: VOC's whole 1-based pixels (rounded: 0.5 px), COCO's 0.01 px, the
#: normalized formats' 1e-6 of the side (below 0.001 px here).
TOLERANCE = {"voc": 0.5, "coco": 0.005, "cvat-yolo": 0.001, "yolo": 0.001, "label-studio": 0.001}


@pytest.fixture
def predicted(tmp_path):
    """Photos in ``tmp_path/photos`` and the table :func:`localizer.engine.prediction.predict_files` gives them,
    flagged below 0.5; a fourth photo could not be read."""
    rows = []
    for i, (name, ((width, height), box, confidence)) in enumerate(BOXES.items()):
        path = tmp_path / "photos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        noise_image(width, height, seed=i).save(path)
        rows.append({"file": str(path), "xmin": box[0], "ymin": box[1], "xmax": box[2], "ymax": box[3],
                     "confidence": confidence, "width": width, "height": height, "error": ""})
    rows.append({"file": str(tmp_path / "photos" / "broken.jpg"), "error": "unreadable: truncated"})
    table = pd.DataFrame(rows).astype({"width": "Int64", "height": "Int64"})
    return table.assign(flagged=(table["confidence"] < 0.5).astype("boolean").mask(table["confidence"].isna()))


def read_back(fmt: str, out: Path, photos: Path) -> dict[str, tuple]:
    """``{relative photo path: pixel box}`` of the annotations in ``out``, the photos copied where each reader
    looks for them (the writers write annotations only)."""
    if fmt == "label-studio":
        boxes = {}
        for task in json.loads((out / "tasks.json").read_text()):
            result = task["predictions"][0]["result"][0]
            v, w, h = result["value"], result["original_width"], result["original_height"]
            name = task["data"]["image"].removeprefix("/data/local-files/?d=")
            boxes[name] = (v["x"] * w / 100, v["y"] * h / 100, (v["x"] + v["width"]) * w / 100,
                           (v["y"] + v["height"]) * h / 100)
        return boxes
    images = {"coco": "images", "cvat-yolo": "obj_train_data", "yolo": "images", "voc": "JPEGImages"}[fmt]
    for name in BOXES:
        (out / images / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(photos / name, out / images / name)
    reader = {"coco": "coco", "cvat-yolo": "yolo", "yolo": "yolo", "voc": "voc"}[fmt]
    table = scan(out, fmt=reader).table
    return {Path(f).relative_to(images).as_posix(): tuple(row) for f, row in
            zip(table["file"], table[["xmin", "ymin", "xmax", "ymax"]].itertuples(index=False))}


@pytest.mark.parametrize("fmt", ANNOTATION_FORMATS)
def test_pre_annotations_read_back_as_the_predicted_boxes(fmt, predicted, tmp_path):
    out = tmp_path / "out"
    written = write_annotations(fmt, predicted, out, "cat", "localizer run/best.pt")
    assert all(p.is_file() for p in written) and (out / "to_check.txt").read_text() == "c.jpg\na.jpg\n"
    boxes = read_back(fmt, out, tmp_path / "photos")
    assert sorted(boxes) == sorted(BOXES)  # the photo that could not be read has no annotation
    for name, (_, box, _) in BOXES.items():
        assert boxes[name] == pytest.approx(box, abs=TOLERANCE[fmt]), name


def test_the_flagged_photos_come_first_least_confident_first(predicted, tmp_path):
    write_annotations("label-studio", predicted, tmp_path / "ls", "animal", "m")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert [t["data"]["image"] for t in tasks] == ["/data/local-files/?d=c.jpg", "/data/local-files/?d=a.jpg",
                                                   "/data/local-files/?d=sub/b.png"]
    assert [t["predictions"][0]["score"] for t in tasks] == [0.12, 0.41, 0.93]
    assert [t["data"]["flagged"] for t in tasks] == [True, True, False]
    value = tasks[1]["predictions"][0]["result"][0]["value"]  # a.jpg: 200 x 150 px
    assert value == {"x": 5.1, "y": 13.8, "width": 50.1, "height": 46.266667, "rotation": 0,
                     "rectanglelabels": ["animal"]}
    write_annotations("coco", predicted, tmp_path / "coco", "animal", "m")
    coco = json.loads((tmp_path / "coco" / "annotations" / "instances_default.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["c.jpg", "a.jpg", "sub/b.png"]
    assert coco["annotations"][1]["bbox"] == [10.2, 20.7, 100.2, 69.4]
    write_annotations("cvat-yolo", predicted, tmp_path / "cvat", "animal", "m")
    assert (tmp_path / "cvat" / "train.txt").read_text().splitlines() == [
        "data/obj_train_data/c.jpg", "data/obj_train_data/a.jpg", "data/obj_train_data/sub/b.png"]
    assert (tmp_path / "cvat" / "obj_train_data" / "a.txt").read_text() == "0 0.301500 0.369333 0.501000 0.462667\n"


def test_without_a_threshold_the_photos_keep_their_order_and_no_list_is_written(predicted, tmp_path):
    write_annotations("voc", predicted.drop(columns="flagged"), tmp_path / "voc", "animal", "m")
    assert not (tmp_path / "voc" / "to_check.txt").exists()
    xml = (tmp_path / "voc" / "Annotations" / "a.xml").read_text()
    assert "<xmin>11</xmin><ymin>22</ymin><xmax>110</xmax><ymax>90</ymax>" in xml  # 1-based, whole pixels


def test_existing_annotations_are_replaced_only_when_asked(predicted, tmp_path):
    write_annotations("yolo", predicted, tmp_path, "animal", "m")
    with pytest.raises(FileExistsError, match="exists"):
        write_annotations("yolo", predicted, tmp_path, "animal", "m")
    write_annotations("yolo", predicted, tmp_path, "animal", "m", overwrite=True)


def test_photos_named_alike_are_refused_before_anything_is_written(predicted, tmp_path):
    extra = predicted.iloc[[0]].assign(file=str(tmp_path / "photos" / "a.png"))
    with pytest.raises(DataError, match="would share the annotation a.txt"):
        write_annotations("yolo", pd.concat([predicted, extra], ignore_index=True), tmp_path / "out", "animal", "m")
    assert not (tmp_path / "out").exists()


def test_the_class_is_the_runs_one_class_or_animal():
    assert [class_name(c) for c in (None, "cat", " dog ", "cat,dog", "animals", "")] == [
        "animal", "cat", "dog", "animal", "animal", "animal"]


def test_predict_refuses_an_unknown_format_and_existing_annotations(tmp_path, capsys):
    photo = tmp_path / "a.jpg"
    noise_image(40, 30).save(photo)
    assert cli.main(["predict", "--checkpoint", str(tmp_path / "none.pt"), str(photo), "--annotations", "csv",
                     str(tmp_path / "out")]) == 2
    assert "FORMAT is one of label-studio, coco, cvat-yolo, yolo, voc" in capsys.readouterr().err
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "data.yaml").write_text("mine")
    assert cli.main(["predict", "--checkpoint", str(tmp_path / "none.pt"), str(photo), "--annotations", "yolo",
                     str(tmp_path / "out")]) == 2
    assert "data.yaml exists; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "out" / "data.yaml").read_text() == "mine"
