"""Which architectures export: the trainer's export step (classifier/training/export.py) on untrained models.

    python benchmarks/export_architectures.py [--models resnet50 efficientnet_b0 vit_b_16] [--classes 133]

Each model is built as the trainer builds it (weights=none, a new head), then exported to ONNX fp32
and int8 and scored through classifier/model/runtimes.py on random uint8 images (labels random too, so
accuracy means nothing here; agreement with torch fp32 and the time each step takes do). Prints one
JSON line per model: exported runtimes, skipped ones with the reason, seconds, file sizes.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import torch

from classifier.model import decoding
from classifier.model import network as model_lib
from classifier.training import export


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet50", "efficientnet_b0", "vit_b_16"])
    parser.add_argument("--classes", type=int, default=133)
    parser.add_argument("--image-size", type=int, default=224, help="vit_b_16 needs 224")
    parser.add_argument("--images", type=int, default=64, help="test images (random) scored per runtime")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    prep = decoding.eval_preprocessing(args.image_size)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (args.images, 3, args.image_size, args.image_size), dtype=torch.uint8, generator=generator
    )
    labels = torch.randint(0, args.classes, (args.images,), generator=generator)
    calibration = images[: export.CALIBRATION_IMAGES // 2].numpy()
    for name in args.models:
        torch.manual_seed(0)
        network = model_lib.build(name, args.classes).eval()
        with tempfile.TemporaryDirectory() as folder:
            outcome = export.export_and_evaluate(network, prep, Path(folder), images, labels, calibration)
            sizes = {
                runtime: round((Path(folder) / score["file"]).stat().st_size / 1e6, 1)
                for runtime, score in outcome.scores.items()
                if runtime != "torch"
            }
        print(
            json.dumps(
                {
                    "model": name,
                    "seconds": round(outcome.seconds, 1),
                    "size_mb": sizes,
                    "agreement": {r: s["agreement"] for r, s in outcome.scores.items()},
                    "skipped": outcome.skipped,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
