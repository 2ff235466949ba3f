"""Exports as annotation tools write them (issue 28): an annotation belongs to one image, paths as
exporters spell them, the Roboflow and CVAT layouts, YOLO pose lines, the image endings Pillow reads,
VOC difficult objects and COCO polygons without a bbox. Every dataset is built here in ``tmp_path``
from tiny noise images; the boxes expected are worked out by hand in the comments (VOC pixel
indices are 1-based inclusive, so ``xmin = 11`` is the continuous edge 10)."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from helpers import box, noise_image, report_row, scan, write
from PIL import Image

from localizer import cli
from localizer.data.imageio import HEIF_PLUGIN, IMAGE_EXTENSIONS
from localizer.data.readers import DataFormatError, detect_format, export_split, yolo_annotation


# ------------------------------------------------------------------------------------------ helpers
def put(path: Path, image: Image.Image | None = None, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (image or noise_image()).save(path, format=fmt)
    return path


def voc(objects, width=100, height=50) -> str:
    """VOC XML; objects ``(name, (xmin, ymin, xmax, ymax) 1-based, difficult)``."""
    body = "".join(f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{a}</xmin><ymin>{b}</ymin>"
                   f"<xmax>{c}</xmax><ymax>{e}</ymax></bndbox></object>" for n, (a, b, c, e), d in objects)
    return f"<annotation><size><width>{width}</width><height>{height}</height></size>{body}</annotation>"


def coco(images, annotations, categories=({"id": 1, "name": "cat"},)) -> str:
    return json.dumps({"images": list(images), "annotations": list(annotations), "categories": list(categories)})


def image_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS}


# ------------------------------------------------------------- kind 1: one annotation, one image
def test_voc_same_stem_in_two_folders_keeps_each_its_own_box(tmp_path):
    put(tmp_path / "cat" / "1.jpg"), put(tmp_path / "dog" / "1.jpg")
    write(tmp_path / "cat" / "1.xml", voc([("cat", (11, 21, 30, 40), 0)]))
    write(tmp_path / "dog" / "1.xml", voc([("dog", (51, 11, 90, 45), 0)]))
    result = scan(tmp_path)
    assert box(result, "cat/1.jpg") == (10, 20, 30, 40)
    assert box(result, "dog/1.jpg") == (50, 10, 90, 45)


def test_voc_one_xml_for_two_images_is_a_reported_skip(tmp_path):
    put(tmp_path / "images" / "cat" / "1.jpg"), put(tmp_path / "images" / "dog" / "1.jpg")
    write(tmp_path / "Annotations" / "1.xml", voc([("cat", (11, 21, 30, 40), 0)]))
    result = scan(tmp_path)
    expected = ("ambiguous-annotation: Annotations/1.xml fits images/cat/1.jpg and images/dog/1.jpg; "
                "an annotation must belong to exactly one image")
    assert report_row(result, "images/cat/1.jpg")["reason"] == expected
    assert report_row(result, "images/dog/1.jpg")["reason"] == expected
    assert len(result.table) == 0


def test_voc_image_without_xml_is_not_given_anothers(tmp_path):
    put(tmp_path / "cat" / "1.jpg"), put(tmp_path / "dog" / "1.jpg")
    write(tmp_path / "dog" / "1.xml", voc([("dog", (51, 11, 90, 45), 0)]))
    result = scan(tmp_path)
    assert report_row(result, "cat/1.jpg")["reason"] == (
        "missing-annotation: no XML file named 1.xml for it (dog/1.xml belongs to another image beside it)")
    assert box(result, "dog/1.jpg") == (50, 10, 90, 45)


def test_coco_two_images_sharing_an_id_are_both_reported(tmp_path):
    put(tmp_path / "image1.gif", fmt="GIF"), put(tmp_path / "image1.jpg"), put(tmp_path / "image2.jpg")
    write(tmp_path / "instances.json", coco(
        [{"id": 1, "file_name": "image1.gif"}, {"id": 1, "file_name": "image1.jpg"}, {"id": 2, "file_name": "image2.jpg"}],
        [{"id": 1, "image_id": 1, "bbox": [10, 10, 20, 20]}, {"id": 2, "image_id": 1, "bbox": [50, 5, 40, 40]},
         {"id": 3, "image_id": 2, "bbox": [1, 2, 3, 4]}]))
    result = scan(tmp_path)
    expected = ("ambiguous-annotation: instances.json: the images entries 'image1.gif' and 'image1.jpg' share id 1, "
                "so its annotations belong to neither")
    assert report_row(result, "image1.gif")["reason"] == expected and report_row(result, "image1.jpg")["reason"] == expected
    assert box(result, "image2.jpg") == (1, 2, 4, 6)  # [x, y, w, h] = [1, 2, 3, 4]


def test_coco_same_file_twice_is_one_reported_row_and_check_data_finishes(tmp_path, capsys):
    put(tmp_path / "a.jpg"), put(tmp_path / "b.jpg")
    write(tmp_path / "instances.json", coco(
        [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "a.jpg"}, {"id": 3, "file_name": "b.jpg"}],
        [{"id": 1, "image_id": 1, "bbox": [10, 10, 20, 20]}, {"id": 2, "image_id": 2, "bbox": [50, 5, 40, 40]},
         {"id": 3, "image_id": 3, "bbox": [10, 10, 20, 20]}]))
    report = tmp_path / "report.csv"
    assert cli.main(["check-data", str(tmp_path), "--quiet", "--report", str(report)]) == 0
    written = pd.read_csv(report, keep_default_na=False)
    assert written["file"].tolist() == ["a.jpg", "b.jpg"]
    assert written["reason"][0] == ("ambiguous-annotation: 2 entries name this image: instances.json id 1 ('a.jpg') "
                                    "and instances.json id 2 ('a.jpg'); whose boxes are its own cannot be told")
    assert "usable:  1" in capsys.readouterr().out


def test_coco_identical_entry_twice_is_one_entry(tmp_path):
    put(tmp_path / "a.jpg")
    entry = {"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}
    write(tmp_path / "instances.json", coco([entry, entry], [{"id": 1, "image_id": 1, "bbox": [10, 10, 20, 20]}]))
    assert box(scan(tmp_path), "a.jpg") == (10, 10, 30, 30)


# ------------------------------------------------------------------- kind 2: paths as written
def test_coco_windows_path_and_label_studio_upload_path(tmp_path):
    put(tmp_path / "images" / "x.png", fmt="PNG"), put(tmp_path / "images" / "8f2c-y.png", fmt="PNG")
    write(tmp_path / "result.json", coco(
        [{"id": 1, "file_name": "images\\x.png"}, {"id": 2, "file_name": "../../label-studio/media/upload/4/8f2c-y.png"}],
        [{"id": 1, "image_id": 1, "bbox": [10, 10, 20, 20]}, {"id": 2, "image_id": 2, "bbox": [0, 0, 50, 25]}]))
    result = scan(tmp_path)
    assert box(result, "images/x.png") == (10, 10, 30, 30)
    assert box(result, "images/8f2c-y.png") == (0, 0, 50, 25)


def test_csv_backslash_and_images_prefix(tmp_path):
    put(tmp_path / "images" / "lion1.jpg"), put(tmp_path / "images" / "lion2.jpg")
    write(tmp_path / "boxes.csv", "filename,xmin,ymin,xmax,ymax\nimages\\lion1.jpg,1,2,30,40\nimages/lion2.jpg,5,5,50,45\n")
    result = scan(tmp_path)
    assert box(result, "images/lion1.jpg") == (1, 2, 30, 40)
    assert box(result, "images/lion2.jpg") == (5, 5, 50, 45)


@pytest.mark.parametrize("on_disk, in_csv", [("NFD", "NFC"), ("NFC", "NFD")])
def test_composed_and_decomposed_unicode_names_meet(tmp_path, on_disk, in_csv):
    name = "caf\u00e9.jpg"
    put(tmp_path / "images" / unicodedata.normalize(on_disk, name))
    write(tmp_path / "boxes.csv", f"filename,xmin,ymin,xmax,ymax\n{unicodedata.normalize(in_csv, name)},1,2,30,40\n")
    result = scan(tmp_path)
    assert result.table[["xmin", "ymin", "xmax", "ymax"]].values.tolist() == [[1, 2, 30, 40]]
    assert len(result.report) == 1


def test_a_path_not_found_names_what_was_tried_and_the_closest(tmp_path):
    put(tmp_path / "images" / "lion_3.jpg")
    write(tmp_path / "boxes.csv", "filename,xmin,ymin,xmax,ymax\nimages/lion3.jpg,1,2,30,40\n")
    result = scan(tmp_path)
    assert report_row(result, "images/lion3.jpg")["reason"] == (
        "unreadable: boxes.csv names 'images/lion3.jpg': no such file (tried images/images/lion3.jpg, "
        "images/lion3.jpg); closest: images/lion_3.jpg")
    assert report_row(result, "images/lion_3.jpg")["reason"] == "missing-annotation: no annotation names it in boxes.csv"


# ------------------------------------------------------------------------ kind 3: export layouts
def roboflow_coco(root: Path) -> Path:
    """Roboflow COCO: train/, valid/, test/ with _annotations.coco.json beside the images."""
    for i, split in enumerate(("train", "valid", "test")):
        put(root / split / f"p{i}_jpg.rf.abc.jpg", noise_image(seed=i))
        write(root / split / "_annotations.coco.json", coco(
            [{"id": 0, "file_name": f"p{i}_jpg.rf.abc.jpg", "width": 100, "height": 50}],
            [{"id": 0, "image_id": 0, "category_id": 1, "bbox": [10 * i, 5, 20, 30]}]))
    write(root / "README.roboflow.txt", "exported from roboflow.com\n")
    return root


def roboflow_csv(root: Path) -> Path:
    """Roboflow CSV: train/, valid/ with _annotations.csv (filename,width,height,class,xmin,...)."""
    for i, split in enumerate(("train", "valid")):
        put(root / split / f"q{i}.jpg", noise_image(seed=i))
        write(root / split / "_annotations.csv",
              f"filename,width,height,class,xmin,ymin,xmax,ymax\nq{i}.jpg,100,50,lion,{i},2,{60 + i},40\n")
    return root


def cvat_yolo(root: Path) -> Path:
    """CVAT "YOLO 1.1": obj.names, obj.data, train.txt, obj_train_data/ with images and .txt side by side."""
    write(root / "obj.names", "lion\n")
    write(root / "obj.data", "classes = 1\ntrain = data/train.txt\nnames = data/obj.names\nbackup = backup/\n")
    write(root / "train.txt", "data/obj_train_data/a.jpg\ndata/obj_train_data/b.jpg\n")
    put(root / "obj_train_data" / "a.jpg"), put(root / "obj_train_data" / "b.jpg", noise_image(seed=1))
    write(root / "obj_train_data" / "a.txt", "0 0.5 0.5 0.2 0.4\n")  # 100 x 50: (40, 15, 60, 35)
    write(root / "obj_train_data" / "b.txt", "")
    return root


def test_roboflow_coco_export_is_read_at_its_root_with_its_split(tmp_path):
    root = roboflow_coco(tmp_path)
    assert detect_format(root) == "coco"
    result = scan(root)
    assert box(result, "train/p0_jpg.rf.abc.jpg") == (0, 5, 20, 35)
    assert box(result, "valid/p1_jpg.rf.abc.jpg") == (10, 5, 30, 35)
    assert box(result, "test/p2_jpg.rf.abc.jpg") == (20, 5, 40, 35)
    assert result.report["export_split"].tolist() == ["test", "train", "val"]
    report = pd.read_csv(result.write_report(tmp_path / "report.csv"), keep_default_na=False)
    assert list(report.columns) == ["file", "status", "reason", "dup_group", "twin_box_iou", "export_split"]
    assert "export split (the export's own folders), usable photos: test 1, train 1, val 1" in result.summary()


def test_roboflow_csv_export_is_read_at_its_root(tmp_path):
    root = roboflow_csv(tmp_path)
    assert detect_format(root) == "csv"
    result = scan(root, classes="lion")
    assert box(result, "train/q0.jpg") == (0, 2, 60, 40)
    assert box(result, "valid/q1.jpg") == (1, 2, 61, 40)
    assert dict(zip(result.report["file"], result.report["export_split"])) == {"train/q0.jpg": "train", "valid/q1.jpg": "val"}


@pytest.mark.parametrize("fmt", ["auto", "yolo"])
def test_cvat_yolo_export(tmp_path, fmt):
    result = scan(cvat_yolo(tmp_path), fmt=fmt)
    assert result.format == "yolo"
    assert box(result, "obj_train_data/a.jpg") == pytest.approx((40, 15, 60, 35))
    assert report_row(result, "obj_train_data/b.jpg")["code"] == "no-box"
    assert set(result.report["export_split"]) == {"train"}


def test_export_split_names():
    root = Path("/d")
    assert [export_split(root / p, root) for p in ("train/images/a.jpg", "images/val/a.jpg", "Valid/a.jpg",
                                                   "obj_validation_data/a.jpg", "testing/a.jpg", "a.jpg", "cats/a.jpg")] \
        == ["train", "val", "val", "val", "test", "", ""]


def test_unknown_layout_lists_what_it_found(tmp_path):
    put(tmp_path / "a.jpg"), put(tmp_path / "b.jpg"), write(tmp_path / "pics" / "notes.txt", "hello\n")
    with pytest.raises(DataFormatError, match=r"no known dataset layout; found 3 files \(2 \.jpg, 1 \.txt\); "
                                              r"folders: pics/\. Formats read"):
        detect_format(tmp_path)
    with pytest.raises(DataFormatError, match=r"no images/ folder beside a labels/ folder.*found 3 files"):
        scan(tmp_path, fmt="yolo")


# --------------------------------------------------------------------------- kind 4: YOLO lines
def test_yolo_pose_with_kpt_shape_takes_the_first_four_values():
    line = "0 0.5 0.5 0.2 0.4 0.45 0.35 2 0.9 0.9 1\n"  # box + 2 keypoints x y v
    assert yolo_annotation(line, 100, 50, kpt_shape=(2, 3)).boxes.tolist() == [[40, 15, 60, 35]]
    # the same line without kpt_shape has an even count: a polygon, as Ultralytics reads it (x up to 2)
    assert yolo_annotation(line, 100, 50).boxes[0].tolist() == pytest.approx([20, 17.5, 200, 50])
    # 2-D keypoints: 4 + 1 x 2 values
    assert yolo_annotation("0 0.5 0.5 0.2 0.4 0.9 0.9\n", 100, 50, kpt_shape=(1, 2)).boxes.tolist() == [[40, 15, 60, 35]]


def test_yolo_pose_without_kpt_shape_by_its_odd_count():
    # 4 + 3 x 1 = 7 values: one keypoint x y visibility, not a polygon
    assert yolo_annotation("0 0.5 0.5 0.2 0.4 0.1 0.1 2\n", 100, 50).boxes.tolist() == [[40, 15, 60, 35]]
    # a polygon keeps its extent: x 0.1..0.5, y 0.2..0.6
    assert yolo_annotation("0 0.1 0.2 0.5 0.2 0.3 0.6\n", 100, 50).boxes[0].tolist() == pytest.approx([10, 10, 50, 30])


@pytest.mark.parametrize("line, shape, expected", [
    ("0 0.5 0.5 0.2 0.4 0.3", None, "label line 1: expected 'class cx cy w h', a polygon 'class x1 y1 ... xm ym' "
                                    "(m >= 3) or a pose line 'class cx cy w h' + k keypoints 'x y visibility', got 6 fields"),
    ("0 0.5 0.5 0.2 0.4 0.3 0.3", (2, 3), "label line 1: expected 'class cx cy w h' or a pose line of 1 + 4 + 2 x 3 "
                                          "= 11 fields (kpt_shape [2, 3] in the dataset's YAML), got 7 fields"),
])
def test_yolo_line_of_no_kind_is_reported(line, shape, expected):
    from localizer.data.readers import AnnotationError

    with pytest.raises(AnnotationError) as info:
        yolo_annotation(line, 100, 50, kpt_shape=shape)
    assert (info.value.reason, info.value.detail) == ("unparsable-annotation", expected)


def test_yolo_pose_dataset_reads_kpt_shape_from_data_yaml(tmp_path):
    write(tmp_path / "data.yaml", "path: .\ntrain: images\nkpt_shape: [2, 3]\nnames: {0: lion}\n")
    put(tmp_path / "images" / "a.jpg")
    write(tmp_path / "labels" / "a.txt", "0 0.5 0.5 0.2 0.4 0.45 0.35 2 0.9 0.9 1\n")
    assert box(scan(tmp_path), "images/a.jpg") == pytest.approx((40, 15, 60, 35))


# ------------------------------------------------------------------------ kind 5: image endings
def test_jfif_avif_and_heic_are_listed(tmp_path):
    put(tmp_path / "images" / "a.jfif", fmt="JPEG"), put(tmp_path / "images" / "b.avif", fmt="AVIF")
    (tmp_path / "images" / "c.heic").write_bytes(b"\x00\x00\x00\x18ftypheic not really a HEIC file")
    for name in "abc":
        write(tmp_path / "labels" / f"{name}.txt", "0 0.5 0.5 0.2 0.4\n")
    result = scan(tmp_path)
    assert result.report["file"].tolist() == ["images/a.jfif", "images/b.avif", "images/c.heic"]
    assert box(result, "images/a.jfif") == pytest.approx((40, 15, 60, 35))
    assert box(result, "images/b.avif") == pytest.approx((40, 15, 60, 35))
    heic = report_row(result, "images/c.heic")
    assert heic["code"] == "not-an-image"
    if not HEIF_PLUGIN:
        assert heic["reason"] == ("not-an-image: the content is not an image format Pillow reads (HEIC/HEIF needs the "
                                  "pillow-heif plugin (pip install pillow-heif), which is not installed)")


# ------------------------------------------------------------------------ kind 8: judgement calls
def test_voc_primary_box_among_the_objects_not_difficult(tmp_path):
    put(tmp_path / "a.jpg"), put(tmp_path / "b.jpg", noise_image(seed=1))
    # a: the difficult object is the larger (80 x 40) but the primary is the other (20 x 20)
    write(tmp_path / "a.xml", voc([("cat", (11, 6, 90, 45), 1), ("cat", (21, 11, 40, 30), 0)]))
    write(tmp_path / "b.xml", voc([("cat", (11, 6, 90, 45), 1), ("cat", (21, 11, 40, 30), 1)]))
    result = scan(tmp_path)
    assert box(result, "a.jpg") == (20, 10, 40, 30)
    assert report_row(result, "a.jpg")["note"] == ("primary box chosen among the 1 of 2 boxes not marked difficult "
                                            "(the VOC devkit leaves difficult objects out of evaluation)")
    assert box(result, "b.jpg") == (10, 5, 90, 45)  # all difficult: the largest
    assert report_row(result, "b.jpg")["note"] == "all 2 boxes are marked difficult; the largest is the primary box"
    assert result.table["n_boxes"].tolist() == [2, 2]
    assert "VOC difficult objects: 1 photos have their primary box chosen" in result.summary()


@pytest.mark.parametrize("bbox", [None, [], [0, 0, 0, 0]])
def test_coco_empty_bbox_with_a_polygon_gives_its_extent(tmp_path, bbox):
    put(tmp_path / "a.jpg")
    ann = {"id": 1, "image_id": 1, "segmentation": [[10, 20, 50, 20, 30, 45], [60, 5, 70, 5, 65, 9]]}
    if bbox is not None:
        ann["bbox"] = bbox
    write(tmp_path / "instances.json", coco([{"id": 1, "file_name": "a.jpg"}], [ann]))
    assert box(scan(tmp_path), "a.jpg") == (10, 5, 70, 45)  # x 10..70, y 5..45 over both polygons


# ----------------------------------------------------------------- check-data on every layout
@pytest.mark.parametrize("build", [roboflow_coco, roboflow_csv, cvat_yolo])
def test_check_data_on_each_layout_with_junk_lists_every_image(tmp_path, build, capsys):
    root = build(tmp_path / "export")
    write(root / ".DS_Store", "\x00junk"), write(root / "Thumbs.db", "junk"), write(root / "notes.txt", "hi\n")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    put(root / "extra" / "unlabelled.png", fmt="PNG")
    report = tmp_path / "report.csv"
    assert cli.main(["check-data", str(root), "--quiet", "--report", str(report)]) == 0
    written = pd.read_csv(report, keep_default_na=False)
    files = image_files(root)
    assert set(written["file"]) == files and len(written) == len(files)
    assert ((written["status"] == "ok") | written["reason"].str.len().gt(0)).all()
    assert "Traceback" not in capsys.readouterr().err


def test_check_data_on_a_tree_mixing_layouts_and_junk(tmp_path, capsys):
    root = tmp_path / "mixed"
    roboflow_coco(root / "roboflow"), roboflow_csv(root / "sheets"), cvat_yolo(root / "cvat")
    put(root / "voc" / "1.jpg"), write(root / "voc" / "1.xml", voc([("cat", (11, 21, 30, 40), 0)]))
    write(root / "desktop.ini", "[junk]\n"), (root / "voc" / "2.jpg").write_bytes(b"")
    report = tmp_path / "report.csv"
    assert cli.main(["check-data", str(root), "--quiet", "--report", str(report)]) == 0
    written = pd.read_csv(report, keep_default_na=False).set_index("file")
    assert set(written.index) == image_files(root) and len(written) == len(image_files(root)) == 9
    # the CVAT export one level down is the layout read; every other photo is listed with a reason
    assert written.loc["cvat/obj_train_data/a.jpg", "status"] == "ok"
    assert written.loc["voc/1.jpg", "reason"].startswith("missing-annotation: no annotation names it in an images/")
    assert (written["status"].eq("ok") | written["reason"].str.len().gt(0)).all()


def test_split_export_keeps_the_exports_own_split_and_refuses_one_with_a_split_missing(tmp_path):
    from localizer.data.split import NotEnoughDataError, split_leaks
    from localizer.engine.run import Run
    from localizer.recipe import TrainConfig

    root = roboflow_coco(tmp_path / "coco")
    run = Run.create(TrainConfig(data=str(root), split="export"), tmp_path / "run", progress=False)
    assert dict(zip(run.manifest["file"], run.manifest["split"])) == {
        "test/p2_jpg.rf.abc.jpg": "test", "train/p0_jpg.rf.abc.jpg": "train", "valid/p1_jpg.rf.abc.jpg": "val"}
    assert split_leaks(run.manifest) == 0
    # three photos are too few for the seeded 70/15/15 split, which needs one photo in each part
    with pytest.raises(NotEnoughDataError):
        Run.create(TrainConfig(data=str(root)), tmp_path / "seeded", progress=False)
    # Roboflow's CSV export here has train/ and valid/ only: no test split to keep
    with pytest.raises(NotEnoughDataError, match=r"has no test photos.*split=\"seeded\""):
        Run.create(TrainConfig(data=str(roboflow_csv(tmp_path / "csv")), split="export"), tmp_path / "csv-run",
                   progress=False)


def test_split_leaks_counts_groups_of_twins_across_splits():
    from localizer.data.split import split_leaks
    manifest = pd.DataFrame({"dup_group": [0, 1, 1, 2, 2, 3], "split": ["train", "train", "test", "val", "val", "test"]})
    assert split_leaks(manifest) == 1  # group 1 lies in train and test; group 2 only in val; 0 is no group
