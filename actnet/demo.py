"""``actnet demo``: everything on the built-in synthetic set, on a laptop-class CPU, in minutes.

Render the synthetic set, prepare it with a labeled subset, draw its contact sheet, train ActNetFormer and the
supervised-only baseline on the same labeled videos for the same steps (the ``demo`` recipe: tiny presets at
64 px), evaluate both and compare them. A rerun reuses the rendered videos, the prepared shards and every run
that has a checkpoint. (The heavy imports happen inside :func:`run_demo`: the CLI reads this module's defaults.)
"""

from __future__ import annotations

import json
from pathlib import Path

from actnet.config import EncodeConfig, PrepareOptions, SyntheticConfig
from actnet.errors import RunFailed
from actnet.progress import ProgressSink

# With motion as the only cue the tiny models learned nothing within the CPU budget even with every label (README,
# "The demo"); a half-weight class colour makes the set learnable in minutes.
DEMO_APPEARANCE = 0.5
# The methods compared, as settings of the demo recipe.
METHODS = {"actnetformer": [], "supervised": ["objective.teaching=none", "objective.beta=0"]}


def run_demo(
    out_dir: Path,
    *,
    workers: int = 0,
    epochs: int | None = None,
    seed: int = 0,
    videos_per_class: int = SyntheticConfig.videos_per_class,
    appearance: float = DEMO_APPEARANCE,
    labeled: str = "10%",
    echo=print,
    progress: ProgressSink | None = None,
) -> dict[str, dict]:
    """Run the demo under ``out_dir``; ``echo`` gets its tables and lines (rich renderables or text) as they come.
    Returns each method's evaluation report and writes ``comparison.json``."""
    from actnet.data.splits import parse_labeled
    from actnet.data.synthetic import synthetic_listing
    from actnet.evaluate import evaluate_checkpoint
    from actnet.files import atomic_write
    from actnet.inspect_shards import contact_sheet, load_sets
    from actnet.prepare import prepare
    from actnet.recipes import resolve_run_config
    from actnet.tables import comparison_table, prepare_report, shard_set_tables
    from actnet.train import run_training

    progress = progress or ProgressSink()
    out_dir = Path(out_dir)
    cfg = SyntheticConfig(appearance=appearance, videos_per_class=videos_per_class)
    labeled_set = parse_labeled(labeled).set_name(0)
    listing = synthetic_listing(cfg, None, workers, progress)
    shard_dir = out_dir / "shards" / listing.dataset / listing.split
    if not (shard_dir / f"{labeled_set}.info.json").exists():  # written last: a finished prepare is kept
        opts = PrepareOptions(
            out=str(out_dir / "shards"),
            manifests=str(out_dir / "manifests"),
            labeled=(labeled,),
            workers=workers,
            encode=EncodeConfig(short_side=96, small_videos="keep"),  # a CPU demo: 128x96 stays (CPU-only)
        )
        summary = prepare(listing, opts, progress)
        progress.close()
        for part in prepare_report(summary):
            echo(part)
        if error := summary.reject_error(opts.max_reject_fraction):
            raise RunFailed(error)
        for table in shard_set_tables(load_sets(str(shard_dir))):
            echo(table)
        echo(f"contact sheet: {contact_sheet(str(shard_dir), 'train', out_dir / 'contact_sheet.png')}")
    progress.close()
    reports = {}
    for name, sets in METHODS.items():
        options = {
            "data": {"url": str(shard_dir), "labeled": labeled_set},
            "out": str(out_dir / "runs"),
            "name": f"{name}-seed{seed}",
            "train": {"epochs": epochs, "seed": seed},
        }
        run_cfg = resolve_run_config("demo", sets, options)
        last = Path(run_cfg.run_dir) / "last.pt"
        if not last.exists():
            run_training(run_cfg, echo=echo)
        reports[name] = evaluate_checkpoint(last)
    echo(comparison_table(reports, f"synthetic set, {labeled} labeled: test top-1 / mean class accuracy (%)"))
    summary = {name: {r: v["top1"] for r, v in rep["models"].items()} for name, rep in reports.items()}
    atomic_write(out_dir / "comparison.json", json.dumps(summary, indent=1) + "\n")
    echo(f"runs, curves and confusion matrices: {out_dir / 'runs'}")
    return reports
