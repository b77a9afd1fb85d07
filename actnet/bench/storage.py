"""``actnet benchmark storage``: the loader reading its shards from S3-compatible storage at real latency.

The same shards are read from local disk and from a bucket reached through :class:`~actnet.bench.proxy.Proxy`
(in a process of its own), which adds a delay to every request (a bucket in another building answers in
20-100 ms; a server on this machine in well under one) and can cap the bandwidth. For each latency: clips/s of
the unlabeled (training) and eval streams, as a fraction of the local figure, with the cores the server and proxy
took meanwhile; and the stream's reads alone (no decoding: what a decoder 10x faster could get at most), with the
requests, bytes and CPU each sample costs. With no bucket given, a local S3 server (moto, in the ``bench`` extra)
is started on 127.0.0.1 in a process of its own and the shards are uploaded to it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from actnet.bench.common import machine_description, time_batches
from actnet.bench.proxy import ProxyProcess
from actnet.data.loader import make_loader, sample_stream
from actnet.data.sampling import ShardSet
from actnet.data.storage import S3_READS_ENV, open_storage
from actnet.errors import ActnetError

STREAMS = (("unlabeled", "train"), ("eval", "test"))


@dataclass(frozen=True)
class LocalServer:
    url: str
    pid: int
    kind: str  # moto or folder
    folder: Path | None = None  # the folder server's bucket: files put here are its objects


def cpu_seconds(pid: int | None) -> float:
    """CPU time process ``pid`` has used (user + system), from /proc; 0 where there is no /proc or no pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RigClock:
    """CPU time used by the processes that stand in for the far bucket (S3 server and proxy) on this machine."""

    def __init__(self, *pids: int | None):
        self.pids = [p for p in pids if p]

    def __call__(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids)


BENCH_BUCKET = "actnet-bench"
SERVER_WORDS = {
    "moto": "an S3 server on this machine (moto, its own process)",
    "folder": "a light S3-compatible server on this machine (actnet/bench/bucket.py, its own process)",
}


@contextlib.contextmanager
def local_s3_server(kind: str = "moto") -> Iterator[LocalServer]:
    """An S3 server on 127.0.0.1 in a process of its own, holding an empty bucket ``actnet-bench`` (its endpoint
    URL and pid are yielded), with throwaway credentials in the environment.

    ``moto``: the server the tests use (about 7 ms of CPU per request); ``folder``: :mod:`actnet.bench.bucket`,
    which serves files from a temporary folder for a fraction of that."""
    if kind == "moto" and importlib.util.find_spec("moto") is None:
        raise ActnetError("--s3: give a bucket (s3://bucket/prefix), or install actnet[bench] for a local server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="actnet-bucket-") as folder:
        if kind == "moto":
            command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        else:
            (Path(folder) / BENCH_BUCKET).mkdir()
            command = [sys.executable, "-m", "actnet.bench.bucket", folder, str(port)]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
        credentials["AWS_DEFAULT_REGION"] = "us-east-1"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise ActnetError(f"the local S3 server ({' '.join(command)}) did not start") from None
                    time.sleep(0.2)
            url = f"http://127.0.0.1:{port}"
            with environment(**credentials):
                if kind == "moto":
                    import boto3

                    with endpoint(url):
                        boto3.session.Session().client("s3").create_bucket(Bucket=BENCH_BUCKET)
                yield LocalServer(url, server.pid, kind, Path(folder) / BENCH_BUCKET if kind == "folder" else None)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block (each S3 client reads them when made), restored after."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def endpoint(url: str):
    """``AWS_ENDPOINT_URL`` set to ``url`` for the storages opened inside."""
    return environment(AWS_ENDPOINT_URL=url)


def upload(local: Path, url: str, sets: tuple[str, ...], folder: Path | None = None) -> None:
    """The info files, tars and indices of ``sets`` of a local shard folder, copied under an s3:// prefix (for the
    folder server, into ``folder``, the bucket's own folder)."""
    source, target = open_storage(local), open_storage(url)
    for set_name in sets:
        info = ShardSet(str(local), set_name).info
        names = [f"{set_name}.info.json", info.manifest] + [n for s in info.shards for n in (s.name, s.index)]
        for name in names:
            if folder is not None:
                key = Path(folder, url.removeprefix(f"s3://{BENCH_BUCKET}").strip("/"), name)
                key.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local / name, key)
            elif not target.exists(name):
                target.write_bytes(name, source.read_bytes(name))


