"""Inputs as real annotation tools and the libraries around them write them: coordinates in the wrong
unit or shape, COCO as CVAT and Label Studio write it, YOLO labels written by ``np.savetxt``, labels
without a photo, a misspelt class, and the JSON of Labelme, VGG Image Annotator and CreateML. Every
dataset is built here in ``tmp_path`` from small noise photos; the boxes expected are worked out by hand
in the comments (VOC pixel indices are 1-based inclusive: ``xmin = 11`` is the continuous edge 10)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import box, noise_image, report_row, scan, write

from localizer import cli
from localizer.data import validation
from localizer.data.download import REPO_ROOT
from localizer.data.readers import DataFormatError, detect_format
from localizer.data.readers.voc import rotated_extent

NORMALIZED = ("normalized-coordinates: every coordinate lies within [0, 1.5] on a 400x300 photo, in a format that "
              "takes pixels: these look like normalized coordinates (fractions of the photo's width and height); "
              "write pixels (x * 400, y * 300) or export in a normalized format (YOLO)")


# ------------------------------------------------------------------------------------------ helpers
def put(path: Path, width: int = 100, height: int = 50, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise_image(width, height, seed).save(path)
    return path


def voc(objects: str, width: int = 100, height: int = 50) -> str:
    return f"<annotation><size><width>{width}</width><height>{height}</height></size>{objects}</annotation>"


def bndbox(name: str, xmin, ymin, xmax, ymax) -> str:
    return (f"<object><name>{name}</name><bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax>"
            f"<ymax>{ymax}</ymax></bndbox></object>")


def robndbox(name: str, cx, cy, w, h, angle) -> str:
    return (f"<object><type>robndbox</type><name>{name}</name><robndbox><cx>{cx}</cx><cy>{cy}</cy><w>{w}</w>"
            f"<h>{h}</h><angle>{angle}</angle></robndbox></object>")


def orphans(result) -> dict[str, str]:
    return dict(zip(result.orphans["file"], result.orphans["reason"]))


# ------------------------------------------------------------- kind 3: the wrong unit or shape
def test_normalized_corners_in_voc_are_refused_with_the_diagnosis(tmp_path):
    put(tmp_path / "a.jpg", 400, 300)
    write(tmp_path / "a.xml", voc(bndbox("cat", 0.1, 0.1, 0.5, 0.5), 400, 300))
    put(tmp_path / "b.jpg", 400, 300, 1)  # a real box of 2 x 2 px beside: pixels above 1.5, kept
    write(tmp_path / "b.xml", voc(bndbox("cat", 3, 3, 4, 4), 400, 300))
    result = scan(tmp_path)
    assert report_row(result, "a.jpg")["reason"] == NORMALIZED
    assert box(result, "b.jpg") == (2, 2, 4, 4)


def test_normalized_corners_in_a_pixel_csv_and_in_coco_are_refused(tmp_path):
    put(tmp_path / "csv" / "a.jpg", 400, 300)
    write(tmp_path / "csv" / "boxes.csv", "filename,xmin,ymin,xmax,ymax\na.jpg,0.1,0.1,0.5,0.5\n")
    assert report_row(scan(tmp_path / "csv"), "a.jpg")["reason"] == NORMALIZED
    put(tmp_path / "coco" / "a.jpg", 400, 300)
    write(tmp_path / "coco" / "instances.json", json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg", "width": 400, "height": 300}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0.1, 0.1, 0.4, 0.4]}],
        "categories": [{"id": 1, "name": "cat"}]}))
    assert report_row(scan(tmp_path / "coco"), "a.jpg")["reason"] == NORMALIZED


def test_rotated_extent_by_hand():
    # 40 x 20 centred at (50, 40): unturned (30, 30, 70, 50); a quarter turn swaps the sides: (40, 20, 60, 60)
    assert rotated_extent(50, 40, 40, 20, 0) == [30, 30, 70, 50]
    assert rotated_extent(50, 40, 40, 20, math.pi / 2) == pytest.approx([40, 20, 60, 60])
    # 45 degrees: half-extents (40 + 20) / (2 sqrt 2) = 21.21 on both axes
    assert rotated_extent(50, 40, 40, 20, math.pi / 4) == pytest.approx([28.787, 18.787, 71.213, 61.213], abs=1e-3)


def test_rolabelimg_rotated_box_is_read_and_competes_for_the_primary_box(tmp_path):
    put(tmp_path / "only.jpg"), put(tmp_path / "both.jpg", seed=1)
    write(tmp_path / "only.xml", voc(robndbox("cat", 50, 25, 40, 20, 1.5707963)))
    # a plain 10 x 10 box (1-based 11..20) beside a rotated 60 x 30 one at (50, 25), unturned: (20, 10, 80, 40)
    write(tmp_path / "both.xml", voc(bndbox("cat", 11, 11, 20, 20) + robndbox("dog", 50, 25, 60, 30, 0)))
    result = scan(tmp_path)
    assert box(result, "only.jpg") == pytest.approx((40, 5, 60, 45))  # a quarter turn: 20 wide, 40 high
    assert box(result, "both.jpg") == (20, 10, 80, 40)
    assert result.table.set_index("file").loc["both.jpg", "n_boxes"] == 2


# ------------------------------------------------------------------ kind 4: COCO as tools write it
def test_cvat_coco_export_with_subsets_reads_every_instances_file(tmp_path):
    put(tmp_path / "images" / "Train" / "a.jpg"), put(tmp_path / "images" / "Validation" / "b.jpg", seed=1)
    for subset, name, bbox in (("Train", "a.jpg", [10, 5, 30, 20]), ("Validation", "b.jpg", [20, 10, 40, 30])):
        write(tmp_path / "annotations" / f"instances_{subset}.json", json.dumps({
            "images": [{"id": 1, "file_name": name, "width": 100, "height": 50}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": bbox, "iscrowd": 0}],
            "categories": [{"id": 1, "name": "cat"}]}))
    result = scan(tmp_path)
    assert result.format == "coco"
    assert box(result, "images/Train/a.jpg") == (10, 5, 40, 25)
    assert box(result, "images/Validation/b.jpg") == (20, 10, 60, 40)
    assert dict(zip(result.report["file"], result.report["export_split"])) == {
        "images/Train/a.jpg": "train", "images/Validation/b.jpg": "val"}


def test_a_large_coco_file_with_sorted_keys_is_detected(tmp_path):
    put(tmp_path / "a.jpg")
    categories = [{"id": i, "name": f"class{i:05d}", "supercategory": "x" * 20} for i in range(1, 20001)]
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 30, 40]}],
            "categories": categories}
    text = json.dumps(data, sort_keys=True)
    assert text.index('"images"') > 1_000_000 and text.index('"annotations"') < text.index('"images"')
    write(tmp_path / "instances.json", text)
    assert detect_format(tmp_path) == "coco"
    assert box(scan(tmp_path), "a.jpg") == (1, 2, 31, 42)


def test_coco_ids_match_as_strings_or_numbers_and_unmatched_annotations_are_named(tmp_path):
    put(tmp_path / "a.jpg"), put(tmp_path / "b.jpg", seed=1)
    write(tmp_path / "instances.json", json.dumps({
        "images": [{"id": "1", "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": "3", "bbox": [10, 5, 30, 20]},
                        {"id": 2, "image_id": "2", "category_id": 3, "bbox": [0, 0, 50, 25]},
                        {"id": 3, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5]}],
        "categories": [{"id": 3, "name": "dog"}]}))
    result = scan(tmp_path, classes="dog")
    assert box(result, "a.jpg") == (10, 5, 40, 25) and box(result, "b.jpg") == (0, 0, 50, 25)
    assert orphans(result) == {"instances.json": "no-photo: 1 annotations of instances.json name image ids that no "
                                                 "images entry has ('7'; the images' ids: '1', '2'): their photos "
                                                 "are unknown"}


def test_coco_ids_that_never_match_are_named_on_each_photo(tmp_path):
    put(tmp_path / "a.jpg")
    write(tmp_path / "instances.json", json.dumps({
        "images": [{"id": "img_1", "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 30, 20]}],
        "categories": [{"id": 1, "name": "cat"}]}))
    assert report_row(scan(tmp_path), "a.jpg")["reason"] == (
        "no-box: no annotation of instances.json names its id, while 1 name ids that no images entry has ('1'): are "
        "the ids of images and annotations written alike?")


def test_a_broken_coco_file_beside_a_good_one_is_listed_and_the_good_one_read(tmp_path):
    put(tmp_path / "images" / "Train" / "a.jpg")
    write(tmp_path / "annotations" / "instances_Train.json", json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 30, 20]}], "categories": []}))
    write(tmp_path / "annotations" / "instances_Test.json", '{"images": [{"id": 1, "file_name": "b.jpg"}], '
                                                             '"annotations": [{"id": 1, "image_')  # cut short
    result = scan(tmp_path)
    assert box(result, "images/Train/a.jpg") == (10, 5, 40, 25)
    assert orphans(result)["annotations/instances_Test.json"].startswith(
        "unparsable-annotation: annotations/instances_Test.json cannot be read, so its photos are unknown: ")


def test_coco_file_names_in_another_case_or_percent_encoded_are_found(tmp_path):
    put(tmp_path / "IMG_0001.JPG"), put(tmp_path / "Capture_décran 1.jpg", seed=1)
    put(tmp_path / "x.jpg", seed=2), put(tmp_path / "X.JPG", seed=3)
    write(tmp_path / "result.json", json.dumps({
        "images": [{"id": 1, "file_name": "IMG_0001.jpg"}, {"id": 2, "file_name": "Capture_d%C3%A9cran%201.jpg"},
                   {"id": 3, "file_name": "x.Jpg"}],
        "annotations": [{"id": k, "image_id": k, "category_id": 1, "bbox": [k, k, 20, 20]} for k in (1, 2, 3)],
        "categories": [{"id": 1, "name": "cat"}]}))
    result = scan(tmp_path)
    assert box(result, "IMG_0001.JPG") == (1, 1, 21, 21)
    assert box(result, "Capture_décran 1.jpg") == (2, 2, 22, 22)
    # two files differ from x.Jpg in case alone: neither is chosen, both are named
    reason = report_row(result, "x.Jpg")["reason"]
    assert reason.startswith("unreadable: result.json names 'x.Jpg': no such file (tried x.Jpg, images/x.Jpg, ")
    assert reason.endswith("; files that differ from it in case alone: X.JPG, x.jpg")


# --------------------------------------------------------- kind 5: numbers as other libraries write them
def test_yolo_class_written_by_numpy_savetxt_is_its_integer(tmp_path):
    put(tmp_path / "images" / "a.jpg"), put(tmp_path / "images" / "b.jpg", seed=1)
    (tmp_path / "labels").mkdir()
    np.savetxt(tmp_path / "labels" / "a.txt", np.array([[1, 0.5, 0.5, 0.2, 0.4], [0, 0.5, 0.5, 0.8, 0.8]]))
    assert (tmp_path / "labels" / "a.txt").read_text().startswith("1.000000000000000000e+00 ")
    write(tmp_path / "labels" / "b.txt", "1.5 0.5 0.5 0.2 0.4\n")
    result = scan(tmp_path, classes="1")
    assert box(result, "images/a.jpg") == pytest.approx((40, 15, 60, 35))  # 0.2 x 0.4 of 100 x 50 at the centre
    assert report_row(result, "images/b.jpg")["reason"] == (
        "unparsable-annotation: b.txt line 1: class '1.5' is not a class id (a whole number >= 0, the class's line "
        "in the class names)")


# --------------------------------------------------------- kind 6: what was found and what was not
def test_labels_without_a_photo_are_listed_in_the_report(tmp_path):
    put(tmp_path / "images" / "a.jpg")
    write(tmp_path / "labels" / "a.txt", "0 0.5 0.5 0.2 0.4\n")
    write(tmp_path / "labels" / "gone.txt", "0 0.5 0.5 0.2 0.4\n")
    write(tmp_path / "labels" / "classes.txt", "cat\n")  # the class names LabelImg writes beside: no label
    result = scan(tmp_path)
    assert orphans(result) == {"labels/gone.txt": "no-photo: no photo for labels/gone.txt: no image named gone.* "
                                                  "in images/"}
    assert "found:   1 images, 1 labels without a photo" in result.summary()
    report = pd.read_csv(result.write_report(tmp_path / "report.csv"), keep_default_na=False)
    assert report[["file", "status"]].values.tolist() == [["images/a.jpg", "ok"], ["labels/gone.txt", "orphan"]]


def test_voc_xml_without_its_photo_is_listed(tmp_path):
    put(tmp_path / "JPEGImages" / "a.jpg")
    write(tmp_path / "Annotations" / "a.xml", voc(bndbox("cat", 11, 11, 20, 20)))
    write(tmp_path / "Annotations" / "b.xml", "<annotation><filename>b.jpg</filename>" + bndbox("cat", 1, 1, 9, 9)
          + "</annotation>")
    assert orphans(scan(tmp_path)) == {"Annotations/b.xml": "no-photo: no photo for Annotations/b.xml: no image "
                                                            "named b.* under the folder (it names b.jpg)"}


def test_a_misspelt_class_is_refused_before_any_photo_is_decoded(tmp_path, monkeypatch):
    put(tmp_path / "a.jpg"), put(tmp_path / "b.jpg", seed=1)
    write(tmp_path / "a.xml", voc(bndbox("dog", 11, 11, 20, 20) + bndbox("cat", 1, 1, 5, 5)))
    write(tmp_path / "b.xml", voc(bndbox("dog", 11, 11, 20, 20)))
    monkeypatch.setattr(validation, "check_item", lambda *a, **k: pytest.fail("a photo was decoded"))
    with pytest.raises(DataFormatError) as error:
        scan(tmp_path, classes="dgo")
    assert str(error.value) == "classes 'dgo': dgo is not a class of this data; its classes: dog (2 boxes), cat (1 box)"
    with pytest.raises(DataFormatError, match="^classes 'animals,lion': lion is not a class of this data"):
        scan(tmp_path, classes="animals,lion")


def test_predict_on_a_folder_without_photos_says_what_it_passed_over(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (tmp_path / "in" / "notes.txt").write_text("shot on a phone\n")
    code = cli.main(["predict", "--checkpoint", str(tmp_path / "missing.pt"), str(tmp_path / "in")])
    err = capsys.readouterr().err
    assert code == 2 and "Empty DataFrame" not in err
    assert err.startswith(f"error: no-image: no image file in {tmp_path / 'in'}; passed over 2 files that are no "
                          f"image: clip.mp4, notes.txt (image endings read: .avif, ")


# -------------------------------------------------------- kind 7: the JSON of the other tools
def test_labelme_rectangles_and_polygons_give_their_extent(tmp_path):
    put(tmp_path / "a.jpg"), put(tmp_path / "b.jpg", seed=1)
    write(tmp_path / "a.json", json.dumps({"version": "5.2.1", "imagePath": "a.jpg", "imageData": None,
                                           "imageWidth": 100, "imageHeight": 50, "shapes": [
        {"label": "cat", "shape_type": "rectangle", "points": [[50, 40], [10, 20]]},  # corners in any order: 40 x 20
        {"label": "dog", "shape_type": "polygon", "points": [[60, 5], [95, 15], [70, 45]]},  # 35 x 40: primary
        {"label": "eye", "shape_type": "point", "points": [[5, 5]]}]}))
    write(tmp_path / "gone.json", json.dumps({"imagePath": "gone.jpg", "shapes": []}))
    result = scan(tmp_path)
    assert result.format == "labelme"
    assert box(result, "a.jpg") == (60, 5, 95, 45)
    assert report_row(result, "b.jpg")["reason"] == "missing-annotation: no annotation names it in a Labelme JSON"
    assert orphans(result) == {"gone.json": "no-photo: no photo for gone.json: neither its imagePath 'gone.jpg' nor "
                                            "an image gone.* beside it is there"}


@pytest.mark.parametrize("project", [True, False], ids=["project", "export"])
def test_via_rect_and_polygon_regions_give_their_extent(tmp_path, project):
    put(tmp_path / "a.jpg")
    regions = [{"shape_attributes": {"name": "rect", "x": 10, "y": 20, "width": 30, "height": 25},  # 30 x 25
                "region_attributes": {"label": "cat"}},
               {"shape_attributes": {"name": "polygon", "all_points_x": [50, 90, 60], "all_points_y": [5, 10, 40]},
                "region_attributes": {"label": "dog"}}]  # 40 x 35: the primary box
    metadata = {"a.jpg12345": {"filename": "a.jpg", "size": 12345, "regions": regions, "file_attributes": {}}}
    write(tmp_path / "via_project.json", json.dumps({"_via_settings": {}, "_via_img_metadata": metadata}
                                                    if project else metadata))
    result = scan(tmp_path, classes="cat")
    assert result.format == "via"
    assert box(result, "a.jpg") == (10, 20, 40, 45)
    assert box(scan(tmp_path), "a.jpg") == (50, 5, 90, 40)


def test_createml_coordinates_are_the_centre_in_pixels(tmp_path):
    put(tmp_path / "train" / "a.jpg")
    write(tmp_path / "train" / "_annotations.createml.json", json.dumps([
        {"image": "a.jpg", "annotations": [{"label": "cat", "coordinates": {"x": 50, "y": 40, "width": 20,
                                                                             "height": 10}}]}]))
    result = scan(tmp_path)
    assert result.format == "createml"
    assert box(result, "train/a.jpg") == (40, 35, 60, 45)
    assert report_row(result, "train/a.jpg")["export_split"] == "train"


# ------------------------------------------------------------ all of the above, with junk, at once
def test_check_data_on_a_tree_mixing_everything_with_junk_gives_a_box_or_a_reason_for_each(tmp_path):
    root = tmp_path / "data"
    put(root / "good.jpg", 400, 300)
    write(root / "good.xml", voc(bndbox("dog", 11, 21, 110, 220), 400, 300))  # (10, 20, 110, 220)
    put(root / "turned.jpg", 400, 300, 1)
    write(root / "turned.xml", voc(robndbox("dog", 200, 150, 100, 40, 0), 400, 300))  # (150, 130, 250, 170)
    put(root / "normalized.jpg", 400, 300, 2)
    write(root / "normalized.xml", voc(bndbox("dog", 0.1, 0.1, 0.5, 0.5), 400, 300))
    put(root / "unlabelled.jpg", 400, 300, 3)
    write(root / "broken.xml", "<annotation><object>")
    put(root / "broken.jpg", 400, 300, 4)
    write(root / "orphan.xml", voc(bndbox("dog", 1, 1, 9, 9)))
    (root / "truncated.jpg").write_bytes((root / "good.jpg").read_bytes()[:200])
    write(root / "truncated.xml", voc(bndbox("dog", 1, 1, 9, 9), 400, 300))
    (root / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    write(root / "notes.txt", "junk")
    write(root / "junk.json", "{not json")
    (root / "empty.xml").write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "localizer", "check-data", str(root), "--quiet", "--report",
                           str(tmp_path / "report.csv")], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    report = pd.read_csv(tmp_path / "report.csv", keep_default_na=False).set_index("file")
    assert report["status"].to_dict() == {
        "broken.jpg": "skipped", "good.jpg": "ok", "normalized.jpg": "skipped", "truncated.jpg": "skipped",
        "turned.jpg": "ok", "unlabelled.jpg": "skipped", "orphan.xml": "orphan"}
    assert report.loc["normalized.jpg", "reason"] == NORMALIZED
    assert report.loc["broken.jpg", "reason"].startswith("unparsable-annotation: broken.xml: invalid XML")
    assert report.loc["unlabelled.jpg", "reason"] == "missing-annotation: no XML file named unlabelled.xml"
    assert report.loc["truncated.jpg", "reason"].startswith("truncated: ")
    table = scan(root).table.set_index("file")
    assert table.loc["good.jpg", ["xmin", "ymin", "xmax", "ymax"]].tolist() == [10, 20, 110, 220]
    assert table.loc["turned.jpg", ["xmin", "ymin", "xmax", "ymax"]].tolist() == [150, 130, 250, 170]

