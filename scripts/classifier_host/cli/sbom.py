"""Write a CycloneDX SBOM (JSON, spec 1.6) of a built image: its Python and Debian packages, its labels.

    python scripts/sbom.py IMAGE OUTPUT.cdx.json      (make sbom; make push writes one per image)

How the SBOM is made: images/sbom.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..images.provenance import Docker, ProvenanceError
from ..images.sbom import write
from .errors import exit_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("output", type=Path)
    args = parser.parse_args(argv)
    return exit_status(lambda: write(args.image, args.output, Docker()), ProvenanceError)


if __name__ == "__main__":  # python -m classifier_host.cli.sbom
    sys.exit(main())
