"""Network access that never hangs offline: one socket timeout around every download (the dataset,
ResNet18's ImageNet weights). Offline, a download fails at once (the DNS lookup fails in about
0.02 s); on a stalled connection it fails after :data:`DOWNLOAD_TIMEOUT_S` without data."""

from __future__ import annotations

import socket
from contextlib import contextmanager

#: Seconds a download may wait for the network (per blocking read or connect), not in all.
DOWNLOAD_TIMEOUT_S = 20.0


@contextmanager
def download_timeout(seconds: float | None = None):
    """Set the default socket timeout to ``seconds`` (default :data:`DOWNLOAD_TIMEOUT_S`) inside the
    block and restore the previous one after it, also when the block raises."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S if seconds is None else seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
