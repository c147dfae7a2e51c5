"""Finding the splits, decoding them once, and the datasets the training loop reads.

Layout (the dog-breed set's): train/ valid/ test/, one folder per class. Channels arrive either as
`train`/`valid`/`test` or as one `training` channel holding the three folders. Every file is decoded
once up front in parallel; files that don't decode are skipped and counted, never a crash.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from classifier.contract import resources
from classifier.model import decoding
from classifier.training import augmentation

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")


class DataError(ValueError):
    """The data set's layout is unusable; the message names the folder and the fix."""


@dataclass
class Split:
    name: str
    samples: list[tuple[Path, int]]
    origin: str  # "folder" or "split from train/"


@dataclass
class DataSet:
    classes: list[str]
    splits: dict[str, Split]
    notes: list[str] = field(default_factory=list)


def split_roots(channels: dict[str, Path]) -> dict[str, Path]:
    """Map split name -> folder from SageMaker channels."""
    if "train" in channels:
        return {name: channels[name] for name in SPLITS if name in channels}
    if "training" in channels:
        root = channels["training"]
        roots = {name: root / name for name in SPLITS if (root / name).is_dir()}
        if "train" not in roots:
            raise DataError(f"channel 'training' ({root}) has no train/ folder; expected train/ valid/ test/")
        return roots
    raise DataError(f"no 'train' or 'training' channel; got {sorted(channels) or 'none'}")


def class_folders(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_samples(root: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """Every non-hidden file under each class folder, and every symbolic link (a dangling one is then
    skipped and counted, not silently missing); decoding decides what is an image."""
    samples = []
    for index, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if (path.is_file() or path.is_symlink()) and not path.name.startswith("."):
                samples.append((path, index))
    return samples


def stratified_split(samples: list[tuple[Path, int]], fraction: float, seed: int):
    """Hold out `fraction` of every class (at least one image where a class has two or more)."""
    by_class: dict[int, list] = {}
    for sample in samples:
        by_class.setdefault(sample[1], []).append(sample)
    rng = random.Random(seed)
    kept, held = [], []
    for label in sorted(by_class):
        items = by_class[label]
        rng.shuffle(items)
        n = round(len(items) * fraction)
        n = max(n, 1) if len(items) >= 2 else 0
        held += items[:n]
        kept += items[n:]
    return sorted(kept), sorted(held)


def discover(channels: dict[str, Path], val_fraction: float, test_fraction: float, seed: int) -> DataSet:
    roots = split_roots(channels)
    classes = class_folders(roots["train"])
    if not classes:
        raise DataError(f"{roots['train']} has no class folders (expected e.g. train/001.Affenpinscher/)")
    for name, root in roots.items():
        other = class_folders(root)
        if name != "train" and other != classes:
            only_train = sorted(set(classes) - set(other))
            only_other = sorted(set(other) - set(classes))
            raise DataError(
                f"class folders differ between train/ and {name}/: only in train/: {only_train or 'none'};"
                f" only in {name}/: {only_other or 'none'}. Every split needs the same class folders."
            )
    splits = {name: Split(name, list_samples(root, classes), "folder") for name, root in roots.items()}
    notes = []
    for name, fraction in (("valid", val_fraction), ("test", test_fraction)):
        if name not in splits:
            kept, held = stratified_split(splits["train"].samples, fraction, seed)
            splits["train"].samples = kept
            splits[name] = Split(name, held, "split from train/")
            notes.append(
                f"no {name}/ folder: held out {len(held)} images ({fraction:.0%} of each class, "
                f"seed {seed}) from train/"
            )
    for name, split in splits.items():
        if not split.samples:
            raise DataError(f"split {name}/ has no files")
    return DataSet(classes, splits, notes)


class _DecodeEach(Dataset):
    """One decode per item, returning the error text instead of raising (so workers survive)."""

    def __init__(self, paths: list[Path], decode: Callable[[Path], np.ndarray]):
        self.paths, self.decode = paths, decode

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        try:
            return index, self.decode(self.paths[index]), None
        except decoding.BadImage as err:
            return index, None, Skipped(self.paths[index], err.kind, str(err))


@dataclass(frozen=True)
class Skipped:
    """A file that is not a readable image: `kind` (presets.BadImage.kind) and the whole message."""

    path: Path
    kind: str
    message: str


@dataclass
class Decoded:
    images: torch.Tensor  # uint8 (N, 3, S, S)
    labels: torch.Tensor  # int64 (N,)
    skipped: list[Skipped]
    sources: list[Path] = field(default_factory=list)  # the file of each decoded image


def decode_all(
    samples: list[tuple[Path, int]],
    decode: Callable[[Path], np.ndarray],
    side: int,
    workers: int,
    progress: Callable[[int, int], None] | None = None,
) -> Decoded:
    """Decode every sample once, in parallel worker processes; bad files are skipped and listed."""
    images = torch.empty((len(samples), 3, side, side), dtype=torch.uint8)
    ok = torch.zeros(len(samples), dtype=torch.bool)
    skipped = []
    loader = DataLoader(
        _DecodeEach([p for p, _ in samples], decode), batch_size=None, num_workers=workers, collate_fn=lambda item: item
    )
    for done, (index, image, problem) in enumerate(loader, 1):
        if image is None:
            skipped.append(problem)
        else:
            images[index] = torch.from_numpy(image)
            ok[index] = True
        if progress:
            progress(done, len(samples))
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return Decoded(
        images[ok], labels[ok], skipped, [p for (p, _), kept in zip(samples, ok.tolist(), strict=True) if kept]
    )


def count_kinds(kinds: Iterable[str]) -> str:
    """'2 empty file, 1 unreadable': how many skipped files of each kind (the trainer's and evaluation's logs)."""
    return ", ".join(f"{count} {kind}" for kind, count in sorted(Counter(kinds).items()))


def skipped_summary(split: str, skipped: list[Skipped]) -> str:
    examples = ", ".join(f"{s.path.name}: {s.message}" for s in skipped[:3])
    return (
        f"{split}: skipped {len(skipped)} file(s) that are not readable images "
        f"({count_kinds(s.kind for s in skipped)}); e.g. {examples}"
    )


class TensorImages(Dataset):
    """Decoded uint8 images in memory, with an optional per-item transform (augmentation)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None, sources: list[Path] = ()):
        self.images, self.labels, self.transform = images, labels, transform
        self.sources = list(sources)  # each image's file, when known (the evaluation names its mistakes)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index]
        return (self.transform(image) if self.transform else image), self.labels[index]


class FileImages(Dataset):
    """Decode per step (when the cache would not fit in memory); paths already known to decode."""

    def __init__(self, samples: list[tuple[Path, int]], image_size: int, transform):
        self.samples, self.image_size, self.transform = samples, image_size, transform

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        return self.transform(torch.from_numpy(augmentation.decode_for_cache(path, self.image_size))), torch.tensor(
            label
        )


def default_workers(requested: int) -> int:
    return min(8, resources.available_cpus()) if requested < 0 else requested
