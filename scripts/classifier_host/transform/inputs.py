"""The files a transform sends: every file under the input, recursively, by its path relative to the root.

Local mode's transform reads only the top level of its input folder and ends the whole job on a file
over MaxPayloadInMB (sagemaker.core.local.data), and a cloud job fails on such a file too. So the files
are listed here, those over the limit are set aside as failed, and the rest are staged flat (local) or
named in a manifest (cloud), keeping the mapping back to each file's own path.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MIB = 1024 * 1024
# botocore's bound for MaxPayloadInMB, and SageMaker's for MaxConcurrentTransforms x MaxPayloadInMB.
MAX_PAYLOAD_MB = 100


class TransformError(ValueError):
    """A bad input folder, prefix or setting: the message says what and how to fix it."""


@dataclass(frozen=True)
class InputFile:
    path: str  # relative to the input root, '/'-separated (the name in predictions.jsonl)
    size: int


@dataclass(frozen=True)
class Failure:
    path: str
    reason: str


def check_payload(max_payload_mb: int, max_concurrent: int) -> None:
    if not 1 <= max_payload_mb <= MAX_PAYLOAD_MB:
        raise TransformError(
            f"--max-payload-mb must be 1..{MAX_PAYLOAD_MB} (SageMaker's MaxPayloadInMB), got {max_payload_mb}"
        )
    if max_concurrent < 1 or max_concurrent * max_payload_mb > MAX_PAYLOAD_MB:
        raise TransformError(
            f"--max-concurrent x --max-payload-mb must be at most {MAX_PAYLOAD_MB} MB "
            f"(SageMaker's limit), got {max_concurrent} x {max_payload_mb}"
        )


def hidden(relative: PurePosixPath) -> bool:
    """.DS_Store, .git/...: not inputs anyone meant to classify."""
    return any(part.startswith(".") for part in relative.parts)


def list_folder(root: Path) -> list[InputFile]:
    """Every regular file under `root` (sorted, hidden ones left out); TransformError when the folder
    cannot be read or holds nothing."""
    if not root.is_dir():
        raise TransformError(f"--input {root}: no such folder")
    if not os.access(root, os.R_OK | os.X_OK):
        raise TransformError(f"--input {root}: the folder cannot be read (permissions)")
    files, unreadable = [], []

    def note(err: OSError) -> None:
        unreadable.append(err.filename)

    for folder, _, names in os.walk(root, onerror=note):
        for name in names:
            path = Path(folder, name)
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if hidden(relative) or not path.is_file():
                continue
            files.append(InputFile(str(relative), path.stat().st_size))
    if unreadable:
        raise TransformError(
            f"--input {root}: cannot read {unreadable[0]} (permissions)"
            + (f" and {len(unreadable) - 1} more" if len(unreadable) > 1 else "")
        )
    if not files:
        raise TransformError(f"--input {root} holds no files")
    return sorted(files, key=lambda f: f.path)


def split_by_size(files: list[InputFile], max_payload_mb: int) -> tuple[list[InputFile], list[Failure]]:
    """(the files that fit in one request, a Failure for each that does not)."""
    limit = max_payload_mb * MIB
    fits = [f for f in files if f.size <= limit]
    over = [
        Failure(
            f.path,
            f"{f.size / MIB:.1f} MiB is over the job's MaxPayloadInMB of {max_payload_mb} "
            "(--max-payload-mb, at most 100)",
        )
        for f in files
        if f.size > limit
    ]
    return fits, over


def stage(files: list[InputFile], root: Path, staging: Path) -> dict[str, str]:
    """The files as one flat folder (hard links where possible, else copies) named 000001.jpg...;
    returns {staged name: the file's path relative to root}."""
    staging.mkdir(parents=True, exist_ok=True)
    names = {}
    for number, entry in enumerate(files, start=1):
        name = f"{number:06d}{PurePosixPath(entry.path).suffix.lower()}"
        source, target = root / entry.path, staging / name
        try:
            os.link(source, target)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(source, target)
        names[name] = entry.path
    return names


def manifest(prefix_uri: str, files: list[InputFile]) -> bytes:
    """A ManifestFile data source (TransformS3DataSource): the prefix, then each key relative to it."""
    return json.dumps([{"prefix": prefix_uri.rstrip("/") + "/"}, *[f.path for f in files]], indent=0).encode()
