"""``actnet prepare <source>`` and ``actnet prepare merge``: every source takes the same options, declared once."""

import functools
import inspect
from pathlib import Path
from typing import Annotated

import typer

from actnet.cli.common import app, error_line, handle_errors, out, parse_frame_size, parse_part, parse_size, sink
from actnet.config import (
    Codec,
    EncodeConfig,
    Engine,
    HmdbPool,
    PrepareOptions,
    ShardConfig,
    SmallVideos,
    SyntheticConfig,
    Verify,
)
from actnet.data.storage import is_remote

prepare_app = typer.Typer(no_args_is_help=True, help="Videos -> validated, re-encoded WebDataset shards + manifests.")
app.add_typer(prepare_app, name="prepare")


def _option(name: str, kind, default, *decls: str, help: str) -> inspect.Parameter:
    """One shared prepare option as a keyword-only parameter with its Typer annotation."""
    annotation = Annotated[kind, typer.Option(*decls, help=help)]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


_ENC = EncodeConfig
PREPARE_OPTIONS = [
    _option(
        "out", str, "shards", "--out", "-o", help="Folder or s3://bucket/prefix; shards go to OUT/<dataset>/<split>."
    ),
    _option(
        "labeled", list[str] | None, None, "--labeled", help="Labeled subset: 1% (per class), 10/class, 5%-random."
    ),
    _option("labeled_list", list[Path] | None, None, help="A published labeled list (keys or paths, one a line)."),
    _option("seed", int, 0, help="Seed of the labeled subsets and of the order videos are written in."),
    _option("manifests", str, "manifests", help="Also write the manifests to DIR/<dataset>/<split> ('' to skip)."),
    _option("codec", Codec, Codec(_ENC.codec), help="vp9 decodes on DALI's CPU and GPU backends, h264 only on GPUs."),
    _option("short_side", int, _ENC.short_side, help="Cap on the shorter side in pixels (0 keeps the size)."),
    _option("fps", float | None, _ENC.fps, help="Output frame rate (default: the source's, made constant)."),
    _option("max_fps", float, _ENC.max_fps, help="Sources faster than this (or of unknown rate) are resampled to it."),
    _option("crf", int | None, _ENC.crf, help="Quality (vp9 32, h264 23, mjpeg 3 by default; 0 is lossless)."),
    _option("gop", int, _ENC.gop, help="Keyframe interval in frames (short = cheap random clip access)."),
    _option("speed", int, _ENC.speed, help="Encoder speed 0..8 (libvpx cpu-used; >= 6 realtime)."),
    _option("min_frames", int, _ENC.min_frames, help="Reject videos with fewer decodable frames."),
    _option("verify", Verify, Verify(_ENC.verify), help="full: decode every encoded frame; packets: demux only."),
    _option(
        "small_videos",
        SmallVideos,
        SmallVideos(_ENC.small_videos),
        help="Videos smaller than GPUs decode (VP9: 128x128): upscale them, or keep them (the set is CPU-only).",
    ),
    _option("shard_size", str, "256MiB", help="Target shard size (e.g. 256MiB, 1GB)."),
    _option("min_shards", int, ShardConfig.min_shards, help="At least this many shards per set (ranks, workers)."),
    _option("workers", int, 0, "--workers", "-j", help="Parallel ffmpeg jobs (0: one per CPU core)."),
    _option("part", str, "1/1", help="Prepare part i of k (separate machines); then run 'actnet prepare merge'."),
    _option(
        "engine",
        Engine,
        Engine.local,
        help="local: --workers threads here; ray: Ray tasks across a cluster (pip install 'actnet[ray]').",
    ),
    _option(
        "address",
        str | None,
        None,
        help="--engine ray: the cluster ('auto', ray://host:10001; default: RAY_ADDRESS, else a local one).",
    ),
    _option("max_reject_fraction", float, 0.05, help="Exit non-zero when more than this fraction is rejected."),
    _option("work_dir", Path | None, None, help="Local staging for s3:// outputs (default: ~/.cache/actnet/staging)."),
    _option(
        "rehash",
        bool,
        False,
        "--rehash",
        help="A rerun also hashes the shards it keeps (finds changed bytes; reads them all), not only sizes/indices.",
    ),
]


