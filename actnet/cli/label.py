"""After training: ``actnet suggest`` (which videos to label next) and ``actnet pseudo-label``."""

from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from actnet.cli.common import app, handle_errors, out, sink
from actnet.errors import ActnetError

STRATEGY_HELP = (
    "random (the baseline), least-confidence (the ensemble's), disagreement (the two models'), coverage "
    "(k-center on the features, away from the labeled videos)"
)
Checkpoint = Annotated[str, typer.Argument(help="A checkpoint file or a run folder (its last.pt).")]
Data = Annotated[str | None, typer.Option(help="Shard folder or s3:// prefix (default: the run's --data).")]
Clips = Annotated[int | None, typer.Option(help="Temporal clips per video (default: the run's eval.clips).")]
Crops = Annotated[int | None, typer.Option(help="Spatial crops per clip, 1 or 3 (default: the run's).")]
Device = Annotated[str | None, typer.Option(help="Where to decode and run: cpu, gpu (default: the run's).")]


@app.command("suggest", help="Rank the unlabeled training videos: which to label next, with a contact sheet.")
@handle_errors
def suggest_command(
    checkpoint: Checkpoint,
    budget: Annotated[int, typer.Option(help="How many videos to suggest.")] = 100,
    strategy: Annotated[str, typer.Option(help=STRATEGY_HELP)] = "disagreement",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for next.txt, suggestions.jsonl/.png.")] = Path(
        "suggestions"
    ),
    data: Data = None,
    clips: Clips = None,
    crops: Crops = None,
    device: Device = None,
    seed: Annotated[int, typer.Option(help="Seed of the random strategy.")] = 0,
):
    from actnet.labeling import STRATEGIES, rank_videos, score_unlabeled, write_suggestions

    if strategy not in STRATEGIES:
        raise ActnetError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if budget < 1:
        raise ActnetError(f"--budget must be at least 1, not {budget}")
    with sink() as progress:
        scores = score_unlabeled(
            checkpoint,
            data=data,
            clips=clips,
            crops=crops,
            device=device,
            features=strategy == "coverage",
            progress=progress,
        )
    picked = rank_videos(scores, strategy, budget, seed)
    written = write_suggestions(scores, picked, strategy, out_dir)
    table = Table(title=f"next {len(picked)} of {len(scores.keys)} unlabeled videos ({strategy})", box=box.SIMPLE_HEAD)
    for column in ("rank", "key", "score", *scores.probs):
        table.add_column(column)
    for rank, (i, score) in enumerate(picked[:15], start=1):
        said = [f"{scores.classes[int(p[i].argmax())]} {p[i].max():.2f}" for p in scores.probs.values()]
        table.add_row(str(rank), scores.keys[i], f"{score:.3f}", *said)
    out.print(table)
    for what, path in written.items():
        out.print(f"{what}: {path}", soft_wrap=True)
    out.print(f"next: `actnet prepare ... --labeled-list {written['labeled_next']}` makes the bigger labeled set")


@app.command("pseudo-label", help="The unlabeled videos' predicted classes, confidences and agreement, to review.")
@handle_errors
def pseudo_label_command(
    checkpoint: Checkpoint,
    threshold: Annotated[float, typer.Option(help="Accept a pseudo-label at this confidence (the ensemble's).")] = 0.9,
    agree: Annotated[bool, typer.Option(help="Accept only where the two models predict the same class.")] = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for pseudo-labels.jsonl, accepted.txt, .png.")] = Path(
        "pseudo-labels"
    ),
    data: Data = None,
    clips: Clips = None,
    crops: Crops = None,
    device: Device = None,
    score: Annotated[
        bool,
        typer.Option(
            help="Also measure precision against the stored labels at several thresholds (a set whose labels you "
            "trust, e.g. the synthetic one)."
        ),
    ] = False,
):
    from actnet.labeling import class_counts, precision_table, pseudo_label_rows, score_unlabeled, write_pseudo_labels

    if not 0.0 <= threshold <= 1.0:
        raise ActnetError(f"--threshold must be within [0, 1], not {threshold}")
    with sink() as progress:
        scores = score_unlabeled(checkpoint, data=data, clips=clips, crops=crops, device=device, progress=progress)
    if agree and len([r for r in scores.probs if r != "ensemble"]) < 2:
        raise ActnetError("--agree needs a checkpoint with two models")
    rows = pseudo_label_rows(scores, threshold, agree)
    written = write_pseudo_labels(scores, rows, out_dir)
    accepted = sum(r["accepted"] for r in rows)
    table = Table(title=f"pseudo-labels: {accepted} of {len(rows)} accepted at {threshold:g}", box=box.SIMPLE_HEAD)
    for column in ("class", "accepted", "predicted"):
        table.add_column(column, justify="right" if column != "class" else "left")
    for name, a, p in class_counts(rows, scores.classes):
        table.add_row(name, str(a), str(p))
    out.print(table)
    if score:
        prec = Table(title="precision against the stored labels", box=box.SIMPLE_HEAD)
        for column in ("threshold", "models agree", "kept", "precision"):
            prec.add_column(column, justify="right")
        for row in precision_table(scores, [0.5, 0.7, 0.8, 0.9, 0.95]):
            p = "-" if row["precision"] is None else f"{100 * row['precision']:.1f}%"
            prec.add_row(f"{row['threshold']:g}", "yes" if row["agree"] else "-", f"{row['kept']}/{row['of']}", p)
        out.print(prec)
    for what, path in written.items():
        out.print(f"{what}: {path}", soft_wrap=True)
