"""Archives unpacked once: into a folder beside the target, renamed into place when complete, so an
extraction cut short (a kill, a full disk) is redone by the next run instead of being taken as done."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path


def unpack_once(archive: Path, target: Path) -> Path:
    """Extract `archive` (.zip, else a tar, compressed or not) into `target` unless a complete extraction
    is already there; returns `target`."""
    if target.exists():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted run left
    partial.mkdir(parents=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(partial)  # zipfile drops absolute paths and '..' itself
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")  # no paths outside the folder, no device files
    partial.rename(target)
    return target
