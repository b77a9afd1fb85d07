"""Looking and checking: ``actnet inspect``, ``actnet doctor``, and ``actnet demo`` (everything, on synthetic data)."""

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from actnet import __version__
from actnet.cli.common import app, handle_errors, out, sink
from actnet.demo import DEFAULT_METHODS, DEMO_APPEARANCE, DEMO_LABELED, DEMO_VIDEOS_PER_CLASS, METHODS


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
    from actnet.tables import shard_set_tables

    for table in shard_set_tables(inspect_shards.load_sets(path)):
        out.print(table)
    if contact_sheet is not None:
        png = inspect_shards.contact_sheet(path, set_name, contact_sheet, clips, frames)
        out.print(f"contact sheet: {png}")


@app.command("verify", help="Check shard sets against their info.json: sizes, indices, hashes, every video decodes.")
@handle_errors
def verify_command(
    path: Annotated[str, typer.Argument(help="An <out>/<dataset>/<split> folder or s3:// prefix.")],
    set_names: Annotated[list[str] | None, typer.Option("--set", help="Only this set (repeatable).")] = None,
    quick: Annotated[bool, typer.Option(help="Sizes and indices only (what train and evaluate check).")] = False,
):
    from actnet.errors import RunFailed
    from actnet.tables import verify_table
    from actnet.verify import verify_output

    checks = verify_output(path, set_names, quick, sink("samples"))
    out.print(verify_table(checks, f"{path}: {'quick' if quick else 'full'} verification"))
    problems = [p for c in checks for p in c.problems]
    for problem in problems:
        out.print(Text(problem, style="red"), soft_wrap=True)
    if problems:
        raise RunFailed(
            f"{path}: {len(problems)} damaged shard(s); the same `actnet prepare` command with --rehash redoes them"
        )


@app.command("doctor", help="What this installation can do (torch, GPU, DALI decoders, ffmpeg, S3), with fixes.")
@handle_errors
def doctor_command():
    from actnet.doctor import FAIL, WARN, run_checks
    from actnet.tables import STATUS_STYLE, doctor_table

    checks = run_checks()
    out.print(doctor_table(checks, f"actnet {__version__}: this installation"))
    for c in checks:
        if c.fix and c.status in (FAIL, WARN):
            out.print(Text(f"{c.status} {c.name}: ", style=STATUS_STYLE[c.status]) + Text(c.fix))
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)


@app.command("demo", help="Everything on the built-in synthetic set, CPU-friendly: prepare, train, evaluate, compare.")
@handle_errors
def demo_command(
    out_dir: Annotated[Path, typer.Option("--out", help="Where shards, runs and pictures go.")] = Path("runs/demo"),
    workers: Annotated[int, typer.Option("--workers", "-j", help="Parallel prepare jobs (0: all cores).")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Training epochs (default: the demo recipe's).")] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    videos_per_class: Annotated[
        int, typer.Option(help="Synthetic videos per class (a bigger set: less noisy test figures).")
    ] = DEMO_VIDEOS_PER_CLASS,
    appearance: Annotated[
        float, typer.Option(help="Weight of the per-class colour (0: motion only).")
    ] = DEMO_APPEARANCE,
    labeled: Annotated[str, typer.Option(help="Labeled subset, as for prepare (10%, 2/class).")] = DEMO_LABELED,
    methods: Annotated[
        str,
        typer.Option(help=f"Methods to train and compare, comma-separated, among: {', '.join(METHODS)}."),
    ] = ",".join(DEFAULT_METHODS),
    force: Annotated[
        bool, typer.Option(help="Make everything again (default: reuse what the same settings made).")
    ] = False,
):
    from actnet.demo import parse_methods, run_demo

    chosen = parse_methods(methods)
    with sink() as progress:
        run_demo(
            out_dir,
            workers=workers,
            epochs=epochs,
            seed=seed,
            videos_per_class=videos_per_class,
            appearance=appearance,
            labeled=labeled,
            methods=chosen,
            force=force,
            echo=out.print,
            progress=progress,
        )
