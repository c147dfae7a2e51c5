"""Data-pipeline benchmark: decoded + augmented images per second on ONE core.

The trainer's loader (decode once with reduced-size JPEG decoding into a uint8 cache, then augment
uint8 tensors) against plain torchvision.datasets.ImageFolder with the usual PIL transforms
(RandomResizedCrop 224 + flip + ToTensor + Normalize), on the same ~500x400 JPEGs.

    python benchmarks/data_loader.py [--images 400] [--epochs 15] [--image-size 224]

The trainer's loader hands uint8 batches to the training step, which normalises them on the
device (GPU), so normalisation is not part of its loader cost; the plain loader normalises in the
loader, as torchvision's recipes do. Prints the plain rate, the trainer's first-epoch (decode) and
cached-epoch rates, the rate averaged over a whole run of --epochs, and the ratios. One process, one
torch thread: images/s per core.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from classifier.model import decoding
from classifier.training import augmentation, data
from classifier_host.data import samples as sample_set


def rate(loader) -> float:
    """Images/s for one pass over a loader."""
    count, start = 0, time.perf_counter()
    for images, _ in loader:
        count += len(images)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=400, help="training images (split over 5 classes)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs to amortise the one-time decode over")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = args.image_size

    with tempfile.TemporaryDirectory() as tmp:
        root = sample_set.make(Path(tmp), per_class=(args.images // 5, 0, 0), width=500, height=400)
        train = root / "train"
        print(f"{args.images} JPEGs of ~500x400 (quality 90), crop {size}, 1 process, 1 torch thread")

        plain = datasets.ImageFolder(
            train,
            transform=transforms.Compose(
                [
                    transforms.RandomResizedCrop(size),
                    transforms.RandomHorizontalFlip(),
                    transforms.ToTensor(),
                    transforms.Normalize(decoding.IMAGENET_MEAN, decoding.IMAGENET_STD),
                ]
            ),
        )
        plain_rate = rate(DataLoader(plain, batch_size=args.batch_size, num_workers=0))

        classes = data.class_folders(train)
        samples = data.list_samples(train, classes)
        side = augmentation.cache_side(size)
        start = time.perf_counter()
        decoded = data.decode_all(samples, lambda p: augmentation.decode_for_cache(p, size), side, workers=0)
        decode_seconds = time.perf_counter() - start
        cached = data.TensorImages(decoded.images, decoded.labels, augmentation.train_preset(size, "basic"))
        aug_rate = rate(DataLoader(cached, batch_size=args.batch_size, num_workers=0))
        trivial = data.TensorImages(decoded.images, decoded.labels, augmentation.train_preset(size, "trivialaugment"))
        trivial_rate = rate(DataLoader(trivial, batch_size=args.batch_size, num_workers=0))

    n = len(samples)
    first_epoch = n / (decode_seconds + n / aug_rate)
    whole_run = n * args.epochs / (decode_seconds + n * args.epochs / aug_rate)
    print(f"{'pipeline':58s} {'img/s/core':>10s} {'vs plain':>9s}")
    for name, value in (
        ("plain ImageFolder (PIL decode + RRC + flip + normalise)", plain_rate),
        ("trainer, first epoch (reduced decode into cache + augment)", first_epoch),
        ("trainer, cached epoch (RRC + flip on uint8)", aug_rate),
        (f"trainer, whole {args.epochs}-epoch run (decode amortised)", whole_run),
        ("trainer, cached epoch with TrivialAugmentWide", trivial_rate),
    ):
        print(f"{name:58s} {value:10.0f} {value / plain_rate:8.1f}x")
    print(f"decoded cache: {decoded.images.numel() / 1e6:.0f} MB for {n} images ({side}x{side} uint8)")
    print(f"RATIO whole-run trainer / plain = {whole_run / plain_rate:.1f}x")


if __name__ == "__main__":
    main()
