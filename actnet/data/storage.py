"""Where shard sets live: a local folder or S3-compatible object storage (``s3://bucket/prefix``).

Both backends offer the same small interface over paths relative to their root. Every write is atomic: a local
file is written under a hidden temporary name and renamed (:mod:`actnet.files`); an S3 object appears whole when
its PUT completes.
So a reader never sees half an object, and "complete" is signalled by writing a marker object last.

S3 uses boto3's default credential chain; ``AWS_ENDPOINT_URL`` points it at any S3-compatible server.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from actnet.errors import ActnetError
from actnet.files import atomic_write, move_into_place


def is_remote(url: str) -> bool:
    return str(url).startswith("s3://")


class LocalStorage:
    """A folder on a local or network file system."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().absolute()

    def url(self, rel: str = "") -> str:
        return str(self.root / rel) if rel else str(self.root)

    def child(self, rel: str) -> LocalStorage:
        return LocalStorage(self.root / rel)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def read_bytes(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def open_read(self, rel: str) -> BinaryIO:
        return open(self.root / rel, "rb")

    def read_range(self, rel: str, start: int, length: int) -> bytes:
        """``length`` bytes from offset ``start`` (one positioned read; the page cache does the rest)."""
        fd = os.open(self.root / rel, os.O_RDONLY)
        try:
            data = os.pread(fd, length, start)
        finally:
            os.close(fd)
        if len(data) != length:
            raise ActnetError(f"{self.root / rel}: truncated (wanted bytes {start}..{start + length})")
        return data

    def write_bytes(self, rel: str, data: bytes) -> None:
        atomic_write(self.root / rel, data)

    def put_file(self, local: str | Path, rel: str) -> None:
        """Move a finished local file into place (atomically when on the same file system)."""
        move_into_place(local, self.root / rel)

    def list(self, prefix: str = "") -> list[str]:
        """Relative names of the files under ``prefix`` (a folder), sorted; hidden temporaries excluded."""
        base = self.root / prefix
        if not base.is_dir():
            return []
        names = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                names.append(str(path.relative_to(self.root)))
        return sorted(names)

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def staging_dir(self) -> Path:
        """Scratch space on the same file system, so finished files are renamed into place (removed when empty)."""
        path = self.root / ".staging"
        path.mkdir(parents=True, exist_ok=True)
        return path


class S3Storage:
    """A prefix in an S3-compatible bucket."""

    def __init__(self, url: str, work_dir: str | Path | None = None):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ActnetError(f"--out {url!r}: an S3 URL needs a bucket, as in s3://bucket/prefix")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self._work_dir = work_dir
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3

            self._client = boto3.client("s3")
        return self._client

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def url(self, rel: str = "") -> str:
        key = self._key(rel) if rel else self.prefix
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def child(self, rel: str) -> S3Storage:
        child = S3Storage(self.url(rel.strip("/")), self._work_dir)
        child._client = self._client
        return child

    def exists(self, rel: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def read_bytes(self, rel: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()

    def open_read(self, rel: str) -> BinaryIO:
        return self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"]

    def read_range(self, rel: str, start: int, length: int) -> bytes:
        """``length`` bytes from offset ``start``: one ranged GET."""
        rng = f"bytes={start}-{start + length - 1}"
        data = self.client.get_object(Bucket=self.bucket, Key=self._key(rel), Range=rng)["Body"].read()
        if len(data) != length:
            raise ActnetError(f"{self.url(rel)}: truncated (wanted bytes {start}..{start + length})")
        return data

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data)

    def put_file(self, local: str | Path, rel: str) -> None:
        self.client.upload_file(str(local), self.bucket, self._key(rel))
        os.unlink(local)

    def list(self, prefix: str = "") -> list[str]:
        full = self._key(prefix.rstrip("/") + "/") if prefix else (self.prefix + "/" if self.prefix else "")
        names = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(self.prefix) + 1 :] if self.prefix else obj["Key"]
                names.append(rel)
        return sorted(names)

    def delete(self, rel: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(rel))

    def staging_dir(self) -> Path:
        base = Path(self._work_dir or Path.home() / ".cache" / "actnet" / "staging").expanduser()
        path = base / hashlib.sha256(self.url().encode()).hexdigest()[:16]
        path.mkdir(parents=True, exist_ok=True)
        return path


Storage = LocalStorage | S3Storage


def open_storage(url: str | Path, work_dir: str | Path | None = None) -> Storage:
    """A storage for a local folder or an ``s3://bucket/prefix`` URL."""
    url = str(url)
    return S3Storage(url, work_dir) if is_remote(url) else LocalStorage(url)
