"""Download torchvision's ImageNet weights for the named models into build/weights (`make build` runs it).

`python scripts/fetch_weights.py --help` lists its options; the command is classifier_host.cli.fetch_weights.main
(also on the venv's PATH as `classifier-fetch-weights`).
"""

import sys

from classifier_host.cli import fetch_weights

if __name__ == "__main__":
    sys.exit(fetch_weights.main())
