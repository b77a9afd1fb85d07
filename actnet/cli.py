"""The ``actnet`` command line: thin Typer commands that parse, call one function and print with rich.

User errors (:class:`actnet.errors.ActnetError`) become one red line on stderr and exit status 2; a prepare
whose rejected fraction exceeds ``--max-reject-fraction`` exits with status 1 after writing everything.
"""

import functools
import inspect
import os
import re
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from actnet import __version__
from actnet.config import EncodeConfig, PrepareOptions, ShardConfig, SyntheticConfig
from actnet.errors import ActnetError

console = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 120)  # pipes and logs get whole tables, not 80 columns

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="actnet: semi-supervised video action recognition (ActNetFormer) on WebDataset shards and DALI.",
)
prepare_app = typer.Typer(no_args_is_help=True, help="Videos -> validated, re-encoded WebDataset shards + manifests.")
benchmark_app = typer.Typer(no_args_is_help=True, help="Measure throughput and write the results file.")
app.add_typer(prepare_app, name="prepare")
app.add_typer(benchmark_app, name="benchmark")


def handle_errors(fn):
    """Turn ActnetError into one clean line and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ActnetError as err:
            console.print(Text("error: ", style="bold red") + Text(str(err)), soft_wrap=True)  # one line, any width
            raise typer.Exit(2) from None

    return wrapper


class Codec(str, Enum):
    vp9 = "vp9"
    h264 = "h264"
    mjpeg = "mjpeg"


class Verify(str, Enum):
    full = "full"
    packets = "packets"


def parse_size(text: str, flag: str) -> int:
    """'256MB', '1GiB', '500k' or plain bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", text.lower())
    if not m:
        raise ActnetError(f"{flag} {text!r}: expected a size such as 256MB, 1GiB or 1000000")
    factor = 1024 if m.group(3).startswith("i") else 1000
    return int(float(m.group(1)) * factor ** "_kmgt".index(m.group(2) or "_"))


def parse_part(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ActnetError(f"--part {text!r}: expected i/k, as in 2/8")
    return int(m.group(1)), int(m.group(2))


# ---------------------------------------------------------------------------------------------------------------
# Progress and summaries


class RateColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f} videos/s" if task.speed else "", style="cyan")


class RichProgressSink:
    """Adapts prepare's progress reports to one rich bar per phase."""

    def __init__(self, progress: RichProgress):
        self.progress, self.task = progress, None

    def start(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[self.task].total)
        self.task = self.progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)


def progress_bar() -> RichProgress:
    return RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def print_summary(summary, max_reject_fraction: float) -> int:
    table = Table(title=f"{summary.dataset} / {summary.split}  ->  {summary.url}")
    for col in ("set", "samples", "shards", "size"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, s in summary.sets.items():
        table.add_row(name, str(s["samples"]), str(s["shards"]), _human(s["bytes"]))
    out.print(table)
    rate = summary.encoded_now / summary.seconds if summary.seconds else 0.0
    out.print(f"encoded {summary.encoded_now} videos now in {summary.seconds:.1f} s ({rate:.2f} videos/s)")
    if summary.skipped:
        out.print(f"[yellow]{summary.skipped} listed videos missing or unplaceable[/] (see rejects.jsonl)")
    if summary.rejected:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary.reject_reasons.items()))
        out.print(
            f"[yellow]{summary.rejected} of {summary.candidates} videos rejected[/] ({reasons}); see rejects.jsonl"
        )
    if summary.reject_fraction > max_reject_fraction:
        console.print(
            Text("error: ", style="bold red")
            + Text(
                f"{summary.reject_fraction:.1%} of the videos were rejected, above --max-reject-fraction "
                f"{max_reject_fraction:g}; the shards hold the rest (see rejects.jsonl)"
            )
        )
        return 1
    return 0


# ---------------------------------------------------------------------------------------------------------------
# actnet prepare <source>: every source takes the same options, declared once here.


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
    _option("shard_size", str, "256MiB", help="Target shard size (e.g. 256MiB, 1GB)."),
    _option("min_shards", int, ShardConfig.min_shards, help="At least this many shards per set (ranks, workers)."),
    _option("workers", int, 0, "--workers", "-j", help="Parallel ffmpeg jobs (0: one per CPU core)."),
    _option("part", str, "1/1", help="Prepare part i of k (separate machines); then run 'actnet prepare merge'."),
    _option("max_reject_fraction", float, 0.05, help="Exit non-zero when more than this fraction is rejected."),
    _option("work_dir", Path | None, None, help="Local staging for s3:// outputs (default: ~/.cache/actnet/staging)."),
]


