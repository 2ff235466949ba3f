"""Class filters: keep only the boxes of some classes (VOC or COCO names, a CSV class column, YOLO
ids, or a preset such as ``animals``) before the primary box is chosen, so that on multi-class
data the primary animal is never a person or a car."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from localizer.data.readers.base import LABEL_IDS, LABEL_NAMES, DataFormatError, Item, Reader, class_key
from localizer.errors import DataError
from localizer.data.readers.csvfile import CSV_CLASS_COLUMN

#: The animal classes of PASCAL VOC (Everingham et al., IJCV 2010: the 20 VOC classes) ...
VOC_ANIMALS = frozenset({"bird", "cat", "cow", "dog", "horse", "sheep"})
#: ... and of COCO (Lin et al., ECCV 2014: the "animal" supercategory of the 80 detection classes).
COCO_ANIMALS = frozenset({"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"})
#: Named sets of class names accepted by :func:`parse_classes` (case-insensitive), usable for VOC and
#: COCO names (and a CSV class column), not for YOLO ids.
CLASS_PRESETS: dict[str, frozenset[str]] = {"animals": VOC_ANIMALS | COCO_ANIMALS}


def _class_tokens(classes: str | int | Iterable[str]) -> list[str]:
    if isinstance(classes, (str, int)):  # an int: a single YOLO id from a JSON config value
        text = str(classes)
    elif isinstance(classes, Iterable):
        text = ",".join(str(c) for c in classes)
    else:
        raise DataFormatError(f"classes {classes!r}: expected comma-separated class names or ids as text")
    return [token.strip() for token in text.split(",")]


def parse_classes(classes: str | int | Iterable[str] | None) -> frozenset[str] | None:
    """Parse a class filter: comma-separated class names (VOC ``<object><name>``, COCO category
    names, a CSV ``class`` column), YOLO class ids (``"0,2"``) or presets (:data:`CLASS_PRESETS`,
    e.g. ``"animals"``, mixable with names: ``"animals,lion"``).

    Names match case-insensitively with whitespace trimmed; ids as integers (see :func:`class_key`).
    Whether the classes fit a format is checked by :func:`resolve_classes`.

    Args:
        classes: the filter text, an iterable of names (a parsed filter parses to itself), an int
            (one YOLO id, as a JSON config value), or None.

    Returns:
        The set of :func:`class_key` keys, presets expanded, or None (no filter: every box) for None.

    Raises:
        DataFormatError: an empty filter, an empty entry (``"cat,,dog"``) or a value of another type.
    """
    if classes is None:
        return None
    tokens = _class_tokens(classes)
    if not any(tokens) or not all(tokens):
        raise DataFormatError(f"classes {','.join(tokens)!r}: expected comma-separated class names or ids, "
                              f"such as 'cat,dog', 'animals' or '0,2', with no empty entry")
    keys: set[str] = set()
    for token in tokens:
        key = class_key(token)
        keys |= CLASS_PRESETS.get(key, {key})
    return frozenset(keys)


def resolve_classes(classes: str | int | Iterable[str] | None, reader: Reader, root: Path) -> frozenset[str] | None:
    """Parse a class filter (:func:`parse_classes`) and check that it fits the format of ``root``.

    Raises:
        DataFormatError: a bad filter; a filter on a format without classes (oxford-pets trimap or
            head boxes, a CSV without a ``class`` column); names or presets on YOLO (its labels carry
            class ids); ids on a format with class names.
    """
    wanted = parse_classes(classes)
    if wanted is None:
        return None
    tokens = _class_tokens(classes)
    text = ",".join(tokens)
    kind = reader.label_kind(root)
    if kind is None:
        why = {
            "oxford-pets": "the Oxford-IIIT Pet boxes (trimap or head box) have no class to filter on: "
                           "one cat or dog per photo",
            "csv": f"the CSV has no {CSV_CLASS_COLUMN} column to filter on",
        }.get(reader.name, f"{reader.name} annotations have no classes")
        raise DataFormatError(f"classes {text!r}: {why}; leave the class filter out")
    ids = [t for t in tokens if t.isascii() and t.isdigit()]
    names = [t for t in tokens if t not in ids]
    if kind == LABEL_IDS and names:
        presets = [n for n in names if class_key(n) in CLASS_PRESETS]
        note = f" ({', '.join(presets)} names VOC and COCO classes)" if presets else ""
        verb = "is not a class id" if len(names) == 1 else "are not class ids"
        raise DataFormatError(f"classes {text!r}: {', '.join(names)} {verb}{note}; YOLO labels carry class ids: "
                              f"pass ids such as --classes 0")
    if kind == LABEL_NAMES and ids:
        raise DataFormatError(f"classes {text!r}: {reader.name} labels carry class names, not ids: pass names "
                              f"such as --classes cat,dog or a preset ({', '.join(CLASS_PRESETS)})")
    return wanted


def known_classes(items: Iterable[Item], reader: Reader) -> Counter:
    """The class labels the annotations of ``items`` hold, by :func:`class_key`, with their box counts:
    each annotation parsed once without decoding its photo (a label does not depend on the photo's size);
    an annotation that cannot be parsed is left to the scan, which reports it."""
    counts: Counter = Counter()
    for item in items:
        if item.problem is not None or item.annotation is None:
            continue
        try:
            labels = reader.parse(item, 1, 1).labels
        except (DataError, ValueError, OSError):
            continue
        counts.update(class_key(label) for label in labels or ())
    return counts


def check_known_classes(classes: str | int | Iterable[str], known: Counter) -> None:
    """Refuse a class filter with a name or id the data does not have (a typo such as ``dgo``), or a
    preset none of whose classes it has, before any photo is decoded; the message names the classes the
    data has, with their box counts.

    Raises:
        DataFormatError: naming what is not in the data and what is.
    """
    if not known:
        return
    unknown = []
    for token in _class_tokens(classes):
        key = class_key(token)
        if not CLASS_PRESETS.get(key, {key}) & set(known):
            unknown.append(token + (f" (none of its classes {', '.join(sorted(CLASS_PRESETS[key]))})"
                                    if key in CLASS_PRESETS else ""))
    if unknown:
        has = ", ".join(f"{name} ({n} box{'es' * (n != 1)})" for name, n in known.most_common())
        raise DataFormatError(f"classes {','.join(_class_tokens(classes))!r}: {', '.join(unknown)} "
                              f"{'is' if len(unknown) == 1 else 'are'} not a class of this data; its classes: {has}")
