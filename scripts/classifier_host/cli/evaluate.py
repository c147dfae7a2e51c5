"""Evaluate a trained model on any labelled folder: what it gets wrong, and how far to trust it.

    python scripts/evaluate.py --model-data build/output/model.tar.gz --data build/sample-data/test --output OUT
        [--runtime auto|torch|onnx|onnx-int8]

--data holds one folder per class, named as the model's classes (a subset is fine). The forward pass is
the one a CPU endpoint serves (reports/evaluation.py says how), the page says which. Writes
OUT/evaluation.json (classifier/model/evaluation.py) and OUT/evaluation.html.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from .errors import exit_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-data", type=Path, required=True, help="model.tar.gz (or its unpacked folder)")
    parser.add_argument("--data", type=Path, required=True, help="folder with one subfolder per class")
    parser.add_argument("--output", type=Path, required=True, help="folder for evaluation.json and evaluation.html")
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=("auto", "torch", "onnx", "onnx-int8"),
        help="forward pass (default auto: the one a CPU endpoint serves)",
    )
    args = parser.parse_args(argv)
    start = time.monotonic()
    from classifier.model import artifact, evaluation  # numpy here, torch in evaluate: after the arguments

    from ..reports import evaluation_page
    from ..reports.evaluation import EvaluationError, evaluate, model_folder

    def evaluate_and_write() -> None:
        with tempfile.TemporaryDirectory() as scratch:
            result = evaluate(model_folder(args.model_data, Path(scratch)), args.data, args.runtime)
        args.output.mkdir(parents=True, exist_ok=True)
        (args.output / artifact.EVALUATION_FILE).write_text(json.dumps(result) + "\n")
        page = args.output / "evaluation.html"
        page.write_text(
            evaluation_page.render(result, f"Evaluation of {args.model_data.name} on {args.data}", args.data)
        )
        print(evaluation.summary(result) + skipped_counts(result["skipped"]))
        print(f"wrote {args.output / artifact.EVALUATION_FILE} and {page} in {time.monotonic() - start:.0f}s")

    return exit_status(evaluate_and_write, EvaluationError, status=2)


def skipped_counts(skipped: list[dict]) -> str:
    """'; skipped 3 file(s) that are not readable images (2 empty file, 1 unreadable)', or nothing."""
    if not skipped:
        return ""
    from classifier.training import data

    counts = data.count_kinds(entry["kind"] for entry in skipped)
    return f"; skipped {len(skipped)} file(s) that are not readable images ({counts})"


if __name__ == "__main__":  # python -m classifier_host.cli.evaluate
    sys.exit(main())
