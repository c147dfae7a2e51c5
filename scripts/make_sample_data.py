"""Make a small image set in the dog-breed layout (train/ valid/ test/, one folder per class).

python scripts/make_sample_data.py DIR [--per-class 40 10 10] [--width 256 --height 200] [--masks]
"""

import sys

from classifier_host.cli import make_sample_data

if __name__ == "__main__":
    sys.exit(make_sample_data.main())
