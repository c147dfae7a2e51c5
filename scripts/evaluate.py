"""Evaluate a trained model on any labelled folder: what it gets wrong, and how far to trust it.

python scripts/evaluate.py --model-data build/output/model.tar.gz --data build/sample-data/test --output OUT
    [--runtime auto|torch|onnx|onnx-int8]
"""

import sys

from classifier_host.cli import evaluate

if __name__ == "__main__":
    sys.exit(evaluate.main())
