"""A fingerprint of a dataset, so a run says which data made its model.

A folder: SHA-256 over every file's relative path, size and SHA-256 of its contents, in path order (the
contents are read once; benchmarks/data_fingerprint.py measures it on a dog-breed-sized set). An s3:// prefix:
SHA-256 over every object's relative key, size and ETag (S3's own content hash, MD5 for a single-part upload),
read from the listing alone. The same folder gives the same digest wherever it lies; one changed byte changes it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

FOLDER_METHOD = "sha256(relative path, size, sha256(contents)) per file"
S3_METHOD = "sha256(relative key, size, ETag) per object"


@dataclass(frozen=True)
class Fingerprint:
    digest: str  # "sha256:..."
    files: int
    bytes: int
    method: str

    def tags(self) -> dict[str, str]:
        return {
            "data.fingerprint": self.digest,
            "data.files": str(self.files),
            "data.bytes": str(self.bytes),
            "data.fingerprint_method": self.method,
        }


def of_folder(folder: Path) -> Fingerprint:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    total, count, overall = 0, 0, hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(path, "rb") as f:
            content = hashlib.file_digest(f, "sha256").hexdigest()
        size = path.stat().st_size
        overall.update(f"{path.relative_to(folder).as_posix()}\t{size}\t{content}\n".encode())
        total, count = total + size, count + 1
    return Fingerprint(f"sha256:{overall.hexdigest()}", count, total, FOLDER_METHOD)


def of_s3(s3_client, uri: str) -> Fingerprint:
    from .s3 import parse_s3_uri

    bucket, prefix = parse_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    objects = [
        o
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
        if not o["Key"].endswith("/")
    ]
    overall = hashlib.sha256()
    for o in sorted(objects, key=lambda o: o["Key"]):
        overall.update(f"{o['Key'][len(prefix) :]}\t{o['Size']}\t{o['ETag'].strip(chr(34))}\n".encode())
    return Fingerprint(f"sha256:{overall.hexdigest()}", len(objects), sum(o["Size"] for o in objects), S3_METHOD)
