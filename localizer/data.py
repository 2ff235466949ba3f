"""Datasets and data loaders over a split manifest and the decode-once :class:`~localizer.cache.ImageCache`.

A batch is ``(images, targets)``: uint8 images ``(N, 3, S, S)`` and float32 targets ``(N, 4)``, xyxy
normalized to [0, 1]. Items are not augmented here: training augments whole batches on the device
(:class:`localizer.batch_augment.BatchAugment`) and normalizes them there
(:func:`localizer.transforms.model_input`), so a loader only copies cached pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, WeightedRandomSampler

from .boxes import BOX_COLUMNS, normalized_boxes
from .cache import ImageCache

__all__ = ["BOX_COLUMNS", "CachedBoxDataset", "make_loader", "normalized_targets"]


def normalized_targets(table: pd.DataFrame) -> np.ndarray:
    """Primary boxes of a table as ``(N, 4)`` float32 xyxy normalized by each image's width/height."""
    return normalized_boxes(table).astype(np.float32)


class CachedBoxDataset(Dataset):
    """Images of a manifest table, read from an :class:`ImageCache`, with their normalized boxes.

    Args:
        table: rows of a manifest (columns ``path, width, height, xmin, ymin, xmax, ymax``).
        cache: the image cache; missing images are decoded into it now (with a progress bar).
        progress: show the caching progress bar.

    Items are ``(image, target)``: uint8 ``(3, S, S)`` and float32 ``(4,)`` normalized xyxy.
    """

    def __init__(self, table: pd.DataFrame, cache: ImageCache, progress: bool = True):
        self.table = table.reset_index(drop=True)
        self.image_size = cache.image_size
        self.cache = cache
        self.slots = cache.add(self.table["path"].tolist(), progress=progress)
        self.targets = torch.from_numpy(normalized_targets(self.table))
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
    weights: Sequence[float] | np.ndarray | None = None,
) -> DataLoader:
    """A :class:`~torch.utils.data.DataLoader` in ``workers`` processes; with ``shuffle``, in the order of
    a :class:`~torch.utils.data.RandomSampler` with its own generator, seeded with ``seed``.

    With ``weights`` (one number >= 0 per item, ``shuffle`` only) the items are drawn with replacement,
    in proportion to them, ``len(dataset)`` per epoch (a
    :class:`~torch.utils.data.WeightedRandomSampler` with the same seeded generator): repeat factor
    sampling (Gupta et al., "LVIS", CVPR 2019), which shows rare kinds of photos more often.

    The order depends on that generator alone, not on how often the loader was iterated:
    :func:`localizer.training.train` re-seeds ``loader.sampler.generator`` at each epoch, so a resumed
    run draws the same batches as an uninterrupted one, with or without (persistent) workers. The
    loader has a generator of its own too: each new iterator draws its workers' base seed from it,
    which would otherwise be drawn from torch's global generator, shifting the augmentation and
    dropout of the epoch in which a resumed run (but not an uninterrupted one) starts its workers.

    Raises:
        ValueError: ``weights`` without ``shuffle``, or not one per item.
    """
    sampler = None
    if weights is not None:
        if not shuffle or len(weights) != len(dataset):
            raise ValueError(f"weights need shuffle=True and one weight per item ({len(dataset)}), got {len(weights)}")
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(dataset), replacement=True,
                                        generator=torch.Generator().manual_seed(seed))
    elif shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        generator=torch.Generator().manual_seed(seed), pin_memory=pin_memory,
        persistent_workers=workers > 0, drop_last=False,
    )
