"""Print an image's provenance labels (docker/build.sh sets them) or the build inputs their digest covers.

    python scripts/provenance.py labels --image REF --base BASE [--context DIR]   (docker/build.sh)
    python scripts/provenance.py inputs --base BASE [--context DIR]   what the inputs digest covers, a line each

The labels and the digest are explained in images/provenance.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..images.provenance import Docker, ProvenanceError, inputs_manifest, labels
from ..settings import ROOT
from .errors import exit_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("labels", "inputs"))
    parser.add_argument("--base", required=True, help="the base image reference the build uses")
    parser.add_argument("--image", help="the image reference being built (labels)")
    parser.add_argument("--context", type=Path, default=ROOT, help="the build context (default: the repository)")
    args = parser.parse_args(argv)
    if args.command == "labels" and not args.image:
        parser.error("labels needs --image")

    def show() -> None:
        if args.command == "inputs":
            lines = inputs_manifest(args.context, args.base, Docker())
        else:
            lines = [f"{k}={v}" for k, v in labels(args.image, args.base, args.context, Docker()).items()]
        print("\n".join(lines))

    return exit_status(show, ProvenanceError)


if __name__ == "__main__":  # python -m classifier_host.cli.provenance
    sys.exit(main())
