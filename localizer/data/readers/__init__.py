"""Dataset readers: turn a folder of annotated photos into a list of :class:`Item` and parse each
item's boxes, with their classes, into an :class:`Annotation`. One module per format (``yolo``,
``voc``, ``oxford``, ``coco``, ``csvfile``, ``labelme``, ``via``, ``createml``), beside what they share
(``base``, ``paths``, ``jsonfiles``), the class filter (``classes``) and the placing of boxes on the
displayed photo (``frames``).

Formats (``FORMATS``):

* ``yolo``: ``images/`` beside ``labels/`` (possibly under split folders such as ``train/``); one
  ``labels/NAME.txt`` per ``images/NAME.jpg`` with lines ``class cx cy w h`` normalized to [0, 1];
  or CVAT's "YOLO 1.1" export (``obj.names``, ``obj_train_data/`` with each ``.txt`` beside its
  image). A polygon line ``class x1 y1 x2 y2 ...`` (YOLO segmentation export, and a rotated OBB
  line of four corners) gives the polygon's extent, a pose line its first four values
  (:func:`yolo_annotation`). The classes are integer ids (a class written as a float by
  ``np.savetxt``, ``1.000000000000000000e+00``, is the id 1).
* ``voc``: images and PASCAL VOC XML files (``<object><bndbox>``), each XML beside its image or in a
  parallel folder (``JPEGImages/`` + ``Annotations/``), one XML per image (:func:`pair_xmls`). VOC
  pixel indices are 1-based and inclusive, so ``xmin = 93, xmax = 460`` becomes the continuous box
  ``(92, 460)``. The classes are the ``<object><name>``; the frame the boxes were drawn on is
  ``<size>``; the primary box is chosen among the objects not marked ``<difficult>1</difficult>``
  where there is one. roLabelImg's rotated ``<robndbox>`` (``cx, cy, w, h`` in pixels, ``angle`` in
  radians) gives its axis-aligned extent.
* ``oxford-pets``: the Oxford-IIIT Pet layout (``images/``, ``annotations/trimaps/``,
  ``annotations/xmls/``). Box ``animal`` (default): the tight box around trimap pixels that are not
  background (trimap value 2). Box ``head``: the head box of the VOC XML (only some images have one).
  One animal per photo: no class filter.
* ``coco``: a COCO instances JSON (``images``, ``annotations`` with ``bbox = [x, y, w, h]`` in
  pixels) beside its images (or in ``annotations/`` with images in ``images/`` or beside it), or one
  per split folder (Roboflow: ``train/_annotations.coco.json``). The classes are the names of
  ``categories``; the frame is ``images[].width/height``. Crowd annotations (``iscrowd: 1``, one
  region around a group of objects) are left out; an empty ``bbox`` with a ``segmentation`` polygon
  gives the polygon's extent. Every ``instances_<subset>.json`` of ``annotations/`` is read (CVAT's
  export of a task with subsets, images in ``images/<subset>/``); ids match as numbers or strings.
* ``csv``: a CSV with a header row naming ``filename,xmin,ymin,xmax,ymax`` (pixels, continuous; other
  columns are ignored, an optional ``class`` column gives the classes); several rows for one file are
  several boxes. Files are relative to the CSV's folder (or its ``images/``); Roboflow's
  ``train/_annotations.csv`` per split folder reads too. Spreadsheet exports
  read too: UTF-8 with or without a byte-order mark, any line ends, a comma, semicolon, tab or bar
  as delimiter (found by :class:`csv.Sniffer`) and, when the delimiter is not a comma, decimal commas
  (``10,5``).
* ``labelme``: one Labelme JSON per photo (``shapes`` of ``rectangle``, ``polygon``, ``circle``;
  ``imagePath``; ``imageWidth``/``imageHeight`` the frame); a shape's box is its extent.
* ``via``: a VGG Image Annotator 2 project or export JSON (``_via_img_metadata``, or the dict of
  ``filename`` + ``regions``; ``rect`` ``x, y, width, height``, ``polygon`` ``all_points_x/y``).
* ``createml``: CreateML's JSON list of ``{image, annotations: [{label, coordinates: {x, y, width,
  height}}]}``, ``x, y`` the box's centre in pixels.

A format defined in pixels (all but ``yolo``) whose boxes all lie within [0, 1.5] on a photo at least
16 px a side holds normalized coordinates written by mistake: the photo is skipped as
``normalized-coordinates``, never read as a box of a pixel (:func:`boxes_in_image`). A label file
whose photo is not there is listed as a label without a photo (:attr:`Item.is_orphan`).

The Oxford-IIIT Pet layout is detected before VOC because it also holds VOC XML files.

Paths in a shared annotation file (COCO, CSV) are found as exporters write them
(:class:`~localizer.data.readers.paths.FileIndex`: backslashes, composed or decomposed Unicode, a
path outside the export); every image under the folder is listed, those no annotation names as
``missing-annotation``. A split folder of the export (``train/``, ``valid/``, ``test/``,
``obj_train_data/``) is recorded as :attr:`Item.split`. Which exporter writes which layout:
``docs/exporters.md``.

Boxes are put on the photo as displayed in one place, :func:`boxes_in_image`: an annotation that
states the size of its frame (VOC, COCO, trimaps) and was drawn on the stored, un-rotated pixels of
an EXIF-rotated photo is rotated with the pixels (:func:`localizer.data.imageio.exif_transpose_boxes`).
The class filter (:func:`parse_classes`, :meth:`Annotation.select`) is applied by
:func:`localizer.data.checking.check_item`, before the primary (largest) box is chosen.
"""


