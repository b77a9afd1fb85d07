"""``actnet benchmark all|prepare|loader|storage``: measure, print the figures, record them in the results file."""

import os
from pathlib import Path
from typing import Annotated

import typer

from actnet.bench import SECTIONS
from actnet.cli.common import app, handle_errors, out, parse_frame_size, sink
from actnet.config import Choice, Device, EncodeConfig, LoaderConfig
from actnet.errors import ActnetError


class BenchServer(Choice):
    moto = "moto"  # the S3 server the tests use
    folder = "folder"  # actnet/bench/bucket.py: little CPU per request


benchmark_app = typer.Typer(no_args_is_help=True, help="Measure throughput and write the results file.")
app.add_typer(benchmark_app, name="benchmark")


@benchmark_app.command(
    "all",
    help="Every benchmark in one run (prepare, loader, decoders, training, step options, scaling, soak) -> results.",
)
@handle_errors
def benchmark_all_command(
    results: Annotated[Path, typer.Option(help="The markdown results file (+ .json beside it).")] = Path(
        "docs/benchmarks.md"
    ),
    full: Annotated[
        bool, typer.Option(help="Bigger, slower runs (the default takes a few minutes on 2 cores).")
    ] = False,
    paper_input: Annotated[
        bool,
        typer.Option(help="Also time the paper's input (8 x 224, R50 + ViT-S); always on a GPU, ~5 min on 2 cores."),
    ] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Jobs, DALI threads, workers (0: cores).")] = 0,
    device: Annotated[Device, typer.Option(help="Where to decode and train.")] = Device.auto,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Shards to time (a folder with train, test and labeled-10pct-seed0 sets, e.g. a copy of "
            "~/.cache/actnet/bench-loader/synthetic/split1; default: the synthetic set, prepared once)."
        ),
    ] = None,
    skip: Annotated[str, typer.Option(help=f"Sections to leave out, comma-separated, of: {', '.join(SECTIONS)}.")] = "",
):
    from actnet.bench.suite import run_all

    skipped = {name.strip() for name in skip.split(",") if name.strip()}
    with sink() as progress:
        minutes = run_all(
            results,
            full=full,
            paper_input=paper_input,
            workers=workers,
            device=device.value,
            data=data,
            skip=skipped,
            log=out.print,
            progress=progress,
        )
    out.print(f"all benchmarks recorded in {results} ({minutes:.1f} min)")


@benchmark_app.command("prepare", help="prepare's throughput vs the bare ffmpeg encode of the same videos.")
@handle_errors
def benchmark_prepare_command(
    root: Annotated[
        Path | None, typer.Option(help="A class-per-folder data set (default: rendered synthetic).")
    ] = None,
    videos: Annotated[int, typer.Option(help="Synthetic videos to render (or to take from --root).")] = 48,
    frames: Annotated[int, typer.Option(help="Frames per synthetic video.")] = 100,
    size: Annotated[str, typer.Option(help="Synthetic frame size (UCF-101 is 320x240).")] = "320x240",
    workers: Annotated[int, typer.Option("--workers", "-j", help="Parallel jobs (0: all cores).")] = 0,
    speed: Annotated[int, typer.Option(help="Encoder speed, as for prepare.")] = EncodeConfig.speed,
    repeat: Annotated[int, typer.Option(help="Alternating runs of each pipeline; the best counts.")] = 2,
    results: Annotated[Path | None, typer.Option(help="Record the figures in this markdown file (+ .json).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Where rendered sources are kept.")] = None,
):
    from actnet.bench.common import record
    from actnet.bench.suite import prepare_section

    workers = workers or os.cpu_count() or 1
    frame_size = parse_frame_size(size)
    result, markdown = prepare_section(root, videos, frames, frame_size, workers, speed, repeat, cache, log=out.print)
    out.print(markdown)
    if results is not None:
        record("prepare", markdown, result, results)
        out.print(f"recorded in {results}")


@benchmark_app.command(
    "loader", help="The DALI loader's clips/s vs torchcodec and PyAV in a DataLoader, same shards, same run."
)
@handle_errors
def benchmark_loader_command(
    data: Annotated[
        Path | None,
        typer.Option(help="A shard folder (<out>/<dataset>/<split>) with train and test sets (default: synthetic)."),
    ] = None,
    size: Annotated[int, typer.Option(help="Crop size of both models' clips.")] = 64,
    frames: Annotated[int, typer.Option(help="Frames per clip (T) of both models.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Clips per training batch.")] = 8,
    batches: Annotated[int, typer.Option(help="Timed batches per stream (after one warm-up batch).")] = 8,
    eval_clips: Annotated[int, typer.Option(help="Evaluation clips per video.")] = 10,
    workers: Annotated[
        int, typer.Option("--workers", "-j", help="DALI threads and DataLoader workers (0: cores).")
    ] = 0,
    device: Annotated[Device, typer.Option(help="Where to decode.")] = Device.auto,
    results: Annotated[Path | None, typer.Option(help="Record the figures in this markdown file (+ .json).")] = None,
):
    from actnet.bench.common import record
    from actnet.bench.suite import loader_config, loader_section

    workers = workers or os.cpu_count() or 1
    cfg = loader_config(size, frames, batch_size, eval_clips, workers, device.value)
    with sink() as progress:
        result, markdown = loader_section(data, cfg, batches, workers, log=out.print, progress=progress)
    out.print(markdown)
    if results is not None:
        record("loader", markdown, result, results)
        out.print(f"recorded in {results}")


