"""Where shard sets live: a local folder or S3-compatible object storage (``s3://bucket/prefix``).

Both backends offer the same small interface over paths relative to their root. Every write is atomic: a local
file is written under a hidden temporary name and renamed (:mod:`actnet.files`); an S3 object appears whole when
its PUT completes.
So a reader never sees half an object, and "complete" is signalled by writing a marker object last.

S3 uses boto3's default credential chain; ``AWS_ENDPOINT_URL`` points it at any S3-compatible server. Every S3
call goes through :meth:`S3Storage._call`, the one place that bounds its time and names its failure: each request
may take ``read_timeout`` seconds and is tried three times, so a hung or stopped endpoint ends the call within
``ACTNET_S3_TIMEOUT`` seconds (default 30) with a :class:`StorageError` naming the endpoint, bucket and key. A
run's reads in flight end within that too, so a run ends at most twice that (60 s) after its last good read.

The loader's ranged reads (:meth:`S3Storage.read_range`, one per sample or per run of neighbours) skip boto3's
per-call machinery, which costs about 3.6 ms of CPU and the interpreter lock per request (measured against a
local server): they GET a presigned URL of the shard (signed once per shard and hour) with ``http.client`` on a
keep-alive connection of the fetch thread's own (0.4 ms; a urllib3 pool took 0.6-0.8), with the same time
bound, retries and one-line errors as every other call.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path
from typing import BinaryIO

from actnet.errors import ActnetError, RunFailed
from actnet.files import atomic_write, inside, move_into_place

S3_TIMEOUT_ENV = "ACTNET_S3_TIMEOUT"
S3_TIMEOUT_DEFAULT = 30.0  # per call; a run with reads in flight ends within twice this
S3_ATTEMPTS = 3  # botocore's "standard" retries back off at most 1 + 2 s between them
_BACKOFF_S = 3.0


class StorageError(RunFailed):
    """An object-storage request that failed or ran out of time; the message names the endpoint and bucket."""


def s3_timeout() -> float:
    """Seconds within which any S3 call succeeds or fails (``ACTNET_S3_TIMEOUT``, default 30)."""
    text = os.environ.get(S3_TIMEOUT_ENV, "")
    if not text:
        return S3_TIMEOUT_DEFAULT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ActnetError(f"{S3_TIMEOUT_ENV}={text!r}: give a positive number of seconds")
    return max(value, 3 * _BACKOFF_S / 2)


def is_remote(url: str) -> bool:
    return str(url).startswith("s3://")


class LocalStorage:
    """A folder on a local or network file system."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().absolute()

    def _path(self, rel: str) -> Path:
        """A file of this storage; names read from files (markers, info.json) cannot climb out of it."""
        return inside(self.root, rel, "file name")

    def url(self, rel: str = "") -> str:
        return str(self._path(rel)) if rel else str(self.root)

    def child(self, rel: str) -> LocalStorage:
        return LocalStorage(self._path(rel))

    def exists(self, rel: str) -> bool:
        return (self._path(rel)).is_file()

    def read_bytes(self, rel: str) -> bytes:
        return (self._path(rel)).read_bytes()

    def open_read(self, rel: str) -> BinaryIO:
        return open(self._path(rel), "rb")

    def read_range(self, rel: str, start: int, length: int) -> bytes:
        """``length`` bytes from offset ``start`` (one positioned read; the page cache does the rest)."""
        fd = os.open(self._path(rel), os.O_RDONLY)
        try:
            data = os.pread(fd, length, start)
        finally:
            os.close(fd)
        if len(data) != length:
            raise ActnetError(f"{self._path(rel)}: truncated (wanted bytes {start}..{start + length})")
        return data

    def write_bytes(self, rel: str, data: bytes) -> None:
        atomic_write(self._path(rel), data)

    def put_file(self, local: str | Path, rel: str) -> None:
        """Move a finished local file into place (atomically when on the same file system)."""
        move_into_place(local, self._path(rel))

    def list(self, prefix: str = "") -> list[str]:
        """Relative names of the files under ``prefix`` (a folder), sorted; hidden temporaries excluded."""
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str = "") -> dict[str, int]:
        """``{relative name: bytes}`` of the files under ``prefix`` (a folder); hidden temporaries excluded."""
        base = self._path(prefix)
        if not base.is_dir():
            return {}
        found = {}
        for path in base.rglob("*"):
            if not path.name.startswith(".") and path.is_file():
                found[str(path.relative_to(self.root))] = path.stat().st_size
        return found

    def delete(self, rel: str) -> None:
        (self._path(rel)).unlink(missing_ok=True)

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
        self._urls: dict[str, tuple[str, float]] = {}  # rel -> (presigned read URL, when it was made)

    @property
    def client(self):
        with _CLIENT_LOCK:
            if self._client is None:
                self._client = _new_client()
        return self._client

    @property
    def endpoint(self) -> str:
        try:
            return self.client.meta.endpoint_url
        except Exception:  # no region, a bad endpoint URL: the call itself will say
            return os.environ.get("AWS_ENDPOINT_URL", "the default AWS endpoint")

    def _call(self, what: str, rel: str, fn, *, missing_ok: bool = False):
        """``fn()``, with every botocore failure turned into one :class:`StorageError` line naming ``rel``."""
        try:
            return fn()
        except StorageError:
            raise
        except Exception as err:  # botocore's exceptions do not share one base class with urllib3's
            message = describe_s3_error(err)
            if message is None:
                raise
            if missing_ok and message == "no such object":
                return None
            where = self.url(rel) if rel else self.url()
            raise StorageError(f"{where}: {message} (endpoint {self.endpoint}, {what})") from None

    def _key(self, rel: str) -> str:
        if ".." in rel.split("/"):
            raise ActnetError(f"file name {rel!r}: not a path inside {self.url()}")
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def url(self, rel: str = "") -> str:
        key = self._key(rel) if rel else self.prefix
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def child(self, rel: str) -> S3Storage:
        child = S3Storage(self.url(rel.strip("/")), self._work_dir)
        child._client = self._client
        return child

    def exists(self, rel: str) -> bool:
        found = self._call(
            "HEAD", rel, lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(rel)), missing_ok=True
        )
        if found is None:
            self._check_bucket()
        return found is not None

    def _check_bucket(self) -> None:
        """A missing key and a missing bucket both answer a HEAD with a bare 404: tell them apart, once."""
        if not getattr(self, "_bucket_seen", False):
            self._call("HEAD bucket", "", lambda: self.client.head_bucket(Bucket=self.bucket))
            self._bucket_seen = True

    def read_bytes(self, rel: str) -> bytes:
        return self._call("GET", rel, lambda: self._get(rel).read())

    def _get(self, rel: str, **kwargs):
        return self.client.get_object(Bucket=self.bucket, Key=self._key(rel), **kwargs)["Body"]

    def open_read(self, rel: str) -> BinaryIO:
        return _Body(self, rel, self._call("GET", rel, lambda: self._get(rel)))

    def read_range(self, rel: str, start: int, length: int) -> bytes:
        """``length`` bytes from offset ``start``: one ranged GET of the object's presigned URL (see the module's
        notes); a boto3 call through an HTTP(S) proxy from the environment or with ``ACTNET_S3_READS=boto3``."""
        rng = f"bytes={start}-{start + length - 1}"
        if _PROXIED or os.environ.get(S3_READS_ENV) == "boto3":
            data = self._call("ranged GET", rel, lambda: self._get(rel, Range=rng).read())
        else:
            data = self._call("ranged GET", rel, lambda: _ranged_get(self._signed(rel), rng))
        if len(data) != length:
            raise ActnetError(f"{self.url(rel)}: truncated (wanted bytes {start}..{start + length})")
        return data

    def _signed(self, rel: str) -> str:
        """A presigned GET URL of ``rel``, made once and renewed when half its hour has passed."""
        now = time.monotonic()
        with _CLIENT_LOCK:
            url, made = self._urls.get(rel, (None, 0.0))
        if url is None or now - made > _SIGNED_S / 2:
            url = self.presigned(rel, _SIGNED_S)
            with _CLIENT_LOCK:
                self._urls[rel] = (url, now)
        return url

    def write_bytes(self, rel: str, data: bytes) -> None:
        self._call("PUT", rel, lambda: self.client.put_object(Bucket=self.bucket, Key=self._key(rel), Body=data))

    def put_file(self, local: str | Path, rel: str) -> None:
        self._call("upload", rel, lambda: self.client.upload_file(str(local), self.bucket, self._key(rel)))
        os.unlink(local)

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self.sizes(prefix))

    def sizes(self, prefix: str = "") -> dict[str, int]:
        """``{relative name: bytes}`` of the objects under ``prefix``: one paginated LIST, no request per object."""
        full = self._key(prefix.rstrip("/") + "/") if prefix else (self.prefix + "/" if self.prefix else "")

        def listing() -> dict[str, int]:
            found = {}
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
                for obj in page.get("Contents", []):
                    found[obj["Key"][len(self.prefix) + 1 :] if self.prefix else obj["Key"]] = int(obj["Size"])
            return found

        return self._call("LIST", prefix, listing)

    def delete(self, rel: str) -> None:
        self._call("DELETE", rel, lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(rel)))

    def presigned(self, rel: str, seconds: int = 12 * 3600) -> str:
        """An HTTP(S) URL that reads object ``rel`` without credentials for ``seconds`` (what ffmpeg opens: it
        seeks with ranged GETs, so a source video streams into the encoder and is never copied to a disk)."""
        params = {"Bucket": self.bucket, "Key": self._key(rel)}
        return self._call(
            "presign", rel, lambda: self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)
        )

    def staging_dir(self) -> Path:
        base = Path(self._work_dir or Path.home() / ".cache" / "actnet" / "staging").expanduser()
        path = base / hashlib.sha256(self.url().encode()).hexdigest()[:16]
        path.mkdir(parents=True, exist_ok=True)
        return path