def options_from_flags(flags: dict) -> PrepareOptions:
    from actnet.data.splits import list_spec, parse_labeled

    encode = EncodeConfig(
        codec=flags["codec"].value,
        short_side=flags["short_side"],
        fps=flags["fps"],
        max_fps=flags["max_fps"],
        crf=flags["crf"],
        gop=flags["gop"],
        speed=flags["speed"],
        min_frames=flags["min_frames"],
        verify=flags["verify"].value,
        small_videos=flags["small_videos"].value,
    )
    shards = ShardConfig(shard_size=parse_size(flags["shard_size"], "--shard-size"), min_shards=flags["min_shards"])
    for spec in flags["labeled"] or ():  # fail on a bad flag before any slow work starts
        parse_labeled(spec)
    for path in flags["labeled_list"] or ():
        list_spec(path)
    return PrepareOptions(
        out=flags["out"],
        manifests=flags["manifests"] or None,
        labeled=tuple(flags["labeled"] or ()),
        labeled_lists=tuple(str(p) for p in flags["labeled_list"] or ()),
        seed=flags["seed"],
        workers=flags["workers"],
        part=parse_part(flags["part"]),
        max_reject_fraction=flags["max_reject_fraction"],
        work_dir=str(flags["work_dir"]) if flags["work_dir"] else None,
        rehash=flags["rehash"],
        engine=flags["engine"].value,
        ray_address=flags["address"],
        encode=encode,
        shards=shards,
    )


def show_prepared(summary, max_reject_fraction: float) -> int:
    """Print a finished prepare run; the exit status (1 when too many videos were rejected)."""
    from actnet.tables import prepare_report

    for part in prepare_report(summary):
        out.print(part)
    if error := summary.reject_error(max_reject_fraction):
        error_line(error)
        return 1
    return 0


def run_prepare(listing, opts: PrepareOptions) -> int:
    from actnet.prepare import prepare

    with sink() as progress:
        summary = prepare(listing, opts, progress)
    if not summary.complete:
        i, k = opts.part
        out.print(
            f"part {i}/{k} done: {summary.encoded_now} videos encoded in {summary.seconds:.1f} s. "
            f"When all {k} parts are done: actnet prepare merge {summary.url}"
        )
        return 0
    return show_prepared(summary, opts.max_reject_fraction)


def prepare_command(name: str, help: str):
    """Register a source command: its own parameters (returning a SourceListing) plus the shared options."""

    def decorate(list_source):
        own = list(inspect.signature(list_source).parameters.values())

        @functools.wraps(list_source)
        @handle_errors
        def command(**kwargs):
            flags = {p.name: kwargs.pop(p.name) for p in PREPARE_OPTIONS}
            opts = options_from_flags(flags)
            root = kwargs.get("root")
            if root is not None and is_remote(root):  # videos in a bucket: listed from its LIST, streamed to ffmpeg
                from actnet.data.remote_root import as_remote, remote_root

                with remote_root(root, opts.work_dir) as shadow:
                    listing = as_remote(list_source(**(kwargs | {"root": shadow})), shadow, root)
            else:
                listing = list_source(**kwargs)
            raise typer.Exit(run_prepare(listing, opts))

        command.__signature__ = inspect.Signature(own + PREPARE_OPTIONS)
        command.__annotations__ = {p.name: p.annotation for p in own + PREPARE_OPTIONS}
        prepare_app.command(name, help=help)(command)
        return list_source

    return decorate


RootOpt = Annotated[
    str, typer.Option("--root", help="The data set's root folder, or s3://bucket/prefix (videos read in place).")
]
SplitOpt = Annotated[int, typer.Option("--split", help="Official split number.")]


@prepare_command("ucf101", help="UCF-101: class folders of .avi files (+ ucfTrainTestlist/).")
def _ucf101(
    root: RootOpt,
    splits: Annotated[
        Path | None,
        typer.Option(
            help="ucfTrainTestlist folder (default: found next to --root; "
            "without it the split comes from the group numbers)."
        ),
    ] = None,
    split: SplitOpt = 1,
):
    from actnet.data.sources import list_ucf101

    return list_ucf101(root, splits, split)


@prepare_command("hmdb51", help="HMDB-51: class folders of .avi files + the <class>_test_split<k>.txt files.")
def _hmdb51(
    root: RootOpt,
    splits: Annotated[Path, typer.Option(help="Folder of the 51 <class>_test_split<k>.txt files.")],
    split: SplitOpt = 1,
    pool: Annotated[HmdbPool, typer.Option(help="Training pool: tag 1 only, or tags 0 and 1 (the SSL protocol).")] = (
        HmdbPool.all_non_test
    ),
):
    from actnet.data.sources import list_hmdb51

    return list_hmdb51(root, splits, split, pool.value)


