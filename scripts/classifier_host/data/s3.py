"""Data on S3: s3:// URIs, the listing of a prefix, a folder uploaded once (a cloud job's local --data,
the dog-breed set). Tested against moto.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# The checksum the project stores in each object's metadata: ETags are not MD5s under KMS or multipart.
CHECKSUM_KEY = "sha256"


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or not uri[5:].strip("/"):
        raise ValueError(f"not an S3 URI: {uri!r} (expected s3://BUCKET/PREFIX)")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def objects(client, bucket: str, prefix: str) -> dict[str, int]:
    """Every object under the prefix (a folder: prefix/...; the whole bucket when empty): key -> size."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        found.update((o["Key"], o["Size"]) for o in page.get("Contents", []))
    return found


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def upload_folder(
    client, local: Path, bucket: str, prefix: str, workers: int = 16, kms_key_id: str | None = None
) -> int:
    """Upload every file under `local` to s3://bucket/prefix/<relative path>; returns how many went up.

    A file already there with the same size and the same sha256 in its metadata is skipped, so a
    second upload of the same folder sends nothing.
    """
    files = [p for p in sorted(local.rglob("*")) if p.is_file() and not p.name.startswith(".")]

    def key_of(path: Path) -> str:
        rel = path.relative_to(local).as_posix()
        return f"{prefix}/{rel}" if prefix else rel

    existing = objects(client, bucket, prefix)  # one listing instead of a HEAD per file
    extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}

    def put(path: Path) -> bool:
        key, checksum = key_of(path), sha256_of(path)
        if existing.get(key) == path.stat().st_size:
            stored = client.head_object(Bucket=bucket, Key=key).get("Metadata", {}).get(CHECKSUM_KEY)
            if stored == checksum:
                return False
        client.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {CHECKSUM_KEY: checksum}, **extra})
        return True

    with ThreadPoolExecutor(workers) as pool:
        sent = sum(pool.map(put, files))
    if len(files) > sent:
        print(f"skipped {len(files) - sent} files already in s3://{bucket}/{prefix} (same size and sha256)")
    return sent
