"""Image paths as annotation tools write them, found on disk; the split an export put a photo in.

A shared annotation file (COCO ``file_name``, a CSV ``filename``) names each image by a path that
its exporter wrote: with Windows backslashes (``images\\x.png``), relative to the annotation file or
to its ``images/`` folder, outside the export (Label Studio's ``../../label-studio/media/upload/4/
x.png``, whose file the export copied into ``images/``), or in composed or decomposed Unicode (macOS
writes decomposed ``e`` + combining accent where Windows writes the composed ``é``). :class:`FileIndex`
finds each one, or says which paths it tried and which file came closest (:mod:`difflib`).
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

from localizer.data.imageio import ImageLoadError
from localizer.data.readers.base import AnnotationError, Item, images_under

#: Folder names that exporters give their splits, and the split (``localizer.data.split.SPLITS``) each is.
SPLIT_FOLDERS = {"train": "train", "training": "train", "valid": "val", "val": "val", "validation": "val",
                 "test": "test", "testing": "test"}
#: CVAT's "YOLO 1.1" export names its subset folders ``obj_<subset>_data``.
_CVAT_SUBSET = re.compile(r"obj_(\w+?)_data")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:/")


def export_split(path: Path, root: Path) -> str:
    """The split an export put ``path`` in: the first folder between ``root`` and ``path`` named
    like a split (:data:`SPLIT_FOLDERS`, case-insensitive; CVAT's ``obj_train_data`` counts as
    ``train``), as ``"train"``, ``"val"`` or ``"test"``; ``""`` when there is none.
    Roboflow's ``valid/`` and Ultralytics' ``images/val/`` both give ``"val"``."""
    try:
        folders = path.relative_to(root).parts[:-1]
    except ValueError:
        return ""
    for folder in folders:
        match = _CVAT_SUBSET.fullmatch(folder.lower())
        name = match.group(1) if match else folder.lower()
        if name in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[name]
    return ""


def normalize_name(name: str) -> str:
    """A path as written by an exporter, in one spelling: stripped, backslashes as ``/``, Unicode
    NFC (composed), without a leading ``./`` (``" .\\\\images\\\\e\\u0301.jpg"`` -> ``"images/\\u00e9.jpg"``)."""
    text = unicodedata.normalize("NFC", str(name).strip().replace("\\", "/"))
    while text.startswith("./"):
        text = text[2:]
    return text


def _key(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` in NFC POSIX form, or None when it lies outside ``root``."""
    relative = os.path.relpath(os.path.normpath(path), root)
    return None if relative == ".." or relative.startswith("../") else normalize_name(relative)


