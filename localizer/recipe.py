"""The recipe: every value that defines a training run (:class:`TrainConfig`), its checks, and the
named recipes (:data:`PROFILES`) that ``run --profile`` and the notebooks start from.

The defaults are the course report's recipe: ResNet18 backbone (ImageNet weights), head
Dropout(0.5) + Linear(512, 4), Smooth L1 loss on normalized xyxy boxes, AdamW (lr 1e-3, weight
decay 1e-4), batch 32, ReduceLROnPlateau (factor 0.1, patience 3) on the validation loss, 256 x 256
inputs, a seeded 70/15/15 split. A bad value fails here, before any work, naming the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from localizer.errors import ConfigError
from localizer.data.readers import DataFormatError, parse_classes
from localizer.data.split import DEFAULT_FRACTIONS, DEFAULT_SEED

#: The choices of the recipe's named fields (the modules that implement them import these names).
#: Backbones: :mod:`localizer.model.backbones`; heads: :mod:`localizer.model.heads`; box losses:
#: :mod:`localizer.model.losses`; number formats: :mod:`localizer.engine.numerics`.
BACKBONES = ("resnet18", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
HEADS = ("linear", "softargmax", "largest")
#: Heads trained on every annotated animal of a photo, not only the primary one: their run's scan keeps
#: every box (:data:`localizer.boxes.ALL_BOXES_COLUMN` in the manifest).
ALL_BOXES_HEADS = ("largest",)
LOSSES = ("smooth_l1", "giou")
PRECISIONS = ("auto", "fp32", "bf16")
SCHEDULES = ("plateau", "cosine")
#: The epoch whose weights ``best.pt`` holds: :func:`localizer.engine.checkpoints.kept_row`.
KEEPS = ("best", "last")
LR_SCALINGS = ("none", "linear", "sqrt")
#: ``split``: the seeded 70/15/15 split (:func:`localizer.data.split.assign_split`), or the train/valid/test
#: folders an export came with (:func:`localizer.data.split.export_split`; Roboflow, CVAT).
SPLIT_CHOICES = ("seeded", "export")


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` and in each checkpoint).

    Attributes mirror the report's recipe by default. ``classes`` keeps only boxes of these classes
    (None: all; e.g. ``"animals"``, see :func:`localizer.data.readers.parse_classes`). ``head`` is the
    report's ``linear`` head, ``softargmax`` or ``largest`` (:mod:`localizer.model.heads`; ``largest``
    trains on every annotated animal, so its run's manifest keeps every box). ``affine_p`` is the
    probability of the box-aware random scale + shift per training image
    (:class:`localizer.data.batch_augment.BatchAugment`; 0 in the report). ``dfl`` > 0 adds that
    weight times the distribution focal loss (:func:`localizer.model.losses.distribution_focal_loss`;
    ``softargmax`` and ``largest`` heads) to ``loss``. ``schedule`` is ``plateau`` (the report's
    ReduceLROnPlateau on the validation loss) or ``cosine`` (cosine annealing from ``lr`` to 0 over
    the epochs the run trains, stepped once per epoch; Loshchilov & Hutter, SGDR, 2017). ``keep`` is the epoch
    whose weights ``best.pt`` holds, and notebook 04, ``evaluate``, ``predict`` and ``export`` use: ``best``,
    the highest validation mean IoU (the report's), or ``last``, the final epoch
    (:func:`localizer.engine.checkpoints.kept_row`). ``split`` is
    ``seeded`` (the report's split, with ``seed`` and ``fractions``) or ``export`` (the export's own
    train/valid/test folders: :data:`SPLIT_CHOICES`).

    How long: ``steps`` None trains exactly ``epochs`` epochs (the report's way); a number is the
    target of optimizer updates, from which the epochs follow from the size of the training split,
    within ``min_epochs`` and ``max_epochs`` (:func:`epochs_for`; ``epochs`` is then not used).

    ``subset`` limits the number of images (seeded, before the split) for quick runs; ``workers`` is
    the number of DataLoader processes for the training set (``-1``: 1 on CPU, 4 on an accelerator);
    ``device`` is ``auto``, ``cpu``, ``cuda`` or ``mps``; ``precision`` is ``auto``, ``fp32`` or ``bf16`` (see
    :mod:`localizer.engine.numerics`). ``tta`` is not about training: it makes notebook 04 score the
    test split, and ``evaluate`` and ``predict`` predict by default, with horizontal-flip test-time
    augmentation (:func:`localizer.engine.inference.fuse_flip`: averaged where the two boxes agree).

    Large batches (for a GPU): ``lr`` is the learning rate at the report's batch of 32
    (:data:`REFERENCE_BATCH`); ``lr_scaling`` scales it to ``batch_size`` (see
    :func:`effective_lr`): ``none`` (default), ``linear`` (x batch/32; Goyal et al., "Accurate,
    Large Minibatch SGD", 2017, the rule for SGD) or ``sqrt`` (x sqrt(batch/32); the rule for
    Adam-type optimizers such as AdamW, Malladi et al., "On the SDEs and Scaling Rules for Adaptive
    Gradient Algorithms", NeurIPS 2022). E.g. ``batch_size=256, lr_scaling="sqrt"`` trains with
    lr 2.83e-3.
    """

    data: str = "data/oxford-iiit-pet"
    format: str = "auto"
    oxford_box: str = "animal"
    classes: str | None = None
    image_size: int = 256
    epochs: int = 40
    steps: int | None = None
    min_epochs: int = 1
    max_epochs: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    lr_scaling: str = "none"
    weight_decay: float = 1e-4
    backbone: str = "resnet18"
    weights: str | None = "imagenet"
    head: str = "linear"
    dropout: float = 0.5
    loss: str = "smooth_l1"
    schedule: str = "plateau"
    plateau_factor: float = 0.1
    plateau_patience: int = 3
    keep: str = "best"
    dfl: float = 0.0
    affine_p: float = 0.0
    seed: int = DEFAULT_SEED
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    split: str = "seeded"
    subset: int | None = None
    device: str = "auto"
    precision: str = "auto"
    workers: int = -1
    cache_dir: str | None = None
    tta: bool = False

    def __post_init__(self):
        """Check every value's type and range at once, so a bad ``-p`` value fails before any work.

        Raises:
            localizer.errors.ConfigError: naming the field, its value and what it takes.
        """
        for name, valid, expected in _CHECKS:
            if not valid(getattr(self, name), self):
                raise ConfigError(f"{name}={json.dumps(getattr(self, name), default=str)}: expected {expected}")
        try:
            parse_classes(self.classes)
        except DataFormatError as exc:
            raise ConfigError(f"classes={json.dumps(self.classes)}: {exc}") from None
        self.data = str(self.data)  # a pathlib.Path is welcome; config.json stores text
        if isinstance(self.fractions, list):  # JSON (-p, config.json) gives a list: compare equal to the tuple
            self.fractions = tuple(self.fractions)
        self.cache_dir = None if self.cache_dir is None else str(self.cache_dir)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Build from a saved ``config.json`` or checkpoint dict, ignoring unknown keys.

        Raises:
            localizer.errors.ConfigError: a value :class:`TrainConfig` refuses.
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # not NaN


