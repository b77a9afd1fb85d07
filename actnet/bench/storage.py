"""``actnet benchmark storage``: the loader reading its shards from S3-compatible storage at real latency.

The same shards are read from local disk and from a bucket reached through :class:`~actnet.bench.proxy.Proxy`,
which adds a delay to every request (a bucket in another building answers in 20-100 ms; a server on this machine
in well under one) and can cap the bandwidth. For each latency: clips/s of the unlabeled (training) and eval
streams, as a fraction of the local figure, and the requests and bytes each sample costs. With no bucket given,
a local S3 server (moto, in the ``bench`` extra) is started on 127.0.0.1 and the shards are uploaded to it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from actnet.bench.common import machine_description, time_batches
from actnet.bench.proxy import Proxy
from actnet.data.loader import make_loader
from actnet.data.sampling import ShardSet
from actnet.data.storage import open_storage
from actnet.errors import ActnetError

STREAMS = (("unlabeled", "train"), ("eval", "test"))


@contextlib.contextmanager
def local_s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (its endpoint URL), with throwaway credentials in the environment."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise ActnetError(
            "--s3: give a bucket (s3://bucket/prefix), or install actnet[bench] for a local server"
        ) from None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        with environment(**credentials):
            yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


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


def upload(local: Path, url: str, sets: tuple[str, ...]) -> None:
    """The info files, tars and indices of ``sets`` of a local shard folder, copied under an s3:// prefix."""
    source, target = open_storage(local), open_storage(url)
    for set_name in sets:
        info = ShardSet(str(local), set_name).info
        names = [f"{set_name}.info.json", info.manifest] + [n for s in info.shards for n in (s.name, s.index)]
        for name in names:
            if not target.exists(name):
                target.write_bytes(name, source.read_bytes(name))


def per_sample(url: str, set_name: str, proxy: Proxy, samples: int = 16) -> dict:
    """Requests and bytes through the proxy per sample read (opening the set is not counted)."""
    shards = ShardSet(url, set_name)
    before_requests, before_bytes = proxy.requests, proxy.bytes_down
    for i in range(min(samples, len(shards))):
        shards.fetch(i)
    n = min(samples, len(shards))
    return {
        "requests": (proxy.requests - before_requests) / n,
        "bytes": (proxy.bytes_down - before_bytes) / n,
        "sample_bytes": sum(shards.samples[i].length for i in range(n)) / n,
    }


def benchmark_storage(
    local: Path, s3_url: str, s3_endpoint: str, latencies_ms: list[float], cfg, batches: int, bytes_per_s=0.0, log=print
) -> dict:
    """clips/s of each stream from local disk and through the proxy at each latency; requests and bytes/sample."""
    upload(local, s3_url, tuple(s for _, s in STREAMS))
    rows = []
    for kind, set_name in STREAMS:
        loader = make_loader(str(local), set_name, kind, cfg)
        n = max(1, min(batches, loader.steps_per_epoch - 1)) if kind == "eval" else batches
        seconds, clips, _ = time_batches(loader, n)
        loader.close()
        row = {"stream": kind, "set": set_name, "batches": n, "local": clips / seconds, "latency": {}}
        log(f"  {kind:9s} local disk      {row['local']:7.1f} clips/s")
        for ms in latencies_ms:
            with Proxy(s3_endpoint, latency_ms=ms, bytes_per_s=bytes_per_s) as proxy, endpoint(proxy.url):
                loader = make_loader(s3_url, set_name, kind, cfg)
                seconds, clips, _ = time_batches(loader, n)
                loader.close()
                cost = per_sample(s3_url, set_name, proxy)
            rate = clips / seconds
            row["latency"][str(ms)] = {"clips_per_s": rate, "of_local": rate / row["local"], **cost}
            log(
                f"  {kind:9s} S3 +{ms:5.0f} ms    {rate:7.1f} clips/s ({rate / row['local']:.2f} x local), "
                f"{cost['requests']:.2f} requests and {cost['bytes'] / 1024:.1f} KiB per sample"
            )
        rows.append(row)
    return {"streams": rows, "latencies_ms": latencies_ms, "bytes_per_s": bytes_per_s, "machine": machine_description()}


def storage_markdown(result: dict, cfg, source: str) -> str:
    m = result["machine"]
    cap = f", bandwidth capped at {result['bytes_per_s'] / 1e6:g} MB/s" if result["bytes_per_s"] else ""
    lines = [
        f"Measured {m['date']} on {m['host_cpu']} ({m['cores']} cores, {m['device']}), actnet {m['actnet']}. "
        f"Shards: {source}, read from local disk and from an S3 server on this machine through a proxy adding "
        f"the latency to every request{cap}. Loader: batch {cfg.batch_size} (unlabeled: x{cfg.mu}), evaluation "
        f"batch {cfg.eval_batch_size} x {cfg.eval_clips} clips x {cfg.eval_crops} crops, {cfg.fetch_threads} fetch "
        f"threads, DALI on {cfg.device} with {cfg.num_threads} threads. Requests and bytes per sample are counted "
        "at the proxy (opening the set not included).",
        "",
        "| stream | latency per request | clips/s | x local | requests/sample | KiB/sample |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["streams"]:
        lines.append(f"| {r['stream']} ({r['set']}) | local disk | {r['local']:.1f} | 1.00 | | |")
        for ms, f in r["latency"].items():
            lines.append(
                f"| {r['stream']} ({r['set']}) | {float(ms):g} ms | {f['clips_per_s']:.1f} | {f['of_local']:.2f} | "
                f"{f['requests']:.2f} | {f['bytes'] / 1024:.1f} |"
            )
    return "\n".join(lines) + "\n"
