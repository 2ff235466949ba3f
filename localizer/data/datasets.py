"""Datasets and data loaders over a split manifest and the decode-once :class:`~localizer.data.cache.ImageCache`.

A batch is ``(images, targets)``: uint8 images ``(N, 3, S, S)`` and float32 targets, xyxy normalized to
[0, 1]: the primary boxes ``(N, 4)`` (evaluation, prediction) or, for training, every box ``(N, B, 4)``
padded, the primary one first (:func:`box_targets`). Items are not augmented here: training augments
whole batches on the device (:class:`localizer.data.batch_augment.BatchAugment`, then
:func:`localizer.engine.numerics.model_input`), so a loader only copies cached pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, RandomSampler

from localizer.boxes import ALL_BOXES_COLUMN, BOX_COLUMNS, normalized_boxes, parse_boxes_text
from localizer.data.cache import ImageCache
from localizer.errors import DataError

__all__ = ["BOX_COLUMNS", "MAX_BOXES", "CachedBoxDataset", "all_box_targets", "batch_keys", "box_targets",
           "make_loader", "normalized_targets", "seed_epoch"]

#: Boxes per photo that training keeps from a manifest with every box (the largest ones; a lion photo has
#: at most 15, 99.7 % of them at most 7).
MAX_BOXES = 8


def normalized_targets(table: pd.DataFrame) -> np.ndarray:
    """Primary boxes of a table as ``(N, 4)`` float32 xyxy normalized by each image's width/height."""
    return normalized_boxes(table).astype(np.float32)


def all_box_targets(table: pd.DataFrame, max_boxes: int) -> np.ndarray:
    """Every annotated box of each photo as ``(N, max_boxes, 4)`` float32 xyxy normalized by the image's
    width/height: the primary box first, then the others largest first (a photo with more keeps its
    ``max_boxes`` largest), the rest of the rows zeros (empty boxes: padding).

    Raises:
        localizer.errors.DataError: the table has no :data:`localizer.boxes.ALL_BOXES_COLUMN` column
            (a manifest scanned without ``all_boxes``), or a cell that does not parse.
    """
    if ALL_BOXES_COLUMN not in table.columns:
        raise DataError("no-all-boxes", f"the manifest has no {ALL_BOXES_COLUMN!r} column with every box of a photo; "
                        "a recipe that trains on every animal needs a run folder created with it")
    out = np.zeros((len(table), max_boxes, 4), dtype=np.float32)
    scale = table[["width", "height", "width", "height"]].to_numpy(dtype=np.float64)
    for i, text in enumerate(table[ALL_BOXES_COLUMN]):
        try:
            boxes = parse_boxes_text(text)[:max_boxes]
        except ValueError as exc:
            raise DataError("bad-boxes", str(exc), table["path"].iloc[i]) from None
        out[i, :len(boxes)] = boxes / scale[i]
    return out


def box_targets(table: pd.DataFrame) -> np.ndarray:
    """The training targets of a table: ``(N, B, 4)`` float32 normalized xyxy, the primary box first.
    ``B`` = :data:`MAX_BOXES` when the table has the :data:`localizer.boxes.ALL_BOXES_COLUMN` (a scan
    that kept every box, for a head of :data:`localizer.recipe.ALL_BOXES_HEADS`: :func:`all_box_targets`),
    else 1 (the primary box, :func:`normalized_targets`). Every head trains on what it needs of them.

    Raises:
        localizer.errors.DataError: a cell of the all-boxes column that does not parse.
    """
    if ALL_BOXES_COLUMN in table.columns:
        return all_box_targets(table, MAX_BOXES)
    return normalized_targets(table)[:, None]


