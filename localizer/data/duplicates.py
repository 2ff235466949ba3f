"""Near-duplicate photos: the same picture saved twice (re-encoded, resized, lightly edited).

Scraped data sets hold such twins; if one twin lands in the training split and the other in the test
split, the test score is inflated (the model has seen the picture). :func:`localizer.data.split.assign_split`
therefore keeps every group of near-duplicates in one split, and ``check-data`` reports the groups
and the twins whose boxes disagree.

* **Hash**: the difference hash (dHash; N. Krawetz, "Kind of Like That", hackerfactor.com, 2013) of
  :data:`HASH_SIZE` x :data:`HASH_SIZE` = 64 bits, computed by :func:`imagehash.dhash` on the decoded,
  EXIF-oriented RGB photo: the photo is reduced to 9 x 8 grey pixels and each bit says whether a
  pixel is brighter than its right neighbour. It survives re-encoding, resizing and mild colour
  changes, but not crops or flips.
* **Near-duplicates**: two photos whose hashes differ in at most :data:`NEAR_DUPLICATE_BITS` of the
  64 bits (Hamming distance). A group is a connected component of that relation
  (:func:`scipy.sparse.csgraph.connected_components`), so ``a ~ b ~ c`` is one group of three.
* **Twins whose boxes disagree**: members of a group whose primary boxes (normalized xyxy) overlap
  with IoU below :data:`TWIN_BOX_IOU`: the same picture annotated two ways.

On the lion photos (``check-data ../shared/data/lion``): 21 pairs within 2 bits (12 with identical
hashes), 21 groups; in 3 of them the boxes disagree (IoU 0.65, 0.80 and 0.87). On the Oxford-IIIT Pet
sample: 5 groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import imagehash
import numpy as np
import torch
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from torchvision.ops import box_iou

HASH_SIZE = 8
NEAR_DUPLICATE_BITS = 2
TWIN_BOX_IOU = 0.9

#: Rows of hashes compared at once in :func:`near_duplicate_pairs` (memory: chunk x N bytes).
_CHUNK = 1024


def image_hash(image: Image.Image) -> str:
    """The dHash of a decoded photo as 16 hex digits (64 bits; see the module docstring)."""
    return str(imagehash.dhash(image, hash_size=HASH_SIZE))


def near_duplicate_pairs(hashes: Sequence[str], max_bits: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Index pairs ``(P, 2)`` int64, ``i < j``, of hashes that differ in at most ``max_bits`` bits.

    Args:
        hashes: ``(N,)`` hex strings from :func:`image_hash`.
        max_bits: the largest Hamming distance that still counts as a near-duplicate.
    """
    values = np.array([int(h, 16) for h in hashes], dtype=np.uint64)
    pairs = []
    for start in range(0, len(values), _CHUNK):
        distance = np.bitwise_count(values[start:start + _CHUNK, None] ^ values[None, :])
        rows, cols = np.nonzero(distance <= max_bits)
        rows = rows + start
        keep = rows < cols
        pairs.append(np.stack([rows[keep], cols[keep]], axis=1))
    return np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), dtype=np.int64)


def duplicate_groups(hashes: Sequence[str], max_bits: int = NEAR_DUPLICATE_BITS) -> np.ndarray:
    """Group number of each photo, ``(N,)`` int64: 0 for a photo without a near-duplicate, and
    1, 2, ... for the groups of near-duplicates, numbered in the order of their first photo."""
    n = len(hashes)
    pairs = near_duplicate_pairs(hashes, max_bits)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    sizes = np.bincount(component, minlength=n)
    groups = np.zeros(n, dtype=np.int64)
    numbers: dict[int, int] = {}
    for row, comp in enumerate(component):
        if sizes[comp] > 1:
            groups[row] = numbers.setdefault(int(comp), len(numbers) + 1)
    return groups


def twin_box_iou(boxes: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """For each photo, the lowest IoU of its primary box with the boxes of its near-duplicates.

    Args:
        boxes: ``(N, 4)`` primary boxes, xyxy normalized to [0, 1] (so twins of other sizes compare).
        groups: ``(N,)`` from :func:`duplicate_groups`.

    Returns:
        ``(N,)`` float64: the lowest IoU in [0, 1], NaN for a photo without a near-duplicate.
    """
    result = np.full(len(groups), np.nan)
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    for group in np.unique(groups[groups > 0]):
        rows = np.flatnonzero(groups == group)
        iou = box_iou(boxes[rows], boxes[rows]).numpy()
        np.fill_diagonal(iou, np.inf)
        result[rows] = iou.min(axis=1)
    return result