@prepare_command("kinetics", help="Kinetics: <id>_<start>_<end>.mp4 files + label,youtube_id,... CSVs.")
def _kinetics(
    root: RootOpt,
    annotations: Annotated[list[Path], typer.Option(help="Annotation CSV (repeat for train and val).")],
    name: Annotated[str, typer.Option(help="Data set name in the output path.")] = "kinetics400",
):
    from actnet.data.sources import list_kinetics

    return list_kinetics(root, annotations, name)


@prepare_command("folder", help="Any class-per-folder set of videos in containers ffmpeg reads.")
def _folder(
    root: RootOpt,
    test_fraction: Annotated[float, typer.Option(help="Fraction of each class held out for testing.")] = 0.2,
    name: Annotated[str | None, typer.Option(help="Data set name (default: the root folder's name).")] = None,
):
    from actnet.data.sources import list_folder

    return list_folder(root, test_fraction, name)


_SYN = SyntheticConfig


@prepare_command("synthetic", help="The built-in synthetic action set (motion classes; rendered, then prepared).")
def _synthetic(
    classes: Annotated[int, typer.Option(help="Number of motion classes.")] = _SYN.num_classes,
    videos_per_class: Annotated[int, typer.Option(help="Videos per class.")] = _SYN.videos_per_class,
    frames: Annotated[int, typer.Option(help="Frames per video.")] = _SYN.frames,
    size: Annotated[str, typer.Option(help="Frame size WIDTHxHEIGHT.")] = f"{_SYN.width}x{_SYN.height}",
    source_fps: Annotated[int, typer.Option(help="Frame rate of the rendered videos.")] = _SYN.fps,
    test_fraction: Annotated[float, typer.Option(help="Fraction of each class held out.")] = _SYN.test_fraction,
    render_seed: Annotated[int, typer.Option(help="Seed of the rendered content.")] = _SYN.seed,
    appearance: Annotated[
        float, typer.Option(help="Per-class object colour, 0..1 (0: only motion tells the classes apart).")
    ] = _SYN.appearance,
    clutter: Annotated[float, typer.Option(help="Background motion, distractors and noise, 0..1.")] = _SYN.clutter,
    cache: Annotated[
        Path | None, typer.Option(help="Where rendered sources are kept (default: ~/.cache/actnet).")
    ] = None,
):
    from actnet.data.synthetic import synthetic_listing

    width, height = parse_frame_size(size)
    cfg = SyntheticConfig(
        num_classes=classes,
        videos_per_class=videos_per_class,
        frames=frames,
        width=width,
        height=height,
        fps=source_fps,
        test_fraction=test_fraction,
        seed=render_seed,
        appearance=appearance,
        clutter=clutter,
    )
    with sink() as progress:
        return synthetic_listing(cfg, cache, 0, progress)


@prepare_app.command("merge", help="Finish a --part run: manifests, labeled subsets and info files of all parts.")
@handle_errors
def _merge(
    path: Annotated[str, typer.Argument(help="The <out>/<dataset>/<split> folder or s3:// prefix the parts wrote.")],
    labeled: Annotated[list[str] | None, typer.Option(help="Labeled subset specs, as for prepare.")] = None,
    labeled_list: Annotated[list[Path] | None, typer.Option(help="Published labeled lists.")] = None,
    seed: Annotated[int, typer.Option(help="Seed the parts were prepared with.")] = 0,
    manifests: Annotated[str, typer.Option(help="Also write manifests under DIR ('' to skip).")] = "manifests",
    max_reject_fraction: Annotated[float, typer.Option(help="Exit non-zero above this rejected fraction.")] = 0.05,
):
    from actnet.data.splits import list_spec, parse_labeled
    from actnet.data.storage import open_storage
    from actnet.prepare import finalize

    specs = [parse_labeled(s) for s in labeled or ()] + [list_spec(p) for p in labeled_list or ()]
    with sink() as progress:
        summary = finalize(open_storage(path), specs, seed, manifests or None, progress)
    raise typer.Exit(show_prepared(summary, max_reject_fraction))
