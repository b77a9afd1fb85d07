"""A light S3-compatible server over a local folder: what the storage benchmark reads when the bucket should cost
this machine as little CPU as a bucket on other machines would.

moto, the S3 server the tests use, spends about 7 ms of CPU per request in Python; on a 2-core machine that
competes with the decoder it is meant to feed, which no real bucket does. This server answers the calls a reader
makes (HEAD and GET of a bucket's objects, ranged GETs, ListObjectsV2) straight from the files under
``<root>/<bucket>/``, in a process of its own, with the answers S3 gives (206 and ``Content-Range`` for ranges,
``NoSuchKey``/``NoSuchBucket`` XML errors). It neither checks signatures nor accepts writes: the benchmark puts
the shards into the folder before it starts. Run it as ``python -m actnet.bench.bucket ROOT PORT``.
"""

from __future__ import annotations

import hashlib
import sys
import urllib.parse
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from xml.sax.saxutils import escape

S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


class FolderBucketHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a reader's pool reuses its connections, as with S3
    disable_nagle_algorithm = True  # headers and body are two writes: no delayed-ACK wait between them
    root: Path

    def log_message(self, *args) -> None:  # no line per request
        pass

    def _target(self) -> tuple[str, str, dict]:
        url = urllib.parse.urlsplit(self.path)
        bucket, _, key = urllib.parse.unquote(url.path).lstrip("/").partition("/")
        return bucket, key, dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))

    def _file(self, bucket: str, key: str) -> Path | None:
        base = (self.root / bucket).resolve()
        path = (base / key).resolve()
        return path if key and path.is_relative_to(base) and path.is_file() else None

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
        """An answer; to a HEAD, ``headers["Content-Length"]`` says the size of what a GET would send."""
        headers = dict(headers or {})
        length = headers.pop("Content-Length", "0") if head else str(len(body))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", length)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
        self._send(status, b"" if head else body.encode(), {"Content-Type": "application/xml"}, head=False)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's names)
        self._get(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._get(head=False)

    def _get(self, head: bool) -> None:
        bucket, key, query = self._target()
        if not (self.root / bucket).is_dir():
            return self._error(404, "NoSuchBucket", "The specified bucket does not exist", head)
        if not key:
            if head:
                return self._send(200, headers={"Content-Length": "0"}, head=True)
            return self._list(bucket, query.get("prefix", ""))
        path = self._file(bucket, key)
        if path is None:
            return self._error(404, "NoSuchKey", "The specified key does not exist.", head)
        stat = path.stat()
        headers = {
            "ETag": f'"{hashlib.md5(f"{stat.st_size}-{stat.st_mtime_ns}".encode()).hexdigest()}"',
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        start, end, status = 0, stat.st_size - 1, 200
        if (rng := self.headers.get("Range", "")).startswith("bytes="):
            first, _, last = rng[len("bytes=") :].partition("-")
            start, end, status = int(first), min(int(last) if last else end, stat.st_size - 1), 206
            if start > end:
                return self._error(416, "InvalidRange", "The requested range is not satisfiable", head)
            headers["Content-Range"] = f"bytes {start}-{end}/{stat.st_size}"
        if head:
            return self._send(status, headers=headers | {"Content-Length": str(end - start + 1)}, head=True)
        with path.open("rb") as f:
            f.seek(start)
            self._send(status, f.read(end - start + 1), headers)

    def _list(self, bucket: str, prefix: str) -> None:
        base = self.root / bucket
        keys = sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())
        rows = [
            f"<Contents><Key>{escape(k)}</Key><Size>{(base / k).stat().st_size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            for k in keys
            if k.startswith(prefix)
        ]
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{S3_XMLNS}"><Name>{bucket}</Name>'
            f"<Prefix>{escape(prefix)}</Prefix><KeyCount>{len(rows)}</KeyCount><MaxKeys>{max(1000, len(rows))}"
            f"</MaxKeys><IsTruncated>false</IsTruncated>{''.join(rows)}</ListBucketResult>"
        )
        self._send(200, body.encode(), {"Content-Type": "application/xml"})


def serve(root: Path, port: int) -> None:
    handler = type("Handler", (FolderBucketHandler,), {"root": Path(root)})
    ThreadingHTTPServer.daemon_threads = True
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