class CachedBoxDataset(Dataset):
    """Images of a manifest table, read from an :class:`ImageCache`, with their normalized boxes.

    Args:
        table: rows of a manifest (columns ``path, width, height, xmin, ymin, xmax, ymax``).
        cache: the image cache; missing images are decoded into it now (with a progress bar).
        progress: show the caching progress bar.
        padded: items with the targets that training and validation score the loss on, ``(B, 4)``
            (:func:`box_targets`: every box, padded, the primary one first), instead of the primary box ``(4,)``.

    Items are ``(image, target)``: uint8 ``(3, S, S)`` and float32 ``(4,)`` normalized xyxy (the primary
    box), or ``(B, 4)`` with ``padded``.
    """

    def __init__(self, table: pd.DataFrame, cache: ImageCache, progress: bool = True, padded: bool = False):
        self.table = table.reset_index(drop=True)
        self.image_size = cache.image_size
        self.cache = cache
        self.slots = cache.add(self.table["path"].tolist(), progress=progress)
        self.targets = torch.from_numpy(box_targets(self.table) if padded else normalized_targets(self.table))
        self._images = None  # opened lazily, once per worker process (a memmap does not pickle well)

    def __len__(self) -> int:
        return len(self.table)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_images"] = None
        return state

    @property
    def images(self) -> np.memmap:
        if self._images is None:
            self._images = self.cache.open()
        return self._images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(np.array(self.images[self.slots[index]])).permute(2, 0, 1)
        return image, self.targets[index]


def make_loader(
    dataset: Dataset,
    batch_size: int = 32,
    shuffle: bool = False,
    workers: int = 0,
    seed: int = 0,
    pin_memory: bool = False,
    replicas: int = 1,
    rank: int = 0,
) -> DataLoader:
    """A :class:`~torch.utils.data.DataLoader` in ``workers`` processes; with ``shuffle``, in the order of
    a :class:`~torch.utils.data.RandomSampler` with its own generator, seeded with ``seed``.

    The order depends on that generator alone, not on how often the loader was iterated:
    :func:`seed_epoch` re-seeds it at each epoch, so a resumed
    run draws the same batches as an uninterrupted one, with or without (persistent) workers. The
    loader has a generator of its own too: each new iterator draws its workers' base seed from it,
    which would otherwise be drawn from torch's global generator, shifting the augmentation and
    dropout of the epoch in which a resumed run (but not an uninterrupted one) starts its workers.

    One of ``replicas`` processes (rank ``rank``, :mod:`localizer.engine.distributed`) loads its shard
    (``batch_size`` is then this process's part of a batch): with ``shuffle``, that of a
    :class:`~torch.utils.data.DistributedSampler` seeded with ``seed`` (a permutation of the whole split per
    epoch, :func:`seed_epoch`; the last shards padded with photos from the start to equal length); without,
    whole batches of the one-process loader, batch ``rank``, ``rank + replicas``, ... (a DistributedSampler
    over the batches, padded with the first ones), so that gathering them by :func:`batch_keys` gives the
    batches of one process.
    """
    if replicas > 1 and not shuffle:
        batches = list(BatchSampler(range(len(dataset)), batch_size, drop_last=False))
        shard = [batches[i] for i in DistributedSampler(batches, replicas, rank, shuffle=False)]
        return DataLoader(dataset, batch_sampler=shard, num_workers=workers, pin_memory=pin_memory,
                          generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0)
    if replicas > 1:
        sampler = DistributedSampler(dataset, replicas, rank, shuffle=True, seed=seed, drop_last=False)
    else:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed)) if shuffle else None
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        generator=torch.Generator().manual_seed(seed), pin_memory=pin_memory,
        persistent_workers=workers > 0, drop_last=False,
    )


def seed_epoch(loader: DataLoader, seed: int, epoch: int) -> None:
    """Seed the shuffle of ``loader``'s ``epoch`` (:func:`make_loader`) by ``(seed, epoch)`` alone: its
    RandomSampler's generator with ``seed * 1000 + epoch``, or its DistributedSampler's epoch
    (``set_epoch``: the permutation of seed ``seed + epoch``, the same in every process)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    else:
        loader.sampler.generator.manual_seed(seed * 1000 + epoch)


def batch_keys(loader) -> list[int] | None:
    """The index of the first photo of each batch ``loader`` yields (to gather them by:
    :func:`localizer.engine.distributed.gather`), or None for a loader without a fixed list of batches (a
    shuffled one, or any other iterable)."""
    batches = getattr(loader, "batch_sampler", None)
    if batches is None or isinstance(getattr(loader, "sampler", None), (RandomSampler, DistributedSampler)):
        return None
    return [batch[0] for batch in batches]
