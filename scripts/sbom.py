"""Write a CycloneDX SBOM (JSON, spec 1.6) of a built image: its Python and Debian packages, its labels.

`python scripts/sbom.py --help` lists its options; the command is classifier_host.cli.sbom.main
(also on the venv's PATH as `classifier-sbom`).
"""

import sys

from classifier_host.cli import sbom

if __name__ == "__main__":
    sys.exit(sbom.main())