def fetch_rate(
    url: str, set_name: str, kind: str, cfg, samples: int, proxy: ProxyProcess | None = None, rig=None
) -> dict:
    """The stream alone, without decoding: samples/s its reads deliver (the most any decoder could get from this
    storage); through ``proxy`` the requests and bytes each sample cost (opening the set not counted), the CPU
    this process spends per sample read and the ``rig``'s (server and proxy) per request."""
    stream = sample_stream(ShardSet(url, set_name), kind, cfg)
    before = proxy.counts() if proxy else (0, 0)
    own, rig_before = time.process_time(), rig() if rig else 0.0
    count, started = 0, time.perf_counter()
    for batch in stream.batches(0):
        count += len(batch)
        if count >= samples:
            break
    seconds = time.perf_counter() - started
    stream.close(wait=True)  # the reads ahead that were under way count too: per sample *read*
    after = proxy.counts() if proxy else (0, 0)
    own, rig_cpu = time.process_time() - own, (rig() - rig_before) if rig else 0.0
    read = stream.samples_read
    requests = after[0] - before[0]
    return {
        "samples_per_s": count / seconds,
        "samples": read,
        "loader_cpu_ms": 1000 * own / read,
        "rig_cpu_ms": 1000 * rig_cpu / requests if requests else 0.0,
        "requests": requests / read,
        "bytes": (after[1] - before[1]) / read,
        "sample_bytes": sum(s.length for s in stream.shards.samples) / len(stream.shards),  # the set's mean
    }


def _timed(url: str, set_name: str, kind: str, cfg, n: int, rig=None) -> tuple[float, float]:
    """clips/s of ``n`` batches from a new loader, and the cores the ``rig`` used meanwhile."""
    loader = make_loader(url, set_name, kind, cfg)
    rig_before = rig() if rig else 0.0
    seconds, clips, _ = time_batches(loader, n)
    rig_cores = (rig() - rig_before) / seconds if rig else 0.0
    loader.close()
    return clips / seconds, rig_cores


def best_rate(url: str, set_name: str, kind: str, cfg, n: int, repeat: int) -> float:
    """The best clips/s of ``repeat`` timings of ``n`` batches, each from a new loader."""
    return max(_timed(url, set_name, kind, cfg, n)[0] for _ in range(repeat))


def paired_rates(local: str, remote: str, set_name: str, kind: str, cfg, n: int, repeat: int, rig):
    """Local and remote timings taken in turns, ``repeat`` of each: (best local clips/s, best remote clips/s, the
    rig's cores during that remote timing). Taken side by side, their ratio does not move with what else this
    machine was doing between rows."""
    best_local, best_remote = 0.0, (0.0, 0.0)
    for _ in range(repeat):
        best_local = max(best_local, _timed(local, set_name, kind, cfg, n)[0])
        best_remote = max(best_remote, _timed(remote, set_name, kind, cfg, n, rig))
    return best_local, *best_remote


