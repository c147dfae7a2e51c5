"""Print what a model.tar.gz holds: classes, model, preprocessing and the metrics it reached.

`python scripts/show_model.py --help` lists its options; the command is classifier_host.cli.show_model.main
(also on the venv's PATH as `classifier-show-model`).
"""

import sys

from classifier_host.cli import show_model

if __name__ == "__main__":
    sys.exit(show_model.main())