#: :meth:`TrainConfig.__post_init__`'s checks, in order: ``(field, valid(value, config), what it takes)``.
_CHECKS = [
    *[(name, lambda v, c: _whole(v) and v >= 1, "a whole number >= 1")
      for name in ("image_size", "epochs", "batch_size")],
    *[(name, lambda v, c: _number(v) and v >= 0, "a number >= 0") for name in ("weight_decay", "plateau_factor")],
    ("lr", lambda v, c: _number(v) and v > 0, "a number > 0"),
    ("dropout", lambda v, c: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("dfl", lambda v, c: _number(v) and v >= 0, "a number >= 0: the weight of the distribution focal loss (0: none)"),
    ("dfl", lambda v, c: not (v and c.head == "linear"),
     "0 with the 'linear' head (the loss is on the per-edge distributions of the 'softargmax' and 'largest' heads)"),
    ("affine_p", lambda v, c: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    ("plateau_patience", lambda v, c: _whole(v) and v >= 0, "a whole number >= 0"),
    ("steps", lambda v, c: v is None or (_whole(v) and v >= 1),
     "null (train `epochs` epochs) or a whole number >= 1: the optimizer updates to aim for"),
    ("min_epochs", lambda v, c: _whole(v) and v >= 1, "a whole number >= 1"),
    ("max_epochs", lambda v, c: v is None or (_whole(v) and v >= c.min_epochs),
     "null (no ceiling) or a whole number >= min_epochs"),
    ("subset", lambda v, c: v is None or (_whole(v) and v >= 1), "null or a whole number >= 1"),
    ("seed", lambda v, c: _whole(v), "a whole number"),
    ("workers", lambda v, c: _whole(v) and v >= -1, "-1 (automatic) or a whole number >= 0"),
    ("tta", lambda v, c: isinstance(v, bool), "true or false"),
    *[(name, lambda v, c, allowed=allowed: v in allowed, "one of " + ", ".join(json.dumps(x) for x in allowed))
      for name, allowed in {"backbone": BACKBONES, "loss": LOSSES, "schedule": SCHEDULES, "lr_scaling": LR_SCALINGS,
                            "oxford_box": ("animal", "head"), "precision": PRECISIONS, "head": HEADS,
                            "split": SPLIT_CHOICES, "keep": KEEPS}.items()],
]


#: The batch size that ``TrainConfig.lr`` refers to (the course report's).
REFERENCE_BATCH = 32


def effective_lr(config: TrainConfig) -> float:
    """The learning rate the optimizer starts with: ``config.lr`` scaled from :data:`REFERENCE_BATCH`
    to ``config.batch_size`` by ``config.lr_scaling`` (``none``: lr; ``linear``: lr x B/32;
    ``sqrt``: lr x sqrt(B/32); :class:`TrainConfig` accepts no other value)."""
    exponent = {"none": 0.0, "linear": 1.0, "sqrt": 0.5}[config.lr_scaling]
    return config.lr * (config.batch_size / REFERENCE_BATCH) ** exponent


#: Config fields that say where and how fast a run goes (and how notebook 04 scores it), not what
#: it learns: a resumed run may change them.
RUNTIME_FIELDS = ("device", "precision", "workers", "cache_dir", "tta")


def recipe_values(config: TrainConfig, names=None) -> dict:
    """The fields ``names`` of ``config`` (default: all but :data:`RUNTIME_FIELDS`) as a dict to
    compare configs by, with ``data`` as a resolved path (``data/x`` and ``./data/x`` are the same)."""
    values = asdict(config)
    names = [k for k in values if k not in RUNTIME_FIELDS] if names is None else names
    return {k: str(Path(values[k]).resolve()) if k == "data" else values[k] for k in names}


def same_recipe(a: TrainConfig, b: TrainConfig) -> bool:
    """True when two configs train the same model on the same data: equal but for
    :data:`RUNTIME_FIELDS`, with the data folders compared as resolved paths."""
    return recipe_values(a) == recipe_values(b)


#: Config fields that decide the manifest (which images, which split).
SPLIT_FIELDS = ("data", "format", "oxford_box", "classes", "subset", "seed", "fractions", "split")


#: The recipe ``quick`` and ``best`` share, chosen on the lion validation split (docs/ablations.md):
#: EfficientNet-Lite1 with offline ImageNet weights, the soft-argmax head, box-aware scale + shift
#: augmentation on half the training images, GIoU + L1 loss plus 0.25 x distribution focal loss, a
#: cosine schedule, dropout 0.2, flip TTA.
_OFFLINE_RECIPE = {"image_size": 128, "backbone": "efficientnet_lite1", "head": "softargmax", "dfl": 0.25,
                   "affine_p": 0.5, "dropout": 0.2, "loss": "giou", "schedule": "cosine", "tta": True}

#: Named recipes: a profile's values replace :class:`TrainConfig`'s defaults, and ``-p NAME=VALUE`` replaces a
#: profile's. ``report``: the course report's recipe. ``quick``: offline-pretrained and CPU-friendly, 700 optimizer
#: updates within 4 to 100 epochs (:func:`epochs_for`; 13 epochs of the 1,698 lion training photos, as chosen there).
#: ``best``: the most accurate in under an hour on 2 CPU cores (160 px, 1,728 updates, the ``largest`` head:
#: docs/ablations.md, rows 17 and 21). ``small``: ``best``'s model for a few hundred photos, 1,800 updates in batches
#: of 8 without an epoch ceiling, keeping the last epoch (rows 35, 37, 38, 41, 53 and 54: few photos need many updates
#: rather than many photos per update, an update costs what its photos cost, and a few dozen validation photos
#: choose a lucky epoch; ``auto`` chooses it: :mod:`localizer.engine.profile_choice`). ``smoke``: tests and CI.
_QUICK = {**_OFFLINE_RECIPE, "steps": 700, "min_epochs": 4, "max_epochs": 100}
PROFILES: dict[str, dict] = {
    "report": {},
    "quick": _QUICK,
    "small": {**_QUICK, "image_size": 160, "head": "largest", "batch_size": 8, "steps": 1800,
              "max_epochs": None, "keep": "last"},
    "best": {**_QUICK, "image_size": 160, "head": "largest", "steps": 1728},
    "smoke": {"image_size": 64, "epochs": 2, "batch_size": 16, "backbone": "efficientnet_lite0", "subset": 64},
}


def field_names() -> list[str]:
    """The names of :class:`TrainConfig`'s fields, in order."""
    return [f.name for f in fields(TrainConfig)]


def recipe_for(profile: str = "report", **values) -> TrainConfig:
    """The recipe of ``profile`` (a key of :data:`PROFILES`) with ``values`` replacing its own.

    ``epochs`` given without ``steps`` wins over a profile that counts updates: ``-p epochs=40`` on
    ``quick`` trains 40 epochs (``steps`` becomes None), whatever the size of the data.

    Raises:
        localizer.errors.ConfigError: an unknown profile, an unknown field name (a typo such as
            ``epoch`` would otherwise be ignored), or a value :class:`TrainConfig` refuses.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    unknown = set(values) - set(field_names())
    if unknown:
        raise ConfigError(f"unknown parameter(s) {sorted(unknown)}; known: {sorted(field_names())}")
    if "epochs" in values and "steps" not in values:
        values = {**values, "steps": None}
    return TrainConfig(**{**PROFILES[profile], **values})


def updates_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer updates in one epoch of ``n_train`` training photos, ``ceil(n_train / batch_size)``: the loader keeps
    the last, smaller batch (``drop_last=False``, :func:`localizer.data.datasets.make_loader`). 1,698 in 32s: 54."""
    return -(-n_train // batch_size)


def epochs_for(config: TrainConfig, n_train: int) -> int:
    """The epochs a run of ``config`` trains on ``n_train`` training photos.

    ``config.epochs`` when ``config.steps`` is None; else the epochs of :func:`updates_per_epoch` nearest to
    ``steps`` (:func:`nearest_epochs`), clipped to ``[min_epochs, max_epochs]``. A schedule defined in optimizer
    updates, as detection frameworks define theirs (Detectron2's ``SOLVER.MAX_ITER``, MMDetection's
    ``IterBasedTrainLoop``), gives a few hundred photos as many updates as a few thousand, and the ceiling
    bounds the time of a large data set. Whole epochs keep the history, the validation and the checkpoints
    per epoch. E.g. ``quick`` (700 updates, 4-100 epochs, batch 32): 1,698 photos, 54 updates per epoch ->
    13 epochs (702 updates); 140 photos, 5 per epoch -> 140, clipped to 100; 5,173 photos, 162 -> 4.

    Raises:
        ValueError: ``n_train`` < 1 with ``steps`` set (no epoch of nothing).
    """
    if config.steps is None:
        return config.epochs
    if n_train < 1:
        raise ValueError(f"steps={config.steps}: no training photos to count epochs of (n_train={n_train})")
    nearest = nearest_epochs(config.steps, updates_per_epoch(n_train, config.batch_size))
    return max(config.min_epochs, min(nearest, config.max_epochs or nearest))


def nearest_epochs(steps: int, per_epoch: int) -> int:
    """``round(steps / per_epoch)`` with halves up (2.5 epochs are 3; Python's ``round`` gives 2), unclipped."""
    return (2 * steps + per_epoch) // (2 * per_epoch)