_CLIENT_LOCK = threading.Lock()


def _new_client():
    """An S3 client of its own session (so it sees the environment as it is now), with bounded requests."""
    import boto3
    from botocore.config import Config

    per_try = (s3_timeout() - _BACKOFF_S) / S3_ATTEMPTS
    config = Config(
        connect_timeout=min(10.0, per_try),
        read_timeout=per_try,
        retries={"total_max_attempts": S3_ATTEMPTS, "mode": "standard"},
        max_pool_connections=64,  # the default fetch_threads: a read never waits for a connection
    )
    return boto3.session.Session().client("s3", config=config)


class _Body:
    """A streaming GET body whose reads fail like every other S3 call (one line, bounded time)."""

    def __init__(self, storage: S3Storage, rel: str, body):
        self._storage, self._rel, self._body = storage, rel, body

    def read(self, size: int = -1) -> bytes:
        return self._storage._call("GET", self._rel, lambda: self._body.read(size if size >= 0 else None))

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


S3_READS_ENV = "ACTNET_S3_READS"  # "boto3": ranged reads as boto3 calls (the way before presigned URLs)
CANNOT_CONNECT = "cannot connect (connection refused or closed; is the endpoint right and the server up?)"
_SIGNED_S = 3600  # a presigned read URL's life
# An HTTP(S) proxy in the environment: boto3 honours it, the connections below would not: reads go through boto3.
_PROXIED = any(os.environ.get(v) for v in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"))
_SSL = None
_CONNECTIONS = threading.local()  # each fetch thread keeps its own keep-alive connection per endpoint


class HttpFailure(Exception):
    """A presigned GET that failed; the message is what :func:`describe_s3_error` reports."""


def _ssl_context():
    global _SSL
    with _CLIENT_LOCK:
        if _SSL is None:
            import ssl

            from botocore.httpsession import get_cert_path

            # the certificates boto3 trusts: AWS_CA_BUNDLE, else its default bundle
            _SSL = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or get_cert_path(True))
    return _SSL