def options_from_flags(flags: dict) -> PrepareOptions:
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
    )
    shards = ShardConfig(shard_size=parse_size(flags["shard_size"], "--shard-size"), min_shards=flags["min_shards"])
    from actnet.data.splits import list_spec, parse_labeled

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
        encode=encode,
        shards=shards,
    )


def run_prepare(listing, opts: PrepareOptions) -> int:
    from actnet.prepare import prepare

    with progress_bar() as bar:
        summary = prepare(listing, opts, RichProgressSink(bar))
    if not summary.complete:
        i, k = opts.part
        out.print(
            f"part {i}/{k} done: {summary.encoded_now} videos encoded in {summary.seconds:.1f} s. "
            f"When all {k} parts are done: actnet prepare merge {summary.url}"
        )
        return 0
    return print_summary(summary, opts.max_reject_fraction)


def prepare_command(name: str, help: str):
    """Register a source command: its own parameters (returning a SourceListing) plus the shared options."""

    def decorate(list_source):
        own = list(inspect.signature(list_source).parameters.values())

        @functools.wraps(list_source)
        @handle_errors
        def command(**kwargs):
            flags = {p.name: kwargs.pop(p.name) for p in PREPARE_OPTIONS}
            opts = options_from_flags(flags)
            listing = list_source(**kwargs)
            raise typer.Exit(run_prepare(listing, opts))

        command.__signature__ = inspect.Signature(own + PREPARE_OPTIONS)
        command.__annotations__ = {p.name: p.annotation for p in own + PREPARE_OPTIONS}
        prepare_app.command(name, help=help)(command)
        return list_source

    return decorate


RootOpt = Annotated[Path, typer.Option("--root", help="The data set's root folder.")]
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


class Pool(str, Enum):
    train = "train"
    all_non_test = "all-non-test"


