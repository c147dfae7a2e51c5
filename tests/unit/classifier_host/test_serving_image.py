"""Which serving image a model gets: from its metadata.json (read out of model.tar.gz) and the instance."""

from __future__ import annotations

import json
import tarfile

import pytest

from classifier_host.images import serving
from classifier_host.images.serving import SERVE, SERVE_CPU

EXPORTED = {"torch": {"file": "model.pt"}, "onnx": {"file": "model.onnx"}, "onnx-int8": {"file": "model.int8.onnx"}}


@pytest.mark.parametrize(
    "metadata,instance,role,why",
    [
        (
            {"runtimes": EXPORTED},
            "ml.m5.xlarge",
            SERVE_CPU,
            "CPU instance and the model has onnx-int8 and onnx exports",
        ),
        ({"runtimes": EXPORTED}, "local", SERVE_CPU, "has onnx-int8 and onnx exports"),
        ({"runtimes": EXPORTED}, "ml.g5.xlarge", SERVE, "ml.g5.xlarge has a GPU"),
        ({"runtimes": EXPORTED}, "ml.p4d.24xlarge", SERVE, "has a GPU"),
        ({"runtimes": EXPORTED}, "local_gpu", SERVE, "has a GPU"),
        ({"runtimes": {"torch": {}}, "export": {"enabled": False}}, "ml.c6i.xlarge", SERVE, "trained with export off"),
        (
            {"runtimes": {"torch": {}}, "export": {"enabled": True, "skipped": {"onnx": "Unsupported op aten::foo"}}},
            "ml.m5.xlarge",
            SERVE,
            "the trainer skipped it: Unsupported op aten::foo",
        ),
        ({"format_version": 1, "metrics": {}}, "ml.m5.xlarge", SERVE, "before exports existed"),  # version 1 artifact
    ],
)
def test_image_role(metadata, instance, role, why):
    got, reason = serving.image_role(metadata, instance)
    assert got == role and why in reason


def write_tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            source = path.parent / "member"
            source.write_bytes(data)
            tar.add(source, arcname=name)


def test_metadata_is_read_from_the_tarball(tmp_path):
    tar = tmp_path / "model.tar.gz"
    write_tar(tar, {"model.pt": b"x" * 1000, "metadata.json": json.dumps({"runtimes": EXPORTED}).encode()})
    assert serving.local_metadata(tar) == {"runtimes": EXPORTED}
    write_tar(tar, {"code/metadata.json": b"[]", "./metadata.json": b"{}"})  # only the top level's counts
    assert serving.local_metadata(tar) == {}


@pytest.mark.parametrize(
    "members,message",
    [
        ({"model.pt": b"x"}, "has no metadata.json"),
        ({"sub/dir/metadata.json": b"{}"}, "has no metadata.json"),
        ({"metadata.json": b"{not json"}, "is not a readable model.tar.gz"),
    ],
)
def test_a_tarball_without_readable_metadata_is_named(tmp_path, members, message):
    tar = tmp_path / "model.tar.gz"
    write_tar(tar, members)
    with pytest.raises(ValueError, match=message):
        serving.local_metadata(tar)
    tar.write_bytes(b"plain bytes")
    with pytest.raises(ValueError, match="is not a readable model.tar.gz"):
        serving.local_metadata(tar)
