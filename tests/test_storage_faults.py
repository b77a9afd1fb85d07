"""Object storage that fails: every failure one line naming the endpoint and bucket, within a bounded time.

Against the real local S3 server, through a TCP proxy that can hang (accept, never answer) or stop (refuse)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from conftest import TINY

from actnet.bench.proxy import Proxy
from actnet.data.storage import S3_TIMEOUT_ENV, StorageError, describe_s3_error, open_storage

BOUND_S = 6.0  # ACTNET_S3_TIMEOUT in these tests


@pytest.fixture
def bucket_behind_proxy(s3_bucket, s3_server, monkeypatch):
    """The bucket, reached through a proxy (AWS_ENDPOINT_URL points at the proxy)."""
    proxy = Proxy(s3_server)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setenv(S3_TIMEOUT_ENV, str(BOUND_S))
    storage = open_storage(f"s3://{s3_bucket}/data")
    storage.write_bytes("a.txt", b"hello")
    yield storage, proxy
    proxy.stop()


def _fails(fn) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(StorageError) as err:
        fn()
    return str(err.value), time.monotonic() - started


def test_a_hung_endpoint_fails_within_the_bound(bucket_behind_proxy):
    storage, proxy = bucket_behind_proxy
    assert storage.read_bytes("a.txt") == b"hello"
    proxy.hang()
    message, seconds = _fails(lambda: open_storage(storage.url()).read_bytes("a.txt"))
    assert seconds <= BOUND_S + 1, seconds
    assert "no answer within the time limit" in message and proxy.url in message and storage.url("a.txt") in message


def test_a_stopped_endpoint_fails_within_the_bound(bucket_behind_proxy):
    storage, proxy = bucket_behind_proxy
    proxy.stop()
    message, seconds = _fails(lambda: open_storage(storage.url()).read_range("a.txt", 0, 3))
    assert seconds <= BOUND_S + 1, seconds
    assert "cannot connect" in message and proxy.url in message


def test_a_stream_cut_off_midway_is_one_error(bucket_behind_proxy):
    storage, proxy = bucket_behind_proxy
    storage.write_bytes("big.bin", os.urandom(4 << 20))
    proxy.bytes_per_s = 2 << 20  # two seconds for the whole object
    body = open_storage(storage.url()).open_read("big.bin")
    body.read(1 << 16)
    proxy.hang()
    message, seconds = _fails(lambda: body.read())
    assert seconds <= BOUND_S + 1 and storage.url("big.bin") in message


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing object", "no such object"),
        ("missing bucket", "no such bucket"),
        ("no credentials", "no S3 credentials"),
    ],
)
def test_each_s3_failure_names_endpoint_and_bucket(bucket_behind_proxy, monkeypatch, tmp_path, case, expected):
    storage, proxy = bucket_behind_proxy
    url, rel = storage.url(), "missing.txt" if case == "missing object" else "a.txt"
    if case == "missing bucket":
        url = "s3://no-such-bucket-here/data"
    if case == "no credentials":
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(var)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    message, _ = _fails(lambda: open_storage(url).read_bytes(rel))
    assert expected in message and proxy.url in message and url.split("/")[2] in message, message
    assert "\n" not in message


def test_ranged_reads_fail_like_every_other_call(bucket_behind_proxy):
    """The loader's ranged reads (presigned URLs over a pool of their own, not boto3): same messages and bound."""
    storage, proxy = bucket_behind_proxy
    assert storage.read_range("a.txt", 1, 3) == b"ell"
    message, _ = _fails(lambda: storage.read_range("missing.txt", 0, 3))
    assert "no such object" in message and storage.url("missing.txt") in message and proxy.url in message
    message, _ = _fails(lambda: open_storage("s3://no-such-bucket-here/data").read_range("a.txt", 0, 3))
    assert "no such bucket" in message and "\n" not in message
    proxy.hang()
    message, seconds = _fails(lambda: storage.read_range("a.txt", 0, 3))  # its URL is signed already: no boto3 call
    assert seconds <= BOUND_S + 1, seconds
    assert "no answer within the time limit" in message and storage.url("a.txt") in message


def test_a_kept_alive_connection_the_server_closed_is_opened_again(bucket_behind_proxy):
    """Object stores close idle keep-alive connections: the next read opens a new one, without failing a try."""
    storage, proxy = bucket_behind_proxy
    assert storage.read_range("a.txt", 0, 2) == b"he"
    requests = proxy.requests
    proxy.drop_connections()
    assert storage.read_range("a.txt", 2, 3) == b"llo"
    assert proxy.requests == requests + 1  # one request reached the server: no failed try in between


