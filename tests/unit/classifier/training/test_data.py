import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from classifier.model import decoding
from classifier.training import augmentation, data
from classifier.training.data import DataError


def copy_set(src, dst, splits=("train", "valid", "test")):
    for split in splits:
        shutil.copytree(src / split, dst / split)
    return dst


def test_training_channel_with_three_folders(tiny_data):
    found = data.discover({"training": tiny_data}, 0.1, 0.1, seed=1)
    assert found.classes == sorted(p.name for p in (tiny_data / "train").iterdir())
    assert {n: len(s.samples) for n, s in found.splits.items()} == {"train": 60, "valid": 20, "test": 20}
    assert found.notes == []


def test_separate_channels(tiny_data):
    channels = {name: tiny_data / name for name in ("train", "valid", "test")}
    found = data.discover(channels, 0.1, 0.1, seed=1)
    assert len(found.splits["valid"].samples) == 20


def test_missing_valid_and_test_are_split_stratified_and_seeded(tiny_data, tmp_path):
    root = copy_set(tiny_data, tmp_path / "set", splits=("train",))
    first = data.discover({"training": root}, 0.25, 0.25, seed=7)
    again = data.discover({"training": root}, 0.25, 0.25, seed=7)
    assert first.splits["valid"].samples == again.splits["valid"].samples
    assert len(first.notes) == 2 and "no valid/ folder" in first.notes[0]
    # 12 per class: 3 to valid, then 25% of the remaining 9 (2) to test, in every class.
    for name, per_class in (("valid", 3), ("test", 2)):
        labels = [label for _, label in first.splits[name].samples]
        assert sorted(set(labels)) == list(range(5))
        assert all(labels.count(k) == per_class for k in range(5))
    everything = [s for split in first.splits.values() for s in split.samples]
    assert len(everything) == len(set(everything)) == 60  # nothing lost, nothing twice
    other_seed = data.discover({"training": root}, 0.25, 0.25, seed=8)
    assert other_seed.splits["valid"].samples != first.splits["valid"].samples


def test_class_folders_must_match(tiny_data, tmp_path):
    root = copy_set(tiny_data, tmp_path / "set")
    (root / "valid" / "001.Red_circle").rename(root / "valid" / "001.Red_ball")
    with pytest.raises(DataError) as info:
        data.discover({"training": root}, 0.1, 0.1, seed=1)
    message = str(info.value)
    assert "valid/" in message and "001.Red_circle" in message and "001.Red_ball" in message


def test_missing_train_folder_is_named(tmp_path):
    (tmp_path / "valid").mkdir()
    with pytest.raises(DataError, match="no train/ folder"):
        data.discover({"training": tmp_path}, 0.1, 0.1, seed=1)
    with pytest.raises(DataError, match="no 'train' or 'training' channel"):
        data.discover({"model": tmp_path}, 0.1, 0.1, seed=1)


def write_odd_files(folder):
    """Every kind of file a scraped image set holds, readable or not."""
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    rgb.save(folder / "good.jpg")
    full = (folder / "good.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.jpg").write_bytes(b"")
    rgb.convert("L").save(folder / "gray.png")
    rgb.convert("CMYK").save(folder / "cmyk.jpg")
    rgb.convert("P").save(folder / "palette.gif")
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)  # fully transparent: must come out white, not black
    rgba.save(folder / "transparent.png")
    (folder / ".DS_Store").write_bytes(b"\0\0")


def test_bad_files_are_skipped_and_counted_and_odd_modes_converted(tmp_path):
    write_odd_files(tmp_path)
    samples = [(p, 0) for p in sorted(tmp_path.iterdir()) if not p.name.startswith(".")]
    prep = decoding.eval_preprocessing(32)
    decoded = data.decode_all(samples, lambda p: decoding.eval_image(p, prep), 32, workers=2)
    skipped = sorted((s.path.name, s.kind) for s in decoded.skipped)
    assert skipped == [("empty.jpg", "empty file"), ("notes.txt", "unreadable"), ("truncated.jpg", "unreadable")]
    assert decoded.images.shape == (5, 3, 32, 32) and decoded.images.dtype == torch.uint8
    summary = data.skipped_summary("train", decoded.skipped)
    assert "skipped 3 file(s)" in summary
    white = decoding.eval_image(tmp_path / "transparent.png", prep)
    assert int(white.min()) == 255


def test_decode_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    with pytest.raises(decoding.BadImage, match="larger than"):
        decoding.open_rgb(tmp_path / "big.png")


def test_split_of_only_bad_files_is_an_error(tmp_path, monkeypatch):
    for split in ("train", "valid", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        (tmp_path / split / "a" / "x.jpg").write_text("nope")
    found = data.discover({"training": tmp_path}, 0.1, 0.1, seed=1)
    decoded = data.decode_all(found.splits["train"].samples, lambda p: augmentation.decode_for_cache(p, 32), 37, 0)
    assert len(decoded.labels) == 0 and len(decoded.skipped) == 1


def test_training_decode_is_reduced_but_eval_is_exact(tmp_path):
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (400, 500, 3), dtype=np.uint8))
    image.save(tmp_path / "photo.jpg", quality=92)
    cached = augmentation.decode_for_cache(tmp_path / "photo.jpg", 64)
    side = augmentation.cache_side(64)
    assert cached.shape == (3, side, side)
    prep = decoding.eval_preprocessing(64)
    assert prep["resize"] == 73 and prep["crop"] == 64
    exact = decoding.eval_image((tmp_path / "photo.jpg").read_bytes(), prep)
    assert np.array_equal(exact, decoding.eval_image(tmp_path / "photo.jpg", prep))  # bytes or path: same pixels
    assert exact.shape == (3, 64, 64)


def test_train_preset_output_shape():
    images = torch.randint(0, 255, (3, 80, 80), dtype=torch.uint8)
    for augment in ("basic", "trivialaugment"):
        out = augmentation.train_preset(64, augment)(images)
        assert out.shape == (3, 64, 64) and out.dtype == torch.uint8
