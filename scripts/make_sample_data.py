"""Make a small image set in the dog-breed layout (train/ valid/ test/, one folder per class).

`python scripts/make_sample_data.py --help` lists its options; the command is classifier_host.cli.make_sample_data.main
(also on the venv's PATH as `classifier-make-sample-data`).
"""

import sys

from classifier_host.cli import make_sample_data

if __name__ == "__main__":
    sys.exit(make_sample_data.main())
