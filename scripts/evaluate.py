"""Evaluate a trained model on any labelled folder: what it gets wrong, and how far to trust it.

`python scripts/evaluate.py --help` lists its options; the command is classifier_host.cli.evaluate.main
(also on the venv's PATH as `classifier-evaluate`).
"""

import sys

from classifier_host.cli import evaluate

if __name__ == "__main__":
    sys.exit(evaluate.main())
