"""Download torchvision's ImageNet weights for the named models into build/weights (`make build` runs it).

    python scripts/fetch_weights.py resnet50 [efficientnet_b0 ...] [--dest build/weights]

The command lives in classifier_host.cli.fetch_weights (`--help` for every option).
"""

import sys

from classifier_host.cli import fetch_weights

if __name__ == "__main__":
    sys.exit(fetch_weights.main())