from __future__ import annotations

from pathlib import Path


from . import coco, createml, csvfile, labelme, oxford, via, voc, yolo
from localizer.data.readers.base import (LABEL_IDS, LABEL_NAMES, NO_PHOTO, Annotation, AnnotationError,
                                         DataFormatError, Item, Reader, class_key)
from localizer.data.readers.classes import CLASS_PRESETS, COCO_ANIMALS, VOC_ANIMALS, parse_classes, resolve_classes
from localizer.data.readers.csvfile import CSV_CLASS_COLUMN, CSV_COLUMNS
from localizer.data.readers.frames import boxes_in_image
from localizer.data.readers.paths import FileIndex, describe_folder, export_split, one_item_per_image
from localizer.data.readers.oxford import OXFORD_BOXES, OXFORD_TRIMAP_BACKGROUND, trimap_annotation, trimap_box
from localizer.data.readers.voc import pair_xmls, parse_voc_xml, voc_annotation
from localizer.data.readers.yolo import kpt_shape, parse_yolo_label, yolo_annotation

FORMATS = ("yolo", "voc", "oxford-pets", "coco", "csv", "labelme", "via", "createml")

__all__ = [
    "FORMATS", "FORMAT_HELP", "get_reader", "detect_format", "Annotation", "AnnotationError", "DataFormatError",
    "NO_PHOTO",
    "Item", "Reader", "LABEL_IDS", "LABEL_NAMES", "class_key", "CLASS_PRESETS", "COCO_ANIMALS", "VOC_ANIMALS",
    "parse_classes", "resolve_classes", "CSV_CLASS_COLUMN", "CSV_COLUMNS", "boxes_in_image", "OXFORD_BOXES",
    "OXFORD_TRIMAP_BACKGROUND", "trimap_annotation", "trimap_box", "parse_voc_xml", "voc_annotation",
    "parse_yolo_label", "yolo_annotation", "kpt_shape", "pair_xmls", "FileIndex", "describe_folder", "export_split",
    "one_item_per_image",
]


def get_reader(fmt: str, oxford_box: str = "animal") -> Reader:
    """The :class:`Reader` for format ``fmt`` (one of :data:`FORMATS`).

    Raises:
        DataFormatError: unknown format.
    """
    if fmt not in FORMATS:
        raise DataFormatError(f"unknown format {fmt!r}; formats read: {', '.join(FORMATS)} (or 'auto')")
    return oxford.reader(oxford_box) if fmt == "oxford-pets" else {
        "yolo": yolo.READER, "voc": voc.READER, "coco": coco.READER, "csv": csvfile.READER, "labelme": labelme.READER,
        "via": via.READER, "createml": createml.READER}[fmt]


def detect_format(root: Path | str) -> str:
    """Guess the format of dataset folder ``root`` from its layout.

    Order: ``oxford-pets`` (``annotations/trimaps/``), ``yolo`` (``images/`` beside ``labels/``, or
    CVAT's ``obj.names`` with ``obj_train_data/``), ``coco`` (a JSON with images and annotations, at
    the top or in each split folder), ``via`` and ``createml`` (their JSON, at the top or in each
    split folder), ``labelme`` (a Labelme JSON anywhere), ``csv`` (a CSV whose header names
    :data:`~localizer.data.readers.csvfile.CSV_COLUMNS`, at the top or in each split folder),
    ``voc`` (XML files). A JSON is recognised by its keys anywhere in the file, in any order.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        DataFormatError: no known layout found. When a CSV looks like boxes in another dialect
            (other column names such as ``x1,y1,x2,y2`` or ``x,y,width,height``, no header row) or
            is not UTF-8, the message says so by name; otherwise it lists what the folder holds
            (:func:`describe_folder`) and the formats with their layouts.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    if oxford.is_oxford_pets(root):
        return "oxford-pets"
    if yolo.is_yolo(root):
        return "yolo"
    if coco.find_coco_jsons(root):
        return "coco"
    if via.find_via(root):
        return "via"
    if createml.find_createml(root):
        return "createml"
    if labelme.find_labelme(root) is not None:
        return "labelme"
    if csvfile.find_csvs(root):
        return "csv"
    if next(root.rglob("*.xml"), None) is not None:
        return "voc"
    hint = csvfile.csv_hint(root)
    if hint:
        raise DataFormatError(f"{root}: {hint}")
    raise DataFormatError(f"{root}: no known dataset layout; found {describe_folder(root)}. {FORMAT_HELP}")


FORMAT_HELP = (
    "Formats read: yolo (images/ + labels/*.txt, or CVAT YOLO 1.1: obj.names + obj_train_data/), "
    "voc (images + PASCAL VOC .xml), oxford-pets (images/ + annotations/trimaps/ + annotations/xmls/), "
    "coco (instances .json beside the images, or one per split folder as Roboflow exports), "
    "csv (header filename,xmin,ymin,xmax,ymax in pixels, optionally class; or one per split folder), "
    "labelme (one JSON per photo with shapes), via (a VGG Image Annotator project JSON), "
    "createml (a JSON list of image + annotations with coordinates). "
    "See docs/exporters.md."
)
