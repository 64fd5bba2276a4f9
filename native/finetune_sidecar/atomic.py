"""Atomic creation of output folders (models now, checkpoints later).

A reader must never see a half-written folder: after a crash or a stop either the old folder
or the complete new one exists. The folder is built under a hidden temporary name beside the
target (same file system, so the final rename is atomic) and renamed into place at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)


class TargetExistsError(FileExistsError):
    """The target folder exists, is not empty and replacing it was not allowed."""


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike[str], replace: bool = False) -> Iterator[Path]:
    """Yields a temporary folder; on a clean exit it becomes `target`, on an error it is removed.

    An existing empty `target` is replaced silently; a non-empty one only when `replace`.
    """
    target = Path(target).absolute()
    if target.exists() and not _is_empty_dir(target) and not replace:
        raise TargetExistsError(f"{target} already exists and is not empty")
    if target.exists() and not target.is_dir():
        raise TargetExistsError(f"{target} exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkdtemp: its 0700 mode would stick to the final folder; mkdir honours the umask.
    work = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir()
    try:
        yield work
        _fsync_dir(work)
        if target.exists():
            # Rename the old folder out of the way first: rename() cannot replace a non-empty
            # folder, and deleting first would leave a moment with no folder at all.
            trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, trash / target.name)
            os.replace(work, target)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(work, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _fsync_dir(path: Path) -> None:
    # Makes the rename durable on POSIX; directories cannot be opened like this on Windows.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        log.debug("fsync of %s is not supported", path)
    finally:
        os.close(fd)


def tree_size(path: str | os.PathLike[str]) -> int:
    """Total bytes of the regular files under `path` (or of `path` itself if it is a file)."""
    root = Path(path)
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
