"""Atomic file writes: a temp file in the same folder, then a rename over the target, so a crash
or a kill leaves either the old file or the new one, never a torn one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import torch


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".tmp")


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    path = Path(path)
    tmp = _tmp(path)
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json(path: Path | str, data: dict) -> Path:
    """Write ``data`` as indented JSON atomically (non-JSON values via ``str``); returns the path."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str))


def write_csv(table: pd.DataFrame, path: Path | str) -> Path:
    """Write a table as CSV without its index, atomically; returns the path."""
    return atomic_write_text(path, table.to_csv(index=False))


def atomic_save(obj, path: Path | str) -> Path:
    """``torch.save`` atomically; returns the path."""
    path = Path(path)
    tmp = _tmp(path)
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path
