"""Decode-once image cache: every photo is decoded, EXIF-oriented, converted to RGB and resized
once; training epochs read uint8 arrays from a memory-mapped file and decode no JPEG.

Layout of ``<directory>/v1-<size>px/``: ``images.u8`` (raw uint8, ``(capacity, size, size, 3)``),
``index.json`` (``{sha1 of file content: slot}``) and a lock file. Entries are keyed by the file's
content and the image size, so a changed or added file gets a new entry and a renamed or moved one
is reused. Stale entries stay in the file (delete the folder to reclaim the space). A cache folder
that cannot be written (a read-only drive) is not kept: the photos are decoded into a temporary folder,
removed when the cache is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import weakref
from pathlib import Path

import numpy as np
from tqdm.contrib.concurrent import thread_map

from localizer.files import appending, atomic_write_text, locked
from localizer.data.imageio import load_rgb
from localizer.progress import bars_disabled, progress_bar
from localizer.data.transforms import resize_image

CACHE_VERSION = "v1"
#: Photos decoded at once while caching (memory: this many decoded, resized photos).
DECODE_CHUNK = 256


def default_cache_dir() -> Path:
    """``$LOCALIZER_CACHE`` if set, else ``$XDG_CACHE_HOME/localizer`` (``~/.cache/localizer``)."""
    if os.environ.get("LOCALIZER_CACHE"):
        return Path(os.environ["LOCALIZER_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "localizer"


def file_digest(path: Path | str) -> str:
    """SHA-1 hex digest of a file's bytes (the cache key; content, not name or date)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


class ImageCache:
    """Resized uint8 RGB images in a memory-mapped file, shared by all datasets of one image size.

    Args:
        directory: cache root (default :func:`default_cache_dir`).
        image_size: side in pixels of the square images stored.
    """

    def __init__(self, directory: Path | str | None = None, image_size: int = 256):
        self.image_size = int(image_size)
        self.folder = Path(directory or default_cache_dir()) / f"{CACHE_VERSION}-{self.image_size}px"
        self.data_path = self.folder / "images.u8"
        self.index_path = self.folder / "index.json"
        self.slot_bytes = self.image_size * self.image_size * 3

    def _read_index(self) -> dict[str, int]:
        if not self.index_path.exists():
            return {}
        return json.loads(self.index_path.read_text())

    def _not_kept(self) -> None:
        """Decode into a temporary folder instead of a cache folder that cannot be written (removed with
        this object; a worker process's unpickled copy does not remove it)."""
        print(f"image cache {self.folder} cannot be written: the decoded photos are not kept", file=sys.stderr)
        temporary = tempfile.mkdtemp(prefix="localizer-cache-")
        weakref.finalize(self, shutil.rmtree, temporary, ignore_errors=True)
        self.folder = Path(temporary)
        self.data_path, self.index_path = self.folder / "images.u8", self.folder / "index.json"

    def _writable(self) -> bool:
        """True when the cache folder exists (made now if need be) and can be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        return os.access(self.folder, os.W_OK | os.X_OK)

    def _decode(self, path: str) -> np.ndarray:
        with load_rgb(path) as img:
            resized = resize_image(img, self.image_size)
        array = np.asarray(resized, dtype=np.uint8)
        assert array.shape == (self.image_size, self.image_size, 3), (path, array.shape)
        return array

    def add(self, paths: list[str], workers: int | None = None, progress: bool = True) -> np.ndarray:
        """Make sure every file in ``paths`` is cached; return their slots, ``(len(paths),)`` int64.

        Files already cached (same content) are not decoded again. New ones are decoded in
        ``workers`` threads (default: all cores) with a progress bar.

        Raises:
            localizer.data.imageio.ImageLoadError: a file cannot be decoded (its name and reason are given).
        """
        workers = workers or os.cpu_count() or 1
        digests = thread_map(file_digest, paths, max_workers=workers, disable=True)
        if not self._writable():
            if set(digests) <= set(self._read_index()):  # a read-only cache that holds every photo: read it
                index = self._read_index()
                return np.array([index[d] for d in digests], dtype=np.int64)
            self._not_kept()
        with locked(self.folder / "lock"):
            index = self._read_index()
            todo = sorted({d: p for d, p in zip(digests, paths) if d not in index}.items())
            if todo:
                self._append(todo, index, workers, progress)
                atomic_write_text(self.index_path, json.dumps(index), replace=True)
        return np.array([index[d] for d in digests], dtype=np.int64)

    def _append(self, todo: list[tuple[str, str]], index: dict[str, int], workers: int, progress: bool) -> None:
        """Decode ``(digest, path)`` pairs in threads, :data:`DECODE_CHUNK` at a time (so that memory
        holds one chunk, not the data set), and append them to the data file and ``index``."""
        count = len(index)
        desc = f"caching {len(todo)} images at {self.image_size}px"
        if progress and bars_disabled():  # headless: one line instead of a bar
            print(f"{desc} ...", flush=True)
        with appending(self.data_path) as f, progress_bar(total=len(todo), unit="img", show=progress,
                                                          desc=desc) as bar:
            f.truncate(count * self.slot_bytes)  # drop bytes of an interrupted append
            f.seek(count * self.slot_bytes)
            for start in range(0, len(todo), DECODE_CHUNK):
                chunk = todo[start:start + DECODE_CHUNK]
                decoded = thread_map(self._decode, [p for _, p in chunk], max_workers=workers, disable=True)
                for array, (digest, _) in zip(decoded, chunk, strict=True):
                    f.write(array.tobytes())
                    index[digest] = count
                    count += 1
                bar.update(len(chunk))

    def open(self) -> np.memmap:
        """The cached images as a read-only memmap ``(n, size, size, 3)`` uint8."""
        count = len(self._read_index())
        return np.memmap(self.data_path, dtype=np.uint8, mode="r",
                         shape=(count, self.image_size, self.image_size, 3))