@benchmark_app.command(
    "storage", help="The loader reading shards from S3 at added latency per request, against local disk."
)
@handle_errors
def benchmark_storage_command(
    data: Annotated[
        Path | None,
        typer.Option(help="A local shard folder with train and test sets (default: the synthetic benchmark set)."),
    ] = None,
    s3: Annotated[
        str | None, typer.Option(help="s3://bucket/prefix to copy them to (default: a local S3 server, moto).")
    ] = None,
    latency_ms: Annotated[str, typer.Option(help="Latencies added per request, comma-separated.")] = "0,20,50,100",
    bandwidth_mbps: Annotated[float, typer.Option(help="Cap on MB/s coming back (0: none).")] = 0.0,
    size: Annotated[int, typer.Option(help="Crop size of both models' clips.")] = 64,
    frames: Annotated[int, typer.Option(help="Frames per clip (T) of both models.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Clips per training batch.")] = 8,
    batches: Annotated[int, typer.Option(help="Timed batches per stream (after one warm-up batch).")] = 6,
    workers: Annotated[int, typer.Option("--workers", "-j", help="DALI threads (0: cores).")] = 0,
    device: Annotated[Device, typer.Option(help="Where to decode.")] = Device.auto,
    fetch_threads: Annotated[int, typer.Option(help="The loader's reads in flight (loader.fetch_threads).")] = (
        LoaderConfig.fetch_threads
    ),
    coalesce_kib: Annotated[
        int, typer.Option(help="Neighbouring samples read together up to this (loader.coalesce_kib; 0: off).")
    ] = LoaderConfig.coalesce_kib,
    repeat: Annotated[int, typer.Option(help="Timings of each figure; the best counts.")] = 3,
    server: Annotated[
        BenchServer,
        typer.Option(help="The local S3 server: moto (as the tests), or folder (light: little CPU per request)."),
    ] = BenchServer.moto,
    results: Annotated[Path | None, typer.Option(help="Record the figures in this markdown file (+ .json).")] = None,
):
    import contextlib
    from dataclasses import replace

    from actnet.bench import storage
    from actnet.bench.common import record
    from actnet.bench.suite import bench_shards, loader_config

    try:
        latencies = [float(x) for x in latency_ms.split(",") if x.strip()]
    except ValueError:
        raise ActnetError(f"--latency-ms {latency_ms!r}: give numbers separated by commas, as in 0,20,50") from None
    workers = workers or os.cpu_count() or 1
    cfg = loader_config(size, frames, batch_size, 2, workers, device.value)
    cfg = replace(cfg, fetch_threads=fetch_threads, coalesce_kib=coalesce_kib)
    with sink() as progress:
        if data is None:
            data, source = bench_shards(workers, progress)
        else:
            source = str(data)
    server_cm = storage.local_s3_server(server.value) if s3 is None else contextlib.nullcontext(None)
    with server_cm as local:
        url = s3 or f"s3://{storage.BENCH_BUCKET}/shards"
        target = local.url if local else os.environ.get("AWS_ENDPOINT_URL")
        if not target:
            raise ActnetError("--s3: set AWS_ENDPOINT_URL to the S3 endpoint the proxy should stand in front of")
        with storage.endpoint(target):
            result = storage.benchmark_storage(
                Path(data),
                url,
                target,
                latencies,
                cfg,
                batches,
                bandwidth_mbps * 1e6,
                server=local,
                repeat=repeat,
                log=out.print,
            )
    markdown = storage.storage_markdown(result, cfg, source)
    out.print(markdown)
    if results is not None:
        section = "storage" if server == BenchServer.moto else f"storage ({server.value} server)"
        record(section, markdown, result, results)
        out.print(f"recorded in {results}")


@benchmark_app.command("predict", help="actnet predict's peak memory on videos of several lengths (made by ffmpeg).")
@handle_errors
def benchmark_predict_command(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint file or run folder to predict with.")],
    minutes: Annotated[str, typer.Option(help="Video lengths in minutes, comma-separated.")] = "1,10",
    work: Annotated[Path, typer.Option(help="Where the generated videos go (kept for reruns).")] = Path(
        "runs/bench-predict"
    ),
    results: Annotated[Path | None, typer.Option(help="Record the figures in this markdown file (+ .json).")] = None,
):
    from actnet.bench.common import record
    from actnet.bench.predict import benchmark_predict, predict_markdown
    from actnet.checkpoint import load_checkpoint

    try:
        lengths = [float(x) for x in minutes.split(",") if x.strip()]
    except ValueError:
        raise ActnetError(f"--minutes {minutes!r}: give numbers separated by commas, as in 1,10") from None
    load_checkpoint(checkpoint)  # a bad checkpoint is one line here, not an error in every child process
    result = benchmark_predict(checkpoint, lengths, work, log=out.print)
    markdown = predict_markdown(result)
    out.print(markdown)
    if results is not None:
        record("predict memory", markdown, result, results)
        out.print(f"recorded in {results}")