def benchmark_storage(
    local: Path,
    s3_url: str,
    s3_endpoint: str,
    latencies_ms: list[float],
    cfg,
    batches: int,
    bytes_per_s=0.0,
    fetch_samples: int = 256,
    server: LocalServer | None = None,
    repeat: int = 3,
    log=print,
) -> dict:
    """For each stream, from local disk and through the proxy at each latency: the loader's clips/s with the share
    of this machine's cores the server and proxy took meanwhile, and the stream's reads alone (samples/s,
    requests, bytes and CPU per sample)."""
    upload(local, s3_url, tuple(s for _, s in STREAMS), server.folder if server else None)
    server_pid = server.pid if server else None
    rows = []
    for kind, set_name in STREAMS:
        n = batches
        if kind == "eval":
            n = max(1, min(batches, -(-ShardSet(str(local), set_name).info.num_samples // cfg.eval_batch_size) - 1))
        row = {"stream": kind, "set": set_name, "batches": n, "latency": {}}
        row["local"] = best_rate(str(local), set_name, kind, cfg, n, repeat)
        row["local_fetch"] = max(
            fetch_rate(str(local), set_name, kind, cfg, fetch_samples)["samples_per_s"] for _ in range(repeat)
        )
        log(f"  {kind:9s} local disk      {row['local']:7.1f} clips/s; reads alone {row['local_fetch']:7.0f}/s")
        for ms in latencies_ms:
            with ProxyProcess(s3_endpoint, latency_ms=ms, bytes_per_s=bytes_per_s) as proxy, endpoint(proxy.url):
                rig = RigClock(server_pid, proxy.pid)
                local_now, rate, rig_cores = paired_rates(str(local), s3_url, set_name, kind, cfg, n, repeat, rig)
                fetches = [fetch_rate(s3_url, set_name, kind, cfg, fetch_samples, proxy, rig) for _ in range(repeat)]
                fetch = max(fetches, key=lambda f: f["samples_per_s"])
            row["latency"][str(ms)] = {"clips_per_s": rate, "local": local_now, "of_local": rate / local_now}
            row["latency"][str(ms)]["rig_cores"] = rig_cores
            row["latency"][str(ms)] |= fetch
            log(
                f"  {kind:9s} S3 +{ms:5.0f} ms    {rate:7.1f} clips/s ({rate / local_now:.2f} x local, server and "
                f"proxy on {rig_cores:.2f} cores); reads alone {fetch['samples_per_s']:7.0f}/s, "
                f"{fetch['requests']:.2f} requests, {fetch['bytes'] / 1024:.1f} KiB, {fetch['loader_cpu_ms']:.1f} ms "
                f"loader CPU per sample, {fetch['rig_cpu_ms']:.1f} ms server+proxy CPU per request"
            )
        rows.append(row)
    return {
        "streams": rows,
        "latencies_ms": latencies_ms,
        "bytes_per_s": bytes_per_s,
        "repeat": repeat,
        "reads": "boto3" if os.environ.get(S3_READS_ENV) == "boto3" else "presigned",
        "fetch_threads": cfg.fetch_threads,
        "coalesce_kib": cfg.coalesce_kib,
        "server": server.kind if server else "given",
        "machine": machine_description(),
    }


def storage_markdown(result: dict, cfg, source: str) -> str:
    m = result["machine"]
    cap = f", bandwidth capped at {result['bytes_per_s'] / 1e6:g} MB/s" if result["bytes_per_s"] else ""
    coalesce = f"neighbours read together up to {cfg.coalesce_kib} KiB" if cfg.coalesce_kib else "one read per sample"
    reads = "boto3 calls" if result.get("reads") == "boto3" else "GETs of presigned URLs (http.client)"
    lines = [
        f"Measured {m['date']} on {m['host_cpu']} ({m['cores']} cores, {m['device']}), actnet {m['actnet']}. "
        f"Shards: {source}, read from local disk and from {SERVER_WORDS.get(result['server'], 'the bucket given')} "
        f"through a proxy (its own process) adding the latency to every request{cap}. Loader: batch "
        f"{cfg.batch_size} (unlabeled: x{cfg.mu}), evaluation batch {cfg.eval_batch_size} x {cfg.eval_clips} clips "
        f"x {cfg.eval_crops} crops, {cfg.fetch_threads} reads in flight, {coalesce}, reads as {reads}, DALI on "
        f"{cfg.device} with {cfg.num_threads} threads; every rate is the best of {result.get('repeat', 1)} timings. "
        "\"x local\": against local-disk timings taken in turns with that row's (this machine's load drifts between "
        'rows). "Rig cores": the cores of this machine the S3 server and the proxy (a far '
        'bucket\'s stand-ins) used while the loader was timed. "Reads alone": the stream without decoding (the most '
        "any decoder could get); requests, bytes and CPU per sample are counted during it (opening the set not "
        "included).",
        "",
        "| stream | latency per request | clips/s | local disk, taken in turns | x local | rig cores | reads alone: "
        "samples/s | requests/sample | KiB/sample | loader CPU ms/sample | rig CPU ms/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["streams"]:
        lines.append(
            f"| {r['stream']} ({r['set']}) | local disk | {r['local']:.1f} | | 1.00 | | {r['local_fetch']:.0f} "
            "| | | | |"
        )
        for ms, f in r["latency"].items():
            lines.append(
                f"| {r['stream']} ({r['set']}) | {float(ms):g} ms | {f['clips_per_s']:.1f} | "
                f"{f.get('local', r['local']):.1f} | {f['of_local']:.2f} | "
                f"{f['rig_cores']:.2f} | {f['samples_per_s']:.0f} | {f['requests']:.2f} | {f['bytes'] / 1024:.1f} | "
                f"{f['loader_cpu_ms']:.1f} | {f['rig_cpu_ms']:.1f} |"
            )
    return "\n".join(lines) + "\n"
