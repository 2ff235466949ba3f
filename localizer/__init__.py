"""localizer: single-object localization — regress the one bounding box of the primary animal in a photo.

A map of the package, one job per module, in the order data flows through it (data → split → run
→ train → evaluate / predict → plots); each module imports only from those above it (and from the
small helpers at the end).

Data
    ``download``       where the data is: the course's lion photos or Oxford-IIIT Pet (downloaded)
                       — imports ``network``
    ``imageio``        decode a photo safely: EXIF-oriented RGB, or a reason it cannot be used
    ``readers/``       dataset layouts (``yolo``, ``voc``, ``oxford``, ``coco``, ``csvfile``), the
                       class filter (``classes``) and boxes on the displayed photo (``frames``)
                       — imports ``imageio``, ``boxes``
    ``duplicates``     near-duplicate photos (dHash) and their groups
    ``validation``     ``check-data``: decode every photo, parse every annotation, report skips
                       — imports ``readers``, ``imageio``, ``boxes``, ``duplicates``
    ``exploration``    box statistics of a dataset and their figure (notebook 01) — imports ``plots``
    ``synthetic``      the small synthetic dataset of the tests
Split and run
    ``split``          the seeded 70/15/15 split, near-duplicates kept together; the manifest CSV
    ``recipe``         :class:`~localizer.recipe.TrainConfig` (every value of a run, checked) and
                       the named profiles — imports the names of ``models``, ``heads``, ``losses``,
                       ``numerics``, ``readers``, ``split``
    ``run``            the run folder: create, open, checkpoints (saved in a crash-safe order,
                       loaded safely), :func:`~localizer.engine.run.load_model` — imports ``recipe``,
                       ``split``, ``validation``, ``models``, ``numerics``
Training
    ``transforms``     the per-image torchvision v2 pipeline and batch normalization
    ``cache``          the decode-once image cache — imports ``imageio``, ``transforms``
    ``data``           datasets and loaders over the cache — imports ``cache``, ``boxes``
    ``batch_augment``  flip, ColorJitter and box-aware scale + shift on whole batches — imports
                       ``boxes``, ``transforms``
    ``weights``        ImageNet and local weights files — imports ``network``
    ``heads``          the box heads: the report's linear head, the soft-argmax head
    ``models``         backbone + head — imports ``heads``, ``weights``
    ``numerics``       device, bf16 autocast, channels_last, and ``precision=auto``'s choice
    ``losses``         Smooth L1 and GIoU + L1 — imports ``metrics``
    ``training``       the epoch loop: :func:`~localizer.engine.training.train` — imports ``run``,
                       ``recipe``, ``data``, ``batch_augment``, ``models``, ``numerics``, ``losses``
Evaluation and prediction
    ``metrics``        IoU, accuracy at IoU > t (the PASCAL VOC criterion at 0.5)
    ``inference``      the model's boxes for batches (shared by the two below) — imports ``data``,
                       ``numerics``, ``transforms``, ``metrics``
    ``evaluation``     metrics of a split beside the mean-box and random-box baselines — imports
                       ``inference``, ``data``, ``metrics``
    ``prediction``     ``predict``: boxes of new photos, drawings — imports ``inference``, ``imageio``
    ``plots``          the report's figures (photo grids as JPEG) and :func:`~localizer.report.plots.show`
                       for notebooks — imports ``imageio``, ``boxes``
    ``narration``      the notebooks' text that depends on the recipe (loss, schedule, head, input,
                       Figure 1's caption) and the tables for reading — imports ``recipe``, ``models``,
                       ``heads``, ``losses``, ``download``
Commands
    ``runner``         ``run``: the four notebooks with papermill into one run folder, their output
                       streamed to the terminal; ``--publish``: executed notebooks for reading
                       (``report/``) — imports ``run``, ``recipe``, ``download``
    ``cli``            ``python -m localizer ...`` — imports what each command needs
Helpers
    ``boxes`` (box conventions), ``errors`` (:class:`~localizer.errors.DataError`), ``files``
    (atomic writes), ``network`` (download timeout), ``progress`` (tqdm bars, off in headless runs)
"""

__version__ = "0.1.0"
