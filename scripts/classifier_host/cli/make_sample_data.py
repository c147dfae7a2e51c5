"""Make a small image set in the dog-breed layout (train/ valid/ test/, one folder per class).

    python scripts/make_sample_data.py DIR [--per-class 40 10 10] [--width 256 --height 200] [--masks]

What the images are: data/samples.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder to create (train/ valid/ test/ go inside)")
    parser.add_argument("--per-class", type=int, nargs=3, default=(40, 10, 10), metavar=("TRAIN", "VALID", "TEST"))
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--masks", action="store_true", help="also save each test image's shape mask under masks/")
    args = parser.parse_args(argv)
    from ..data.samples import CLASSES, make  # numpy and PIL: after the arguments are known good

    make(args.root, tuple(args.per_class), args.width, args.height, args.seed, masks=args.masks)
    total = sum(args.per_class) * len(CLASSES)
    print(f"wrote {total} images in {len(CLASSES)} classes to {args.root}")
    return 0


if __name__ == "__main__":  # python -m classifier_host.cli.make_sample_data
    sys.exit(main())