def _connection(parts, timeout: float):
    """This thread's connection to ``parts``' endpoint (made on first use, kept alive between reads)."""
    import http.client

    conns = _CONNECTIONS.__dict__.setdefault("by_endpoint", {})
    key = (parts.scheme, parts.hostname, parts.port)
    conn = conns.get(key)
    if conn is None:
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=_ssl_context())
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        conns[key] = conn
    conn.timeout = timeout
    if conn.sock is not None:
        conn.sock.settimeout(timeout)
    return conn


def _drop(parts) -> None:
    conn = _CONNECTIONS.__dict__.get("by_endpoint", {}).pop((parts.scheme, parts.hostname, parts.port), None)
    if conn is not None:
        conn.close()


def _get_once(url: str, rng: str, timeout: float) -> tuple[int, bytes]:
    """One GET on this thread's connection. A kept-alive connection the server has closed meanwhile (S3 closes
    idle ones) is opened again once, without counting as a failed try."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    for fresh in (False, True):
        conn = _connection(parts, timeout)
        reused = conn.sock is not None
        try:
            conn.request("GET", target, headers={"Range": rng})
            answer = conn.getresponse()
            body = answer.read()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            _drop(parts)
            if reused and not fresh:
                continue
            raise
        except BaseException:
            _drop(parts)
            raise
        if answer.will_close:
            _drop(parts)
        return answer.status, body
    raise AssertionError("unreachable")


def _ranged_get(url: str, rng: str) -> bytes:
    """One ranged GET, tried ``S3_ATTEMPTS`` times on connection failures, timeouts and 5xx answers, within the
    same bound as a boto3 call (see :func:`_new_client`)."""
    import http.client
    import ssl

    per_try = (s3_timeout() - _BACKOFF_S) / S3_ATTEMPTS
    for attempt in range(S3_ATTEMPTS):
        try:
            status, body = _get_once(url, rng, per_try)
        except TimeoutError:
            failure = HttpFailure(_no_answer())
        except ssl.SSLCertVerificationError as err:  # trying again changes nothing
            why = f"TLS certificate not trusted ({err.verify_message}; AWS_CA_BUNDLE names a CA file)"
            raise HttpFailure(why) from None
        except ssl.SSLError as err:
            failure = HttpFailure(f"TLS failed ({err.reason or err})")
        except (OSError, http.client.HTTPException):  # refused, reset, closed mid-answer
            failure = HttpFailure(CANNOT_CONNECT)
        else:
            if status in (200, 206):
                return body
            failure = HttpFailure(_http_error(status, body))
            if status < 500 and status != 429:
                raise failure
        if attempt == S3_ATTEMPTS - 1:
            raise failure
        time.sleep(min(2.0**attempt, _BACKOFF_S - 1) * random.random())  # botocore's standard: jittered 1, 2 s


def _no_answer() -> str:
    return f"no answer within the time limit ({S3_TIMEOUT_ENV}={s3_timeout():g} s in all)"


def _http_error(status: int, body: bytes) -> str:
    """An S3 error answer (XML ``<Error><Code>``) in the words of :func:`describe_s3_error`."""
    text = body.decode("utf-8", "replace")
    code = text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else str(status)
    if code == "NoSuchBucket":
        return "no such bucket"
    if code in ("NoSuchKey", "NotFound") or status == 404:
        return "no such object"
    if status == 403:
        return f"access denied ({code}; check the credentials and the bucket's policy)"
    message = text.split("<Message>", 1)[1].split("</Message>", 1)[0] if "<Message>" in text else f"HTTP {status}"
    return f"{code}: {message}"


def describe_s3_error(err: Exception) -> str | None:
    """What an S3 failure means, in a few words; None for an exception that is not about S3."""
    from botocore import exceptions as bx

    if isinstance(err, HttpFailure):
        return str(err)
    if isinstance(err, bx.NoCredentialsError | bx.PartialCredentialsError):
        return "no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    if isinstance(err, bx.NoRegionError):
        return "no region (set AWS_DEFAULT_REGION)"
    if isinstance(err, bx.ConnectTimeoutError):
        return f"no connection within the time limit ({S3_TIMEOUT_ENV}={s3_timeout():g} s in all)"
    if isinstance(err, bx.ReadTimeoutError):
        return _no_answer()
    if isinstance(err, bx.EndpointConnectionError | bx.ConnectionClosedError):
        return CANNOT_CONNECT
    if isinstance(err, bx.ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code == "NoSuchBucket" or (code == "404" and err.operation_name == "HeadBucket"):
            return "no such bucket"
        if code in ("404", "NoSuchKey", "NotFound"):
            return "no such object"
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"):
            return f"access denied ({code}; check the credentials and the bucket's policy)"
        return f"{code or 'error'}: {error.get('Message') or err}"
    if isinstance(err, bx.BotoCoreError):  # a streamed body cut off (ResponseStreamingError), a bad endpoint URL...
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    return None


Storage = LocalStorage | S3Storage


def readable_url(src: str | Path) -> str:
    """What ffmpeg opens for ``src``: a local path as it is, an ``s3://bucket/key`` object as a presigned URL."""
    src = str(src)
    if not is_remote(src):
        return src
    parent, _, name = src.rpartition("/")
    if parent in ("s3:/", "s3:") or not name:
        raise ActnetError(f"{src}: not an object URL (s3://bucket/key)")
    return S3Storage(parent).presigned(name)


def open_storage(url: str | Path, work_dir: str | Path | None = None) -> Storage:
    """A storage for a local folder or an ``s3://bucket/prefix`` URL."""
    url = str(url)
    return S3Storage(url, work_dir) if is_remote(url) else LocalStorage(url)
