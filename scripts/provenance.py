"""Print an image's provenance labels or the build inputs their digest covers.

`python scripts/provenance.py --help` lists its options; the command is classifier_host.cli.provenance.main
(also on the venv's PATH as `classifier-provenance`).
"""

import sys

from classifier_host.cli import provenance

if __name__ == "__main__":
    sys.exit(provenance.main())
