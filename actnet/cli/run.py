"""Running models: ``actnet train``, ``actnet evaluate``, ``actnet predict``, ``actnet export``."""

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from actnet.cli.common import app, console, handle_errors, out, sink
from actnet.config import Device
from actnet.errors import ActnetError


def labeled_set_name(text: str) -> str:
    """``--labeled``: a spec as prepare takes it (1%, 10/class, 5%-random; seed 0) or a set name."""
    from actnet.data.splits import parse_labeled

    return text if text.startswith("labeled-") else parse_labeled(text).set_name(0)


@app.command("train", help="Train ActNetFormer (or a baseline, by config) on prepared shards.")
@handle_errors
def train_command(
    recipe: Annotated[str | None, typer.Option(help="A YAML recipe: a file or the name of one actnet ships.")] = None,
    data: Annotated[str | None, typer.Option(help="Shard folder <out>/<dataset>/<split> or s3:// prefix.")] = None,
    labeled: Annotated[str | None, typer.Option(help="Labeled subset: 1%, 10/class, ... or a set name.")] = None,
    out_dir: Annotated[str | None, typer.Option("--out", help="Parent folder of run folders.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name (the run folder is <out>/<name>).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    device: Annotated[Device | None, typer.Option(help="Where to decode and train.")] = None,
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
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Resolve and build everything, time a few steps, train and write nothing.")
    ] = False,
):
    from actnet.runtime import finish_distributed
    from actnet.train import resolve_training, run_training

    options = {
        "name": name,
        "out": out_dir,
        "data": {"url": data, "labeled": labeled_set_name(labeled) if labeled else None},
        "train": {"epochs": epochs, "seed": seed},
        "loader": {"device": device.value if device else None},
    }
    cfg, checkpoint = resolve_training(recipe, set_ or [], options, resume)
    if resume == "auto":
        found = f"resuming from {checkpoint}" if checkpoint else f"no checkpoint in {cfg.run_dir}, starting"
        out.print(f"--resume auto: {found}")
    if not cfg.data.url:
        raise ActnetError("--data is required (a folder written by `actnet prepare`, e.g. shards/ucf101/split1)")
    if dry_run:
        import yaml

        from actnet.dry_run import dry_run as plan_run
        from actnet.runtime import dist_info
        from actnet.tables import dry_run_table

        plan = plan_run(cfg, checkpoint)
        if dist_info()[0] == 0:
            sys.stdout.write(yaml.safe_dump(plan["config"], sort_keys=False))
            out.print(dry_run_table(plan))
        finish_distributed()
        return
    run_training(cfg, checkpoint, echo=lambda text: out.print(text, soft_wrap=True))
    finish_distributed()  # after a failure torchrun ends the other ranks; waiting for them could hang


@app.command("evaluate", help="Multi-view top-1/top-5 of both models and their ensemble, from a checkpoint.")
@handle_errors
def evaluate_command(
    checkpoint: Annotated[str, typer.Argument(help="A checkpoint file or a run folder (its last.pt).")],
    data: Annotated[str | None, typer.Option(help="Shard folder (default: the one the run trained on).")] = None,
    set_name: Annotated[str | None, typer.Option("--set", help="Shard set to evaluate (default: test).")] = None,
    clips: Annotated[int, typer.Option(help="Temporal clips per video (K).")] = 10,
    crops: Annotated[int, typer.Option(help="Spatial crops per clip: 1 or 3.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Videos per batch.")] = 4,
    device: Annotated[Device | None, typer.Option(help="Where to decode and run the models.")] = None,
    ema: Annotated[bool, typer.Option(help="Use the EMA weights when the run kept them.")] = True,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Where the report goes (default: next to it).")] = None,
):
    from actnet.config import EvalConfig
    from actnet.evaluate import evaluate_checkpoint
    from actnet.progress import ProgressSink
    from actnet.runtime import finish_distributed, model_device, setup_distributed
    from actnet.tables import report_table

    rank, _ = setup_distributed(model_device(device.value if device else "auto"))
    with sink("videos") if rank == 0 else ProgressSink() as progress:
        report = evaluate_checkpoint(
            checkpoint,
            data=data,
            set_name=set_name,
            eval_cfg=EvalConfig(clips=clips, crops=crops, batch_size=batch_size),
            device=device.value if device else None,
            use_ema=ema,
            out=out_dir,
            progress=progress,
        )
    finish_distributed()
    if rank == 0:
        title = f"{report['set']}: {report['videos']} videos, {report['views']} views, step {report['step']}"
        out.print(report_table(report, title))
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
    device: Annotated[Device, typer.Option(help="Where to run the models.")] = Device.cpu,
    ema: Annotated[bool, typer.Option(help="Use the EMA weights when the run kept them.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for machines.")] = False,
    timeline: Annotated[
        Path | None,
        typer.Option(
            help="Predict per time window instead, for long videos: writes <file>.timeline.json/.csv/.png here."
        ),
    ] = None,
    window: Annotated[
        float, typer.Option(help="--timeline: window length in seconds (0: the primary model's clip span).")
    ] = 0.0,
    hop: Annotated[float, typer.Option(help="--timeline: seconds between window starts (0: the window).")] = 0.0,
):
    from actnet.predict import predict_files, video_files
    from actnet.tables import prediction_table

    files = video_files(paths)
    if not files:
        raise ActnetError(f"{', '.join(map(str, paths))}: no video files")
    if window < 0 or hop < 0:
        raise ActnetError(f"--window and --hop must not be negative, not {window} and {hop}")
    if timeline is not None:
        _timelines(checkpoint, files, timeline, window, hop, crops or 1, device.value, ema)
        return
    with sink() as progress:
        progress.start("predict", len(files))
        results = predict_files(
            checkpoint,
            files,
            clips=clips,
            crops=crops,
            top_k=top_k,
            device=device.value,
            use_ema=ema,
            on_file=lambda _: progress.advance(),
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
            out.print(prediction_table(r))
    if failed:
        console.print(f"[yellow]{len(failed)} of {len(results)} files could not be read (named above)[/]")
        raise typer.Exit(1)


def _timelines(checkpoint: str, files: list[Path], out_dir: Path, window: float, hop: float, crops, device, ema):
    from actnet.data.media import MediaError
    from actnet.predict import Predictor, predict_timeline, write_timeline

    predictor = Predictor(checkpoint, device, ema)
    failed = 0
    with sink() as progress:
        for path in files:
            try:
                found = predict_timeline(
                    checkpoint,
                    path,
                    window_s=window,
                    hop_s=hop,
                    crops=crops,
                    predictor=predictor,
                    on_start=lambda total, name=path.name: progress.start(f"timeline {name}", total),
                    on_window=lambda _: progress.advance(),
                )
            except MediaError as err:
                progress.close()
                console.print(Text(f"{path}: ", style="bold red") + Text(str(err)))
                failed += 1
                continue
            progress.close()
            written = write_timeline(found, out_dir)
            role = "ensemble" if "ensemble" in found["segments"] else "primary"
            parts = [f"{s['class']} {s['start_s']:.1f}-{s['end_s']:.1f}s" for s in found["segments"][role]]
            out.print(Text(str(path), style="bold") + Text(f": {len(found['windows'])} windows; {role}: "))
            out.print("  " + ", ".join(parts), soft_wrap=True)
            out.print(f"  {', '.join(map(str, written))}", soft_wrap=True)
    if failed:
        console.print(f"[yellow]{failed} of {len(files)} files could not be read (named above)[/]")
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
