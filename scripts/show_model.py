"""Print what a model.tar.gz holds: classes, model, preprocessing and the metrics it reached.

python scripts/show_model.py build/output/model.tar.gz
"""

import sys

from classifier_host.cli import show_model

if __name__ == "__main__":
    sys.exit(show_model.main())
