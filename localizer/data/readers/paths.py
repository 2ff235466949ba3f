"""Image paths as annotation tools write them, found on disk; the split an export put a photo in.

A shared annotation file (COCO ``file_name``, a CSV ``filename``) names each image by a path that
its exporter wrote: with Windows backslashes (``images\\x.png``), relative to the annotation file or
to its ``images/`` folder, outside the export (Label Studio's ``../../label-studio/media/upload/4/
x.png``, whose file the export copied into ``images/``), or in composed or decomposed Unicode (macOS
writes decomposed ``e`` + combining accent where Windows writes the composed ``é``), percent-encoded
(Label Studio) or in another case than the file (a camera's ``IMG_0001.JPG`` named ``IMG_0001.jpg``).
:class:`FileIndex` finds each one, or says which paths it tried and which file came closest (:mod:`difflib`).
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import unquote

from localizer.data.imageio import ImageLoadError
from localizer.data.readers.base import AnnotationError, DataFormatError, Item, images_under

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
        self.by_lower: dict[str, list[Path]] = defaultdict(list)
        for key, path in self.files.items():
            self.by_name[key.rsplit("/", 1)[-1]].append(path)
            self.by_lower[key.lower()].append(path)

    def find(self, name: str, bases: list[Path], source: str) -> tuple[Path, ImageLoadError | AnnotationError | None]:
        """The image file that ``name`` (as written in the annotation file ``source``) means.

        Tried in order: ``base / name`` for each of ``bases`` (e.g. the annotation file's folder,
        then its ``images/``), as spelled, then in NFC; a percent-encoded name (Label Studio's
        ``Capture_d%C3%A9cran%201.jpg``) also decoded; then the same paths with another case
        (``IMG_0001.jpg`` for the camera's ``IMG_0001.JPG``), on any file system, when one file alone
        fits. A name that leaves the dataset folder (an absolute path, ``..`` above it, a Windows
        drive ``C:/``, a URL) is then looked for by its file name alone: the one image of that name
        under the folder.

        Returns:
            ``(path, None)`` for a file found, else ``(the first path tried whose folder exists, error)``: an
            :class:`~localizer.data.imageio.ImageLoadError` ``unreadable`` naming the paths tried and
            the closest file (:func:`difflib.get_close_matches`, or the files that differ in case alone),
            or an :class:`AnnotationError` ``ambiguous-annotation`` when several files have the file name
            of an outside path.
        """
        text = normalize_name(name)
        spellings = list(dict.fromkeys([text, normalize_name(unquote(text))]))
        tried = [(Path(os.path.normpath(base / spelling)), spelling) for spelling in spellings for base in bases]
        tried = [(candidate, _key(candidate, self.root), spelling) for candidate, spelling in tried]
        found = next((self.files[key] for _, key, _ in tried if key in self.files), None)
        cased = {p for _, key, _ in tried if key is not None for p in self.by_lower.get(key.lower(), [])}
        found = found or (next(iter(cased)) if len(cased) == 1 else None)
        found = found or next((c for c, key, _ in tried if key is not None and os.path.lexists(c)), None)
        if found is not None:
            return found, None
        if all(key is None for _, key, _ in tried) or _WINDOWS_DRIVE.match(text) or "://" in text:
            matches = list(dict.fromkeys(m for s in spellings for m in self.by_name.get(s.rsplit("/", 1)[-1], [])))
            if len(matches) == 1:
                return matches[0], None
            if len(matches) > 1:
                listed = ", ".join(self._show(m) for m in matches)
                return matches[0], AnnotationError(
                    "ambiguous-annotation", f"{source} names {name!r}, outside the data folder, and several images "
                                            f"have its file name: {listed}")
        return self._not_found(name, text, tried, sorted(cased), source)

    def _not_found(self, name: str, text: str, tried: list, cased: list[Path],
                   source: str) -> tuple[Path, ImageLoadError]:
        """What :meth:`find` returns for a name it did not find: the first path tried and why."""
        shown = ", ".join(dict.fromkeys(k if k is not None else str(c) for c, k, _ in tried))
        wanted = next((k for _, k, _ in tried if k is not None), text.rsplit("/", 1)[-1])
        closest = difflib.get_close_matches(wanted, list(self.files), n=1, cutoff=0.6)
        hint = (f"; files that differ from it in case alone: {', '.join(self._show(p) for p in cased)}" if cased else
                f"; closest: {closest[0]}" if closest else "; no image file with a similar name")
        inside = [c for c, k, _ in tried if k is not None]
        fallback = inside[0] if inside else self.root / text.rsplit("/", 1)[-1]
        first = next((c for c in inside if c.parent.is_dir()), fallback)
        return first, ImageLoadError(first, "unreadable", f"{source} names {name!r}: no such file "
                                                          f"(tried {shown}){hint}")

    def _show(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def readable_files(paths: list[Path], root: Path, items_of) -> list[Item]:
    """``items_of(path)`` of every shared annotation file in ``paths``; a file that cannot be read (broken
    JSON, a download cut short) is listed as :meth:`Item.orphan` (``unparsable-annotation``) and the others
    are read, unless none can be.

    Raises:
        DataFormatError: no file of ``paths`` can be read (the first one's error).
    """
    items, broken = [], []
    for path in paths:
        try:
            items += items_of(path)
        except DataFormatError as exc:
            broken.append((path, exc))
    if broken and len(broken) == len(paths):
        raise broken[0][1]
    return items + [Item.orphan(path, f"{path.relative_to(root).as_posix()} cannot be read, so its photos are "
                                      f"unknown: {exc}", "unparsable-annotation") for path, exc in broken]


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
