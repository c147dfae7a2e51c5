"""Issue 21: a training folder as a scrape leaves it. Files that are not readable images (extreme shapes,
0 bytes, a dangling link, a 100 MP PNG) are skipped and counted by reason, and the job trains to exactly
the accuracy it reaches without them; readable odd files (CMYK, animated GIF, 16-bit, names with spaces
and non-ASCII letters) are decoded and trained on."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from classifier.contract.paths import SageMakerPaths
from classifier.model import artifact
from classifier.training import trainer

HP = {
    "model-name": "resnet18",
    "weights": "none",
    "fine-tune": "full",
    "image-size": "32",
    "epochs": "2",
    "batch-size": "16",
    "lr": "0.003",
    "num-workers": "2",
    "augment": "basic",
    "export": "false",
}
BAD_KINDS = "2 aspect ratio over the limit, 1 empty file, 1 missing file, 1 too many pixels"


def add_readable_odd_files(root) -> int:
    """Re-encodings of each split's first image of the first class: same content, odd container."""
    added = 0
    for split in ("train", "valid", "test"):
        folder = sorted((root / split).iterdir())[0]
        photo = Image.open(sorted(folder.iterdir())[0]).convert("RGB")
        photo.convert("CMYK").save(folder / "cmyk copy.jpg")
        frames = [photo.convert("P"), photo.rotate(90).convert("P")]
        frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
        grey = np.asarray(photo.convert("L"), dtype=np.uint16) * 257
        Image.fromarray(grey).save(folder / "sixteen bit.png")
        photo.save(folder / "chien Ünïcødé 犬 photo.jpg")
        added += 4
    return added


def add_bad_files(root) -> None:
    folder = sorted((root / "train").iterdir())[0]
    Image.new("RGB", (1, 20000), (9, 9, 9)).save(folder / "thin.png")
    Image.new("RGB", (30000, 2), (9, 9, 9)).save(folder / "wide.png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "gone.jpg").symlink_to(root / "no-such-file.jpg")
    (folder / "a folder.jpg").mkdir()  # a folder named like an image is not a file: nothing to read or count
    Image.new("1", (10000, 10000), 1).save(folder / "huge 1-bit.png")  # 100 MP over a few kB


def run_job(tmp_path, data_dir) -> tuple[dict, str]:
    base = tmp_path / "ml"
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "data").mkdir()
    (base / "input" / "data" / "training").symlink_to(data_dir)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(HP))
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setenv("SAGEMAKER_BASE_DIR", str(base))
        code = trainer.main()
    assert code == 0, out.getvalue()[-3000:] + err.getvalue()[-3000:]
    return artifact.load_metadata(SageMakerPaths(base).model), out.getvalue() + err.getvalue()


def test_bad_files_are_skipped_by_reason_and_change_nothing(tiny_data, tmp_path):
    clean = shutil.copytree(tiny_data, tmp_path / "clean")
    add_readable_odd_files(clean)
    hostile = shutil.copytree(clean, tmp_path / "hostile", symlinks=True)
    add_bad_files(hostile)
    reference, _ = run_job(tmp_path / "clean-job", clean)
    result, log = run_job(tmp_path / "hostile-job", hostile)
    assert f"train: skipped 5 file(s) that are not readable images ({BAD_KINDS})" in log
    # 12 per class x 5, plus the 4 readable odd files: each decoded, none skipped
    assert "train: 64 images from folder (5 skipped)" in log and "test: 24 images from folder (0 skipped)" in log
    assert result["metrics"]["test_acc"] == reference["metrics"]["test_acc"]
    assert learned(result) == learned(reference)


def learned(metadata: dict) -> list[dict]:
    """Each epoch's losses and accuracies (not its timings)."""
    return [
        {k: v for k, v in epoch.items() if k.endswith(("_loss", "_acc"))} for epoch in metadata["metrics"]["history"]
    ]
