"""A small synthetic dataset with known boxes: the test fixture of the tests and of their smoke run of the notebooks.

Every photo is a textured background (smooth colour noise and grass-like strokes) with one or two
"animals": an ellipse body, a round head on one side, four legs and a tail, in a random colour. The
box of an animal is the tight box of its pixels (:meth:`PIL.Image.Image.getbbox` of its mask, so a
box covering columns 12..47 is ``xmin = 12, xmax = 48``: continuous pixel coordinates, see
:mod:`localizer.boxes`); the primary box is the largest animal's. Everything is drawn by a seeded
NumPy generator, so the same arguments write the same files on any machine, in about a second and
without a download.

The dataset also holds, on purpose, what real folders hold:

* one **near-duplicate pair** with the same box (a photo saved again at another JPEG quality) and one
  whose boxes **disagree** (the copy's box shifted), for the near-duplicate grouping of the split;
* one photo whose annotation has **no box**, and one **truncated** JPEG, which ``check-data`` skips.

It is written in several layouts at once, one sub-folder each (:data:`LAYOUTS`): ``yolo``
(``images/`` + ``labels/``), ``voc`` (``JPEGImages/`` + ``Annotations/``), ``coco``
(``annotations.json`` beside ``images/``) and ``csv`` (``boxes.csv`` beside ``images/``).

This is test data, not a training default: a model trained on it learns to find blobs.
``python -m localizer synthetic OUT`` writes it (``make test`` writes ``build/synthetic``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from localizer.files import atomic_write_text, check_outputs, save_image, write_bytes

LAYOUTS = ("yolo", "voc", "coco", "csv")

#: Image sizes ``(width, height)`` drawn from: landscape, portrait and square, so that the square
#: resize of training changes the aspect ratio of most photos (as with real photos).
SIZES = ((160, 120), (120, 160), (128, 128), (192, 144), (144, 112))

#: How the photos of :func:`make_synthetic_dataset` are numbered and named.
NAME = "animal_{:03d}.jpg"
JPEG_QUALITY = 92

BOX_COLUMNS = ["xmin", "ymin", "xmax", "ymax"]

#: The file that marks a folder as written by :func:`make_synthetic_dataset` (and so safe to replace).
MARKER_FILE = "README.txt"
MARKER = "Synthetic test data written by localizer.data.synthetic; safe to delete."


@dataclass(frozen=True)
class Photo:
    """One photo of the synthetic dataset: file name, pixels, and every animal's box (pixel xyxy)."""

    name: str
    image: Image.Image
    boxes: tuple[tuple[int, int, int, int], ...]


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Smooth colour noise (a coarse random grid upsampled) with grass-like strokes."""
    coarse = rng.uniform(40, 200, size=(4, 4, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    fine = rng.normal(0, 12, size=(height, width, 3))
    image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + fine, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(20, 60))):
        x, y = int(rng.integers(0, width)), int(rng.integers(height // 3, height))
        shade = tuple(int(v) for v in rng.integers(30, 160, size=3))
        draw.line([(x, y), (x + int(rng.integers(-4, 5)), y - int(rng.integers(4, 14)))], fill=shade, width=1)
    return image.filter(ImageFilter.SMOOTH)


def _animal_mask(rng: np.random.Generator, width: int, height: int, scale: float) -> Image.Image:
    """A mask (mode ``L``, 255 = animal) of one animal of about ``scale`` times the image size."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    body_w = max(12, int(scale * width * rng.uniform(0.55, 0.8)))
    body_h = max(8, int(body_w * rng.uniform(0.45, 0.65)))
    leg_h = max(3, int(body_h * rng.uniform(0.4, 0.7)))
    head = max(5, int(body_h * rng.uniform(0.6, 0.9)))
    # keep head, legs and tail inside the image
    x0 = int(rng.integers(head, max(head + 1, width - body_w - head)))
    y0 = int(rng.integers(head, max(head + 1, height - body_h - leg_h)))
    draw.ellipse([x0, y0, x0 + body_w, y0 + body_h], fill=255)
    facing_right = bool(rng.integers(0, 2))
    head_x = x0 + body_w - head // 3 if facing_right else x0 - head + head // 3
    head_y = y0 - head // 3
    draw.ellipse([head_x, head_y, head_x + head, head_y + head], fill=255)
    leg_w = max(2, body_w // 10)
    for fraction in (0.15, 0.3, 0.65, 0.8):
        lx = x0 + int(fraction * body_w)
        draw.rectangle([lx, y0 + body_h // 2, lx + leg_w, y0 + body_h + leg_h], fill=255)
    tail_x = x0 if facing_right else x0 + body_w
    tail_end = tail_x - head // 2 if facing_right else tail_x + head // 2
    draw.line([(tail_x, y0 + body_h // 3), (tail_end, y0)], fill=255, width=max(2, leg_w // 2))
    return mask


def draw_photo(rng: np.random.Generator, name: str, n_animals: int = 1) -> Photo:
    """Draw one photo with ``n_animals`` animals (the first is the largest); boxes in pixel xyxy."""
    width, height = SIZES[int(rng.integers(0, len(SIZES)))]
    image = _background(rng, width, height)
    boxes = []
    for number in range(n_animals):
        mask = _animal_mask(rng, width, height, scale=rng.uniform(0.6, 0.95) if number == 0 else 0.3)
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        texture = Image.fromarray(
            np.clip(np.array(colour) + rng.normal(0, 18, size=(height, width, 3)), 0, 255).astype(np.uint8))
        image.paste(texture, mask=mask)
        boxes.append(mask.getbbox())
    return Photo(name, image, tuple(boxes))


def make_photos(n_images: int = 48, seed: int = 0) -> list[Photo]:
    """The ``n_images`` photos (every fifth with a second, smaller animal), then the two near-duplicates
    ``twin_same.jpg`` (of photo 1, same box) and ``twin_moved.jpg`` (of photo 2, box shifted by a
    quarter of its width: the twins disagree).

    Raises:
        ValueError: ``n_images < 3``.
    """
    if n_images < 3:
        raise ValueError(f"n_images must be at least 3, got {n_images}")
    rng = np.random.default_rng(seed)
    photos = [draw_photo(rng, NAME.format(i), n_animals=2 if i % 5 == 4 else 1) for i in range(n_images)]
    same, moved = photos[1], photos[2]
    x0, y0, x1, y1 = moved.boxes[0]
    shift = (x1 - x0) // 4
    moved_box = (max(0, x0 - shift), y0, max(1, x1 - shift), y1)
    return photos + [Photo("twin_same.jpg", same.image, same.boxes),
                     Photo("twin_moved.jpg", moved.image, (moved_box, *moved.boxes[1:]))]


def _area(box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def _voc_xml(name: str, width: int, height: int, boxes) -> str:
    objects = "".join(
        f"<object><name>animal</name><bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for x0, y0, x1, y1 in boxes)  # VOC: 1-based inclusive pixel indices
    return (f"<annotation><filename>{escape(name)}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>\n")


def _yolo_label(width: int, height: int, boxes) -> str:
    lines = [f"0 {(x0 + x1) / 2 / width:.6f} {(y0 + y1) / 2 / height:.6f} "
             f"{(x1 - x0) / width:.6f} {(y1 - y0) / height:.6f}" for x0, y0, x1, y1 in boxes]
    return "".join(line + "\n" for line in lines)


def make_synthetic_dataset(
    root: Path | str,
    n_images: int = 48,
    seed: int = 0,
    layouts: tuple[str, ...] = LAYOUTS,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Write the synthetic dataset into ``root/<layout>/`` for each of ``layouts``.

    Args:
        root: output folder.
        n_images: photos drawn (plus two near-duplicates, an unannotated one and a truncated file).
        seed: seed of the drawing.
        layouts: some of :data:`LAYOUTS`.
        overwrite: replace ``root/<layout>`` folders that exist and hold a synthetic dataset (marked
            by :data:`MARKER_FILE`); any other existing folder is refused.

    Returns:
        The truth: one row per usable photo, sorted by ``name``, columns ``name``, ``width``,
        ``height``, ``xmin, ymin, xmax, ymax`` (the primary box, pixel xyxy) and ``n_boxes``.
        ``check-data`` on any layout finds ``n_images + 4`` files (in ``csv``, which has no row for
        the photo without a box, that photo is ``missing-annotation`` rather than ``no-box``) and
        these ``n_images + 2`` usable ones.

    Raises:
        ValueError: an unknown layout, or ``n_images < 3``.
        FileExistsError: ``root/<layout>`` exists and ``overwrite`` is False, or it is not a
            synthetic dataset.
        localizer.files.OutputError: ``root`` cannot be written.
    """
    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        raise ValueError(f"unknown layout(s) {sorted(unknown)}; choose from {LAYOUTS}")
    root = Path(root)
    for layout in layouts:  # every folder checked before anything is drawn or deleted
        folder = root / layout
        if folder.exists() and overwrite and not _is_synthetic(folder):
            raise FileExistsError(f"{folder} exists and is not a synthetic dataset written by localizer "
                                  f"(no {MARKER_FILE} from it): it is never deleted; choose another folder")
        check_outputs([("out", folder)], overwrite=overwrite)
    photos = make_photos(n_images, seed)
    rng = np.random.default_rng(seed + 1)
    unannotated = draw_photo(rng, "no_box.jpg")
    for layout in layouts:
        if (root / layout).exists():
            shutil.rmtree(root / layout)
        _write_layout(root / layout, layout, photos, unannotated)
    rows = [{"name": p.name, "width": p.image.width, "height": p.image.height,
             **dict(zip(BOX_COLUMNS, max(p.boxes, key=_area))), "n_boxes": len(p.boxes)} for p in photos]
    return pd.DataFrame(rows).sort_values("name", ignore_index=True)


def _is_synthetic(folder: Path) -> bool:
    marker = folder / MARKER_FILE
    return marker.is_file() and marker.read_text().startswith(MARKER)


def _write_layout(folder: Path, layout: str, photos: list[Photo], unannotated: Photo) -> None:
    image_dir = folder / {"voc": "JPEGImages"}.get(layout, "images")
    atomic_write_text(folder / MARKER_FILE, f"{MARKER}\nLayout: {layout}. See localizer/data/synthetic.py.\n")
    for photo in [*photos, unannotated]:
        quality = 75 if photo.name.startswith("twin_") else JPEG_QUALITY
        save_image(photo.image, image_dir / photo.name, quality=quality)
    # a JPEG cut off half-way: check-data reports it as truncated
    data = (image_dir / photos[0].name).read_bytes()
    write_bytes(image_dir / "truncated.jpg", data[: len(data) // 2])
    annotated = [*photos, Photo(unannotated.name, unannotated.image, ())]
    if layout == "yolo":
        for photo in [*annotated, Photo("truncated.jpg", photos[0].image, photos[0].boxes)]:
            atomic_write_text(folder / "labels" / Path(photo.name).with_suffix(".txt").name,
                              _yolo_label(photo.image.width, photo.image.height, photo.boxes))
    elif layout == "voc":
        for photo in [*annotated, Photo("truncated.jpg", photos[0].image, photos[0].boxes)]:
            atomic_write_text(folder / "Annotations" / Path(photo.name).with_suffix(".xml").name,
                              _voc_xml(photo.name, photo.image.width, photo.image.height, photo.boxes))
    elif layout == "coco":
        images, annotations = [], []
        for number, photo in enumerate([*annotated, Photo("truncated.jpg", photos[0].image, photos[0].boxes)], 1):
            images.append({"id": number, "file_name": photo.name, "width": photo.image.width,
                           "height": photo.image.height})
            annotations += [{"id": len(annotations) + k + 1, "image_id": number, "category_id": 1, "iscrowd": 0,
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)}
                            for k, (x0, y0, x1, y1) in enumerate(photo.boxes)]
        coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "animal"}]}
        atomic_write_text(folder / "annotations.json", json.dumps(coco, indent=1))
    else:  # csv
        lines = ["filename,xmin,ymin,xmax,ymax"]
        for photo in [*photos, Photo("truncated.jpg", photos[0].image, photos[0].boxes)]:
            lines += [f"{photo.name},{x0},{y0},{x1},{y1}" for x0, y0, x1, y1 in photo.boxes]
        atomic_write_text(folder / "boxes.csv", "\n".join(lines) + "\n")
