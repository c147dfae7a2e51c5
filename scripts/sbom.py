"""Write a CycloneDX SBOM (JSON, spec 1.6) of a built image: its Python and Debian packages, its labels.

python scripts/sbom.py IMAGE OUTPUT.cdx.json      (make sbom; make push writes one per image)
"""

import sys

from classifier_host.cli import sbom

if __name__ == "__main__":
    sys.exit(sbom.main())
