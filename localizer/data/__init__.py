"""Data: find the photos, read their annotations, check them, split them, feed them to a model.

``download`` (where the data is), ``imageio`` (decode a photo safely), ``readers/`` (dataset
layouts and annotation-tool exports), ``duplicates`` (near-duplicate photos), ``checking`` (one
photo and its annotation: usable, or the reason it is not), ``validation`` (``check-data``: every
photo of a data set), ``scans`` (a scan kept in a folder and read back), ``split`` (the seeded
70/15/15 split, the manifest), ``synthetic`` (the tests' small data set), ``transforms`` (the
per-image pipeline), ``cache`` (decode-once images), ``datasets`` (datasets and loaders),
``batch_augment`` (augmentation on whole batches). Imports only the package's bottom helpers.
"""
