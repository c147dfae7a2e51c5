"""What the data fingerprint costs (data/fingerprint.py): a dog-breed-sized folder, hashed, against only listing
its paths and sizes (what a fingerprint without the contents would read).

    python benchmarks/data_fingerprint.py [--files 8000] [--kb 130]

The Udacity dog set is 8,351 JPEGs, about 1.1 GB (~130 KB each). The benchmark writes --files random files of
--kb KB in a temp folder (133 class folders), then times fingerprint.of_folder (SHA-256 of every file's bytes)
and a walk that stats every file. Both run with the files in the page cache (just written); a cold read adds the
disk's time to read the bytes once.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from classifier_host.data import fingerprint


def make(folder: Path, files: int, kb: int) -> None:
    block = os.urandom(kb * 1024)
    for index in range(files):
        sub = folder / "train" / f"{index % 133:03d}.Breed"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{index:05d}.jpg").write_bytes(block[index % 97 :] + index.to_bytes(4, "big"))


def listing(folder: Path) -> int:
    return sum(p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=8000)
    parser.add_argument("--kb", type=int, default=130)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make(folder, args.files, args.kb)
        start = time.perf_counter()
        listing(folder)
        listed = time.perf_counter() - start
        start = time.perf_counter()
        found = fingerprint.of_folder(folder)
        hashed = time.perf_counter() - start
    mb = found.bytes / 1e6
    print(f"{found.files} files, {mb:.0f} MB")
    print(f"paths and sizes only  {listed:6.2f} s")
    print(f"fingerprint (SHA-256) {hashed:6.2f} s ({mb / hashed:.0f} MB/s; {hashed / listed:.1f}x the listing)")


if __name__ == "__main__":
    main()