def test_ranged_reads_over_https_trust_what_boto3_is_told_to(tmp_path, monkeypatch):
    """An HTTPS endpoint: the read verifies its certificate against AWS_CA_BUNDLE (as boto3 does); one it does
    not trust is one line that says so."""
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from actnet.data import storage

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(206)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"abc")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/b/k"
    try:
        monkeypatch.setattr(storage, "_SSL", None)
        monkeypatch.setenv("AWS_CA_BUNDLE", str(cert))
        assert storage._ranged_get(url, "bytes=0-2") == b"abc"
        monkeypatch.setattr(storage, "_SSL", None)
        monkeypatch.delenv("AWS_CA_BUNDLE")  # boto3's default bundle does not know this certificate
        with pytest.raises(storage.HttpFailure, match="TLS certificate not trusted"):
            storage._ranged_get(url, "bytes=0-2")
    finally:
        server.shutdown()
        monkeypatch.setattr(storage, "_SSL", None)


def test_a_refusal_reads_as_access_denied():
    """The local server does not check keys, so the 403 a real bucket sends is built here as botocore parses it."""
    from botocore.exceptions import ClientError

    refused = ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
    assert describe_s3_error(refused).startswith("access denied (AccessDenied")
    assert describe_s3_error(ValueError("not about S3")) is None


def _upload(folder: Path, bucket: str, prefix: str) -> str:
    client = boto3.client("s3")
    for path in folder.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder)}")
    return f"s3://{bucket}/{prefix}"


@pytest.mark.parametrize("failure", ["hang", "stop"])
def test_training_from_a_failing_bucket_ends_with_one_line(shards, s3_bucket, s3_server, tmp_path, failure):
    """A run whose bucket hangs or goes away mid-run ends with exit status 1 and one error line, soon after."""
    data = _upload(shards, s3_bucket, "sets")
    proxy = Proxy(s3_server)
    env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, S3_TIMEOUT_ENV: str(BOUND_S), "NO_COLOR": "1"}
    sets = [a for s in [*TINY, "train.epochs=50", "train.steps_per_epoch=20"] for a in ("--set", s)]
    cmd = [sys.executable, "-m", "actnet", "train", "--data", data, "--labeled", "1/class"]
    cmd += ["--out", str(tmp_path / "runs"), "--name", "r", *sets]
    run = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while proxy.requests < 40 and run.poll() is None:  # well into training
            time.sleep(0.05)
        broke = time.monotonic()
        proxy.hang() if failure == "hang" else proxy.stop()
        _, stderr = run.communicate(timeout=120)
        seconds = time.monotonic() - broke
    finally:
        run.kill()
        proxy.stop()
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 1, stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-2000:]
    assert data.split("/")[2] in lines[0] and proxy.url in lines[0]
    # the failed read's bound, plus reads already in flight and the process's own exit
    print(f"{failure}: the run ended {seconds:.1f} s after the endpoint broke (ACTNET_S3_TIMEOUT={BOUND_S:g})")
    assert seconds < 2 * BOUND_S + 10, seconds


def test_a_ranged_read_retries_busy_answers_and_not_missing_ones(monkeypatch):
    """503 (S3's SlowDown) is tried again within the attempts; 404 ends the read at once, in S3's words."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from actnet.data import storage

    answers, seen = [], []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            seen.append(self.headers["Range"])
            status, body = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(storage.time, "sleep", lambda s: None)  # the backoff, not what is tested
    url = f"http://127.0.0.1:{server.server_address[1]}/b/k"
    try:
        answers[:] = [(503, b"<Error><Code>SlowDown</Code></Error>"), (206, b"abc")]
        assert storage._ranged_get(url, "bytes=0-2") == b"abc" and seen == ["bytes=0-2"] * 2
        answers[:] = [(503, b"<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>")] * 3
        with pytest.raises(storage.HttpFailure, match="SlowDown: Reduce your rate"):
            storage._ranged_get(url, "bytes=0-2")
        assert not answers  # every attempt used, no more
        seen.clear()
        answers[:] = [(404, b"<Error><Code>NoSuchKey</Code></Error>"), (206, b"abc")]
        with pytest.raises(storage.HttpFailure, match="no such object"):
            storage._ranged_get(url, "bytes=0-2")
        assert len(seen) == 1
    finally:
        server.shutdown()
