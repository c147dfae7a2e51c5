"""Which serving image a model runs on, from its artifact's metadata.json and the instance type.

serve-cpu (slim: ONNX Runtime, no torch) for CPU instances when the artifact has ONNX exports; serve
(torch, CUDA) for GPU instances and for artifacts without exports (trained with export off or before
exports existed, or a model whose export failed). `--image` overrides both.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import IO

from classifier.model import artifact
from classifier.model.runtimes import ONNX, ONNX_INT8

SERVE, SERVE_CPU = "serve", "serve-cpu"  # the roles `make push` records in build/images.json
GPU_INSTANCE_FAMILIES = ("ml.g", "ml.p")  # NVIDIA instances (ml.inf/ml.trn are Neuron, not CUDA)


def is_gpu(instance_type: str) -> bool:
    return instance_type == "local_gpu" or instance_type.startswith(GPU_INSTANCE_FAMILIES)


def image_role(metadata: dict, instance_type: str) -> tuple[str, str]:
    """('serve' | 'serve-cpu', why) for an artifact's metadata on `instance_type`."""
    if is_gpu(instance_type):
        return SERVE, f"{instance_type} has a GPU: the serve image (torch with AMP)"
    onnx = [name for name in (ONNX_INT8, ONNX) if name in artifact.runtime_scores(metadata)]
    if onnx:
        return SERVE_CPU, f"{instance_type} is a CPU instance and the model has {' and '.join(onnx)} exports"
    return SERVE, (
        f"the model has no ONNX export ({_why_not(metadata)}): the serve image runs it with torch on {instance_type}"
    )


def local_choice(metadata: dict, gpu: bool) -> tuple[str, str]:
    """(the local image, why) a model serves on in local mode (deploy.py --local, transform.py --local)."""
    from .names import local_image

    role, why = image_role(metadata, "local_gpu" if gpu else "local")
    return local_image(role), why


def _why_not(metadata: dict) -> str:
    export = metadata.get("export", {})
    if not export.get("enabled"):
        return "trained with export off or before exports existed"
    reasons = export.get("skipped", {})
    return f"the trainer skipped it: {reasons.get(ONNX, 'see the training log')}"


def metadata_from_tar(stream: IO[bytes], where: str) -> dict:
    """metadata.json from a model.tar.gz read as a stream: stops at that member, so from S3 it reads only
    the bytes before it."""
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as tar:
            for member in tar:
                if member.isfile() and Path(member.name).parts == (artifact.METADATA_FILE,):  # "./" is dropped
                    return json.loads(tar.extractfile(member).read())
    except (tarfile.TarError, OSError, EOFError, json.JSONDecodeError) as err:
        raise ValueError(f"{where} is not a readable model.tar.gz: {err}") from None
    raise ValueError(
        f"{where} has no {artifact.METADATA_FILE}: is it a model.tar.gz written by this project's trainer?"
    )


def local_metadata(path: Path) -> dict:
    with open(path, "rb") as stream:
        return metadata_from_tar(stream, str(path))


def s3_metadata(s3_client, uri: str) -> dict:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        return metadata_from_tar(body, uri)
    finally:
        body.close()
