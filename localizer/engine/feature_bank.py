"""The features of a frozen backbone prefix, computed once per augmented view of each training photo.

With ``freeze_stride`` set, the first layers of the backbone never change, so their output for a given
augmented photo never changes either. A recipe with ``views = K`` augments every training photo ``K`` times
(:class:`localizer.data.batch_augment.BatchAugment`, each view seeded by the run's seed and its number), runs the
frozen layers once per view, and trains on these features: each epoch takes, for every photo, one of its ``K``
views at random. An update then costs only the trainable layers and the head, at a fraction of the time.
"""

from __future__ import annotations

import torch

from localizer.engine.numerics import model_input


class FeatureBank:
    """``K`` augmented views of the training split, as the frozen layers' features.

    Attributes:
        features: ``(K, N, C, h, w)`` float32, the frozen layers' output for view ``k`` of photo ``n``
            (:meth:`localizer.model.models.BoxRegressor.frozen_features`).
        targets: ``(K, N, B, 4)`` normalized xyxy, the boxes of each view (the primary box first).
    """

    def __init__(self, model, loader, augment, numerics, views: int, seed: int):
        """Augment and encode every photo of ``loader`` (an unshuffled loader of ``(uint8 images, targets)``)
        ``views`` times. The random numbers come from a generator forked off torch's global one, seeded with
        ``(seed, view)``, so the bank is the same on resume and the global generator is left as it was."""
        features, targets = [], []
        with torch.random.fork_rng(devices=[]):
            for view in range(views):
                torch.manual_seed(seed * 1000 + 999_000 + view)  # apart from the epochs' seeds seed * 1000 + e
                parts = [self._encode(model, images, boxes, augment, numerics) for images, boxes in loader]
                features.append(torch.cat([f for f, _ in parts]))
                targets.append(torch.cat([t for _, t in parts]))
        self.features, self.targets = torch.stack(features), torch.stack(targets)

    @staticmethod
    def _encode(model, images, boxes, augment, numerics):
        images, boxes = images.to(numerics.device, non_blocking=True), boxes.to(numerics.device, non_blocking=True)
        if augment is not None:
            images, boxes = augment(images, boxes)
        with numerics.autocast():
            features = model.frozen_features(model_input(images, numerics))
        return features.float().contiguous(), boxes

    @classmethod
    def encode(cls, model, loader, numerics) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of ``loader`` (uint8 images, targets) as ``(frozen features, targets)``, not augmented: the
        validation split, whose frozen features are the same at every epoch."""
        return [cls._encode(model, images, boxes, None, numerics) for images, boxes in loader]

    def __len__(self) -> int:
        """The number of training photos ``N``."""
        return self.features.shape[1]

    def epoch(self, batch_size: int, generator: torch.Generator):
        """The batches ``(features (n, C, h, w), targets (n, B, 4))`` of one epoch: the photos in a random order,
        each in one of its views at random, in ``ceil(N / batch_size)`` batches (the last one smaller, as
        :func:`localizer.data.datasets.make_loader` keeps it)."""
        order = torch.randperm(len(self), generator=generator)
        views = torch.randint(self.features.shape[0], (len(self),), generator=generator)
        for start in range(0, len(self), batch_size):
            rows = order[start:start + batch_size]
            yield self.features[views[rows], rows], self.targets[views[rows], rows]
