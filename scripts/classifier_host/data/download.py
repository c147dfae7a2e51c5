"""The Udacity dog-breed set (dogImages.zip): downloaded and unpacked once under a work folder.

The download needs the internet (not available on our CI machines).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from .archives import unpack_once

DATASET_URL = "https://s3-us-west-1.amazonaws.com/udacity-aind/dog-project/dogImages.zip"


def download(url: str, workdir: Path) -> Path:
    """Fetch and unpack the archive once; returns the folder holding train/ valid/ test/."""
    workdir.mkdir(parents=True, exist_ok=True)
    archive = workdir / Path(url).name
    if not archive.exists():
        print(f"downloading {url} ...")
        partial = archive.with_suffix(".part")
        urllib.request.urlretrieve(url, partial)
        partial.rename(archive)
    return unpack_once(archive, workdir / "unpacked") / "dogImages"
