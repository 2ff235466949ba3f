"""Data: find the photos, read their annotations, check them, split them.

``download`` (where the data is), ``imageio`` (decode a photo safely), ``readers/`` (dataset
layouts), ``duplicates`` (near-duplicate photos), ``checking`` (one photo: decode, parse, check, the primary box), ``validation`` (``check-data``: every photo,
``ok`` or skipped with a reason), ``split`` (the seeded 70/15/15 split, the manifest),
``synthetic`` (the tests' small data set). Imports only the package's bottom helpers.
"""
