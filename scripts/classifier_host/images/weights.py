"""torchvision's ImageNet weights for the training image, downloaded on the host into build/weights.

The Dockerfile copies that folder into the training image's weight cache, so the image build and the
training jobs need no network (jobs can run with network isolation). Where the download is not
possible (no network), this warns and goes on: the image then lacks those weights, and a job asking
for weights=imagenet fails with a clear reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def fetch(model_name: str, dest: Path) -> Path | None:
    """dest/<the weights' file name>, downloaded unless there; None (with a warning) when it cannot be."""
    import torch
    import torchvision

    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    target = dest / os.path.basename(weights.url)
    if target.is_file():
        print(f"{model_name}: {target.name} already present")
        return target
    try:
        torch.hub.download_url_to_file(weights.url, str(target), hash_prefix=None, progress=False)
    except Exception as err:  # offline: the build must still go on
        print(
            f"warning: could not download {model_name} ImageNet weights ({weights.url}): {err}. "
            "The image will not have them; jobs with weights=imagenet for this model will fail clearly.",
            file=sys.stderr,
        )
        return None
    print(f"{model_name}: downloaded {target.name} ({target.stat().st_size / 1e6:.0f} MB)")
    return target