@prepare_command("hmdb51", help="HMDB-51: class folders of .avi files + the <class>_test_split<k>.txt files.")
def _hmdb51(
    root: RootOpt,
    splits: Annotated[Path, typer.Option(help="Folder of the 51 <class>_test_split<k>.txt files.")],
    split: SplitOpt = 1,
    pool: Annotated[Pool, typer.Option(help="Training pool: tag 1 only, or tags 0 and 1 (the SSL protocol).")] = (
        Pool.all_non_test
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


def synthetic_listing(cfg: SyntheticConfig, cache: Path | None, workers: int):
    from actnet.data import synthetic
    from actnet.data.sources import list_folder

    root = synthetic.synthetic_root(cfg, cache)
    total = cfg.num_classes * cfg.videos_per_class
    with progress_bar() as bar:
        task = bar.add_task("synthetic: rendering", total=total)
        synthetic.generate(cfg, root, workers or os.cpu_count() or 1, on_video=lambda: bar.advance(task))
    return list_folder(root, cfg.test_fraction, name="synthetic")


def parse_frame_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not m:
        raise ActnetError(f"--size {text!r}: expected WIDTHxHEIGHT, as in 128x96")
    return int(m.group(1)), int(m.group(2))


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
    return synthetic_listing(cfg, cache, 0)


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
    with progress_bar() as bar:
        summary = finalize(open_storage(path), specs, seed, manifests or None, RichProgressSink(bar))
    raise typer.Exit(print_summary(summary, max_reject_fraction))


# ---------------------------------------------------------------------------------------------------------------
# actnet inspect, actnet demo


@app.command("inspect", help="Tables of a folder of shard sets; --contact-sheet draws a few clips.")
@handle_errors
def inspect_command(
    path: Annotated[str, typer.Argument(help="An <out>/<dataset>/<split> folder or s3:// prefix.")],
    contact_sheet: Annotated[Path | None, typer.Option(help="Write a PNG of a few clips here.")] = None,
    set_name: Annotated[str, typer.Option("--set", help="Shard set for the contact sheet.")] = "train",
    clips: Annotated[int, typer.Option(help="Clips (rows) on the contact sheet.")] = 8,
    frames: Annotated[int, typer.Option(help="Frames per clip on the contact sheet.")] = 8,
):
    from actnet import inspect_shards

    infos = inspect_shards.load_sets(path)
    hours = sum((info.video or {}).get("duration_s", 0) for info in infos if info.set in ("train", "test")) / 3600
    table = Table(title=f"{infos[0].dataset} / {infos[0].split}: {hours:.2f} h of video", box=box.SIMPLE_HEAD)
    table.add_column("set", no_wrap=True, min_width=max(len(info.set) for info in infos))
    for col in ("videos", "classes", "shards", "size"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("video", no_wrap=True)

    def span(lo, hi) -> str:
        return f"{lo}" if lo == hi else f"{lo}-{hi}"

    for info in infos:
        v = info.video or {}
        video = info.codec
        if v:
            fps = ",".join(f"{f:g}" for f in v["fps"][:2]) + ("..." if len(v["fps"]) > 2 else "")
            video += f" {span(*v['width'])}x{span(*v['height'])} {fps}fps"
            video += f" {span(v['num_frames']['min'], v['num_frames']['max'])}f"
        table.add_row(
            info.set,
            str(info.num_samples),
            str(sum(1 for c in info.class_counts if c)),
            str(len(info.shards)),
            _human(sum(s.bytes for s in info.shards)),
            video,
        )
    out.print(table)
    per_class = Table(title="videos per class", box=box.SIMPLE_HEAD)
    per_class.add_column("class")
    for info in infos:
        per_class.add_column(info.set, justify="right")
    for c, name in enumerate(infos[0].classes):
        per_class.add_row(name, *(str(info.class_counts[c]) for info in infos))
    out.print(per_class)
    if contact_sheet is not None:
        png = inspect_shards.contact_sheet(path, set_name, contact_sheet, clips, frames)
        out.print(f"contact sheet: {png}")


# actnet train, actnet evaluate, actnet demo


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


def labeled_set_name(text: str) -> str:
    """``--labeled``: a spec as prepare takes it (1%, 10/class, 5%-random; seed 0) or a set name."""
    from actnet.data.splits import parse_labeled

    return text if text.startswith("labeled-") else parse_labeled(text).set_name(0)


def run_training(cfg, resume: str | None = None) -> dict:
    """Train one run, print where its files are; returns the final quick evaluation."""
    import logging

    from actnet.train import Trainer

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    trainer = Trainer(cfg, resume=resume)
    if trainer.main:
        roles = ", ".join(f"{r} {s.backbone.preset}" for r, s in trainer.students.items())
        counts = ", ".join(f"{name} {len(loader.stream.shards)}" for name, loader in trainer.loaders.items())
        out.print(
            f"[bold]{cfg.name}[/]: {roles}; videos: {counts}; {trainer.steps_per_epoch} steps/epoch x "
            f"{cfg.train.epochs} epochs on {trainer.device} ({trainer.world} process(es))"
            + (f", resumed at step {trainer.step}" if resume else "")
        )
    result = trainer.fit()
    if trainer.main:
        top1 = ", ".join(f"{r} {100 * v:.1f}%" for r, v in result.items())
        out.print(f"done: {trainer.run_dir}/last.pt" + (f"; quick eval top-1: {top1}" if top1 else ""))
    return result


@app.command("train", help="Train ActNetFormer (or a baseline, by config) on prepared shards.")
@handle_errors
def train_command(
    recipe: Annotated[str | None, typer.Option(help="A YAML recipe: a file or a name in recipes/.")] = None,
    data: Annotated[str | None, typer.Option(help="Shard folder <out>/<dataset>/<split> or s3:// prefix.")] = None,
    labeled: Annotated[str | None, typer.Option(help="Labeled subset: 1%, 10/class, ... or a set name.")] = None,
    out_dir: Annotated[str | None, typer.Option("--out", help="Parent folder of run folders.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (the run folder is <out>/<name>).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    device: Annotated[DeviceChoice | None, typer.Option(help="Where to decode and train.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of initialisation, sampling and augmentation.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config key: a.b=value (repeatable).")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="Continue from a checkpoint file or run folder; 'auto': this run's newest complete checkpoint "
            "if it has one, else start."
        ),
    ] = None,
):
    from actnet.config import from_dict, merge, parse_set, resolve_run_config, to_dict
    from actnet.train import load_checkpoint, newest_checkpoint

    options = {
        "name": name,
        "out": out_dir,
        "data": {"url": data, "labeled": labeled_set_name(labeled) if labeled else None},
        "train": {"epochs": epochs, "seed": seed},
        "loader": {"device": device.value if device else None},
    }
    if resume == "auto":  # the run folder this command names (recipe, --out, --name)
        run_dir = resolve_run_config(recipe, set_ or [], options).run_dir
        found = newest_checkpoint(run_dir)
        out.print(f"--resume auto: {f'resuming from {found}' if found else f'no checkpoint in {run_dir}, starting'}")
        resume = str(found) if found else None
    if resume:  # the checkpoint's own config, with this command's overrides on top
        from actnet.config import RunConfig, drop_none

        base = to_dict(load_checkpoint(resume).get("run_config"))
        cfg = from_dict(RunConfig, merge(merge(base, parse_set(set_ or [])), drop_none(options)))
    else:
        cfg = resolve_run_config(recipe, set_ or [], options)
    if not cfg.data.url:
        raise ActnetError("--data is required (a folder written by `actnet prepare`, e.g. shards/ucf101/split1)")
    run_training(cfg, resume)


def print_report(report: dict, title: str) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in ("model", "top-1", "top-5", "mean class acc", "videos"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for role, m in report["models"].items():
        table.add_row(
            role,
            f"{100 * m['top1']:.1f}",
            f"{100 * m['top5']:.1f}",
            f"{100 * m['mean_class_accuracy']:.1f}",
            str(m["videos"]),
        )
    out.print(table)


@app.command("evaluate", help="Multi-view top-1/top-5 of both models and their ensemble, from a checkpoint.")
@handle_errors
def evaluate_command(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint file or a run folder (its last.pt).")],
    data: Annotated[str | None, typer.Option(help="Shard folder (default: the one the run trained on).")] = None,
    set_name: Annotated[str | None, typer.Option("--set", help="Shard set to evaluate (default: test).")] = None,
    clips: Annotated[int, typer.Option(help="Temporal clips per video (K).")] = 10,
    crops: Annotated[int, typer.Option(help="Spatial crops per clip: 1 or 3.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Videos per batch.")] = 4,
    device: Annotated[DeviceChoice | None, typer.Option(help="Where to decode and run the models.")] = None,
    ema: Annotated[bool, typer.Option(help="Use the EMA weights when the run kept them.")] = True,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where the report goes (default: next to it).")] = None,
):
    from actnet.config import EvalConfig
    from actnet.evaluate import evaluate_checkpoint
    from actnet.train import dist_info, model_device, setup_distributed

    setup_distributed(model_device(device.value if device else "auto"))
    report = evaluate_checkpoint(
        checkpoint,
        data=data,
        set_name=set_name,
        eval_cfg=EvalConfig(clips=clips, crops=crops, batch_size=batch_size),
        device=device.value if device else None,
        use_ema=ema,
        out=out_dir,
    )
    if dist_info()[0] == 0:
        print_report(
            report, f"{report['set']}: {report['videos']} videos, {report['views']} views, step {report['step']}"
        )
        if report["skipped"]:
            out.print(f"[yellow]{len(report['skipped'])} videos did not decode and were left out[/]")
        out.print(f"report: {report['confusion_png'].rsplit('-confusion', 1)[0]}.json, {report['confusion_png']}")


@app.command("predict", help="Top-k classes of raw video files (any container ffmpeg reads), no shards needed.")
@handle_errors
def predict_command(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint file or a run folder (its last.pt).")],
    paths: Annotated[list[Path], typer.Argument(help="Video files and/or folders (searched recursively).")],
    clips: Annotated[int | None, typer.Option(help="Temporal clips per video (default: the run's eval.clips).")] = None,
    crops: Annotated[int | None, typer.Option(help="Spatial crops per clip, 1 or 3 (default: the run's).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Classes to show per model.")] = 5,
    device: Annotated[DeviceChoice, typer.Option(help="Where to run the models.")] = DeviceChoice.cpu,
    ema: Annotated[bool, typer.Option(help="Use the EMA weights when the run kept them.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for machines.")] = False,
):
    import json

    from actnet.predict import predict_files, video_files

    files = video_files(paths)
    if not files:
        raise ActnetError(f"{', '.join(map(str, paths))}: no video files")
    with progress_bar() as bar:
        task = bar.add_task("predict", total=len(files))
        results = predict_files(
            checkpoint,
            files,
            clips=clips,
            crops=crops,
            top_k=top_k,
            device=device.value,
            use_ema=ema,
            on_file=lambda _: bar.advance(task),
        )
    failed = [r for r in results if "error" in r]
    if as_json:
        docs = [{k: v for k, v in r.items() if k != "probs"} for r in results]
        sys.stdout.write(json.dumps(docs, indent=1) + "\n")
    else:
        for r in results:
            if "error" in r:
                console.print(Text(f"{r['file']}: ", style="bold red") + Text(r["error"]))
                continue
            out.print(
                Text(r["file"], style="bold") + Text(f" ({r['frames']} frames at {r['fps']:g} fps)"), soft_wrap=True
            )
            table = Table(box=box.SIMPLE_HEAD)
            for role in r["top"]:
                table.add_column(role)
            rows = zip(*r["top"].values())
            for row in rows:
                table.add_row(*(f"{name} {100 * p:.1f}%" for name, p in row))
            out.print(table)
    if failed:
        console.print(f"[yellow]{len(failed)} of {len(results)} files could not be read (named above)[/]")
        raise typer.Exit(1)


@app.command("export", help="The ensemble or one model to TorchScript and ONNX, with its input contract (JSON).")
@handle_errors
def export_command(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint file or a run folder (its last.pt).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the exported files.")] = Path("exported"),
    model: Annotated[str, typer.Option(help="ensemble, primary or auxiliary.")] = "ensemble",
    formats: Annotated[
        list[str] | None, typer.Option("--format", help="torchscript and/or onnx (repeatable; default both).")
    ] = None,
    ema: Annotated[bool, typer.Option(help="Export the EMA weights when the run kept them.")] = True,
):
    from actnet.export import FORMATS, export_checkpoint

    written = export_checkpoint(checkpoint, out_dir, model=model, formats=tuple(formats or FORMATS), use_ema=ema)
    for kind, path in written.items():
        out.print(f"{kind}: {path}")


@app.command("doctor", help="What this installation can do (torch, GPU, DALI decoders, ffmpeg, S3), with fixes.")
@handle_errors
def doctor_command():
    from actnet.doctor import FAIL, OK, SKIP, WARN, run_checks

    checks = run_checks()
    style = {OK: "green", WARN: "yellow", FAIL: "bold red", SKIP: "dim"}
    table = Table(title=f"actnet {__version__}: this installation", box=box.SIMPLE_HEAD)
    for column in ("check", "status", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.name, Text(c.status, style=style[c.status]), c.detail)
    out.print(table)
    problems = [c for c in checks if c.fix and c.status in (FAIL, WARN)]
    for c in problems:
        out.print(Text(f"{c.status} {c.name}: ", style=style[c.status]) + Text(c.fix))
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)


# The demo's data: with motion as the only cue, the tiny models learned nothing within the CPU budget even with every
# label (README, "The demo"); a half-weight class colour makes the set learnable in minutes.
DEMO_APPEARANCE = 0.5


@app.command("demo", help="Everything on the built-in synthetic set, CPU-friendly: prepare, train, evaluate, compare.")
@handle_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where shards, runs and pictures go.")] = Path("runs/demo"),
    workers: Annotated[int, typer.Option("--workers", "-j", help="Parallel prepare jobs (0: all cores).")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: the demo recipe's).")] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    videos_per_class: Annotated[
        int, typer.Option(help="Synthetic videos per class (a bigger set: less noisy test figures).")
    ] = SyntheticConfig.videos_per_class,
    appearance: Annotated[
        float, typer.Option(help="Weight of the per-class colour (0: motion only).")
    ] = DEMO_APPEARANCE,
    labeled: Annotated[str, typer.Option(help="Labeled subset, as for prepare (10%, 2/class).")] = "10%",
):
    import json

    from actnet.config import resolve_run_config
    from actnet.data.splits import parse_labeled
    from actnet.evaluate import evaluate_checkpoint

    cfg = SyntheticConfig(appearance=appearance, videos_per_class=videos_per_class)
    labeled_set = parse_labeled(labeled).set_name(0)
    listing = synthetic_listing(cfg, None, workers)
    shard_dir = out_dir / "shards" / listing.dataset / listing.split
    if not (shard_dir / f"{labeled_set}.info.json").exists():  # written last: a finished prepare is kept
        opts = PrepareOptions(
            out=str(out_dir / "shards"),
            manifests=str(out_dir / "manifests"),
            labeled=(labeled,),
            workers=workers,
            encode=EncodeConfig(short_side=96),
        )
        if run_prepare(listing, opts):
            raise typer.Exit(1)
        inspect_command(str(shard_dir), contact_sheet=out_dir / "contact_sheet.png")
    runs = {"actnetformer": [], "supervised": ["objective.teaching=none", "objective.beta=0"]}
    reports = {}
    for name, sets in runs.items():
        options = {
            "data": {"url": str(shard_dir), "labeled": labeled_set},
            "out": str(out_dir / "runs"),
            "name": f"{name}-seed{seed}",
            "train": {"epochs": epochs, "seed": seed},
        }
        run_cfg = resolve_run_config("demo", sets, options)
        if not (Path(run_cfg.run_dir) / "last.pt").exists():
            run_training(run_cfg)
        reports[name] = evaluate_checkpoint(Path(run_cfg.run_dir) / "last.pt")
    table = Table(title=f"synthetic set, {labeled} labeled: test top-1 / mean class accuracy (%)", box=box.SIMPLE_HEAD)
    table.add_column("method")
    for role in ("primary", "auxiliary", "ensemble"):
        table.add_column(role, justify="right")
    for name, report in reports.items():
        m = report["models"]
        table.add_row(
            name,
            *(
                f"{100 * m[r]['top1']:.1f} / {100 * m[r]['mean_class_accuracy']:.1f}" if r in m else "-"
                for r in ("primary", "auxiliary", "ensemble")
            ),
        )
    out.print(table)
    summary = {name: {r: v["top1"] for r, v in rep["models"].items()} for name, rep in reports.items()}
    (out_dir / "comparison.json").write_text(json.dumps(summary, indent=1) + "\n")
    out.print(f"runs, curves and confusion matrices: {out_dir / 'runs'}")


@app.callback(invoke_without_command=True)
def _version(version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False):
    if version:
        out.print(f"actnet {__version__}")
        raise typer.Exit()


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


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
    from actnet import benchmark
    from actnet.data.sources import list_folder

    workers = workers or os.cpu_count() or 1
    if root is None:
        width, height = parse_frame_size(size)
        listing = benchmark.synthetic_listing_for_benchmark(videos, frames, width, height, cache, workers)
        source = f"synthetic, {width}x{height}, {frames} frames at 25 fps (H.264 sources)"
    else:
        listing = list_folder(root, test_fraction=0.0)
        listing.candidates = listing.candidates[:videos]
        source = f"folder {root}"
    encode = EncodeConfig(speed=speed)
    out.print(f"benchmark prepare: {len(listing.candidates)} videos, {workers} jobs")
    result = benchmark.benchmark_prepare(listing, encode, workers, repeat, log=out.print)
    markdown = benchmark.prepare_markdown(result, source)
    out.print(markdown)
    if results is not None:
        benchmark.record("prepare", markdown, result, results)
        out.print(f"recorded in {results}")


def _bench_shards(workers: int) -> tuple[Path, str]:
    """The built-in synthetic set prepared once into the user cache (train, test, labeled 10%)."""
    cfg = SyntheticConfig()
    listing = synthetic_listing(cfg, None, workers)
    cache = Path.home() / ".cache" / "actnet" / "bench-loader"
    opts = PrepareOptions(
        out=str(cache), manifests=None, workers=workers, labeled=("10%",), encode=EncodeConfig(short_side=96)
    )
    if run_prepare(listing, opts):
        raise ActnetError("preparing the synthetic shards for the benchmark failed")
    return (
        cache / listing.dataset / listing.split,
        f"built-in synthetic set ({cfg.width}x{cfg.height}, {cfg.frames} frames, VP9)",
    )


def _bench_loader_config(size: int, frames: int, batch_size: int, eval_clips: int, workers: int, device: str):
    from actnet.config import ClipConfig, LoaderConfig

    return LoaderConfig(
        batch_size=batch_size,
        mu=1,
        eval_batch_size=max(1, batch_size // 2),
        primary=ClipConfig(frames, (4, 8), size),
        auxiliary=ClipConfig(frames, (2, 4), size),
        eval_clips=eval_clips,
        num_threads=workers,
        device=device,
    )


BENCH_SECTIONS = ("prepare", "loader", "decoders", "training", "step-options", "scaling", "soak")


def _bench_step_options(base: dict, common: list[str], gpu: bool, full: bool) -> dict:
    """The speed-option ladder: the paper's models and input on a GPU, the demo's tiny ones on a CPU (where bf16,
    emulated, is timed only with --full)."""
    import torch

    from actnet import benchmark
    from actnet.config import resolve_run_config

    recipe = "ucf101_1pct" if gpu else "demo"
    fixed = [*common, "objective.supervised_epochs=0"] if gpu else common
    rows = benchmark.STEP_OPTIONS if gpu or full else [r for r in benchmark.STEP_OPTIONS if "bf16" not in r[0]]
    make = lambda extra: resolve_run_config(recipe, [*fixed, *extra], {**base, "name": "bench-options"})  # noqa: E731
    cfg = make([])
    lc = cfg.loader
    described = (
        f"{cfg.model.primary} + {cfg.model.auxiliary}, {lc.primary.frames} x {lc.primary.size} x {lc.primary.size}, "
        f"batch {lc.batch_size} + {lc.batch_size * lc.mu}"
    )
    ladder = benchmark.benchmark_step_options(make, rows, 10 if gpu or full else 5, log=out.print)
    paper = resolve_run_config("ucf101_1pct", [], {**base, "name": "bench-options"})
    device = torch.device("cuda" if gpu else "cpu")
    optim = {"primary": paper.optim.primary, "auxiliary": paper.optim.auxiliary}
    models = {"primary": paper.model.primary, "auxiliary": paper.model.auxiliary}
    opt_rows = benchmark.benchmark_optimizer_step(optim, models, 101, device)
    note = "" if gpu else "GPU rows: not measured (no GPU machine was lent to the session that ran this)."
    return {
        "rows": ladder,
        "config": described,
        "device": torch.cuda.get_device_name() if gpu else "CPU",
        "optimizer": opt_rows,
        "optimizer_models": f"{paper.model.primary} + {paper.model.auxiliary}, 101 classes, the paper's optimizers",
        "note": note,
        "machine": benchmark.machine_description(),
    }


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
    device: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    data: Annotated[
        Path | None,
        typer.Option(
            help="Shards to time (a folder with train, test and labeled-10pct-seed0 sets, e.g. a copy of "
            "~/.cache/actnet/bench-loader/synthetic/split1; default: the synthetic set, prepared once)."
        ),
    ] = None,
    skip: Annotated[
        str, typer.Option(help=f"Sections to leave out, comma-separated, of: {', '.join(BENCH_SECTIONS)}.")
    ] = "",
):
    import time

    import torch

    from actnet import benchmark

    skipped = {name.strip() for name in skip.split(",") if name.strip()}
    if unknown := skipped - set(BENCH_SECTIONS):
        raise ActnetError(f"--skip: no section {', '.join(sorted(unknown))} (sections: {', '.join(BENCH_SECTIONS)})")
    todo = [name for name in BENCH_SECTIONS if name not in skipped]
    started = time.perf_counter()
    workers = workers or os.cpu_count() or 1
    gpu = device != "cpu" and torch.cuda.is_available()
    if data is not None and not data.is_dir():
        raise ActnetError(f"--data {data}: no such folder")
    shards = None

    def bench_data() -> tuple[Path, str]:
        nonlocal shards
        if shards is None:
            shards = (data, str(data)) if data is not None else _bench_shards(workers)
        return shards

    loader_cfg = _bench_loader_config(64, 8, 8, 10, workers, device)
    common = [f"loader.device={device}", f"loader.num_threads={workers}", "train.eval_every=0"]
    for k, section in enumerate(todo, 1):
        out.print(f"[bold]{k}/{len(todo)} {section}[/]")
        if section in ("loader", "decoders", "training", "step-options", "soak"):
            url, source = bench_data()
            base = {
                "data": {"url": str(url), "labeled": "labeled-10pct-seed0"},
                "out": str(Path.home() / ".cache" / "actnet"),
            }
        if section == "prepare":
            listing = benchmark.synthetic_listing_for_benchmark(
                48 if full else 12, 175 if full else 100, 320, 240, None, workers
            )
            result = benchmark.benchmark_prepare(listing, EncodeConfig(), workers, 2 if full else 1, log=out.print)
            markdown = benchmark.prepare_markdown(result, "synthetic, 320x240 (H.264 sources)")
        elif section == "loader":
            result = benchmark.benchmark_loader(str(url), loader_cfg, 8 if full else 4, workers, log=out.print)
            markdown = benchmark.loader_markdown(result, loader_cfg, source, workers)
        elif section == "decoders":
            result = benchmark.benchmark_decoders(str(url), "test", 48 if full else 16, gpu)
            if gpu:
                result["device"] = torch.cuda.get_device_name()
            markdown = benchmark.decoders_markdown(result, source)
        elif section == "training":
            result = _bench_training(base, common, gpu, full, paper_input)
            markdown = benchmark.training_markdown(result["rows"], result["note"])
        elif section == "step-options":
            result = _bench_step_options(base, common, gpu, full)
            markdown = benchmark.step_options_markdown(result)
        elif section == "scaling":
            syn = SyntheticConfig()
            listing = synthetic_listing(syn, None, workers)
            listing.candidates = sorted(listing.candidates, key=lambda c: c.key)[: 96 if full else 32]
            result = benchmark.benchmark_scaling(listing, workers, loader_cfg, 8 if full else 4, log=out.print)
            markdown = benchmark.scaling_markdown(
                result, f"built-in synthetic set ({syn.width}x{syn.height}, {syn.frames} frames)"
            )
        else:
            epochs = 100 if full else 24
            out.print(f"  {epochs} epochs of the unlabeled loader in a fresh process")
            result = benchmark.soak_in_child(str(url), loader_cfg, epochs)
            markdown = benchmark.soak_markdown(result, source)
        benchmark.record(section, markdown, result, results)
    out.print(f"all benchmarks recorded in {results} ({(time.perf_counter() - started) / 60:.1f} min)")


def _bench_training(base: dict, common: list[str], gpu: bool, full: bool, paper_input: bool) -> dict:
    from actnet import benchmark
    from actnet.config import resolve_run_config

    demo = resolve_run_config("demo", common, {**base, "name": "bench"})
    rows = [benchmark.benchmark_training(demo, 10 if full else 5, out.print)]
    if gpu or paper_input:
        paper = [*common, "objective.supervised_epochs=0"] + ([] if gpu else ["loader.batch_size=1", "loader.mu=1"])
        paper_cfg = resolve_run_config("ucf101_1pct", paper, {**base, "name": "bench-paper"})
        rows.append(benchmark.benchmark_training(paper_cfg, 10 if gpu else 2, out.print))
    note = (
        ""
        if gpu
        else (
            f"GPU rows: not measured. No GPU machine was lent to the session that ran this ({rows[0]['device']}); "
            "`actnet benchmark all` on a GPU machine adds them (paper input, bf16, NVDEC decoding)."
        )
    )
    return {"rows": rows, "note": note}


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
    device: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    results: Annotated[Path | None, typer.Option(help="Record the figures in this markdown file (+ .json).")] = None,
):
    from actnet import benchmark

    workers = workers or os.cpu_count() or 1
    data, source = (data, str(data)) if data is not None else _bench_shards(workers)
    cfg = _bench_loader_config(size, frames, batch_size, eval_clips, workers, device)
    out.print(f"benchmark loader: {data}, {batches} batches per stream, {workers} threads/workers")
    result = benchmark.benchmark_loader(str(data), cfg, batches, workers, log=out.print)
    markdown = benchmark.loader_markdown(result, cfg, source, workers)
    out.print(markdown)
    if results is not None:
        benchmark.record("loader", markdown, result, results)
        out.print(f"recorded in {results}")
