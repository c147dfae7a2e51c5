"""Print an image's provenance labels or the build inputs their digest covers.

python scripts/provenance.py labels --image REF --base BASE [--context DIR]   (docker/build.sh)
python scripts/provenance.py inputs --base BASE [--context DIR]   what the inputs digest covers, a line each
"""

import sys

from classifier_host.cli import provenance

if __name__ == "__main__":
    sys.exit(provenance.main())
