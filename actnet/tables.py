"""Rich tables of what actnet made: a prepare run, shard sets, an evaluation report, predictions, a comparison.

Builders only: each returns a renderable; the CLI (and the demo, through the printer it is given) prints it.
"""

from __future__ import annotations

from rich import box
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

ROLES = ("primary", "auxiliary", "ensemble")


def prepare_report(summary) -> list:
    """A finished prepare run (a PrepareSummary): samples, shards and bytes per set, then what it did and rejected."""
    table = Table(title=f"{summary.dataset} / {summary.split}  ->  {summary.url}")
    for col in ("set", "samples", "shards", "size"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, s in summary.sets.items():
        table.add_row(name, str(s["samples"]), str(s["shards"]), decimal(s["bytes"]))
    rate = summary.encoded_now / summary.seconds if summary.seconds else 0.0
    out = [table, f"encoded {summary.encoded_now} videos now in {summary.seconds:.1f} s ({rate:.2f} videos/s)"]
    if summary.skipped:
        out.append(f"[yellow]{summary.skipped} listed videos missing or unplaceable[/] (see rejects.jsonl)")
    if summary.rejected:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(summary.reject_reasons.items()))
        out.append(
            f"[yellow]{summary.rejected} of {summary.candidates} videos rejected[/] ({reasons}); see rejects.jsonl"
        )
    return out


def _span(lo, hi) -> str:
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def shard_set_tables(infos: list) -> list[Table]:
    """The shard sets of one folder (ShardSetInfo, train and test first): one row per set, then videos per class."""
    hours = sum((info.video or {}).get("duration_s", 0) for info in infos if info.set in ("train", "test")) / 3600
    table = Table(title=f"{infos[0].dataset} / {infos[0].split}: {hours:.2f} h of video", box=box.SIMPLE_HEAD)
    table.add_column("set", no_wrap=True, min_width=max(len(info.set) for info in infos))
    for col in ("videos", "classes", "shards", "size"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("video", no_wrap=True)
    for info in infos:
        v = info.video or {}
        video = info.codec
        if v:
            fps = ",".join(f"{f:g}" for f in v["fps"][:2]) + ("..." if len(v["fps"]) > 2 else "")
            video += f" {_span(*v['width'])}x{_span(*v['height'])} {fps}fps"
            video += f" {_span(v['num_frames']['min'], v['num_frames']['max'])}f"
        table.add_row(
            info.set,
            str(info.num_samples),
            str(sum(1 for c in info.class_counts if c)),
            str(len(info.shards)),
            decimal(sum(s.bytes for s in info.shards)),
            video,
        )
    per_class = Table(title="videos per class", box=box.SIMPLE_HEAD)
    per_class.add_column("class")
    for info in infos:
        per_class.add_column(info.set, justify="right")
    for c, name in enumerate(infos[0].classes):
        per_class.add_row(name, *(str(info.class_counts[c]) for info in infos))
    return [table, per_class]


def report_table(report: dict, title: str) -> Table:
    """top-1, top-5 and mean class accuracy of each model and the ensemble (an evaluation report)."""
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
    return table


def prediction_table(result: dict) -> Table:
    """One file's top-k classes per model, with probabilities (a result of ``predict_files``)."""
    table = Table(box=box.SIMPLE_HEAD)
    for role in result["top"]:
        table.add_column(role)
    for row in zip(*result["top"].values()):
        table.add_row(*(f"{name} {100 * p:.1f}%" for name, p in row))
    return table


def comparison_table(reports: dict[str, dict], title: str) -> Table:
    """Methods side by side: test top-1 [95% interval] / mean class accuracy (%) of each model and the ensemble."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("method")
    for role in ROLES:
        table.add_column(role, justify="right")
    for name, report in reports.items():
        m = report["models"]
        cells = [_accuracies(m[r]) if r in m else "-" for r in ROLES]
        table.add_row(name, *cells)
    return table


def _accuracies(m: dict) -> str:
    interval = ""
    if m.get("top1_interval"):  # reports written before intervals existed have none
        lo, hi = m["top1_interval"]
        interval = f" [{100 * lo:.0f}-{100 * hi:.0f}]"
    return f"{100 * m['top1']:.1f}{interval} / {100 * m['mean_class_accuracy']:.1f}"


def doctor_table(checks: list, title: str) -> Table:
    """One row per check of ``actnet doctor``, its status coloured."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("check", "status", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.name, Text(c.status, style=STATUS_STYLE[c.status]), c.detail)
    return table


STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def verify_table(checks: list, title: str) -> Table:
    """One row per shard set verified: shards, samples, size and what was wrong."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("set", "shards", "samples", "size", "result"):
        table.add_column(column, justify="right" if column in ("shards", "samples", "size") else "left")
    for c in checks:
        result = "[green]ok[/]" if c.ok else f"[red]{len(c.problems)} damaged[/]"
        table.add_row(c.set, str(c.shards), str(c.samples), decimal(c.bytes), result)
    return table


def dry_run_table(plan: dict) -> Table:
    """What ``actnet train --dry-run`` found: the data, the schedule and the time estimate."""
    from actnet.progress import duration_text

    table = Table(title=f"dry run: {plan['run_dir']} (nothing written)", box=box.SIMPLE_HEAD, show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("data", f"{plan['data']} ({plan['classes']} classes)")
    for kind, found in plan["sets"].items():
        table.add_row(f"{kind} set", f"{found['name']}: {found['videos']} videos")
    table.add_row("processes", f"{plan['world']} on {plan['device']}")
    table.add_row("steps", f"{plan['steps_per_epoch']} per epoch x {plan['epochs']} epochs = {plan['total_steps']}")
    if plan["start_step"]:
        table.add_row("resuming at", f"step {plan['start_step']}")
    table.add_row("clips per step", f"{plan['clips_per_step']} (all processes)")
    lrs = ", ".join(f"{role} {lr:.3g}" for role, lr in plan["peak_lr"].items())
    table.add_row("peak learning rate", lrs)
    starts = [f"{term} {'off' if step is None else f'from step {step}'}" for term, step in plan["term_starts"].items()]
    table.add_row("unlabeled terms", ", ".join(starts))
    if plan["seconds_per_step"] is not None:
        table.add_row("time per step", f"{plan['seconds_per_step']:.3g} s (mean of {plan['timed_steps']} timed steps)")
        table.add_row("estimate", f"{duration_text(plan['estimate_s'])} of training steps (evaluations add to it)")
    return table
