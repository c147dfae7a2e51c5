"""Download torchvision's ImageNet weights for the named models into build/weights (`make build` runs it).

    python scripts/fetch_weights.py resnet50 [efficientnet_b0 ...] [--dest build/weights]

The Dockerfile copies that folder into the training image's weight cache, so the image build and the
training jobs need no network (jobs can run with network isolation). Offline, it warns and goes on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="torchvision model names, e.g. resnet50")
    parser.add_argument("--dest", type=Path, default=Path("build/weights"))
    args = parser.parse_args(argv)
    from ..images.weights import fetch  # torch: after the arguments

    args.dest.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        fetch(name, args.dest)
    return 0


if __name__ == "__main__":  # python -m classifier_host.cli.fetch_weights
    sys.exit(main())
