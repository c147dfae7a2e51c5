"""Print what the cloud commands recorded, for the Makefile and buildspec.yml.

`python scripts/records.py --help` lists its options; the command is classifier_host.cli.records.main
(also on the venv's PATH as `classifier-records`).
"""

import sys

from classifier_host.cli import records

if __name__ == "__main__":
    sys.exit(records.main())