class FileIndex:
    """The image files under a dataset folder, to find the images an annotation file names.

    Args:
        root: the dataset folder; files are compared by their path relative to it, in NFC.
    """

    def __init__(self, root: Path):
        self.root = root
        self.files = {normalize_name(p.relative_to(root).as_posix()): p for p in images_under(root)}
        self.by_name: dict[str, list[Path]] = defaultdict(list)
        for key, path in self.files.items():
            self.by_name[key.rsplit("/", 1)[-1]].append(path)

    def find(self, name: str, bases: list[Path], source: str) -> tuple[Path, ImageLoadError | AnnotationError | None]:
        """The image file that ``name`` (as written in the annotation file ``source``) means.

        Tried in order: ``base / name`` for each of ``bases`` (e.g. the annotation file's folder,
        then its ``images/``), as spelled, then in NFC. A name that leaves the dataset folder (an
        absolute path, ``..`` above it, a Windows drive ``C:/``, a URL) is then looked for by its
        file name alone: the one image of that name under the folder.

        Returns:
            ``(path, None)`` for a file found, else ``(the first path tried whose folder exists, error)``: an
            :class:`~localizer.data.imageio.ImageLoadError` ``unreadable`` naming the paths tried and
            the closest file (:func:`difflib.get_close_matches`), or an :class:`AnnotationError`
            ``ambiguous-annotation`` when several files have the file name of an outside path.
        """
        text = normalize_name(name)
        candidates = [Path(os.path.normpath(base / text)) for base in bases]
        keys = [_key(c, self.root) for c in candidates]
        for candidate, key in zip(candidates, keys):
            if key is not None and (os.path.lexists(candidate) or key in self.files):
                return (candidate if os.path.lexists(candidate) else self.files[key]), None
        outside = all(k is None for k in keys) or bool(_WINDOWS_DRIVE.match(text)) or "://" in text
        if outside:
            matches = self.by_name.get(text.rsplit("/", 1)[-1], [])
            if len(matches) == 1:
                return matches[0], None
            if len(matches) > 1:
                listed = ", ".join(self._show(m) for m in matches)
                return matches[0], AnnotationError(
                    "ambiguous-annotation", f"{source} names {name!r}, outside the data folder, and several images "
                                            f"have its file name: {listed}")
        tried = ", ".join(dict.fromkeys(k if k is not None else str(c) for c, k in zip(candidates, keys)))
        wanted = next((k for k in keys if k is not None), text.rsplit("/", 1)[-1])
        closest = difflib.get_close_matches(wanted, list(self.files), n=1, cutoff=0.6)
        hint = f"; closest: {closest[0]}" if closest else "; no image file with a similar name"
        inside = [c for c, k in zip(candidates, keys) if k is not None]
        fallback = inside[0] if inside else self.root / text.rsplit("/", 1)[-1]
        first = next((c for c in inside if c.parent.is_dir()), fallback)
        return first, ImageLoadError(first, "unreadable", f"{source} names {name!r}: no such file "
                                                          f"(tried {tried}){hint}")

    def _show(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def unlisted_images(root: Path, listed: set[Path], source: str) -> list[Item]:
    """Items for the images under ``root`` that no annotation names (``missing-annotation``), so that
    the report lists every image found; ``source`` names what was read (e.g. ``instances.json``)."""
    return [Item(image, None, split=export_split(image, root),
                 problem=AnnotationError("missing-annotation", f"no annotation names it in {source}"))
            for image in images_under(root) if image not in listed]


def one_item_per_image(items: list[Item], describe) -> list[Item]:
    """``items`` with each image once: an image that several entries name (the same ``file_name``
    twice in a COCO JSON, two spellings of one path) becomes one item, skipped as
    ``ambiguous-annotation`` with ``describe(item)`` of each entry: its boxes are neither merged nor
    replaced. Order kept (the first entry's place)."""
    groups: dict[Path, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.image].append(item)
    out = []
    for group in groups.values():
        first = group[0]
        if len(group) > 1:
            entries = " and ".join(describe(it) for it in group)
            first = Item(first.image, first.annotation, first.payload, first.split, AnnotationError(
                "ambiguous-annotation", f"{len(group)} entries name this image: {entries}; whose boxes are its "
                                        f"own cannot be told"))
        out.append(first)
    return out


def describe_folder(root: Path, shown: int = 8) -> str:
    """What a folder holds, for the message of a layout not recognised: the number of files by
    ending, most frequent first, and the first ``shown`` folders at the top, e.g. ``5 files (3 .jpg,
    2 .txt); folders: train/, valid/``."""
    files = [p for p in root.rglob("*") if p.is_file()]
    endings = Counter(p.suffix.lower() or "(no ending)" for p in files)
    counts = ", ".join(f"{n} {ending}" for ending, n in endings.most_common(shown))
    more = ", ..." if len(endings) > shown else ""
    folders = sorted(p.name + "/" for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    listed = ", ".join(folders[:shown]) + (", ..." if len(folders) > shown else "")
    described = f"{len(files)} files ({counts}{more})" if files else "no files"
    return described + (f"; folders: {listed}" if folders else "")
