"""Archives unpacked once (data/archives.py): an extraction cut short is redone, a complete one kept."""

from __future__ import annotations

import io
import tarfile
import zipfile

from classifier_host.data.archives import unpack_once


def _tar(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_an_interrupted_extraction_is_redone(tmp_path):
    archive = _tar(tmp_path / "model.tar.gz", {"metadata.json": b"{}", "model.pt": b"weights"})
    target = tmp_path / "unpacked" / "model"
    # What a run killed mid-extraction leaves: a partial folder, no target.
    (tmp_path / "unpacked" / "model.partial").mkdir(parents=True)
    (tmp_path / "unpacked" / "model.partial" / "metadata.json").write_text("{}")
    assert unpack_once(archive, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["metadata.json", "model.pt"]
    assert not (tmp_path / "unpacked" / "model.partial").exists()


def test_a_complete_extraction_is_kept(tmp_path):
    archive = _tar(tmp_path / "output.tar.gz", {"profile/epochs.jsonl": b""})
    target = unpack_once(archive, tmp_path / "output")
    (target / "note").write_text("mine")
    unpack_once(archive, target)
    assert (target / "note").read_text() == "mine"


def test_zip_archives(tmp_path):
    with zipfile.ZipFile(tmp_path / "dogImages.zip", "w") as zf:
        zf.writestr("dogImages/train/001.Affenpinscher/a.jpg", b"jpeg")
    target = unpack_once(tmp_path / "dogImages.zip", tmp_path / "unpacked")
    assert (target / "dogImages" / "train" / "001.Affenpinscher" / "a.jpg").read_bytes() == b"jpeg"
