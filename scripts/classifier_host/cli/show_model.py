"""Print what a model.tar.gz holds: classes, model, preprocessing and the metrics it reached.

python scripts/show_model.py build/output/model.tar.gz
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
from pathlib import Path

from . import errors


def read_metadata(model_tar: Path) -> dict:
    from classifier.model import artifact

    with tarfile.open(model_tar) as tar:
        member = tar.extractfile(artifact.METADATA_FILE)
        if member is None:
            raise SystemExit(f"error: {model_tar} has no {artifact.METADATA_FILE}")
        return json.load(member)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_tar", type=Path)
    args = parser.parse_args(argv)
    if not args.model_tar.is_file():
        return errors.fail(f"{args.model_tar} does not exist", 1)
    meta = read_metadata(args.model_tar)
    m = meta["metrics"]
    print(f"model:      {args.model_tar.resolve()}")
    print(f"network:    {meta['model_name']} at {meta['image_size']}px, {len(meta['classes'])} classes")
    print(
        f"accuracy:   test {m['test_acc']:.1%}, best validation {m['best_val_acc']:.1%} "
        f"(chance {1 / len(meta['classes']):.1%})"
    )
    return 0


if __name__ == "__main__":  # python -m classifier_host.cli.show_model
    sys.exit(main())
