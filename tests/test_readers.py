"""Readers: COCO crowd boxes, the class filter, spreadsheet CSV files, EXIF-rotated photos whose
annotation gives the stored (un-rotated) frame. Every dataset is built here in ``tmp_path``; the
expected boxes are worked out by hand in the comments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import noise_image, report_row, scan
from PIL import Image, ImageOps

from localizer.data.imageio import DecodedFrame, decoded_frame, exif_transpose_boxes, load_rgb
from localizer.data.readers import (
    CLASS_PRESETS,
    COCO_ANIMALS,
    VOC_ANIMALS,
    Annotation,
    AnnotationError,
    DataFormatError,
    boxes_in_image,
    detect_format,
    get_reader,
    parse_classes,
    parse_voc_xml,
    trimap_box,
)
from localizer.data.validation import check_item

ANIMALS = "bear, bird, cat, cow, dog, elephant, giraffe, horse, sheep, zebra"


# ------------------------------------------------------------------------------------------ helpers
def table_row(result, file: str) -> dict:
    rows = result.table[result.table["file"] == file]
    assert len(rows) == 1, f"{file} not usable once: {result.report.to_dict('records')}"
    return rows.iloc[0].to_dict()


def table_box(result, file: str) -> tuple[float, float, float, float]:
    row = table_row(result, file)
    return tuple(float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))


def voc_xml(objects: list[tuple[str, tuple[int, int, int, int]]], width: int, height: int) -> str:
    """A VOC XML with ``<size>`` width x height and objects ``(name, (xmin, ymin, xmax, ymax))``, 1-based."""
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
        f"<ymax>{d}</ymax></bndbox></object>" for name, (a, b, c, d) in objects)
    return (f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
            f"{body}</annotation>")


def add_voc(root: Path, name: str, image: Image.Image, xml: str, exif_orientation: int | None = None,
            fmt: str = "JPEG") -> Path:
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "Annotations").mkdir(exist_ok=True)
    path = root / "JPEGImages" / f"{name}.jpg"
    save(image, path, exif_orientation, fmt)
    (root / "Annotations" / f"{name}.xml").write_text(xml)
    return path


def save(image: Image.Image, path: Path, exif_orientation: int | None = None, fmt: str = "JPEG") -> Path:
    """Save ``image`` as stored pixels, with EXIF tag 0x0112 (Orientation) when given."""
    kwargs = {"quality": 95} if fmt == "JPEG" else {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    image.save(path, format=fmt, **kwargs)
    return path


def add_yolo(root: Path, name: str, image: Image.Image, label: str) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(exist_ok=True)
    image.save(root / "images" / f"{name}.jpg", quality=95)
    (root / "labels" / f"{name}.txt").write_text(label)


def write_coco(root: Path, images: list[dict], annotations: list[dict], categories: list[dict]) -> None:
    (root / "instances.json").write_text(json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}))


def make_csv_folder(root: Path, content: bytes, names=("a.jpg",), size=(120, 90)) -> Path:
    (root / "images").mkdir(parents=True)
    for i, name in enumerate(names):
        noise_image(*size, seed=i).save(root / "images" / name)
    (root / "boxes.csv").write_bytes(content)
    return root


# ------------------------------------------------------------------------------------ COCO crowd
COCO_CATEGORIES = [{"id": 1, "name": "person"}, {"id": 17, "name": "Cat"}, {"id": 18, "name": "dog"},
                   {"id": 3, "name": "car"}]


def test_coco_crowd_box_is_never_the_primary_box(tmp_path):
    root = tmp_path / "coco"
    root.mkdir()
    noise_image(500, 400).save(root / "herd.jpg")
    noise_image(500, 400, 1).save(root / "crowd_only.jpg")
    write_coco(root, [
        {"id": 1, "file_name": "herd.jpg", "width": 500, "height": 400},
        {"id": 2, "file_name": "crowd_only.jpg", "width": 500, "height": 400},
    ], [
        # the crowd box covers 445 x 288 px, the single animal 120 x 90 px
        {"id": 1, "image_id": 1, "category_id": 18, "bbox": [1, 50, 445, 288], "iscrowd": 1},
        {"id": 2, "image_id": 1, "category_id": 18, "bbox": [300, 100, 120, 90], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 18, "bbox": [10, 10, 100, 100], "iscrowd": 1},
        {"id": 4, "image_id": 2, "category_id": 17, "bbox": [200, 10, 100, 100], "iscrowd": 1},
    ], COCO_CATEGORIES)
    result = scan(root)
    # [300, 100, 120, 90] as xyxy: (300, 100, 300 + 120, 100 + 90)
    assert table_box(result, "herd.jpg") == (300, 100, 420, 190)
    assert table_row(result, "herd.jpg")["n_boxes"] == 1  # the crowd box is not counted
    row = report_row(result, "crowd_only.jpg")
    assert (row["status"], row["code"]) == ("skipped", "no-box")
    assert row["reason"] == ("no-box: only crowd boxes were found (2 with iscrowd: 1, each around a group of "
                             "objects); no box of a single one")


# ---------------------------------------------------------------------------------- class filter
def test_parse_classes_presets_names_and_ids():
    assert CLASS_PRESETS["animals"] == VOC_ANIMALS | COCO_ANIMALS
    assert VOC_ANIMALS == {"bird", "cat", "cow", "dog", "horse", "sheep"}
    assert len(CLASS_PRESETS["animals"]) == 10
    assert parse_classes(None) is None
    assert parse_classes(" Cat ,DOG") == {"cat", "dog"}
    assert parse_classes("teddy bear") == {"teddy bear"}  # inner spaces are part of COCO names
    assert parse_classes("Animals, lion") == CLASS_PRESETS["animals"] | {"lion"}
    assert parse_classes("0, 02,10") == {"0", "2", "10"}
    assert parse_classes(["cat", "dog"]) == {"cat", "dog"}
    assert parse_classes(2) == {"2"}  # a JSON config value
    parsed = parse_classes("animals,lion")
    assert parse_classes(parsed) == parsed  # a parsed filter parses to itself
    for bad in ("", " ", "cat,,dog", "cat,"):
        with pytest.raises(DataFormatError, match="no empty entry"):
            parse_classes(bad)
    with pytest.raises(DataFormatError, match="as text"):
        parse_classes(1.5)


def _multi_class_voc(root: Path) -> None:
    # a.jpg: a person (1-based 1..150 x 1..100: 150 x 100 px) and a dog (101..140 x 61..90: 40 x 30 px)
    add_voc(root, "a", noise_image(160, 120), voc_xml([("person", (1, 1, 150, 100)), ("dog", (101, 61, 140, 90))],
                                                      160, 120))
    # b.jpg: a car and a person only
    add_voc(root, "b", noise_image(160, 120, 1), voc_xml([("car", (1, 1, 50, 50)), ("person", (11, 11, 30, 30)),
                                                          ("person", (61, 61, 80, 80))], 160, 120))
    # c.jpg: a Sheep (capitalized) and a small lion
    add_voc(root, "c", noise_image(160, 120, 2), voc_xml([(" Sheep ", (21, 11, 60, 40)), ("lion", (1, 1, 10, 10))],
                                                         160, 120))


def test_voc_class_filter_drops_other_classes_before_the_primary_box(tmp_path):
    root = tmp_path / "voc"
    _multi_class_voc(root)
    everything = scan(root)
    assert table_box(everything, "JPEGImages/a.jpg") == (0, 0, 150, 100)  # the person is the largest
    assert table_row(everything, "JPEGImages/a.jpg")["n_boxes"] == 2

    animals = scan(root, classes="animals")
    assert table_box(animals, "JPEGImages/a.jpg") == (100, 60, 140, 90)
    assert table_row(animals, "JPEGImages/a.jpg")["n_boxes"] == 1
    assert table_box(animals, "JPEGImages/c.jpg") == (20, 10, 60, 40)  # " Sheep " matches sheep
    row = report_row(animals, "JPEGImages/b.jpg")
    assert (row["status"], row["code"]) == ("skipped", "no-box")
    assert row["reason"] == f"no-box: no box of the classes {ANIMALS} (the annotation has car, person x2)"

    lion = scan(root, classes="LION")
    assert table_box(lion, "JPEGImages/c.jpg") == (0, 0, 10, 10)
    assert lion.table["file"].tolist() == ["JPEGImages/c.jpg"]
    mixed = scan(root, classes="animals,lion")
    assert table_row(mixed, "JPEGImages/c.jpg")["n_boxes"] == 2
    assert table_box(mixed, "JPEGImages/c.jpg") == (20, 10, 60, 40)


def test_coco_class_filter_uses_category_names(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    noise_image(200, 100).save(root / "images" / "a.jpg")
    noise_image(200, 100, 1).save(root / "images" / "b.jpg")
    write_coco(root, [{"id": 1, "file_name": "a.jpg", "width": 200, "height": 100},
                      {"id": 2, "file_name": "b.jpg", "width": 200, "height": 100}], [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 150, 100], "iscrowd": 0},   # person
        {"id": 2, "image_id": 1, "category_id": 17, "bbox": [150, 50, 40, 30], "iscrowd": 0},  # Cat
        {"id": 3, "image_id": 1, "category_id": 18, "bbox": [10, 10, 20, 20], "iscrowd": 0},   # dog
        {"id": 4, "image_id": 2, "category_id": 3, "bbox": [10, 10, 20, 20], "iscrowd": 0},    # car
    ], COCO_CATEGORIES)
    assert table_box(scan(root), "images/a.jpg") == (0, 0, 150, 100)
    result = scan(root, classes="animals")
    assert table_box(result, "images/a.jpg") == (150, 50, 190, 80)
    assert table_row(result, "images/a.jpg")["n_boxes"] == 2
    assert report_row(result, "images/b.jpg")["reason"] == (
        f"no-box: no box of the classes {ANIMALS} (the annotation has car)")
    assert table_box(scan(root, classes="dog"), "images/a.jpg") == (10, 10, 30, 30)
    # check_item takes the filter text too and names the primary box's class
    reader = get_reader("coco")
    item = next(it for it in reader.list_items(root) if it.image.name == "a.jpg")
    out = check_item(item, reader, classes="cat")
    assert (out["status"], out["label"], out["n_boxes"]) == ("ok", "Cat", 1)
    assert (out["xmin"], out["ymin"], out["xmax"], out["ymax"]) == (150, 50, 190, 80)
    assert check_item(item, reader)["label"] == "person"


def test_yolo_class_filter_takes_ids(tmp_path):
    root = tmp_path / "yolo"
    # 100 x 50 image; class 1 is the largest (0.6 x 0.8), class 2 (0.2 x 0.4) beats class 0 (0.1 x 0.2)
    add_yolo(root, "a", noise_image(100, 50), "0 0.5 0.5 0.1 0.2\n1 0.5 0.5 0.6 0.8\n2 0.2 0.5 0.2 0.4\n")
    add_yolo(root, "b", noise_image(100, 50, 1), "1 0.5 0.5 0.2 0.2\n")
    assert table_box(scan(root), "images/a.jpg") == pytest.approx((20, 5, 80, 45))
    result = scan(root, classes="0, 02")
    # class 2: cx 20, cy 25, w 20, h 20 px -> (10, 15, 30, 35)
    assert table_box(result, "images/a.jpg") == pytest.approx((10, 15, 30, 35))
    assert table_row(result, "images/a.jpg")["n_boxes"] == 2
    assert report_row(result, "images/b.jpg")["reason"] == "no-box: no box of the classes 0, 2 (the annotation has 1)"


def _oxford(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    (root / "annotations" / "xmls").mkdir()
    noise_image(60, 40).save(root / "images" / "a.jpg")
    trimap = np.full((40, 60), 2, dtype=np.uint8)
    trimap[10:20, 5:30] = 1
    Image.fromarray(trimap).save(root / "annotations" / "trimaps" / "a.png")
    return root


@pytest.mark.parametrize("fmt, classes, message", [
    ("yolo", "animals", "classes 'animals': animals is not a class id (animals names VOC and COCO classes); "
                        "YOLO labels carry class ids: pass ids such as --classes 0"),
    ("yolo", "0,cat,dog", "classes '0,cat,dog': cat, dog are not class ids; YOLO labels carry class ids: "
                          "pass ids such as --classes 0"),
    ("voc", "animals,15", "classes 'animals,15': voc labels carry class names, not ids"),
    ("oxford-pets", "cat", "classes 'cat': the Oxford-IIIT Pet boxes (trimap or head box) have no class to "
                           "filter on: one cat or dog per photo; leave the class filter out"),
    ("csv", "animals", "classes 'animals': the CSV has no class column to filter on; leave the class filter out"),
    ("coco", "cat,,dog", "no empty entry"),
])
def test_class_filter_misuse_is_refused_up_front(tmp_path, monkeypatch, fmt, classes, message):
    root = tmp_path / fmt
    if fmt == "yolo":
        add_yolo(root, "a", noise_image(40, 30), "0 0.5 0.5 0.2 0.2\n")
    elif fmt == "voc":
        add_voc(root, "a", noise_image(40, 30), voc_xml([("cat", (1, 1, 10, 10))], 40, 30))
    elif fmt == "oxford-pets":
        _oxford(root)
    elif fmt == "csv":
        make_csv_folder(root, b"filename,xmin,ymin,xmax,ymax\na.jpg,1,2,3,4\n")
    else:
        root.mkdir()
        noise_image(40, 30).save(root / "a.jpg")
        write_coco(root, [{"id": 1, "file_name": "a.jpg"}], [], COCO_CATEGORIES)
    assert detect_format(root) == fmt
    decoded = []
    monkeypatch.setattr("localizer.data.checking.load_rgb", lambda *a, **k: decoded.append(a) or load_rgb(*a, **k))
    with pytest.raises(DataFormatError) as info:
        scan(root, classes=classes)
    assert message in str(info.value)
    assert decoded == []  # refused before any photo is decoded
    if fmt == "oxford-pets":
        with pytest.raises(DataFormatError, match="no class to filter on"):
            scan(root, oxford_box="head", classes="cat")


def test_csv_class_column(tmp_path):
    # TensorFlow object-detection CSV (LabelImg's xml_to_csv): the columns are found by name
    root = make_csv_folder(tmp_path / "csv", (
        "filename,width,height,class,xmin,ymin,xmax,ymax\n"
        "a.jpg,120,90,person,0,0,100,80\n"
        "a.jpg,120,90, Dog ,50,40,70,60\n").encode())
    assert detect_format(root) == "csv"
    assert table_box(scan(root), "images/a.jpg") == (0, 0, 100, 80)
    result = scan(root, classes="animals")
    assert table_box(result, "images/a.jpg") == (50, 40, 70, 60)
    assert table_row(result, "images/a.jpg")["n_boxes"] == 1


# ------------------------------------------------------------------------------------ spreadsheets
@pytest.mark.parametrize("content", [
    b"\xef\xbb\xbffilename,xmin,ymin,xmax,ymax\r\na.jpg,10,20,30.5,40\r\nb.jpg,1,2,3,4\r\n",  # Excel "CSV UTF-8"
    b"filename;xmin;ymin;xmax;ymax\r\na.jpg;10;20;30,5;40\r\nb.jpg;1;2;3;4\r\n;;;;\r\n",  # semicolons, decimal comma
    b"\xef\xbb\xbfFilename\tXMin\tYMin\tXMax\tYMax\na.jpg\t10\t20\t30.5\t40\nb.jpg\t1\t2\t3\t4\n",  # tabs
    b"\n\"filename\",\"xmin\",\"ymin\",\"xmax\",\"ymax\"\n\"a.jpg\",10,20,30.5,40\n\"b.jpg\",1,2,3,4\n",  # quoted
], ids=["bom-crlf", "semicolon-decimal-comma", "tab", "quoted"])
def test_csv_from_spreadsheet_programs(tmp_path, content):
    root = make_csv_folder(tmp_path / "csv", content, names=("a.jpg", "b.jpg"))
    assert detect_format(root) == "csv"
    result = scan(root)
    assert result.format == "csv"
    assert len(result.report) == 2  # the blank ';;;;' row is no image
    assert table_box(result, "images/a.jpg") == (10, 20, 30.5, 40)
    assert table_box(result, "images/b.jpg") == (1, 2, 3, 4)


@pytest.mark.parametrize("content, expected", [
    (b"image,x1,y1,x2,y2\na.jpg,10,20,30,40\n",
     "boxes.csv looks like boxes in another dialect (columns image, x1, y1, x2, y2); localizer reads a header "
     "row filename,xmin,ymin,xmax,ymax (pixels: the top-left and bottom-right corners; an optional class "
     "column; delimited by commas, semicolons or tabs): rename or convert the columns"),
    (b"filename;x;y;width;height\r\na.jpg;10;20;30;40\r\n",
     "boxes.csv looks like boxes in another dialect (columns filename, x, y, width, height); localizer reads "
     "a header row filename,xmin,ymin,xmax,ymax (pixels: the top-left and bottom-right corners; an optional "
     "class column; delimited by commas, semicolons or tabs); a top-left corner x, y with a width and height "
     "gives xmax = x + width, ymax = y + height: rename or convert the columns"),
    (b"a.jpg,10,20,30,40\nb.jpg,1,2,3,4\n",
     "boxes.csv looks like boxes in another dialect (no header row; the first row is a.jpg, 10, 20, 30, 40); "
     "localizer reads a header row filename,xmin,ymin,xmax,ymax (pixels: the top-left and bottom-right corners; "
     "an optional class column; delimited by commas, semicolons or tabs): add the header row"),
    (b"filename,xmin,ymin,xmax,ymax\n\xe9t\xe9.jpg,1,2,3,4\n",
     "boxes.csv is not UTF-8 text (invalid continuation byte at byte 29); localizer reads CSV files in UTF-8: "
     "save it as 'CSV UTF-8'"),
], ids=["x1y1x2y2", "xywh-semicolon", "no-header", "latin-1"])
def test_csv_in_another_dialect_is_named(tmp_path, content, expected):
    root = make_csv_folder(tmp_path / "csv", content)
    with pytest.raises(DataFormatError) as info:
        detect_format(root)
    assert str(info.value) == f"{root}: {expected}"
    with pytest.raises(DataFormatError) as info:
        scan(root, fmt="csv")
    assert str(info.value) == f"{root}: {expected}"


def test_csv_that_is_no_boxes_gives_the_generic_message(tmp_path):
    root = make_csv_folder(tmp_path / "csv", b"name,age,city\nRex,3,Paris\n")
    with pytest.raises(DataFormatError, match="no known dataset layout"):
        detect_format(root)
    with pytest.raises(DataFormatError, match="no CSV with a header row filename,xmin,ymin,xmax,ymax"):
        scan(root, fmt="csv")


# ---------------------------------------------------------------------------------- EXIF frames
def test_load_rgb_exposes_orientation_and_stored_size(tmp_path):
    plain = save(noise_image(40, 30), tmp_path / "plain.jpg")
    rotated = save(noise_image(40, 30), tmp_path / "rotated.jpg", exif_orientation=6)
    invalid = save(noise_image(40, 30), tmp_path / "invalid.jpg", exif_orientation=9)
    png = save(noise_image(40, 30), tmp_path / "rotated.png", exif_orientation=8, fmt="PNG")
    img = load_rgb(rotated)
    assert (img.mode, img.size) == ("RGB", (30, 40))
    assert decoded_frame(img) == DecodedFrame(6, (40, 30))
    assert decoded_frame(img).swaps_axes
    assert decoded_frame(load_rgb(plain)) == DecodedFrame(1, (40, 30))
    assert decoded_frame(load_rgb(invalid)) == DecodedFrame(1, (40, 30))  # Pillow ignores 9 too
    assert load_rgb(invalid).size == (40, 30)
    assert decoded_frame(load_rgb(png)) == DecodedFrame(8, (40, 30))
    assert decoded_frame(Image.new("RGB", (5, 7))) == DecodedFrame(1, (5, 7))


def test_exif_rotated_photo_with_voc_in_the_stored_frame_exact(tmp_path):
    """The example of the bug: stored 400 x 300, EXIF 6 (displayed 300 x 400), VOC <size> 400 x 300 and
    the 1-based box (1, 1, 100, 50) = continuous (0, 0, 100, 50) on the stored frame. Rotating 90
    degrees clockwise maps (x, y) to (300 - y, x): (300 - 50, 0, 300 - 0, 100) = (250, 0, 300, 100).
    Stretching it instead gave (0, 0, 75, 66.7)."""
    root = tmp_path / "voc"
    add_voc(root, "a", noise_image(400, 300), voc_xml([("cat", (1, 1, 100, 50))], 400, 300), exif_orientation=6)
    result = scan(root)
    row = table_row(result, "JPEGImages/a.jpg")
    assert (row["width"], row["height"]) == (300, 400)
    assert table_box(result, "JPEGImages/a.jpg") == (250, 0, 300, 100)


# stored 64 x 48 photo with a red block over columns 7..30 and rows 5..16: continuous (7, 5, 31, 17)
RAW_W, RAW_H, RAW_BOX = 64, 48, (7, 5, 31, 17)
DISPLAYED_BOX = {  # worked out from Pillow's transposes, W = 64, H = 48
    1: (7, 5, 31, 17),
    2: (33, 5, 57, 17),    # FLIP_LEFT_RIGHT: x -> W - x
    3: (33, 31, 57, 43),   # ROTATE_180: (x, y) -> (W - x, H - y)
    4: (7, 31, 31, 43),    # FLIP_TOP_BOTTOM: y -> H - y
    5: (5, 7, 17, 31),     # TRANSPOSE: (x, y) -> (y, x)
    6: (31, 7, 43, 31),    # ROTATE_270 (90 degrees clockwise): (x, y) -> (H - y, x)
    7: (31, 33, 43, 57),   # TRANSVERSE: (x, y) -> (H - y, W - x)
    8: (5, 33, 17, 57),    # ROTATE_90 (90 degrees counter-clockwise): (x, y) -> (y, W - x)
}


def _block_photo() -> Image.Image:
    pixels = np.zeros((RAW_H, RAW_W, 3), dtype=np.uint8)
    x0, y0, x1, y1 = RAW_BOX
    pixels[y0:y1, x0:x1] = (255, 0, 0)
    return Image.fromarray(pixels)


def _red_extent(img: Image.Image) -> tuple[int, int, int, int]:
    red = np.asarray(img)[..., 0] > 128
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_transpose_boxes_matches_the_pixels(orientation):
    stored = _block_photo()
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.info["exif"] = exif.tobytes()
    displayed = ImageOps.exif_transpose(stored)
    assert _red_extent(displayed) == DISPLAYED_BOX[orientation]
    assert exif_transpose_boxes(np.array([RAW_BOX]), orientation, RAW_W, RAW_H).tolist() == [
        list(DISPLAYED_BOX[orientation])]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_rotated_photo_with_voc_in_the_stored_frame(tmp_path, orientation, fmt):
    root = tmp_path / "voc"
    x0, y0, x1, y1 = RAW_BOX
    path = add_voc(root, "a", _block_photo(), voc_xml([("cat", (x0 + 1, y0 + 1, x1, y1))], RAW_W, RAW_H),
                   exif_orientation=orientation, fmt=fmt)
    with Image.open(path) as raw:
        assert raw.size == (RAW_W, RAW_H)
    displayed = load_rgb(path)
    extent = _red_extent(displayed)
    assert all(abs(a - b) <= 1 for a, b in zip(extent, DISPLAYED_BOX[orientation]))  # JPEG blurs edges
    result = scan(root)
    row = table_row(result, "JPEGImages/a.jpg")
    assert (row["width"], row["height"]) == displayed.size
    assert table_box(result, "JPEGImages/a.jpg") == DISPLAYED_BOX[orientation]
    assert np.abs(np.array(table_box(result, "JPEGImages/a.jpg")) - extent).max() <= 1


def test_exif_rotated_photo_with_voc_in_the_displayed_frame_is_left(tmp_path):
    """A tool that applied the EXIF orientation writes the displayed size: the boxes stay."""
    root = tmp_path / "voc"
    add_voc(root, "a", noise_image(400, 300), voc_xml([("cat", (11, 21, 100, 50))], 300, 400), exif_orientation=6)
    assert table_box(scan(root), "JPEGImages/a.jpg") == (10, 20, 100, 50)


def test_annotation_size_mismatch(tmp_path):
    root = tmp_path / "voc"
    # no EXIF; a portrait <size> for a landscape photo: skipped, never stretched
    add_voc(root, "portrait_xml", noise_image(400, 300), voc_xml([("cat", (1, 1, 100, 50))], 300, 400))
    # EXIF 6 (displayed 300 x 400), <size> 800 x 600: neither the stored nor the displayed frame
    add_voc(root, "rotated", noise_image(400, 300, 1), voc_xml([("cat", (1, 1, 100, 50))], 800, 600),
            exif_orientation=6)
    # the same aspect orientation at another size: scaled per axis as before (800 x 600 -> 400 x 300: halved)
    add_voc(root, "resized", noise_image(400, 300, 2), voc_xml([("cat", (21, 41, 100, 50))], 800, 600))
    result = scan(root)
    row = report_row(result, "JPEGImages/portrait_xml.jpg")
    assert (row["status"], row["code"]) == ("skipped", "annotation-size-mismatch")
    assert row["reason"] == ("annotation-size-mismatch: the annotation was drawn on a 300x400 image but the photo "
                             "is 400x300 as displayed: portrait against landscape, so its boxes cannot be placed "
                             "without stretching")
    row = report_row(result, "JPEGImages/rotated.jpg")
    assert row["reason"] == ("annotation-size-mismatch: the annotation was drawn on a 800x600 image but the photo "
                             "is 300x400 as displayed, stored 400x300 with EXIF orientation 6: landscape against "
                             "portrait, so its boxes cannot be placed without stretching")
    assert table_box(result, "JPEGImages/resized.jpg") == (10, 20, 50, 25)
    # the public parsers follow the same rule
    xml = tmp_path / "x.xml"
    xml.write_text(voc_xml([("cat", (1, 1, 100, 50))], 300, 400))
    with pytest.raises(AnnotationError) as info:
        parse_voc_xml(xml, 400, 300)
    assert info.value.reason == "annotation-size-mismatch"


def test_boxes_in_image_rules():
    ann = Annotation(np.array([[0.0, 0.0, 100.0, 50.0]]), ("cat",), (400, 300))
    stored_6 = DecodedFrame(6, (400, 300))
    assert boxes_in_image(ann, 300, 400, stored_6).tolist() == [[250, 0, 300, 100]]
    assert boxes_in_image(ann, 400, 300).tolist() == [[0, 0, 100, 50]]
    assert boxes_in_image(ann, 200, 150).tolist() == [[0, 0, 50, 25]]
    assert boxes_in_image(ann, 300, 300).tolist() == [[0, 0, 75, 50]]  # a square fits either
    no_frame = Annotation(np.array([[1.0, 2.0, 3.0, 4.0]]))
    assert boxes_in_image(no_frame, 300, 400, stored_6).tolist() == [[1, 2, 3, 4]]  # YOLO, CSV: displayed
    with pytest.raises(AnnotationError):
        boxes_in_image(ann, 300, 400)  # no EXIF: a landscape frame for a portrait photo
    with pytest.raises(ValueError):
        exif_transpose_boxes(np.zeros((1, 4)), 0, 10, 10)


def test_coco_photo_annotated_in_the_stored_frame(tmp_path):
    root = tmp_path / "coco"
    root.mkdir()
    save(noise_image(400, 300), root / "a.jpg", exif_orientation=6)
    save(noise_image(400, 300, 1), root / "b.jpg", exif_orientation=8)
    write_coco(root, [{"id": 1, "file_name": "a.jpg", "width": 400, "height": 300},
                      {"id": 2, "file_name": "b.jpg", "width": 300, "height": 400}],  # displayed frame
               [{"id": 1, "image_id": 1, "category_id": 17, "bbox": [0, 0, 100, 50]},
                {"id": 2, "image_id": 2, "category_id": 17, "bbox": [0, 0, 100, 50]}], COCO_CATEGORIES)
    result = scan(root)
    assert table_box(result, "a.jpg") == (250, 0, 300, 100)
    assert table_box(result, "b.jpg") == (0, 0, 100, 50)


def test_oxford_trimap_of_the_stored_frame(tmp_path):
    root = _oxford(tmp_path / "pets")  # trimap 60 x 40, pet in columns 5..29, rows 10..19: (5, 10, 30, 20)
    save(noise_image(60, 40), root / "images" / "a.jpg", exif_orientation=8)
    # 90 degrees counter-clockwise, (x, y) -> (y, 60 - x): (10, 60 - 30, 20, 60 - 5)
    result = scan(root)
    assert (table_row(result, "images/a.jpg")["width"], table_row(result, "images/a.jpg")["height"]) == (40, 60)
    assert table_box(result, "images/a.jpg") == (10, 30, 20, 55)
    assert trimap_box(root / "annotations" / "trimaps" / "a.png", 120, 80).tolist() == [[10, 20, 60, 40]]
