"""scripts/transform.py --local: a real local-mode Batch Transform of the serving image over a folder laid
out in class folders, with good, truncated, non-image, text-like, oversized and hidden files (nested
folders too)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from classifier_host.sagemaker import local
from classifier_host.sagemaker import transform as transform_jobs

from .conftest import container_ids

ROOT = Path(__file__).resolve().parents[2]
IMAGES_PER_CLASS = 3


@pytest.fixture(scope="module")
def folder(sample_data, tmp_path_factory) -> Path:
    """Two classes of the sample set's test split, and the files a real folder holds besides images."""
    root = tmp_path_factory.mktemp("to-classify")
    classes = sorted(p.name for p in (sample_data / "test").iterdir())[:2]
    for name in classes:
        for image in sorted((sample_data / "test" / name).iterdir())[:IMAGES_PER_CLASS]:
            (root / name).mkdir(exist_ok=True)
            shutil.copy(image, root / name / image.name)
    nested = root / classes[0] / "more"
    nested.mkdir()
    shutil.copy(next((sample_data / "test" / classes[0]).iterdir()), nested / "again.jpg")
    first = next((sample_data / "test" / classes[1]).iterdir()).read_bytes()
    (root / classes[1] / "broken.jpg").write_bytes(first[: len(first) // 3])  # a truncated JPEG
    # No byte below 0x20 and not UTF-8: local mode's splitter would decode it as text and stop the job.
    (root / classes[1] / "textlike.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / classes[1] / "notes.txt").write_text("not an image\n")
    (root / classes[0] / "huge.jpg").write_bytes(os.urandom(1024 * 1024 + 1))  # over --max-payload-mb 1
    (root / ".DS_Store").write_bytes(b"\0")
    return root


def transform(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "transform.py"), "--local", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )


def test_local_transform_classifies_every_image_and_lists_the_bad_ones(
    folder, trained_model, serve_cpu_image, tmp_path
):
    before = container_ids()
    out = tmp_path / "out"
    done = transform(
        "--model-data", str(trained_model[0]), "--input", str(folder), "--output", str(out), "--max-payload-mb", "1"
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"serving image: {serve_cpu_image}" in done.stdout

    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    expected = sorted(
        [
            f"{c}/{f.name}"
            for c in classes
            for f in (folder / c).iterdir()
            if f.suffix == ".jpg" and f.name not in ("broken.jpg", "textlike.jpg", "huge.jpg")
        ]
        + [f"{classes[0]}/more/again.jpg"]
    )
    assert [line["path"] for line in lines] == expected
    for line in lines:
        probabilities = [p["probability"] for p in line["predictions"]]
        assert len(probabilities) == 5 and probabilities == sorted(probabilities, reverse=True)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == len(expected) + 4 and summary["classified"] == len(expected)
    reasons = {f["path"]: f["reason"] for f in summary["failed"]}
    assert set(reasons) == {
        f"{classes[1]}/broken.jpg",
        f"{classes[1]}/notes.txt",
        f"{classes[1]}/textlike.jpg",
        f"{classes[0]}/huge.jpg",
    }
    assert "MaxPayloadInMB" in reasons[f"{classes[0]}/huge.jpg"]
    assert "local mode cannot send" in reasons[f"{classes[1]}/textlike.jpg"]
    assert all("(4" in reasons[f"{classes[1]}/{name}"] for name in ("broken.jpg", "notes.txt"))  # the 4xx, as records
    # Labelled: accuracy and per-class figures from the same answers, and the plot beside them.
    correct = sum(line["predictions"][0]["label"] == line["path"].split("/")[0] for line in lines)
    assert summary["accuracy"] == pytest.approx(correct / len(lines)) and summary["scored"] == len(lines)
    assert set(classes) <= set(summary["per_class"])
    assert (out / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert container_ids() - before == set(), "the transform's container was left behind"
    assert not list(Path(tempfile.gettempdir()).glob(f"{transform_jobs.SCRATCH_PREFIX}*"))


def test_a_running_local_endpoint_keeps_the_port_and_the_transform_refuses(
    folder, trained_model, serve_cpu_image, tmp_path
):
    """Both serve on localhost:8080: local mode would start the transform's container anyway and send its
    images to the endpoint's model. The transform refuses before starting anything; the endpoint goes on."""
    endpoint = local.deploy_local(serve_cpu_image, f"file://{trained_model[0]}")
    try:
        before = container_ids()
        done = transform(
            "--model-data", str(trained_model[0]), "--input", str(folder), "--output", str(tmp_path / "out")
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert "localhost:8080 is in use: a local endpoint" in done.stderr
        assert container_ids() == before and not (tmp_path / "out").exists()
        assert requests.get(endpoint.url + "/ping", timeout=5).status_code == 200
    finally:
        local.delete_local(endpoint)


def test_bad_model_or_folder_fail_before_any_container(folder, tmp_path):
    before = container_ids()
    not_a_model = tmp_path / "model.tar.gz"
    not_a_model.write_bytes(b"not a tarball")
    done = transform("--model-data", str(not_a_model), "--input", str(folder), "--output", str(tmp_path / "o"))
    assert done.returncode == 2 and "is not a readable model.tar.gz" in done.stderr, done.stderr
    done = transform(
        "--model-data", str(not_a_model), "--input", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")
    )
    assert done.returncode == 2 and "no such folder" in done.stderr, done.stderr
    assert container_ids() == before
