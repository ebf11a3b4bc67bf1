"""Crash-safe checkpoint folders: ``<dir>/step-00000010/`` written under a temporary name, fsynced,
then renamed; ``<dir>/LATEST`` names the newest complete one and is replaced atomically.

A kill at any moment leaves either the previous checkpoint or the new one as ``LATEST``, never a
half-written folder. Leftover ``.tmp-*`` folders from a kill are ignored and removed on the next save.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

LATEST = "LATEST"
PREFIX = "step-"


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def save_checkpoint(directory: str | Path, step: int, write: Callable[[Path], None], keep: int = 2) -> Path:
    """Call ``write(folder)`` on a fresh temporary folder, then publish it as the checkpoint of
    ``step`` and point ``LATEST`` at it; keep the newest ``keep`` checkpoints. Returns the folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = directory / checkpoint_name(step)
    tmp = directory / f".tmp-{final.name}-{os.getpid()}"
    tmp.mkdir()
    write(tmp)
    _fsync_tree(tmp)
    if final.exists():  # the same step saved again (e.g. stop right after a periodic save)
        old = directory / f".tmp-old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(directory)
    _write_atomic(directory / LATEST, final.name)
    _prune(directory, keep, final.name)
    return final


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint folder, or None when there is none."""
    pointer = Path(directory) / LATEST
    if not pointer.is_file():
        return None
    folder = Path(directory) / pointer.read_text().strip()
    return folder if folder.is_dir() else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    for path in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(directory: Path, keep: int, newest: str) -> None:
    folders = sorted(p for p in directory.glob(f"{PREFIX}*") if p.is_dir() and p.name != newest)
    for old in folders[: max(len(folders) - (keep - 1), 0)]:
        shutil.rmtree(old)
